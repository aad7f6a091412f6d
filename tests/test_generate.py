"""Generation: real Pythia 8 + FastJet jets in the requested window, with top-quark physics."""

from __future__ import annotations

import hashlib

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from jetimage.files import write_jets_root
from jetimage.generate import (
    Detector,
    GeneratorSettings,
    PythiaSettingError,
    derive_seed,
    generate_jets,
)
from jetimage.readers import read_jets

pytestmark = pytest.mark.slow


def mass_peak(masses: np.ndarray) -> float:
    counts, edges = np.histogram(masses, bins=np.arange(0, 310, 10))
    i = int(np.argmax(counts))
    return 0.5 * (edges[i] + edges[i + 1])


def parton_columns(path) -> dict[str, np.ndarray]:
    tree = uproot.open(path)["tree"]
    return {
        k: tree[f"jet_{k}"].array(library="np")
        for k in (
            "pt",
            "eta",
            "phi",
            "mass",
            "nparticles",
            "parton_pid",
            "parton_px",
            "parton_py",
            "parton_pz",
            "parton_energy",
        )
    }


def test_jets_lie_in_the_requested_window(top_file, qcd_file, boson_files, parton_files):
    for path in (top_file, qcd_file, *boson_files.values(), *parton_files.values()):
        jets = read_jets(path)
        assert len(jets) > 100
        assert np.all((jets.table["pt"] >= 550) & (jets.table["pt"] < 650))
        assert np.all(np.abs(jets.table["eta"]) < 2.0)


def test_constituents_add_up_to_the_jet(top_file):
    jets = read_jets(top_file)
    c = jets.constituents
    summed = vector.array(
        {k: ak.to_numpy(ak.sum(getattr(c, k), axis=1)) for k in ("px", "py", "pz", "E")}
    )
    np.testing.assert_allclose(summed.pt, jets.table["pt"], rtol=1e-9)
    np.testing.assert_allclose(summed.mass, jets.table["mass"], rtol=1e-6)
    nparticles = uproot.open(top_file)["tree"]["jet_nparticles"].array(library="np")
    assert np.array_equal(jets.table["n_constituents"], nparticles)
    assert np.array_equal(nparticles, ak.to_numpy(ak.num(jets.constituents)))


def test_top_jets_peak_at_the_top_mass_and_qcd_jets_do_not(top_file, qcd_file):
    top = read_jets(top_file).table["mass"]
    qcd = read_jets(qcd_file).table["mass"]
    assert 160 <= mass_peak(top) <= 185
    assert not 140 <= mass_peak(qcd) <= 200
    assert np.median(qcd) < np.median(top) - 50


def test_constituents_carry_charge_and_pid(qcd_file):
    jets = read_jets(qcd_file)
    pid = ak.to_numpy(ak.flatten(jets.constituents.pid))
    charge = ak.to_numpy(ak.flatten(jets.constituents.charge))
    assert set(np.unique(charge)) <= {-1.0, 0.0, 1.0}
    assert np.all(charge[np.abs(pid) == 22] == 0)  # photons are neutral
    assert np.all(charge[pid == 211] == 1)
    assert np.all(charge[pid == -211] == -1)


def content_hash(path) -> str:
    """sha256 of every branch's content (ROOT files also carry timestamps and UUIDs)."""
    tree = uproot.open(path)["tree"]
    digest = hashlib.sha256()
    for name in sorted(tree.keys()):
        array = tree[name].array(library="ak")
        digest.update(name.encode())
        for buffer in ak.to_buffers(ak.to_packed(array))[2].values():
            digest.update(np.ascontiguousarray(buffer).tobytes())
    return digest.hexdigest()


def test_same_seed_gives_the_same_file_and_shards_differ(tmp_path):
    for process in ("qcd", "w"):
        hashes = []
        for name, seed in (("a", 5), ("b", 5), ("c", 6)):
            path = tmp_path / f"{process}-{name}.root"
            write_jets_root(path, generate_jets(GeneratorSettings(process), n_events=60, seed=seed))
            hashes.append(content_hash(path))
        assert hashes[0] == hashes[1] != hashes[2]


def test_shard_seeds_are_derived_and_independent():
    seeds = {derive_seed(42, s, p) for s in ("top", "qcd") for p in ("000", "001", "002")}
    assert len(seeds) == 6
    assert derive_seed(42, "top", "000") == derive_seed(42, "top", "000")
    assert all(1 <= s <= 900_000_000 for s in seeds)


def test_rejected_pythia_setting_is_an_error():
    with pytest.raises(PythiaSettingError, match="NoSuch:setting"):
        generate_jets(GeneratorSettings("qcd", extra=("NoSuch:setting = on",)), n_events=1, seed=1)
    with pytest.raises(PythiaSettingError, match="unknown process"):
        generate_jets(GeneratorSettings("higgs"), n_events=1, seed=1)


def test_w_and_z_jets_peak_at_the_boson_masses(boson_files, qcd_file):
    """Plain (ungroomed) jet mass: W and Z jets peak in 70-100 GeV, QCD jets do not."""
    w = read_jets(boson_files["w"]).table["mass"]
    z = read_jets(boson_files["z"]).table["mass"]
    assert len(w) > 100
    assert len(z) > 100
    assert 70 <= mass_peak(w) <= 100
    assert 70 <= mass_peak(z) <= 100
    assert np.median(z) > np.median(w)  # 91 against 80 GeV
    assert not 70 <= mass_peak(read_jets(qcd_file).table["mass"]) <= 100


def test_gluon_jets_have_more_constituents_than_quark_jets(parton_files):
    gluon = parton_columns(parton_files["gluon"])["nparticles"]
    quark = parton_columns(parton_files["quark"])["nparticles"]
    assert len(gluon) > 100
    assert len(quark) > 100
    assert gluon.mean() > 1.2 * quark.mean()


def test_every_jet_holds_its_matched_parton_and_records_it(
    top_file, qcd_file, boson_files, parton_files
):
    expected = {"top": {6}, "w": {24}, "z": {23}, "gluon": {21}, "quark": {1, 2, 3}}
    files = {"top": top_file, **boson_files, **parton_files}
    masses = {"top": 172.5, "w": 80.4, "z": 91.2}
    for process, path in files.items():
        jet = parton_columns(path)
        assert set(np.unique(np.abs(jet["parton_pid"]))) <= expected[process], process
        parton = vector.array(
            {
                "px": jet["parton_px"],
                "py": jet["parton_py"],
                "pz": jet["parton_pz"],
                "E": jet["parton_energy"],
            }
        )
        axis = vector.array(
            {"pt": jet["pt"], "eta": jet["eta"], "phi": jet["phi"], "mass": jet["mass"]}
        )
        assert np.all(axis.deltaR(parton) < 0.8), process
        if process in masses:  # the resonance's own four-momentum is stored
            assert abs(np.median(parton.mass) - masses[process]) < 3, process
    qcd = parton_columns(qcd_file)["parton_pid"]
    assert {21, 1, 2}.issubset(np.abs(qcd))  # QCD jets: any parton, recorded


def test_detector_merges_neutrals_into_cells_and_conserves_energy_without_smearing():
    rng = np.random.default_rng(0)
    n = 2000
    pt = rng.exponential(20, n) + 1
    eta, phi = rng.uniform(-2, 2, n), rng.uniform(-np.pi, np.pi, n)
    p = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": np.zeros(n)})
    charge = rng.choice([-1.0, 0.0, 1.0], n)
    pid = np.where(charge == 0, rng.choice([22, 130], n), 211 * charge).astype(np.int64)
    flat = {"px": p.px, "py": p.py, "pz": p.pz, "E": p.E, "pid": pid, "charge": charge}
    event = np.sort(rng.integers(0, 10, n))
    perfect = Detector(photon_resolution=(0, 0), hadron_resolution=(0, 0))
    out, out_event = perfect.apply(flat, event, rng)
    assert np.all(np.diff(out_event) >= 0)
    for e in range(10):
        before, after = event == e, out_event == e
        np.testing.assert_allclose(out["E"][after].sum(), flat["E"][before].sum(), rtol=1e-12)
        # charged particles are untouched
        charged = before & (charge != 0)
        np.testing.assert_array_equal(
            np.sort(out["px"][after & (out["charge"] != 0)]), np.sort(flat["px"][charged])
        )
    cells = out["pid"] == 0
    assert np.all(out["charge"][cells] == 0)
    assert cells.sum() < (charge == 0).sum()  # some neutrals share a cell
    cell = vector.array({k: out[k][cells] for k in ("px", "py", "pz", "E")})
    centre = cell.eta / 0.1 - 0.5
    np.testing.assert_allclose(centre, np.round(centre), atol=1e-6)  # at the cell centres
    np.testing.assert_allclose(cell.mass, 0, atol=1e-4)


def test_generation_with_the_detector_model_keeps_tracks_and_smears_neutrals():
    plain = generate_jets(GeneratorSettings("w"), n_events=80, seed=3)
    smeared = generate_jets(GeneratorSettings("w", detector=Detector()), n_events=80, seed=3)
    pid = ak.to_numpy(ak.flatten(smeared["part_pid"]))
    charge = ak.to_numpy(ak.flatten(smeared["part_charge"]))
    assert np.all((pid == 0) == (charge == 0))  # every neutral constituent is a cell
    assert 0 < (pid == 0).mean() < 0.6
    assert np.mean(ak.num(smeared["part_pid"])) < np.mean(ak.num(plain["part_pid"]))
    w = smeared["jet_mass"]
    assert 70 <= mass_peak(w) <= 100
