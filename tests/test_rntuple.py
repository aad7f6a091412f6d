"""ROOT's RNTuple reads exactly as a TTree of the same content: same jets, labels and images,
streamed in batches, for the JetClass layout and for NanoAOD; any other object is an error."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from conftest import jetclass_columns
from jetimage import ImageSpec, make_images
from jetimage.files import InputError, write_jets_root
from jetimage.readers import Labels, read

SPEC = ImageSpec(npix=24, width=1.6)


def write_rntuple(path, name: str, columns: dict) -> None:
    """``file[name] = {...}``: what uproot 5.7 writes by default (an RNTuple)."""
    with uproot.recreate(path) as file:
        file[name] = columns


def read_all(path, step: int = 300, **options) -> tuple[dict, np.ndarray, list[int]]:
    """(jet table, images, batch sizes) of a file read in batches of ``step`` entries."""
    batches = list(read(path, step=step, **options))
    table = {k: np.concatenate([b.table[k] for b in batches]) for k in batches[0].table}
    images = np.concatenate([make_images(b.constituents, SPEC) for b in batches])
    return table, images, [len(b) for b in batches]


def assert_same(a, b) -> None:
    (table_a, images_a, sizes_a), (table_b, images_b, sizes_b) = a, b
    assert sizes_a == sizes_b
    assert len(sizes_a) > 1
    assert set(table_a) == set(table_b)
    for name, values in table_a.items():
        np.testing.assert_array_equal(values, table_b[name], err_msg=name)
    np.testing.assert_array_equal(images_a, images_b)


def test_a_jetclass_rntuple_reads_as_the_same_ttree(top_file, qcd_file, tmp_path):
    columns = jetclass_columns(top_file, qcd_file)
    write_jets_root(tmp_path / "ttree.root", columns)
    write_rntuple(tmp_path / "rntuple.root", "tree", columns)
    assert type(uproot.open(tmp_path / "rntuple.root")["tree"]).__name__.endswith("RNTuple")
    labels = Labels(
        ("qcd", "top"), mapping={"label_QCD": "qcd", "label_Tbqq": "top"}, unmapped="drop"
    )
    ttree = read_all(tmp_path / "ttree.root", format="root", labels=labels)
    rntuple = read_all(tmp_path / "rntuple.root", format="root", labels=labels)
    assert_same(ttree, rntuple)
    assert "sdmass" in rntuple[0]
    assert set(rntuple[0]["label"]) == {0, 1}


NANO_COLLECTIONS = ("FatJet_", "FatJetPFCand_", "PFCand_")


def test_a_nanoaod_rntuple_reads_as_the_same_ttree(shared_data, tmp_path):
    """The real NanoAOD file's fat jets, links and candidates rewritten as an RNTuple."""
    events = uproot.open(shared_data / "nano_tt_v15.root")["Events"]
    names = [
        n
        for n in events.keys()
        if n.startswith(NANO_COLLECTIONS) and events[n].interpretation is not None
    ]
    arrays = events.arrays(names)
    write_rntuple(tmp_path / "nano_rntuple.root", "Events", {n: arrays[n] for n in names})
    labels = Labels(("qcd", "top"), class_name="top")
    ttree = read_all(shared_data / "nano_tt_v15.root", 50, format="nanoaod", labels=labels)
    rntuple = read_all(tmp_path / "nano_rntuple.root", 50, format="nanoaod", labels=labels)
    assert_same(ttree, rntuple)


def test_an_object_that_is_neither_a_ttree_nor_an_rntuple_is_named(tmp_path):
    path = tmp_path / "histogram.root"
    with uproot.recreate(path) as file:
        file["tree"] = np.histogram(np.arange(10.0), bins=5)
    labels = Labels(("qcd", "top"), class_name="top")
    with pytest.raises(
        InputError,
        match=r"histogram\.root: key 'tree' is a TH1D, not a TTree "
        r"or an RNTuple",
    ):
        next(read(path, format="root", labels=labels))
    with pytest.raises(InputError, match=r"no tree 'Events'; the file has \['tree'\]"):
        next(read(path, format="nanoaod", labels=labels))


def test_an_rntuple_missing_a_field_lists_what_it_has(tmp_path):
    path = tmp_path / "few.root"
    write_rntuple(
        path, "tree", {"part_px": ak.Array([[1.0], [2.0]]), "jet_pt": np.array([1.0, 2.0])}
    )
    with pytest.raises(InputError, match=r"few\.root: .*part_py"):
        next(read(path, format="root", labels=Labels(("qcd", "top"), class_name="top")))
