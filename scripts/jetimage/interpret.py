"""What a tagger learned, as images: the per-pixel correlation of its score with the pixel
intensity, linear discriminants drawn as jet images, a particle flow network's filters, and
Fisher's linear discriminant itself.

Everything streams a split chunk by chunk (only sums over the jets are held), so memory does
not grow with the split.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from jetimage import loader, zarr_store
from jetimage.layers import ParticleFlow
from jetimage.models import output_layer


def pixel_correlation(path: str | os.PathLike, split: str, scores: np.ndarray) -> np.ndarray:
    """Pearson correlation over a split's jets between ``scores`` (one per jet, in the store's
    order) and each pixel's intensity (de Oliveira et al., arXiv:1511.05190): (channels, η, φ),
    NaN where a pixel never varies."""
    images = zarr_store.open_store(path)[split]["images"]
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != images.shape[0]:
        msg = f"{len(scores)} scores for the {images.shape[0]} jets of {split}"
        raise ValueError(msg)
    shape = images.shape[1:]
    sx, sxx, sxs = (np.zeros(int(np.prod(shape))) for _ in range(3))
    step = images.chunks[0]
    for start in range(0, images.shape[0], step):
        x = np.asarray(images[start : start + step], dtype=np.float64).reshape(-1, sx.size)
        s = scores[start : start + len(x)]
        sx += x.sum(axis=0)
        sxx += np.einsum("ij,ij->j", x, x)
        sxs += s @ x
    n = len(scores)
    cov = sxs / n - (sx / n) * scores.mean()
    var_x = sxx / n - (sx / n) ** 2
    var_s = scores.var()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(
            (var_x > 1e-30 * np.maximum(sxx / n, 1e-300)) & (var_s > 0),
            cov / np.sqrt(var_x * var_s),
            np.nan,
        )
    return r.reshape(shape)


def discriminant_direction(model: torch.nn.Module, in_shape, signal: int) -> np.ndarray:
    """The pixel weights of a model that is one linear layer on the pixels (``logistic``,
    ``fisher``): the signal's row minus the mean of the others' (for two classes the weights of
    the log-likelihood ratio), shaped as an image (channels, η, φ)."""
    weight = output_layer(model).weight.detach().cpu().numpy().astype(np.float64)
    others = np.delete(weight, signal, axis=0).mean(axis=0)
    return (weight[signal] - others).reshape(tuple(in_shape))


def pfn_filters(
    model: ParticleFlow, normalization: dict, *, half_width: float, n: int = 8, pixels: int = 41
) -> np.ndarray:
    """A particle flow network's per-particle filters in the (Δη, Δφ) plane, as its paper draws
    them (Komiske, Metodiev, Thaler, arXiv:1810.05165): the latent components of Φ for one
    particle at each point of a ±``half_width`` grid, every other feature at the train split's
    mean (``normalization`` of the particle view; ΔR follows Δη and Δφ). The ``n`` components
    that vary most over the plane, each divided by its largest value: (n, Δη, Δφ)."""
    from jetimage.particles import FEATURES

    axis = np.linspace(-half_width, half_width, pixels)
    deta, dphi = np.meshgrid(axis, axis, indexing="ij")
    mean = np.asarray(normalization["mean"], dtype=np.float64)
    std = np.asarray(normalization["std"], dtype=np.float64)
    x = np.zeros((pixels * pixels, len(FEATURES)), dtype=np.float32)  # standardised: the mean
    for feature, value in (("deta", deta), ("dphi", dphi), ("delta_r", np.hypot(deta, dphi))):
        i = FEATURES.index(feature)
        x[:, i] = (value.ravel() - mean[i]) / std[i]
    with torch.no_grad():
        particles = torch.from_numpy(x).index_select(-1, model.columns.cpu())
        latent = model.phi.cpu()(particles).numpy().T.reshape(-1, pixels, pixels)
    varied = np.argsort(latent.reshape(len(latent), -1).std(axis=1))[::-1][:n]
    shown = latent[varied]
    return shown / np.maximum(np.abs(shown).max(axis=(1, 2), keepdims=True), 1e-30)


#: Shrinkage values tried for the pooled covariance (fractions of a multiple of the identity).
SHRINKAGES = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1)


def _class_sums(data, n_classes: int, n_features: int):
    """(jets per class, sums per class, pooled x xᵀ) of normalised images, streamed."""
    counts = np.zeros(n_classes)
    sums = np.zeros((n_classes, n_features))
    outer = np.zeros((n_features, n_features))
    for x, y in data.batches(2048):
        x = x.numpy().reshape(len(x), -1).astype(np.float64)
        y = y.numpy()
        counts += np.bincount(y, minlength=n_classes)
        np.add.at(sums, y, x)
        outer += x.T @ x
    return counts, sums, outer


def _losses(data, weights: np.ndarray, biases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cross-entropy, accuracy) of each of several linear models (weights (models, classes,
    features), biases (models, classes)) on a split, streamed."""
    loss, correct, n = np.zeros(len(weights)), np.zeros(len(weights)), 0
    for x, y in data.batches(2048):
        x = x.numpy().reshape(len(x), -1).astype(np.float64)
        y = y.numpy()
        logits = np.einsum("nf,mcf->mnc", x, weights) + biases[:, None, :]
        logits -= logits.max(axis=2, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
        loss -= log_p[:, np.arange(len(y)), y].sum(axis=1)
        correct += (log_p.argmax(axis=2) == y).sum(axis=1)
        n += len(y)
    return loss / max(n, 1), correct / max(n, 1)


def fit_fisher(path: str | os.PathLike, *, memory_budget_mb: float = 4000.0) -> dict:
    """Fisher's linear discriminant (linear discriminant analysis) of a dataset's normalised
    train images: class means and the pooled within-class covariance Σ, shrunk towards a
    multiple of the identity by the fraction (of :data:`SHRINKAGES`) with the lowest val loss.
    Returns ``weight`` (classes, features) Σ⁻¹μₖ and ``bias`` −½μₖᵀΣ⁻¹μₖ + log πₖ (each less
    its mean over the classes), whose softmax is the LDA class posterior, with the shrinkage
    and the train and val loss and accuracy."""
    root = zarr_store.open_store(path)
    n_classes = len(root.attrs["classes"])
    train, val = (
        loader.open_split(path, s, memory_budget_mb=memory_budget_mb) for s in ("train", "val")
    )
    n_features = int(np.prod(root["train/images"].shape[1:]))
    counts, sums, outer = _class_sums(train, n_classes, n_features)
    means = sums / np.maximum(counts, 1)[:, None]
    within = outer - (means * counts[:, None]).T @ means
    covariance = within / max(counts.sum() - n_classes, 1)
    eigenvalues, vectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    scale = max(float(np.trace(covariance)) / n_features, 1e-12)
    priors = np.log(np.maximum(counts, 1) / counts.sum())
    projected = means @ vectors  # class means in Σ's eigenbasis
    weights, biases = [], []
    for shrinkage in SHRINKAGES:
        inverse = 1.0 / ((1 - shrinkage) * eigenvalues + shrinkage * scale)
        weight = (projected * inverse) @ vectors.T
        weights.append(weight)
        biases.append(-0.5 * np.einsum("cf,cf->c", weight, means) + priors)
    # softmax is unchanged by a term common to every class: removing it keeps the logits small
    weights = np.asarray(weights) - np.mean(weights, axis=1, keepdims=True)
    biases = np.asarray(biases) - np.mean(biases, axis=1, keepdims=True)
    val_loss, val_accuracy = _losses(val, weights, biases)
    best = int(np.argmin(val_loss))
    train_loss, train_accuracy = _losses(train, weights[best : best + 1], biases[best : best + 1])
    return {
        "weight": weights[best].astype(np.float32),
        "bias": biases[best].astype(np.float32),
        "shrinkage": SHRINKAGES[best],
        "n_train": int(counts.sum()),
        "train_loss": float(train_loss[0]),
        "train_accuracy": float(train_accuracy[0]),
        "val_loss": float(val_loss[best]),
        "val_accuracy": float(val_accuracy[best]),
    }
