"""Units are declared and checked: a file in MeV is read with ``unit: MeV`` to the same jets
as in GeV, and one read in the wrong unit fails before any image is written, naming the file,
the quantity and its value; so do angles out of their ranges and two files whose energy scales
differ a thousandfold. On Parquet and ROOT (and NanoAOD's real file for the angles' names)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from test_bad_input import CLASSES, pixelate, write

from jetimage.dataset import build_dataset
from jetimage.files import InputError
from jetimage.readers import Labels, read
from jetimage.zarr_store import open_store

FORMATS = ("parquet", "root")
EXTENSION = {"parquet": "parquet", "root": "root"}


def in_mev(jets: dict) -> dict:
    return {k: v * 1000 if k in ("px", "py", "pz", "E") else v for k, v in jets.items()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_in_mev_read_with_unit_mev_gives_the_jets_in_gev(jets, tmp_path, fmt):
    gev = pixelate(write(tmp_path / "gev", fmt, jets), fmt, tmp_path / "gev.zarr")
    mev_file = write(tmp_path / "mev", fmt, in_mev(jets))
    mev = pixelate(mev_file, fmt, tmp_path / "mev.zarr", unit="MeV")
    assert mev["median_jet_pt"] == pytest.approx(gev["median_jet_pt"], rel=1e-12)
    assert 500 < gev["median_jet_pt"] < 700
    a, b = open_store(tmp_path / "gev.zarr"), open_store(tmp_path / "mev.zarr")
    np.testing.assert_allclose(a["images"][...], b["images"][...], rtol=1e-5, atol=1e-7)
    for name in ("pt", "mass", "msd") if "msd" in a["jets"] else ("pt", "mass"):
        np.testing.assert_allclose(a[f"jets/{name}"][...], b[f"jets/{name}"][...], rtol=1e-9)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_read_in_the_wrong_unit_fails_before_any_image(jets, tmp_path, fmt):
    ext = EXTENSION[fmt]
    mev = write(tmp_path / "mev", fmt, in_mev(jets))
    with pytest.raises(
        InputError,
        match=rf"mev\.{ext}: the median jet pT of the first 60 jets is \d{{6}}\.?\d* GeV "
        rf"\(read as GeV; the file's jet pT, else the sum of its constituents' momenta\), "
        rf"where a collider's jets have 1 GeV to 14000 GeV: are the momenta in MeV\? Set the "
        rf"reader option unit: MeV",
    ):
        pixelate(mev, fmt, tmp_path / "a.zarr")
    gev = write(tmp_path / "gev", fmt, jets)
    with pytest.raises(
        InputError,
        match=rf"gev\.{ext}: the median jet pT of the first 60 jets is 0\.\d+ GeV \(read as "
        rf"MeV \(reader option unit\); .*are the momenta in GeV\? Set the reader option "
        rf"unit: GeV",
    ):
        pixelate(gev, fmt, tmp_path / "b.zarr", unit="MeV")
    assert not list(tmp_path.glob("*.zarr"))


def test_constituents_in_mev_beside_a_jet_table_in_gev_fail(jets, tmp_path):
    """The file's jet pT is in GeV (so plausible) and its constituents in MeV."""
    c = in_mev(jets)
    path = tmp_path / "mixed.parquet"
    columns = {"part_px": c["px"], "part_py": c["py"], "part_pz": c["pz"], "part_energy": c["E"]}
    table = {
        "jet_pt": np.full(60, 600.0),
        "jet_eta": np.zeros(60),
        "jet_phi": np.zeros(60),
        "jet_mass": np.full(60, 175.0),
    }
    ak.to_parquet(ak.zip({"label": c["label"], **table, **columns}, depth_limit=1), path)
    with pytest.raises(
        InputError,
        match=r"mixed\.parquet: the constituents of the first 60 jets sum to 1\d{3}\.?\d* times "
        r"the file's jet pT \(median; median constituent energy \d+\.?\d* GeV, median jet pT "
        r"600 GeV, read as GeV\): are the constituents and the jet table in different units",
    ):
        pixelate(path, "parquet", tmp_path / "m.zarr")
    assert not (tmp_path / "m.zarr").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_angles_in_degrees_or_beyond_any_detector_fail_naming_the_field(jets, tmp_path, fmt):
    """Constituents given as (pT, η, φ, m) through a branch map, φ in degrees: the jets'
    median mass was 564 GeV instead of 178."""
    c = {k: jets[k] for k in ("px", "py", "pz", "E")}
    pt = np.hypot(c["px"], c["py"])
    polar = {
        "part_pt": pt,
        "part_eta": np.arcsinh(c["pz"] / pt),
        "part_phi": np.degrees(np.arctan2(c["py"], c["px"])),
        "part_m": np.sqrt(np.maximum(c["E"] ** 2 - pt**2 - c["pz"] ** 2, 0)),
    }
    branches = {"pt": "part_pt", "eta": "part_eta", "phi": "part_phi", "mass": "part_m"}
    path = tmp_path / f"degrees.{fmt}"
    if fmt == "parquet":
        ak.to_parquet(ak.zip({"label": jets["label"], **polar}, depth_limit=1), path)
    else:
        with uproot.recreate(path) as file:
            types = {k: v.type for k, v in polar.items()}
            file.mktree("tree", {**types, "label": np.int64}).extend(
                {**polar, "label": jets["label"]}
            )
    with pytest.raises(
        InputError,
        match=rf"degrees\.{fmt}: field 'part_phi': \d+ constituent\(s\) with \|φ\| > 2π "
        r"\(an angle in degrees\?\) \(first in entry \d+\)",
    ):
        pixelate(path, fmt, tmp_path / "d.zarr", branches=branches)
    assert not (tmp_path / "d.zarr").exists()


def test_nanoaod_candidates_beyond_any_detector_name_their_branch(shared_data, tmp_path):
    """PFNano's candidates with their η multiplied by 10 (a wrong branch for η)."""
    source = uproot.open(shared_data / "pfnano.root")["Events"]
    arrays = source.arrays()
    arrays["PFCands_eta"] = arrays["PFCands_eta"] * 10
    path = tmp_path / "wide.root"
    with uproot.recreate(path) as file:
        file["Events"] = {name: arrays[name] for name in arrays.fields}
    with pytest.raises(
        InputError,
        match=r"wide\.root: field 'PFCands_eta': \d+ constituent\(s\) with \|η\| > 6 \(beyond "
        r"any detector\)",
    ):
        list(read(path, format="nanoaod", labels=Labels(CLASSES, class_name="qcd")))


def test_files_whose_energy_scales_differ_by_orders_of_magnitude_fail_at_the_dataset(
    jets, tmp_path
):
    """1.5 TeV jets in GeV read with unit: MeV are 1.5 GeV jets, plausible alone, but beside
    600 GeV jets the dataset sees one scale 400 times the other."""
    hard = {k: v * 2.5 if k in ("px", "py", "pz", "E") else v for k, v in jets.items()}
    hard["label"] = np.zeros(60, np.int64)
    a = pixelate(write(tmp_path / "hard", "root", hard), "root", tmp_path / "a.zarr", unit="MeV")
    b = pixelate(write(tmp_path / "top", "root", jets), "root", tmp_path / "b.zarr")
    assert 300 < b["median_jet_pt"] / a["median_jet_pt"] < 500
    with pytest.raises(
        InputError,
        match=r"the median jet pT of .*top\.root \(\d+\.?\d* GeV\) is \d+ times that of "
        r".*hard\.root \(1\.\d+ GeV\): are one file's momenta in MeV\? Set the reader option "
        r"unit: MeV on its sample",
    ):
        build_dataset(
            tmp_path / "ds.zarr",
            [tmp_path / "a.zarr", tmp_path / "b.zarr"],
            classes=list(CLASSES),
            fractions={"train": 0.6, "val": 0.2, "test": 0.2},
            seed=1,
        )
    assert not (tmp_path / "ds.zarr").exists()
