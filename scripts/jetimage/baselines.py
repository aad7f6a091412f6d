"""Baseline taggers on the per-jet high-level features, to set the image models against.

Trained on the dataset's train split (validated on val) and scored on its test split like any
model, from the jets' table alone (the substructure observables of :mod:`jetimage.substructure`
beside pT and mass), with no image:

``bdt``
    scikit-learn's histogram gradient-boosted trees on ``features`` (multi-class), early
    stopping on a held-out share of the train and val jets.
``hlf-mlp``
    the registry's ``mlp`` (:mod:`jetimage.models`) on the same standardised features (a
    missing value, such as τ32 of a one-constituent jet, set to the train mean), trained with
    Adam and early stopping on the val loss.
``cuts``
    the cut-based tagger every analysis starts from: a window in the soft-drop mass and an upper
    cut on one N-subjettiness ratio (τ32 or τ21, whichever separates the train split better).
    The window is chosen on the train split among windows of signal-mass quantiles to maximise
    the rejection at 50% signal efficiency within it; the score is -τ inside the window and the
    lowest score outside, so the ROC curve scans the τ cut at the fixed window. Signal against
    the rest.

The ``bdt`` and the ``hlf-mlp`` take per-jet training weights (planing, :mod:`jetimage.planing`);
the cut-based tagger has nothing to weigh.

A baseline is saved as ``model.pt`` (``torch.save`` of a dict: ``info`` as the image models'
plus ``features``, and the fitted tagger), so evaluate loads every model the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jetimage import zarr_store
from jetimage.files import InputError, atomic_path, naming
from jetimage.substructure import HLS4ML

#: Default high-level features: the groomed mass and the classic ratios.
FEATURES = ("msd", "mass", "tau21", "tau32", "c2_b1", "d2_b1", "d2_b2", "n2_b1", "multiplicity")

#: Named feature sets a baseline's ``features`` option may give instead of a list of columns:
#: ``hls4ml`` is the hls4ml jet dataset's 16 (ECF ratios of the mMDT-groomed jet, its mass,
#: zlogz and the multiplicity; arXiv:1804.06913).
FEATURE_SETS = {"default": FEATURES, "hls4ml": HLS4ML}


def feature_set(features: tuple[str, ...] | str) -> tuple[str, ...]:
    """The jet-table columns a ``features`` option means: a list of them, or the name of one
    of :data:`FEATURE_SETS`."""
    return FEATURE_SETS[features] if isinstance(features, str) else tuple(features)


#: The baselines' trainers by architecture name (the image models are jetimage.models').
BASELINES: dict[str, Callable] = {}

#: Keyword arguments every trainer gets from the run, not from the config's options.
RUN_ARGUMENTS = ("signal", "n_classes", "seed", "weights")


def register(name: str):
    """Add a baseline's trainer to the registry (its keyword options are the config's)."""

    def add(trainer):
        BASELINES[name] = trainer
        return trainer

    return add


def feature_matrix(
    table: Mapping[str, np.ndarray], features, *, what: str = "feature"
) -> np.ndarray:
    """(jets, features) float64 of a split's table; a missing feature is an error naming it
    (and ``what`` it is for)."""
    missing = [f for f in features if f not in table]
    if missing:
        msg = (
            f"the dataset's jets lack {what}(s) {missing} (it has "
            f"{sorted(table)}): observables come from the observables stage, "
            f"which needs constituents"
        )
        raise InputError(msg)
    return np.stack([np.asarray(table[f], dtype=np.float64) for f in features], axis=1)


def train_matrix(table: Mapping[str, np.ndarray], features) -> np.ndarray:
    """:func:`feature_matrix` of the split a tagger is fitted on; a feature without a finite
    value for any of its jets (τ32 of jets of two constituents) is an error naming it: a
    tagger would learn nothing from it and still be reported."""
    x = feature_matrix(table, features)
    empty = [f for f, column in zip(features, x.T) if not np.any(np.isfinite(column))]
    if empty:
        msg = (
            f"feature(s) {empty} are NaN or infinite for every one of the {len(x)} train "
            f"jets: nothing to learn from; drop them from the model's features"
        )
        raise InputError(msg)
    return x


@dataclasses.dataclass
class BoostedTrees:
    """A fitted gradient-boosted classifier on named features."""

    features: tuple[str, ...]
    estimator: Any

    def probabilities(self, table: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities (jets, classes) of the jets of ``table``."""
        return self.estimator.predict_proba(feature_matrix(table, self.features))


@register("bdt")
def bdt(
    train: dict,
    val: dict,
    labels: tuple[np.ndarray, np.ndarray],
    *,
    signal: int,
    n_classes: int,
    seed: int,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    features: tuple[str, ...] | str = FEATURES,
    max_iter: int = 300,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 31,
) -> BoostedTrees:
    """Histogram gradient-boosted trees (NaN features handled natively), fitted on the train
    and val splits' jets with early stopping on a held-out share of them the size of the val
    split (scikit-learn draws it itself)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = feature_set(features)
    x = np.concatenate([train_matrix(train, features), feature_matrix(val, features)])
    y = np.concatenate(labels)
    estimator = HistGradientBoostingClassifier(
        max_iter=max_iter,
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        early_stopping=True,
        validation_fraction=len(labels[1]) / len(y),
        n_iter_no_change=20,
        random_state=seed,
    )
    estimator.fit(x, y, sample_weight=None if weights is None else np.concatenate(weights))
    return BoostedTrees(features, estimator)


@dataclasses.dataclass
class FeatureNetwork:
    """A network on standardised named features (NaN → the train mean, i.e. 0)."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    network: Any

    def inputs(self, table: dict[str, np.ndarray]):
        """The standardised feature tensor of ``table`` (NaN → the train mean, i.e. 0)."""
        import torch

        x = (feature_matrix(table, self.features) - self.mean) / self.std
        return torch.from_numpy(np.nan_to_num(x, nan=0.0).astype(np.float32))

    def probabilities(self, table: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities (jets, classes) of the jets of ``table``."""
        import torch

        self.network.eval()
        with torch.no_grad():
            return torch.softmax(self.network(self.inputs(table)), dim=1).numpy()


@register("hlf-mlp")
def hlf_mlp(
    train: dict,
    val: dict,
    labels: tuple[np.ndarray, np.ndarray],
    *,
    signal: int,
    n_classes: int,
    seed: int,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    features: tuple[str, ...] | str = FEATURES,
    hidden: tuple[int, ...] = (64, 64),
    dropout: float = 0.1,
    epochs: int = 200,
    batch_size: int = 256,
    learning_rate: float = 0.001,
    patience: int = 15,
) -> FeatureNetwork:
    """The registry's ``mlp`` on the standardised features, trained on the train split with
    Adam (weighted cross-entropy with planing weights); the weights of the epoch with the
    lowest val loss are kept."""
    import torch

    from jetimage.models import build_model

    features = feature_set(features)
    raw = train_matrix(train, features)
    mean, std = np.nanmean(raw, axis=0), np.nanstd(raw, axis=0)
    std = np.where(std > 0, std, 1.0)
    torch.manual_seed(seed)
    network = build_model(
        "mlp",
        in_shape=(len(features), 1, 1),
        n_classes=n_classes,
        hidden=tuple(hidden),
        dropout=dropout,
    )
    tagger = FeatureNetwork(features, mean, std, network)
    x, x_val = tagger.inputs(train), tagger.inputs(val)
    y, y_val = (torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in labels)
    w, w_val = (
        torch.ones(len(a)) if weights is None else torch.from_numpy(weights[i])
        for i, a in enumerate(labels)
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    best: tuple[float, dict | None, int] = (np.inf, None, -1)
    for epoch in range(epochs):
        network.train()
        for idx in torch.randperm(len(y), generator=generator).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(network(x[idx]), y[idx], reduction="none")
            (loss * w[idx]).sum().div(w[idx].sum()).backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(
                (
                    torch.nn.functional.cross_entropy(network(x_val), y_val, reduction="none")
                    * w_val
                ).sum()
                / w_val.sum()
            )
        if val_loss < best[0]:
            best = (val_loss, {k: v.clone() for k, v in network.state_dict().items()}, epoch)
        elif epoch - best[2] > patience:
            break
    if best[1] is not None:
        network.load_state_dict(best[1])
    return tagger


@dataclasses.dataclass
class CutBased:
    """A soft-drop-mass window and an upper cut on one N-subjettiness ratio."""

    mass: str
    window: tuple[float, float]
    shape: str
    signal: int
    n_classes: int

    @property
    def features(self) -> tuple[str, ...]:
        """The features the cuts read: the mass and the shape variable."""
        return (self.mass, self.shape)

    def score(self, table: dict[str, np.ndarray]) -> np.ndarray:
        """-τ inside the window, below every such score outside it (and for NaN τ)."""
        mass = np.asarray(table[self.mass], dtype=np.float64)
        tau = np.asarray(table[self.shape], dtype=np.float64)
        inside = (mass >= self.window[0]) & (mass < self.window[1]) & np.isfinite(tau)
        return np.where(inside, 1.0 - np.where(inside, tau, 0.0), -1.0)

    def probabilities(self, table: dict[str, np.ndarray]) -> np.ndarray:
        """Signal probability a monotone map of the score to [0, 1]; the rest share 1 - p."""
        p = (self.score(table) + 1.0) / 3.0  # -1 → 0, τ = 0 → 2/3, τ ≥ 0 keeps ≤ 2/3
        out = np.repeat(((1.0 - p) / max(self.n_classes - 1, 1))[:, None], self.n_classes, 1)
        out[:, self.signal] = p
        return out


def _rejection_at_half(is_signal: np.ndarray, score: np.ndarray) -> float:
    from jetimage.metrics import rejection_at

    return rejection_at(is_signal.astype(int), score, 0.5)


@register("cuts")
def cuts(
    train: dict,
    val: dict,
    labels: tuple[np.ndarray, np.ndarray],
    *,
    signal: int,
    n_classes: int,
    seed: int,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    mass: str = "msd",
    shapes: tuple[str, ...] = ("tau32", "tau21"),
) -> CutBased:
    """The window and the τ ratio that give the highest rejection at εS = 0.5 on the train
    split (windows between signal-mass quantiles 2-30% and 70-98%); ``weights`` are not used
    (a cut on the mass cannot be decorrelated from it)."""
    from sklearn.metrics import roc_auc_score

    is_signal = labels[0] == signal
    train_matrix(train, (mass, *shapes))
    aucs = {}
    for shape in shapes:
        tau = np.nan_to_num(np.asarray(train[shape], dtype=np.float64), nan=1.0)
        aucs[shape] = roc_auc_score(is_signal, -tau)
    shape = max(aucs, key=aucs.__getitem__)
    signal_mass = np.asarray(train[mass], dtype=np.float64)[is_signal]
    lows = np.nanquantile(signal_mass, np.linspace(0.02, 0.30, 8))
    highs = np.nanquantile(signal_mass, np.linspace(0.70, 0.98, 8))
    best, best_window = -np.inf, (float(lows[0]), float(highs[-1]))
    for low in lows:
        for high in highs:
            tagger = CutBased(mass, (float(low), float(high)), shape, signal, n_classes)
            rejection = _rejection_at_half(is_signal, tagger.score(train))
            if rejection > best:
                best, best_window = rejection, (float(low), float(high))
    return CutBased(mass, best_window, shape, signal, n_classes)


def _loss_and_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Cross-entropy (probabilities clipped at 1e-7) and accuracy, as the image models log."""
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(-np.mean(np.log(picked))), float(np.mean(probabilities.argmax(axis=1) == labels))


def _planing(
    train: dict,
    val: dict,
    labels: tuple[np.ndarray, np.ndarray],
    planing: tuple[str, ...],
    *,
    n_classes: int,
    bins: int,
):
    """Per-jet (train, val) weights flattening the ``planing`` variables per class
    (:mod:`jetimage.planing`, fitted on the train split), or None without planing."""
    if not planing:
        return None
    from jetimage.planing import Planing

    fitted = Planing.fit(train, labels[0], planing, n_classes=n_classes, bins=bins)
    return fitted.weights(train, labels[0]), fitted.weights(val, labels[1])


def _write_baseline(out_dir, info: dict, tagger, scores: dict, seconds: float) -> None:
    """``model.pt`` (the info and the pickled tagger) and ``history.json`` (one "epoch": the
    fit, with train and val loss and accuracy), each atomically."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save({"info": info, "tagger": tagger}, tmp)
    epoch = {"epoch": 1, "seconds": seconds}
    for split, (loss, accuracy) in scores.items():
        epoch |= {f"{split}_loss": loss, f"{split}_accuracy": accuracy}
    with atomic_path(out_dir / "history.json") as tmp:
        tmp.write_text(json.dumps({"epochs": [epoch]}, indent=2))


def train_baseline(
    dataset_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    architecture: str,
    options: dict,
    signal: str,
    seed: int,
    planing: tuple[str, ...] = (),
    planing_bins: int = 10,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Fit a baseline on the train (and val) split's jets, weighted by planing in the
    ``planing`` variables if any; write ``model.pt`` and ``history.json`` into ``out_dir``
    atomically; returns the model's ``info``."""
    if architecture not in BASELINES:
        msg = f"unknown baseline {architecture!r}; choose from {BASELINES}"
        raise ValueError(msg)
    root = zarr_store.open_store(dataset_path)
    classes = list(root.attrs["classes"])
    train, val = (zarr_store.read_table(root[s]) for s in ("train", "val"))
    labels = (root["train/labels"][...], root["val/labels"][...])
    tic = time.perf_counter()
    with naming(dataset_path):  # a missing feature names the dataset
        weights = _planing(train, val, labels, planing, n_classes=len(classes), bins=planing_bins)
        tagger = BASELINES[architecture](
            train,
            val,
            labels,
            signal=classes.index(signal),
            n_classes=len(classes),
            seed=seed,
            weights=weights,
            **options,
        )
    seconds = time.perf_counter() - tic
    scores = {
        name: _loss_and_accuracy(tagger.probabilities(table), y)
        for name, table, y in (("train", train, labels[0]), ("val", val, labels[1]))
    }
    val_accuracy = scores["val"][1]
    info = {
        "architecture": architecture,
        "options": options,
        "classes": classes,
        "features": list(tagger.features),
        "inputs": "features",
        "seed": seed,
        "planing": list(planing),
        "normalization": None,
        "in_shape": None,
    }
    if isinstance(tagger, CutBased):
        info["cuts"] = {"mass": tagger.mass, "window": list(tagger.window), "shape": tagger.shape}
    if progress:
        progress(
            f"{architecture} on {list(tagger.features)}: fitted in {seconds:.1f} s, val "
            f"accuracy {val_accuracy:.4f}" + (f", cuts {info['cuts']}" if "cuts" in info else "")
        )
    _write_baseline(out_dir, info, tagger, scores, seconds)
    return info
