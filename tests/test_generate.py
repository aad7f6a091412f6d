"""Generation: real Pythia 8 + FastJet jets in the requested window, with top-quark physics."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from jetimage.generate import GeneratorSettings, PythiaSettingError, derive_seed, generate_jets
from jetimage.io import write_jets_root
from jetimage.readers import read_jets

pytestmark = pytest.mark.slow


def mass_peak(masses: np.ndarray) -> float:
    counts, edges = np.histogram(masses, bins=np.arange(0, 310, 10))
    i = int(np.argmax(counts))
    return 0.5 * (edges[i] + edges[i + 1])


def test_jets_lie_in_the_requested_window(top_file, qcd_file):
    for path in (top_file, qcd_file):
        jets = read_jets(path)
        assert len(jets) > 100
        assert np.all((jets.table["pt"] >= 550) & (jets.table["pt"] < 650))
        assert np.all(np.abs(jets.table["eta"]) < 2.0)


def test_constituents_add_up_to_the_jet(top_file):
    jets = read_jets(top_file)
    c = jets.constituents
    summed = vector.array({k: ak.to_numpy(ak.sum(getattr(c, k), axis=1))
                           for k in ("px", "py", "pz", "E")})
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
    assert np.all(charge[pid == 211] == 1) and np.all(charge[pid == -211] == -1)


def test_same_seed_gives_the_same_file_and_shards_differ(tmp_path):
    settings = GeneratorSettings("qcd")
    paths = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        path = tmp_path / f"{name}.root"
        write_jets_root(path, generate_jets(settings, n_events=60, seed=seed))
        paths.append(path)
    # ROOT files carry timestamps and UUIDs, so compare their content, branch by branch
    trees = [uproot.open(p)["tree"].arrays() for p in paths]
    assert trees[0].fields == trees[1].fields
    assert all(ak.array_equal(trees[0][f], trees[1][f]) for f in trees[0].fields)
    assert not ak.array_equal(trees[0]["jet_pt"], trees[2]["jet_pt"])


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
