"""Dataset assembly: every jet once with its image and label, stable splits, bounded buckets,
batches that mix the classes of one-class files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from jetimage import ImageSpec, loader
from jetimage.dataset import SPLITS, build_dataset, jet_hashes, split_of, write_bucket
from jetimage.files import InputError
from jetimage.images import write_image_store
from jetimage.readers import Labels, read_jets
from jetimage.zarr_store import open_store

SPEC = ImageSpec(npix=(16, 16), width=(1.6, 1.6))
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
CLASSES = ["qcd", "top"]


def build(path, stores, *, seed: int = 5, **options) -> dict:
    """``build_dataset`` with these tests' classes, fractions and 32-jet chunks."""
    return build_dataset(
        path, stores, classes=CLASSES, fractions=FRACTIONS, seed=seed, chunk_jets=32, **options
    )


@pytest.fixture(scope="module")
def one_class_stores(top_file, qcd_file, tmp_path_factory) -> list:
    """Six per-file stores of real generated jets, each of one class (as generated samples
    are): the QCD and the top file cut into three parts each, in chunks of 32 jets."""
    out = tmp_path_factory.mktemp("one-class-stores")
    paths = []
    for name, path in (("qcd", qcd_file), ("top", top_file)):
        jets = read_jets(path, labels=Labels(tuple(CLASSES), class_name=name))
        edges = np.linspace(0, len(jets), 4).astype(int)
        for part in range(3):
            piece = jets[edges[part] : edges[part + 1]]
            store = out / f"{name}-{part}.zarr"
            write_image_store(
                store,
                piece,
                SPEC,
                chunk_jets=32,
                attrs={
                    "sample": name,
                    "classes": CLASSES,
                    "source": f"{path}#{part}",
                    "source_sha256": f"{name}-{part}-checksum",
                },
            )
            paths.append(store)
    return paths


def identities(path) -> dict[str, set]:
    """(source checksum, entry) of the jets in each split of a dataset."""
    root = open_store(path)
    checksums = [s["source_sha256"] for s in root.attrs["sources"]]
    return {
        split: {
            (checksums[s], int(e))
            for s, e in zip(root[f"{split}/jets/source"][...], root[f"{split}/jets/entry"][...])
        }
        for split in SPLITS
    }


@pytest.mark.parametrize(("buckets", "workers"), [(1, 1), (3, 2), (7, 2)])
def test_the_dataset_holds_every_jet_once_with_its_image_and_label(
    one_class_stores, tmp_path, buckets, workers
):
    path = tmp_path / "ds.zarr"
    attrs = build(path, one_class_stores, buckets=buckets, num_workers=workers)
    root = open_store(path)
    sources = [open_store(s) for s in one_class_stores]
    seen = []
    for split in SPLITS:
        group = root[split]
        src, row = group["jets/source"][...], group["jets/source_row"][...]
        images, labels = group["images"][...], group["labels"][...]
        for s, source in enumerate(sources):
            mine = src == s
            np.testing.assert_array_equal(images[mine], source["images"].oindex[row[mine]])
            np.testing.assert_array_equal(labels[mine], source["labels"].oindex[row[mine]])
            np.testing.assert_array_equal(
                group["jets/pt"][...][mine], source["jets/pt"].oindex[row[mine]]
            )
        seen += list(zip(src, row))
        assert attrs["splits"][split] == {
            c: int(np.sum(labels == i)) for i, c in enumerate(CLASSES)
        }
    assert len(seen) == len(set(seen)) == sum(s["images"].shape[0] for s in sources)
    train = root["train/images"][...]
    np.testing.assert_allclose(attrs["normalization"]["mean"], [train.mean()], rtol=1e-5)
    np.testing.assert_allclose(attrs["normalization"]["std"], [train.std()], rtol=1e-4)


def test_a_jet_lands_in_the_same_split_whatever_the_buckets(one_class_stores, tmp_path):
    one = build(tmp_path / "one.zarr", one_class_stores, buckets=1)
    five = build(tmp_path / "five.zarr", one_class_stores, buckets=5)
    assert one["splits"] == five["splits"]
    assert identities(tmp_path / "one.zarr") == identities(tmp_path / "five.zarr")
    # each class is split by the fractions, up to binomial fluctuations
    for c in CLASSES:
        n = sum(one["splits"][s][c] for s in SPLITS)
        for split, fraction in FRACTIONS.items():
            assert abs(one["splits"][split][c] - fraction * n) < 4 * np.sqrt(
                n * fraction * (1 - fraction)
            )


def test_the_same_seed_gives_the_same_store_whatever_the_order_of_the_inputs(
    one_class_stores, tmp_path
):
    a = build(tmp_path / "a.zarr", one_class_stores, buckets=3, num_workers=2)
    b = build(tmp_path / "b.zarr", one_class_stores[::-1], buckets=3)
    c = build(tmp_path / "c.zarr", one_class_stores, seed=6, buckets=3)
    assert a["splits"] == b["splits"]
    assert a["normalization"] == b["normalization"]
    for split in SPLITS:
        np.testing.assert_array_equal(
            open_store(tmp_path / "a.zarr")[f"{split}/images"][...],
            open_store(tmp_path / "b.zarr")[f"{split}/images"][...],
        )
    assert identities(tmp_path / "a.zarr") != identities(tmp_path / "c.zarr")
    assert c["splits"] != a["splits"]


def test_adding_a_file_leaves_every_old_jet_in_its_split(one_class_stores, tmp_path):
    before = build(tmp_path / "before.zarr", one_class_stores[:5], buckets=2)
    after = build(tmp_path / "after.zarr", one_class_stores, buckets=3)
    old, new = identities(tmp_path / "before.zarr"), identities(tmp_path / "after.zarr")
    for split in SPLITS:
        assert old[split] <= new[split]
        assert not old[split] & set().union(*(new[s] for s in SPLITS if s != split))
    assert (
        sum(map(len, new.values())) - sum(map(len, old.values()))
        == open_store(one_class_stores[5])["images"].shape[0]
    )
    assert after["splits"]["train"]["qcd"] == before["splits"]["train"]["qcd"]


def test_the_assembled_chunks_are_hard_links_to_the_buckets(one_class_stores, tmp_path):
    """Assembly decodes nothing but the leftovers: the dataset's whole chunks are the buckets'
    chunk files, linked."""
    bucket = tmp_path / "0.zarr"
    write_bucket(
        bucket,
        one_class_stores,
        bucket=0,
        buckets=1,
        classes=CLASSES,
        fractions=FRACTIONS,
        seed=5,
        chunk_jets=32,
    )
    chunk = bucket / "train" / "images" / "c" / "0" / "0" / "0" / "0"
    from jetimage.dataset import assemble_dataset

    assemble_dataset(
        tmp_path / "ds.zarr",
        [bucket],
        one_class_stores,
        classes=CLASSES,
        fractions=FRACTIONS,
        seed=5,
        chunk_jets=32,
    )
    linked = tmp_path / "ds.zarr" / "train" / "images" / "c" / "0" / "0" / "0" / "0"
    assert chunk.stat().st_nlink == 2
    assert chunk.stat().st_ino == linked.stat().st_ino


def test_a_bucket_over_the_memory_budget_fails_before_reading_and_says_how_many(
    one_class_stores, tmp_path
):
    n = sum(open_store(s)["images"].shape[0] for s in one_class_stores)
    budget = n * 16 * 16 * 4 / 1e6 / 2.5  # the images need 3 buckets (2.5, 10% to spare)
    with pytest.raises(
        InputError,
        match=r"bucket 0 of 2 holds \d+ jets \(\d+ MB of images\), "
        r"over dataset.memory_mb = [\d.]+: set dataset.buckets "
        r"to at least 3 for these \d+ jets",
    ):
        write_bucket(
            tmp_path / "b.zarr",
            one_class_stores,
            bucket=0,
            buckets=2,
            classes=CLASSES,
            fractions=FRACTIONS,
            seed=5,
            memory_mb=budget,
        )
    assert not list(tmp_path.iterdir())


def test_buckets_of_other_settings_are_not_assembled(one_class_stores, tmp_path):
    from jetimage.dataset import assemble_dataset

    write_bucket(
        tmp_path / "0.zarr",
        one_class_stores,
        bucket=0,
        buckets=1,
        classes=CLASSES,
        fractions=FRACTIONS,
        seed=5,
    )
    with pytest.raises(
        InputError,
        match=r"0\.zarr: bucket made with .*'seed': 5.*, the "
        r"dataset needs .*'seed': 6",
    ):
        assemble_dataset(
            tmp_path / "ds.zarr",
            [tmp_path / "0.zarr"],
            one_class_stores,
            classes=CLASSES,
            fractions=FRACTIONS,
            seed=6,
        )


def test_split_hashes_cut_by_the_fractions():
    hashes = jet_hashes(3, "a-file", np.arange(200_000), "split")
    counts = np.bincount(split_of(hashes, FRACTIONS), minlength=3) / len(hashes)
    np.testing.assert_allclose(counts, [0.6, 0.2, 0.2], atol=0.005)
    assert not np.array_equal(hashes, jet_hashes(3, "another-file", np.arange(200_000), "split"))
    with pytest.raises(ValueError, match="sum to 1"):
        split_of(hashes, {"train": 0.5, "val": 0.1, "test": 0.1})


@pytest.mark.parametrize("streamed", [False, True])
def test_training_batches_mix_the_classes_of_one_class_files(one_class_stores, tmp_path, streamed):
    """Whatever the loader, every batch's class fraction stays within 3 binomial standard
    deviations of the split's, though each input file holds one class."""
    path = tmp_path / "ds.zarr"
    build(path, one_class_stores, buckets=3)
    data = loader.open_split(path, "train", memory_budget_mb=1e-6 if streamed else 1e6)
    assert data.streaming == streamed
    labels = open_store(path)["train/labels"][...]
    p = labels.mean()
    batches = 0
    for epoch in range(3):
        for _, y in data.batches(32, torch.Generator().manual_seed(epoch)):
            if len(y) < 16:
                continue
            sigma = np.sqrt(p * (1 - p) / len(y))
            assert abs(y.float().mean().item() - p) < 3 * sigma
            batches += 1
    assert batches >= 30


@pytest.mark.parametrize(("buffer_chunks", "workers"), [(3, None), (1, 1), (1, 2)])
def test_the_stream_in_order_equals_the_split_in_memory(
    one_class_stores, tmp_path, buffer_chunks, workers
):
    """Every batch is held until the end and the stream is read several times, so a group
    decoded into buffers that a batch still refers to (or two groups into the same buffers,
    once their decoding has ended but before their batches exist) shows as wrong values."""
    path = tmp_path / "ds.zarr"
    attrs = build(path, one_class_stores, buckets=2)
    group = zarr.open_group(path, mode="r")["val"]
    stream = loader.ZarrStream(
        group, attrs["normalization"], buffer_chunks=buffer_chunks, workers=workers
    )
    expected = loader.normalize(group["images"][...], attrs["normalization"])
    for batch_size in (20, 32, 96):  # batches that do and do not divide the groups of chunks
        x = torch.cat([x for x, _ in stream.batches(batch_size)])
        y = torch.cat([y for _, y in stream.batches(batch_size)])
        torch.testing.assert_close(x, expected, rtol=1e-6, atol=1e-6)
        assert torch.equal(y, torch.from_numpy(group["labels"][...]))
        shuffled = [len(y) for _, y in stream.batches(batch_size, torch.Generator())]
        assert sum(shuffled) == len(expected)
        assert max(shuffled) <= batch_size
