"""The particle view (jetimage.particles): equal to an independent NumPy computation and to a
real file's own relative coordinates, hardest particles first, padding that changes nothing,
and carried through the dataset in the images' order with its standardisation from train."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from jetimage.particles import FEATURES, particle_view
from jetimage.pixelate import flatten_constituents
from jetimage.readers import Labels, read_jets

COLUMN = {name: i for i, name in enumerate(FEATURES)}
LABELS = Labels(("qcd", "top"), class_name="top")
CHARGED = {11: -1, 13: -1, 211: 1, 321: 1, 2212: 1}  # charge of the positive PDG id


def reference_view(pt, eta, phi, energy, charge, pid, max_particles):
    """One jet's view by the definitions, particle by particle (jet axis: the sum of all)."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    jpx, jpy, jpz, je = px.sum(), py.sum(), pz.sum(), energy.sum()
    jpt = np.hypot(jpx, jpy)
    jeta, jphi = np.arcsinh(jpz / jpt), np.arctan2(jpy, jpx)
    out = np.zeros((max_particles, len(FEATURES)))
    for row, i in enumerate(np.argsort(-pt, kind="stable")[:max_particles]):
        deta = (eta[i] - jeta) * (1 if jeta > 0 else -1)
        dphi = (phi[i] - jphi + np.pi) % (2 * np.pi) - np.pi
        code = abs(int(pid[i])) if pid is not None else 0
        q = charge[i] if charge is not None else 0.0
        kind = {
            "is_charged_hadron": pid is not None and q != 0 and code not in (11, 13),
            "is_neutral_hadron": pid is not None and q == 0 and code != 22,
            "is_photon": code == 22,
            "is_electron": code == 11,
            "is_muon": code == 13,
        }
        values = {
            "deta": deta,
            "dphi": dphi,
            "log_pt": np.log(pt[i]),
            "log_e": np.log(energy[i]),
            "log_pt_rel": np.log(pt[i] / jpt),
            "log_e_rel": np.log(energy[i] / je),
            "delta_r": np.sqrt(deta**2 + dphi**2),
            "charge": q,
            **kind,
            "px": px[i],
            "py": py[i],
            "pz": pz[i],
            "energy": energy[i],
        }
        out[row] = [values[name] for name in FEATURES]
    return out


def assert_same_particles(ours, expected, n):
    """The first ``n`` rows equal up to the order among particles of equal pT (NanoAOD packs
    its pT in fewer bits: ties are common, and the file's pT recomputed from px, py breaks
    them by rounding), in the same decreasing pT; the rest padding."""
    distance = np.abs(ours[:n, None, :] - expected[None, :n, :]).max(axis=2)
    match = distance.argmin(axis=1)
    assert sorted(match) == list(range(n))
    np.testing.assert_allclose(ours[:n], expected[match], rtol=2e-6, atol=2e-5)
    log_pt = COLUMN["log_pt"]
    np.testing.assert_allclose(ours[:n, log_pt], expected[:n, log_pt], rtol=1e-6)
    assert not ours[n:].any()


def view_of(jets, max_particles):
    return particle_view(flatten_constituents(jets.constituents, identities=True), max_particles)


def test_the_view_equals_numpy_and_the_files_own_deta_dphi_on_real_quark_gluon_jets(shared_data):
    """quark_gluon_2000.parquet (ParT's layout): every feature as the definitions give it, and
    Δη, Δφ as the file's own ``part_deta``/``part_dphi`` (ParT's convert script computed them)."""
    path = shared_data / "quark_gluon_2000.parquet"
    jets = read_jets(path, format="parquet")[:300]
    features, mask = view_of(jets, 128)
    raw = ak.from_parquet(path)[:300]
    for j in range(len(jets)):
        px, py, pz, e = (
            np.asarray(raw[k][j], np.float64)
            for k in ("part_px", "part_py", "part_pz", "part_energy")
        )
        pt = np.hypot(px, py)
        expected = reference_view(pt, np.arcsinh(pz / pt), np.arctan2(py, px), e, None, None, 128)
        n = len(pt)
        assert mask[j].sum() == n
        assert mask[j, :n].all()
        np.testing.assert_allclose(features[j], expected, rtol=1e-6, atol=1e-5)
        order = np.argsort(-pt, kind="stable")
        for ours, theirs in (("deta", "part_deta"), ("dphi", "part_dphi")):
            np.testing.assert_allclose(
                features[j, :n, COLUMN[ours]], np.asarray(raw[theirs][j])[order], atol=2e-5
            )


def test_the_view_equals_numpy_on_cms_nanoaod_candidates(shared_data):
    """nano_tt_v15.root: from the PF candidates' own pt, η, φ, mass and PDG id, joined to
    their fat jet through the file's link table (charge and type one-hots included)."""
    path = shared_data / "nano_tt_v15.root"
    jets = read_jets(path, format="nanoaod", labels=LABELS)
    features, mask = view_of(jets, 128)
    events = uproot.open(path)["Events"].arrays(
        [
            "FatJetPFCand_jetIdx",
            "FatJetPFCand_pfCandIdx",
            "PFCand_pt",
            "PFCand_eta",
            "PFCand_phi",
            "PFCand_mass",
            "PFCand_pdgId",
        ]
    )
    checked = 0
    for j, (entry, sub) in enumerate(zip(jets.table["entry"], jets.table["subentry"])):
        event = events[int(entry)]
        index = np.asarray(event["FatJetPFCand_pfCandIdx"])[
            np.asarray(event["FatJetPFCand_jetIdx"]) == sub
        ]
        pt, eta, phi, m = (
            np.asarray(event[f"PFCand_{k}"], np.float64)[index]
            for k in ("pt", "eta", "phi", "mass")
        )
        pid = np.asarray(event["PFCand_pdgId"])[index]
        charge = np.array([CHARGED.get(abs(p), 0) * np.sign(p) for p in pid], dtype=np.float64)
        energy = np.sqrt((pt * np.cosh(eta)) ** 2 + m**2)
        expected = reference_view(pt, eta, phi, energy, charge, pid, 128)
        n = min(len(pt), 128)
        assert mask[j].sum() == n
        assert_same_particles(features[j], expected, n)
        checked += 1
    assert checked >= 60
    flags = features[..., COLUMN["is_charged_hadron"] : COLUMN["is_muon"] + 1]
    assert np.array_equal(flags[mask].sum(axis=1), np.ones(mask.sum()))  # one type each
    assert flags[mask][:, 0].mean() > 0.3  # charged hadrons
    assert flags[mask][:, 2].mean() > 0.1  # photons


def test_the_hardest_are_kept_and_padding_changes_nothing(top_file):
    """A jet with more constituents than the maximum keeps its hardest, in decreasing pT; with
    fewer, the view at 64 and at 128 particles agrees row for row, the rest is zero padding."""
    jets = read_jets(top_file, labels=LABELS)
    big, big_mask = view_of(jets, 128)
    small, small_mask = view_of(jets, 64)
    n = np.asarray(ak.num(jets.constituents))
    assert (n > 64).any()
    assert (n < 64).any()
    np.testing.assert_array_equal(big[:, :64], small)
    np.testing.assert_array_equal(big_mask[:, :64], small_mask)
    few = n < 64
    assert not big[few, 64:].any()
    assert not big_mask[few, 64:].any()
    log_pt = big[..., COLUMN["log_pt"]]
    for j in np.flatnonzero(n > 64)[:20]:
        pt = np.hypot(np.asarray(jets.constituents.px[j]), np.asarray(jets.constituents.py[j]))
        np.testing.assert_allclose(
            np.exp(small[j, :, COLUMN["log_pt"]]), np.sort(pt)[::-1][:64], rtol=1e-6
        )
        assert np.all(np.diff(log_pt[j][big_mask[j]]) <= 0)


def test_a_permutation_of_the_constituents_changes_no_view(top_file):
    """The view orders particles by pT: the file's order of constituents does not matter."""
    jets = read_jets(top_file, labels=LABELS)[:200]
    rng = np.random.default_rng(5)
    shuffled = ak.Array(
        [[jet[i] for i in rng.permutation(len(jet))] for jet in ak.to_list(jets.constituents)],
        with_name="Momentum4D",
    )
    before, mask = view_of(jets, 128)
    after, mask_after = particle_view(flatten_constituents(shuffled, identities=True), 128)
    np.testing.assert_array_equal(mask, mask_after)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def test_a_constituent_without_pt_is_left_out_and_identities_default_to_zero():
    """pT = 0 has no direction: that row stays padding. Without charge and PDG id, their
    features are zero."""
    jets = ak.Array(
        [
            [
                {"px": 10.0, "py": 0.0, "pz": 1.0, "E": 11.0},
                {"px": 0.0, "py": 0.0, "pz": 5.0, "E": 5.0},
            ]
        ],
        with_name="Momentum4D",
    )
    features, mask = particle_view(flatten_constituents(jets, identities=True), 4)
    assert mask.tolist() == [[True, False, False, False]]
    assert np.all(np.isfinite(features))
    assert not features[0, :, COLUMN["charge"] : COLUMN["is_muon"] + 1].any()
    with pytest.raises(ValueError, match="at least 1"):
        particle_view(flatten_constituents(jets), 0)


def test_the_dataset_carries_the_view_in_the_images_order_standardised_from_train(
    observables_dataset, top_file, qcd_file
):
    """Each dataset row's particles are its own jet's (recomputed from the file by source and
    entry), and the recorded standardisation is the mean and std over the train split's real
    particles."""
    from jetimage.zarr_store import open_store

    root = open_store(observables_dataset)
    spec = root.attrs["particles"]
    assert spec["max"] == 48
    assert spec["features"] == list(FEATURES)
    assert spec["identities"] == ["charge", "pid"]
    direct = {}
    for s, path in enumerate((qcd_file, top_file)):
        jets = read_jets(path, labels=Labels(("qcd", "top"), class_name=("qcd", "top")[s]))
        features, mask = view_of(jets, 48)
        direct[s] = {int(e): (features[j], mask[j]) for j, e in enumerate(jets.table["entry"])}
    for split in ("train", "val", "test"):
        source, entry = root[f"{split}/jets/source"][...], root[f"{split}/jets/entry"][...]
        features, mask = (
            root[f"{split}/particles/features"][...],
            root[f"{split}/particles/mask"][...],
        )
        assert features.shape == (len(source), 48, len(FEATURES))
        for row, (s, e) in enumerate(zip(source, entry)):
            np.testing.assert_array_equal(features[row], direct[int(s)][int(e)][0])
            np.testing.assert_array_equal(mask[row], direct[int(s)][int(e)][1])
    real = root["train/particles/features"][...][root["train/particles/mask"][...]].astype(
        np.float64
    )
    norm = spec["normalization"]
    np.testing.assert_allclose(norm["mean"], real.mean(axis=0), rtol=1e-9, atol=1e-12)
    std = real.std(axis=0)
    np.testing.assert_allclose(norm["std"], np.where(std > 0, std, 1.0), rtol=1e-6, atol=1e-12)
