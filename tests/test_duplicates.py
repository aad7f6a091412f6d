"""Jets are unique within a run: the same jet twice, in one file or across files and samples,
fails before the dataset reads any image, naming both files and entries, or is dropped and
counted by the sample's ``duplicates: drop``. On three constituent formats and pre-pixelated
images; each error leaves no dataset behind."""

from __future__ import annotations

import re

import awkward as ak
import numpy as np
import pytest
from test_bad_input import CLASSES, FILE_FORMATS, SPEC, options, write

from jetimage.batches import ImageBatch
from jetimage.dataset import build_dataset
from jetimage.duplicates import constituent_digests, image_digests
from jetimage.files import InputError
from jetimage.images import write_image_store
from jetimage.readers import Counts, Labels, read, read_jets
from jetimage.zarr_store import open_store

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
EXTENSION = {"parquet": "parquet", "root": "root", "toptagging": "h5"}


@pytest.fixture(scope="module")
def qcd_store(qcd_file, tmp_path_factory):
    """A store of 200 real QCD jets, so that every dataset has two classes."""
    path = tmp_path_factory.mktemp("qcd") / "qcd.zarr"
    jets = read_jets(qcd_file, labels=Labels(CLASSES, class_name="qcd"))[:200]
    write_image_store(path, jets, SPEC, attrs={"source": "qcd.root", "sample": "qcd"})
    return path


def part(jets: dict, rows) -> dict:
    return {k: v[rows] for k, v in jets.items()}


def joined(*pieces: dict) -> dict:
    return {k: ak.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def pixelate(path, fmt: str, out, sample: str) -> str:
    """The images stage on one file (as the images rule runs it)."""
    counts = Counts()
    batches = read(path, format=fmt, counts=counts, **options(fmt))
    attrs = {"source": str(path), "sample": sample, "classes": list(CLASSES)}
    write_image_store(out, batches, SPEC, attrs=attrs, counts=counts)
    return str(out)


def test_a_digest_ignores_the_constituents_order_and_sees_one_bit():
    rng = np.random.default_rng(1)
    px, py, pz = rng.normal(size=(3, 30))
    E = np.sqrt(px**2 + py**2 + pz**2) + 0.1
    offsets = np.array([0, 10, 30])
    digests = constituent_digests(px, py, pz, E, offsets)
    order = np.r_[rng.permutation(10), 10 + rng.permutation(20)]
    assert np.array_equal(
        constituent_digests(px[order], py[order], pz[order], E[order], offsets), digests
    )
    E[3] = np.nextafter(E[3], np.inf)  # one bit of one constituent
    changed = constituent_digests(px, py, pz, E, offsets)
    assert changed[0] != digests[0]
    assert changed[1] == digests[1]
    # the same constituents split otherwise between jets are other jets
    assert not np.any(np.isin(constituent_digests(px, py, pz, E, [0, 11, 30]), digests))
    images = rng.random((4, 1, 8, 8)).astype(np.float32)
    moved = images.copy()
    moved[1, 0] = moved[1, 0].T  # the same pixel values, elsewhere
    d = image_digests(np.concatenate([images, moved]))
    assert d[0] == d[4]
    assert d[1] != d[5]
    assert len(set(d[:4])) == 4


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_overlapping_files_fail_naming_both_files_and_entries(jets, qcd_store, tmp_path, fmt):
    """Two files sharing 10 jets (entries 30-39 of the first are entries 0-9 of the second),
    in two samples."""
    a = pixelate(
        write(tmp_path / "first", fmt, part(jets, slice(0, 40))), fmt, tmp_path / "a.zarr", "a"
    )
    b = pixelate(
        write(tmp_path / "second", fmt, part(jets, slice(30, 60))), fmt, tmp_path / "b.zarr", "b"
    )
    dataset = tmp_path / "ds.zarr"
    ext = EXTENSION[fmt]
    with pytest.raises(
        InputError,
        match=rf"the same jet \(the same constituents, or pixels\) is read twice: "
        rf".*first\.{ext} entry (\d+) and .*second\.{ext} entry (\d+); 10 jet\(s\) of the run "
        rf"are copies of another\. A jet's split follows its file and entry, so copies would "
        rf"leak from train into test\. Remove the copies from the files, or set duplicates: "
        rf"drop on sample\(s\) \['a', 'b'\] to keep one of each",
    ) as error:
        build_dataset(
            dataset, [qcd_store, a, b], classes=list(CLASSES), fractions=FRACTIONS, seed=1
        )
    first, second = map(
        int, re.search(r"entry (\d+) and .* entry (\d+);", str(error.value)).groups()
    )
    assert first == second + 30
    assert not dataset.exists()
    assert not list(tmp_path.glob("*buckets*"))


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_a_file_holding_its_jets_twice_fails_or_drops_its_copies(jets, qcd_store, tmp_path, fmt):
    """One file of the 60 jets written twice over (entries 60-119 repeat 0-59), as a file
    concatenated with itself: an error by default; with duplicates: drop, the dataset holds
    the jets of the file once, the first of each, with the 60 copies counted."""
    twice = pixelate(
        write(tmp_path / "twice", fmt, joined(jets, jets)), fmt, tmp_path / "t.zarr", "top"
    )
    once = pixelate(write(tmp_path / "once", fmt, jets), fmt, tmp_path / "o.zarr", "top")
    dataset = tmp_path / "ds.zarr"
    with pytest.raises(
        InputError, match=r"twice\.\w+ entry (\d+) and .*twice\.\w+ entry (\d+); 60 jet"
    ) as error:
        build_dataset(
            dataset, [qcd_store, twice], classes=list(CLASSES), fractions=FRACTIONS, seed=1
        )
    first, second = map(
        int, re.search(r"entry (\d+) and .* entry (\d+);", str(error.value)).groups()
    )
    assert second == first + 60
    assert not dataset.exists()
    attrs = build_dataset(
        dataset,
        [qcd_store, twice],
        classes=list(CLASSES),
        fractions=FRACTIONS,
        seed=1,
        drop_duplicates=["top"],
        buckets=2,
    )
    assert attrs["duplicates"] == {"copies": 60, "dropped": 60, "dropped_per_sample": {"top": 60}}
    reference = build_dataset(
        tmp_path / "ref.zarr", [qcd_store, once], classes=list(CLASSES), fractions=FRACTIONS, seed=1
    )

    def total(a):  # the splits differ: a jet's split follows its file (its digest) and entry
        return {c: sum(a["splits"][s][c] for s in a["splits"]) for c in CLASSES}

    assert total(attrs) == total(reference) == {"qcd": 200, "top": 60}
    assert reference["duplicates"] == {"copies": 0, "dropped": 0, "dropped_per_sample": {}}
    kept = open_store(dataset)
    for split in ("train", "val", "test"):
        entries = kept[f"{split}/jets/entry"][...]
        assert len(set(kept[f"{split}/jets/digest"][...])) == len(entries)
        assert np.all(entries[kept[f"{split}/labels"][...] == 1] < 60)


def test_a_copy_in_a_sample_that_drops_is_dropped_whichever_comes_first(jets, qcd_store, tmp_path):
    """A group of identical jets keeps the one in the sample that does not drop copies."""
    a = pixelate(
        write(tmp_path / "a", "root", part(jets, slice(0, 40))), "root", tmp_path / "a.zarr", "a"
    )
    b = pixelate(
        write(tmp_path / "b", "root", part(jets, slice(30, 60))), "root", tmp_path / "b.zarr", "b"
    )
    attrs = build_dataset(
        tmp_path / "ds.zarr",
        [qcd_store, a, b],
        classes=list(CLASSES),
        fractions=FRACTIONS,
        seed=1,
        drop_duplicates=["a"],
    )
    assert attrs["duplicates"]["dropped_per_sample"] == {"a": 10}
    assert sum(attrs["splits"][s]["top"] for s in attrs["splits"]) == 60


def test_pre_pixelated_images_seen_twice_fail(qcd_store, tmp_path):
    """Already-pixelated images (as images-h5 gives them) are compared by their pixels."""
    rng = np.random.default_rng(3)
    images = rng.random((50, 1, 16, 16)).astype(np.float32)
    stores = []
    for name, rows in (("x", slice(0, 30)), ("y", slice(20, 50))):
        batch = ImageBatch(
            images[rows], {"label": np.ones(30, np.int64), "entry": np.arange(30, dtype=np.int64)}
        )
        stores.append(tmp_path / f"{name}.zarr")
        write_image_store(
            stores[-1],
            batch,
            None,
            attrs={"source": f"{name}.h5", "sample": name, "classes": list(CLASSES)},
        )
    qcd = []
    for _ in range(1):
        batch = ImageBatch(
            rng.random((50, 1, 16, 16)).astype(np.float32),
            {"label": np.zeros(50, np.int64), "entry": np.arange(50, dtype=np.int64)},
        )
        qcd.append(tmp_path / "q.zarr")
        write_image_store(
            qcd[-1], batch, None, attrs={"source": "q.h5", "sample": "q", "classes": list(CLASSES)}
        )
    with pytest.raises(InputError, match=r"x\.h5 entry (2\d) and y\.h5 entry (\d); 10 jet\(s\)"):
        build_dataset(
            tmp_path / "ds.zarr", qcd + stores, classes=list(CLASSES), fractions=FRACTIONS, seed=1
        )
    assert not (tmp_path / "ds.zarr").exists()
