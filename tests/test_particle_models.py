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
SMALL = {"pfn": {"phi": [16, 16, 32], "f": [32]}}
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
