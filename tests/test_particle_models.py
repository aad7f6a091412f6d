"""Models of the particle view (``pfn``, ...): invariant under permutations of the constituents
in the input file, blind to padding, exported to ONNX with named inputs, trained and scored
through the same interface as the image models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import uproot

from jetimage.files import InputError, write_jets_root
from jetimage.inference import export_model, load_model, onnx_scores, onnx_session
from jetimage.loader import ZarrStream, open_split, standardize_particles
from jetimage.models import INPUTS, MODELS, TENSORS, build_model
from jetimage.particles import FEATURES, particle_view
from jetimage.pixelate import flatten_constituents
from jetimage.readers import Labels, read_jets
from jetimage.train import TrainConfig, train_model

torch.set_num_threads(2)

PARTICLE_MODELS = sorted(a for a in MODELS if INPUTS[a] == "particles")
SMALL = {
    "pfn": {"phi": [16, 16, 32], "f": [32]},
    "particlenet": {"channels": [16, 32], "dense": [32]},
    "part": {"embed": [16, 16], "pair": [8], "heads": 2, "blocks": 1},
}
LABELS = Labels(("qcd", "top"), class_name="top")


def standardized(features, mask):
    """The view standardised with fixed statistics (any will do for invariance tests)."""
    norm = {"mean": np.linspace(-1, 1, len(FEATURES)), "std": np.linspace(0.5, 2, len(FEATURES))}
    return standardize_particles(features, mask, norm)


def scores(model, features, mask) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(*standardized(features, mask)), dim=1).numpy()


def view(path, max_particles=128):
    jets = read_jets(path, labels=LABELS)
    return particle_view(flatten_constituents(jets.constituents, identities=True), max_particles)


def permuted_file(path, out) -> None:
    """The file with each jet's constituents in a random order (every part_* branch alike)."""
    arrays = uproot.open(path)["tree"].arrays()
    rng = np.random.default_rng(8)
    counts = np.asarray([len(x) for x in arrays["part_px"]])
    order = np.concatenate(
        [start + rng.permutation(n) for start, n in zip(np.cumsum(counts) - counts, counts)]
    )
    import awkward as ak

    columns = {}
    for name in arrays.fields:
        if name == "npart":
            continue
        if name.startswith("part_"):
            flat = ak.flatten(arrays[name])[order]
            columns[name] = ak.unflatten(flat, counts)
        else:
            columns[name] = arrays[name]
    write_jets_root(out, columns)


@pytest.mark.parametrize("architecture", PARTICLE_MODELS)
def test_a_permutation_of_the_constituents_in_the_file_changes_no_score(
    architecture, top_file, tmp_path
):
    """Sums (``pfn``), neighbourhoods (``particlenet``: its k nearest neighbours could
    differ only where two distances tie exactly, which no jet of this file has) and attention
    (``part``) do not depend on the order: the scores agree to 1e-5 (float32 sums in another
    order)."""
    torch.manual_seed(0)
    model = build_model(architecture, in_shape=(128, len(FEATURES)), n_classes=2).eval()
    shuffled = tmp_path / "shuffled.root"
    permuted_file(top_file, shuffled)
    np.testing.assert_allclose(
        scores(model, *view(shuffled)), scores(model, *view(top_file)), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("architecture", PARTICLE_MODELS)
def test_padding_changes_no_score(architecture, top_file):
    """particles.max 64 and 128 give the same scores for the jets with fewer than 64."""
    torch.manual_seed(1)
    model = build_model(architecture, in_shape=(128, len(FEATURES)), n_classes=2).eval()
    small, small_mask = view(top_file, 64)
    big, big_mask = view(top_file, 128)
    few = big_mask.sum(axis=1) < 64
    assert few.sum() > 20
    np.testing.assert_allclose(
        scores(model, small[few], small_mask[few]),
        scores(model, big[few], big_mask[few]),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("architecture", PARTICLE_MODELS)
def test_onnx_export_has_named_inputs_a_dynamic_batch_and_torchs_scores(
    architecture, top_file, tmp_path
):
    torch.manual_seed(2)
    model = build_model(
        architecture, in_shape=(128, len(FEATURES)), n_classes=2, **SMALL[architecture]
    ).eval()
    features, mask = view(top_file)
    example = standardized(features[:16], mask[:16])
    assert export_model(model, tmp_path / "m.onnx", example, TENSORS["particles"]) <= 1e-5
    session = onnx_session(tmp_path / "m.onnx")
    assert [i.name for i in session.get_inputs()] == ["particles", "mask"]
    norm = {"mean": np.linspace(-1, 1, len(FEATURES)), "std": np.linspace(0.5, 2, len(FEATURES))}
    ours = onnx_scores(session, (features, mask), norm, inputs="particles", batch_size=100)
    np.testing.assert_allclose(ours, scores(model, features, mask), rtol=0, atol=1e-5)


def test_identities_false_reads_no_charge_or_type(top_file):
    """With ``identities: false`` the charge and type columns change nothing."""
    torch.manual_seed(3)
    model = build_model("pfn", in_shape=(128, len(FEATURES)), n_classes=2, identities=False)
    features, mask = view(top_file)
    scrambled = features.copy()
    scrambled[..., FEATURES.index("charge") : FEATURES.index("is_muon") + 1] = 7.0
    np.testing.assert_array_equal(
        scores(model.eval(), features, mask), scores(model, scrambled, mask)
    )


def test_the_particle_stream_equals_the_split_in_memory(observables_dataset):
    """Streamed chunk by chunk or loaded whole, the same standardised particles and masks."""
    whole = open_split(observables_dataset, "train", memory_budget_mb=1e6, inputs="particles")
    stream = open_split(observables_dataset, "train", memory_budget_mb=1e-6, inputs="particles")
    assert isinstance(stream, ZarrStream)
    a = [(x, m, y) for (x, m), y in whole.batches(100)]
    b = [(x, m, y) for (x, m), y in stream.batches(100)]
    for i in range(3):
        np.testing.assert_array_equal(
            torch.cat([t[i] for t in a]).numpy(), torch.cat([t[i] for t in b]).numpy()
        )
    x, m, _ = a[0]
    assert not x[m == 0].any()  # padding stays zero


def test_pfn_learns_top_from_qcd_and_rebuilds_from_model_pt(observables_dataset, tmp_path):
    """Trained through train_model: learns, records what it takes, and the saved model and
    its ONNX export score the same."""
    config = TrainConfig(architecture="pfn", epochs=8, batch_size=32, patience=10, seed=3)
    history = train_model(observables_dataset, tmp_path, config, name="pfn")
    assert history[-1]["val_accuracy"] > 0.8
    model, info = load_model(tmp_path / "model.pt")
    assert info["inputs"] == "particles"
    assert info["in_shape"] == [48, len(FEATURES)]
    assert info["particles"]["max"] == 48
    from jetimage.inference import score_saved_model

    probabilities, labels, _, _ = score_saved_model(
        tmp_path / "model.pt", observables_dataset, "test"
    )
    session = onnx_session(tmp_path / "model.onnx")
    # exported with the full particle axis, whatever the first batch's multiplicities
    assert session.get_inputs()[0].shape[1:] == [48, len(FEATURES)]
    import zarr

    test = zarr.open_group(observables_dataset, mode="r")["test"]
    arrays = (test["particles/features"][...], test["particles/mask"][...])
    exported = onnx_scores(session, arrays, info["normalization"], inputs="particles")
    np.testing.assert_allclose(exported, probabilities, rtol=0, atol=1e-5)
    assert ((probabilities[:, 1] > 0.5) == labels).mean() > 0.8


def test_predict_refuses_a_file_without_the_identities_the_model_reads(top_file):
    from jetimage.predict import model_input

    jets = read_jets(top_file, labels=LABELS)
    no_ids = jets.constituents[["px", "py", "pz", "E"]]
    info = {
        "name": "pfn",
        "architecture": "pfn",
        "inputs": "particles",
        "options": {},
        "image_spec": {},
        "particles": {"max": 32, "identities": ["charge", "pid"]},
    }
    from jetimage.batches import Jets

    with pytest.raises(InputError, match=r"top\.h5: pfn was trained on particles with"):
        model_input(Jets(no_ids, jets.table), info, source="top.h5")
    info["options"] = {"identities": False}
    features, mask = model_input(Jets(no_ids, jets.table), info, source="top.h5")
    assert features.shape == (len(jets), 32, len(FEATURES))


def test_pfn_filters_follow_the_features_they_are_drawn_from():
    """A filter of a Φ that reads only Δη varies along the Δη axis and not along Δφ; one that
    reads only ΔR is symmetric under Δη ↔ Δφ and under reflections."""
    from jetimage.interpret import pfn_filters

    torch.manual_seed(4)
    model = build_model("pfn", in_shape=(128, len(FEATURES)), n_classes=2, phi=[4], f=[4])
    first = model.phi[0]
    norm = {
        "mean": np.linspace(-0.1, 0.1, len(FEATURES)),
        "std": np.linspace(0.1, 2, len(FEATURES)),
    }
    with torch.no_grad():
        first.weight.zero_()
        first.weight[0, FEATURES.index("deta")] = 1.0
        first.weight[1, FEATURES.index("delta_r")] = -1.0
        first.bias.fill_(1.0)
    filters = pfn_filters(model, norm, half_width=0.8, n=2, pixels=21)
    constant_in_dphi = [bool(np.ptp(f, axis=1).max() < 1e-6) for f in filters]
    assert sorted(constant_in_dphi) == [False, True]
    by_deta = filters[constant_in_dphi.index(True)]
    assert np.ptp(by_deta[:, 0]) > 0.5  # and varies along Δη
    by_r = filters[constant_in_dphi.index(False)]
    np.testing.assert_allclose(by_r, by_r.T, atol=1e-6)
    np.testing.assert_allclose(by_r, by_r[::-1], atol=1e-6)
    np.testing.assert_allclose(by_r, by_r[:, ::-1], atol=1e-6)


@pytest.mark.parametrize("architecture", ["particlenet", "part"])
def test_hardest_reads_only_the_hardest_particles(architecture, top_file):
    """``hardest: 32`` scores a jet by its 32 hardest particles: the view cut to 32 and the
    full view give the same scores, also for the jets with more."""
    torch.manual_seed(5)
    model = build_model(
        architecture,
        in_shape=(128, len(FEATURES)),
        n_classes=2,
        hardest=32,
        **SMALL[architecture],
    ).eval()
    full, full_mask = view(top_file, 128)
    cut, cut_mask = view(top_file, 32)
    assert (full_mask.sum(axis=1) > 32).sum() > 20
    np.testing.assert_allclose(
        scores(model, cut, cut_mask), scores(model, full, full_mask), rtol=0, atol=1e-6
    )


def test_pair_features_equal_numpy_on_real_jets(top_file):
    """ln Δ, ln kT, ln z, ln m² of every pair of constituents of real jets, from the file's own
    four-momenta, against an independent NumPy computation in float64 (the model's are
    float32: 1e-3 on the logarithms; ln m² where m² is not lost to float32's cancellation,
    m² > 1e-4 (E_a + E_b)²)."""
    from jetimage.layers import pair_features

    jets = uproot.open(top_file)["tree"].arrays(
        ["part_px", "part_py", "part_pz", "part_energy"], entry_stop=5
    )
    for jet in jets:
        p4 = np.stack(
            [np.asarray(jet[f"part_{c}"], dtype=np.float64) for c in ("px", "py", "pz", "energy")],
            axis=-1,
        )
        ours = pair_features(torch.from_numpy(p4.astype(np.float32))[None])[0].numpy()
        px, py, pz, e = p4.T
        pt = np.hypot(px, py)
        y = 0.5 * np.log((e + pz) / (e - pz))
        phi = np.arctan2(py, px)
        dphi = np.mod(phi[:, None] - phi[None, :] + np.pi, 2 * np.pi) - np.pi
        delta = np.hypot(y[:, None] - y[None, :], dphi)
        softer = np.minimum(pt[:, None], pt[None, :])
        z = softer / (pt[:, None] + pt[None, :])
        total = p4[:, None, :] + p4[None, :, :]
        m2 = total[..., 3] ** 2 - (total[..., :3] ** 2).sum(axis=-1)
        apart = ~np.eye(len(pt), dtype=bool)
        for k, value in enumerate((delta, softer * delta, z)):
            np.testing.assert_allclose(ours[..., k][apart], np.log(value[apart]), rtol=0, atol=1e-3)
        massive = apart & (m2 > 1e-4 * total[..., 3] ** 2)
        assert massive.sum() > 0.9 * apart.sum()
        np.testing.assert_allclose(ours[..., 3][massive], np.log(m2[massive]), rtol=0, atol=1e-2)


def test_part_sees_the_physical_four_momenta_and_keeps_them_through_model_pt(top_file, tmp_path):
    """The statistics the view is standardised with travel in ParT's weights: from the
    standardised view it recovers the file's px, py, pz, E, also once saved and rebuilt."""
    from jetimage.particles import MOMENTUM_FEATURES

    features, mask = view(top_file)
    norm = {
        "mean": features[mask].mean(axis=0).tolist(),
        "std": (features[mask].std(axis=0) + 1e-3).tolist(),
    }
    model = build_model("part", in_shape=(128, len(FEATURES)), n_classes=2, **SMALL["part"])
    model.standardized_with(norm)
    torch.save(model.state_dict(), tmp_path / "part.pt")
    rebuilt = build_model("part", in_shape=(128, len(FEATURES)), n_classes=2, **SMALL["part"])
    rebuilt.load_state_dict(torch.load(tmp_path / "part.pt"))
    x, m = standardize_particles(features[:20], mask[:20], norm)
    columns = [FEATURES.index(f) for f in MOMENTUM_FEATURES]
    expected = features[:20][..., columns] * mask[:20, :, None]
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt.momenta_of(x, m).numpy(), expected, rtol=1e-4, atol=1e-3)
