"""What the models learned: score-pixel correlations against numpy, Fisher's discriminant
against scikit-learn's LDA, and the fisher model fitted, exported and scored as any model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import roc_auc_score

from jetimage import zarr_store
from jetimage.dataset import load_split
from jetimage.inference import load_model, score_saved_model
from jetimage.interpret import discriminant_direction, fit_fisher, pixel_correlation
from jetimage.loader import normalize
from jetimage.train import TrainConfig, train_model


def test_pixel_correlation_equals_numpy_per_pixel(small_dataset):
    images, labels, _ = load_split(small_dataset, "test")
    rng = np.random.default_rng(0)
    flat = images.reshape(len(images), -1).astype(np.float64)
    scores = flat[:, 210] * 50 - flat[:, 190] * 20 + rng.normal(0, 0.01, len(images)) + labels
    r = pixel_correlation(small_dataset, "test", scores)
    assert r.shape == images.shape[1:]
    expected = np.full(flat.shape[1], np.nan)
    for p in range(flat.shape[1]):
        if flat[:, p].std() > 0:
            expected[p] = np.corrcoef(flat[:, p], scores)[0, 1]
    np.testing.assert_allclose(r.reshape(-1), expected, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="scores for the"):
        pixel_correlation(small_dataset, "test", scores[:-1])


def test_fisher_discriminant_matches_scikit_learns_lda(small_dataset):
    fit = fit_fisher(small_dataset)
    root = zarr_store.open_store(small_dataset)
    normalization = dict(root.attrs["normalization"])
    images, labels, _ = load_split(small_dataset, "train")
    x = normalize(images, normalization).numpy().reshape(len(images), -1).astype(np.float64)
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=fit["shrinkage"]).fit(x, labels)
    ours = fit["weight"][1] - fit["weight"][0]
    cosine = ours @ lda.coef_[0] / np.linalg.norm(ours) / np.linalg.norm(lda.coef_[0])
    assert cosine > 0.98
    assert fit["shrinkage"] in (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    # the softmax of the linear layer is a posterior: its val loss is that of a classifier
    assert 0.9 > fit["val_accuracy"] > 0.75
    assert fit["val_loss"] < 0.6


def test_a_fisher_model_is_fitted_in_closed_form_exported_and_separates_top(
    small_dataset, tmp_path
):
    lines = []
    history = train_model(
        small_dataset, tmp_path, TrainConfig("fisher", epochs=5), name="f", progress=lines.append
    )
    assert len(history) == 1
    assert "shrinkage" in history[0]
    assert any("fitted in closed form" in line for line in lines)
    assert (tmp_path / "model.onnx").is_file()
    probabilities, labels, _, info = score_saved_model(tmp_path / "model.pt", small_dataset, "test")
    assert info["architecture"] == "fisher"
    assert roc_auc_score(labels == 1, probabilities[:, 1]) > 0.85
    model, info = load_model(tmp_path / "model.pt")
    direction = discriminant_direction(model, info["in_shape"], 1)
    weight = model[-1].weight.detach().numpy()
    np.testing.assert_allclose(direction.reshape(-1), weight[1] - weight[0], rtol=1e-6)
    assert direction.shape == tuple(info["in_shape"])
    assert torch.load(tmp_path / "model.pt", weights_only=False)["info"]["best_epoch"] == 1
