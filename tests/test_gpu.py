"""The CUDA paths of training: mixed precision, channels-last, the gradient scaler's state in
the checkpoint, resume after a kill, torch.compile. Skipped without a CUDA GPU."""

from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, before init

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from jetimage.dataset import load_split
from jetimage.inference import load_model, predict_scores
from jetimage.train import TrainConfig, train_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CONFIG = TrainConfig(
    "hsf-cnn", epochs=4, batch_size=64, device="cuda", patience=10, options={"dense": 32}
)


@pytest.fixture
def deterministic():
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    yield
    torch.use_deterministic_algorithms(False)


def weights(path):
    return torch.load(path, weights_only=False)["state_dict"]


def test_cuda_training_uses_mixed_precision_channels_last_and_learns(small_dataset, tmp_path):
    lines = []
    history = train_model(small_dataset, tmp_path, CONFIG, name="m", progress=lines.append)
    header = next(line for line in lines if line.startswith("training m"))
    assert "on cuda" in header
    assert "mixed precision" in header
    assert "channels-last" in header
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["scaler"]["scale"] > 0  # the gradient scaler is saved to resume with
    assert history[-1]["val_loss"] < history[0]["train_loss"]
    model, info = load_model(tmp_path / "model.pt")  # rebuilt on the CPU from model.pt alone
    images, labels, _ = load_split(small_dataset, "test")
    scores = predict_scores(model, images, info["normalization"])[:, 1]
    assert roc_auc_score(labels, scores) > 0.85


def test_killed_and_resumed_cuda_training_ends_with_identical_weights(
    small_dataset, tmp_path, deterministic
):
    train_model(small_dataset, tmp_path / "full", CONFIG, name="m")
    train_model(small_dataset, tmp_path / "resumed", CONFIG, name="m", max_epochs_this_run=2)
    lines = []
    history = train_model(
        small_dataset, tmp_path / "resumed", CONFIG, name="m", progress=lines.append
    )
    assert any("resuming" in line for line in lines)
    assert len(history) == 4
    full, resumed = (
        weights(tmp_path / "full" / "model.pt"),
        weights(tmp_path / "resumed" / "model.pt"),
    )
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def test_compiled_training_on_cuda_follows_eager(small_dataset, tmp_path):
    config = TrainConfig(**{**CONFIG.__dict__, "epochs": 2})
    eager = train_model(small_dataset, tmp_path / "eager", config, name="m")
    compiled_config = TrainConfig(**{**config.__dict__, "compile": True})
    lines = []
    compiled = train_model(
        small_dataset, tmp_path / "compiled", compiled_config, name="m", progress=lines.append
    )
    assert any("compiled" in line for line in lines)
    np.testing.assert_allclose(
        [h["val_loss"] for h in compiled], [h["val_loss"] for h in eager], rtol=0.05
    )
