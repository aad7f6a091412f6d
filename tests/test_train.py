"""Training: the model registry, determinism, resume after a kill, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jetimage.inference import export_model, load_model, onnx_session
from jetimage.models import INPUTS, MODELS, build_model
from jetimage.train import TrainConfig, train_model

torch.set_num_threads(2)


@pytest.mark.parametrize("architecture", sorted(a for a in MODELS if INPUTS[a] == "images"))
@pytest.mark.parametrize("shape", [(1, 20, 20), (2, 40, 40), (3, 20, 20)])
def test_every_model_takes_one_training_step(architecture, shape):
    torch.manual_seed(0)
    model = build_model(architecture, in_shape=shape, n_classes=3)
    x, y = torch.randn(8, *shape), torch.randint(0, 3, (8,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    assert model(x).shape == (8, 3)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(KeyError, match="hsf-cnn"):
        build_model("vit", in_shape=(1, 20, 20), n_classes=2)


CONFIG = TrainConfig(
    architecture="hsf-cnn",
    options={"filters": [4, 8], "dense": 16},
    epochs=4,
    batch_size=64,
    patience=10,
    seed=3,
)


def weights(path):
    return torch.load(path, weights_only=False)["state_dict"]


def test_same_seed_gives_the_same_history_and_weights(small_dataset, tmp_path):
    first = train_model(small_dataset, tmp_path / "a", CONFIG, name="a")
    second = train_model(small_dataset, tmp_path / "b", CONFIG, name="b")
    strip = [{k: v for k, v in h.items() if k not in ("seconds", "jets_per_second")} for h in first]
    assert strip == [
        {k: v for k, v in h.items() if k not in ("seconds", "jets_per_second")} for h in second
    ]
    for k, v in weights(tmp_path / "a" / "model.pt").items():
        assert torch.equal(v, weights(tmp_path / "b" / "model.pt")[k])


def test_killed_and_resumed_training_ends_with_identical_weights(small_dataset, tmp_path):
    train_model(small_dataset, tmp_path / "full", CONFIG, name="m")
    partial = train_model(
        small_dataset, tmp_path / "resumed", CONFIG, name="m", max_epochs_this_run=2
    )
    assert len(partial) == 2
    assert not (tmp_path / "resumed" / "model.pt").exists()
    lines = []
    history = train_model(
        small_dataset, tmp_path / "resumed", CONFIG, name="m", progress=lines.append
    )
    assert any("resuming" in line for line in lines)
    assert len(history) == 4
    full = weights(tmp_path / "full" / "model.pt")
    resumed = weights(tmp_path / "resumed" / "model.pt")
    for k in full:
        assert torch.equal(full[k], resumed[k])
    saved = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [h["epoch"] for h in saved["epochs"]] == [1, 2, 3, 4]


def test_checkpoint_of_other_settings_is_not_resumed(small_dataset, tmp_path):
    train_model(small_dataset, tmp_path, CONFIG, name="m", max_epochs_this_run=1)
    lines = []
    other = TrainConfig(**{**CONFIG.__dict__, "learning_rate": 0.01})
    train_model(small_dataset, tmp_path, other, name="m", progress=lines.append)
    assert any("ignoring a checkpoint" in line for line in lines)


def test_exported_model_reproduces_torch_and_model_pt_rebuilds_alone(small_dataset, tmp_path):
    train_model(small_dataset, tmp_path, CONFIG, name="m")
    model, info = load_model(tmp_path / "model.pt")
    assert info["classes"] == ["qcd", "top"]
    assert info["in_shape"] == [1, 20, 20]
    x = torch.randn(37, 1, 20, 20)  # another batch size than at export
    session = onnx_session(tmp_path / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["images"]
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(session.run(None, {"images": x.numpy()})[0] - expected).max() <= 1e-5
    assert export_model(model, tmp_path / "again.onnx", x) <= 1e-5


def test_cnn_learns_top_from_qcd(small_dataset, tmp_path):
    from sklearn.metrics import roc_auc_score

    from jetimage.dataset import load_split
    from jetimage.inference import predict_scores

    config = TrainConfig(architecture="hsf-cnn", epochs=8, batch_size=32, seed=1)
    train_model(small_dataset, tmp_path, config, name="m")
    model, info = load_model(tmp_path / "model.pt")
    images, labels, _ = load_split(small_dataset, "test")
    scores = predict_scores(model, images, info["normalization"])[:, 1]
    assert roc_auc_score(labels, scores) > 0.8
    assert np.isfinite(scores).all()


def test_stream_visits_every_image_once_per_epoch(small_dataset):
    from jetimage import loader

    whole = loader.open_split(small_dataset, "train", memory_budget_mb=1e6)
    stream = loader.open_split(small_dataset, "train", memory_budget_mb=1e-3)
    assert not whole.streaming
    assert stream.streaming
    assert len(whole) == len(stream)
    generator = torch.Generator().manual_seed(0)
    seen = torch.cat([x for x, _ in stream.batches(50, generator)])
    assert len(seen) == len(whole)
    # the same images, in another order: compare sorted per-image sums of squares (normalised
    # images sum to ~0)
    assert torch.allclose(
        (seen**2).sum(dim=(1, 2, 3)).sort().values,
        (whole.images**2).sum(dim=(1, 2, 3)).sort().values,
        rtol=1e-5,
    )
    first = torch.cat([y for _, y in stream.batches(50, torch.Generator().manual_seed(1))])
    again = torch.cat([y for _, y in stream.batches(50, torch.Generator().manual_seed(1))])
    assert torch.equal(first, again)


def test_streamed_training_learns_and_resumes_identically(small_dataset, tmp_path):
    config = TrainConfig(**{**CONFIG.__dict__, "memory_budget_mb": 1e-3})
    lines = []
    train_model(small_dataset, tmp_path / "full", config, name="m", progress=lines.append)
    assert any("streamed from Zarr" in line for line in lines)
    train_model(small_dataset, tmp_path / "resumed", config, name="m", max_epochs_this_run=1)
    train_model(small_dataset, tmp_path / "resumed", config, name="m")
    full = weights(tmp_path / "full" / "model.pt")
    resumed = weights(tmp_path / "resumed" / "model.pt")
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_mixed_precision_on_cpu_trains_a_resnet(small_dataset, tmp_path):
    config = TrainConfig(
        architecture="resnet",
        options={"widths": [4, 8], "blocks_per_stage": 1},
        epochs=1,
        batch_size=64,
        mixed_precision="on",
        channels_last="on",
    )
    lines = []
    history = train_model(small_dataset, tmp_path, config, name="r", progress=lines.append)
    assert "mixed precision" in lines[0]
    assert "channels-last" in lines[0]
    assert np.isfinite(history[0]["train_loss"])
    assert (tmp_path / "model.onnx").is_file()
