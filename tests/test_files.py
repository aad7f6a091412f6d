"""Reading jet files: round trips, and clear errors that name the file and the field."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from jetimage.files import InputError, write_jets_root
from jetimage.readers import Counts, read_jets


def columns(n_jets: int = 3, *, nan: bool = False) -> dict:
    counts = np.arange(1, n_jets + 1)
    flat = np.linspace(1.0, 2.0, counts.sum())
    if nan:
        flat[1] = np.nan
    ragged = ak.unflatten(flat, counts)
    return {
        "part_px": ragged,
        "part_py": ragged,
        "part_pz": ragged,
        "part_energy": 3 * ragged,
        "jet_pt": np.ones(n_jets),
        "jet_eta": np.zeros(n_jets),
        "jet_phi": np.zeros(n_jets),
        "jet_mass": np.ones(n_jets),
    }


def test_round_trip(tmp_path):
    path = tmp_path / "jets.root"
    data = columns()
    write_jets_root(path, data)
    jets = read_jets(path)
    assert ak.to_list(jets.constituents.px) == ak.to_list(data["part_px"])
    assert ak.to_list(jets.constituents.E) == ak.to_list(data["part_energy"])
    np.testing.assert_array_equal(jets.table["pt"], data["jet_pt"])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    with uproot.open(path) as file:  # the fast codec (the images stage reads these files)
        assert isinstance(file.file.compression, uproot.LZ4)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.root: file does not exist"):
        read_jets(tmp_path / "nothere.root")


def test_not_a_root_file(tmp_path):
    path = tmp_path / "text.root"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"text\.root: not a readable ROOT file"):
        read_jets(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.root"
    write_jets_root(path, columns(50))
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(InputError, match=r"cut\.root"):
        read_jets(path)


def test_missing_tree_lists_what_the_file_has(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as file:
        file["Events"] = {"x": np.arange(3)}
    with pytest.raises(InputError, match=r"other\.root: no tree 'tree'; the file has \['Events"):
        read_jets(path)


def test_missing_branch_lists_the_branches(tmp_path):
    path = tmp_path / "partial.root"
    data = columns()
    del data["part_pz"]
    write_jets_root(path, data)
    with pytest.raises(
        InputError,
        match=r"partial\.root: tree 'tree' lacks \['part_pz'\] \(closest: .*\); "
        r"it has \[.*'part_px'",
    ):
        read_jets(path)


def test_empty_tree(tmp_path):
    path = tmp_path / "empty.root"
    write_jets_root(path, columns(0))
    with pytest.raises(InputError, match=r"empty\.root: tree 'tree' has no jets"):
        read_jets(path)


def test_nan_momenta_are_refused(tmp_path):
    path = tmp_path / "nan.root"
    write_jets_root(path, columns(nan=True))
    with pytest.raises(
        InputError,
        match=r"nan\.root: field 'part_px' holds 1 NaN/inf "
        r"value\(s\) \(first in entry 1\)",
    ):
        read_jets(path)


def test_jets_without_constituents_are_dropped_and_counted(tmp_path):
    path = tmp_path / "holes.root"
    data = columns(4)
    for key in ("part_px", "part_py", "part_pz", "part_energy"):
        data[key] = ak.concatenate([data[key][:1], ak.Array([[]]), data[key][1:3]])
    write_jets_root(path, data)
    counts = Counts()
    jets = read_jets(path, counts=counts)
    assert counts.dropped["no_constituents"] == 1
    assert len(jets) == 3
    assert counts.read == 4
    assert list(jets.table["entry"]) == [0, 2, 3]
