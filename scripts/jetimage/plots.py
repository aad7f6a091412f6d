"""Figures of the evaluation and the report, in HEP style (mplhep), saved as PNG and PDF."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

from jetimage import io  # noqa: E402
from jetimage.metrics import roc  # noqa: E402

plt.style.use(mplhep.style.CMS)
plt.rcParams.update({"font.size": 16, "figure.figsize": (8, 7)})


def save(fig, path: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``path`` (.png) and beside it as .pdf, atomically; close it."""
    path = Path(path)
    written = []
    for target in (path.with_suffix(".png"), path.with_suffix(".pdf")):
        with io.atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix[1:], dpi=110, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, signal: str,
               background: str, title: str = "", efficiencies: Sequence[float] = (0.3, 0.5)):
    """Two panels: the ROC curve (εB vs εS) and background rejection 1/εB vs εS (log), with
    the working points ``efficiencies`` marked."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 7))
    for name, (labels, scores) in curves.items():
        eps_s, eps_b = roc(labels, scores)
        left.plot(eps_s, eps_b, label=name)
        ok = eps_b > 0
        right.plot(eps_s[ok], 1.0 / eps_b[ok], label=name)
    left.plot([0, 1], [0, 1], ls=":", color="grey", label="random")
    left.set(xlabel=f"Signal efficiency $\\varepsilon_S$ ({signal})",
             ylabel=f"Background efficiency $\\varepsilon_B$ ({background})", xlim=(0, 1),
             ylim=(0, 1))
    right.set(xlabel=f"Signal efficiency $\\varepsilon_S$ ({signal})",
              ylabel="Background rejection $1/\\varepsilon_B$", yscale="log", xlim=(0, 1))
    for eff in efficiencies:
        right.axvline(eff, ls=":", color="grey")
    left.legend(loc="lower right")
    right.legend(loc="upper right")
    if title:
        fig.suptitle(title)
    return fig


def history_figure(history: Sequence[dict], *, title: str = ""):
    """Training and validation loss and accuracy per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(16, 7))
    loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    loss.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
    acc.plot(epochs, [h["val_accuracy"] for h in history], "s-", label="validation")
    loss.set(xlabel="Epoch", ylabel="Cross-entropy loss")
    acc.set(xlabel="Epoch", ylabel="Accuracy")
    loss.legend()
    acc.legend()
    if title:
        fig.suptitle(title)
    return fig


def confusion_figure(normalized: np.ndarray, counts: np.ndarray, classes: Sequence[str], *,
                     title: str = ""):
    """Row-normalised confusion matrix with class names and counts."""
    normalized = np.asarray(normalized)
    fig, ax = plt.subplots(figsize=(3 + 1.6 * len(classes), 2.5 + 1.6 * len(classes)))
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{normalized[i, j]:.2f}\n({counts[i][j]})", ha="center", va="center",
                    color="white" if normalized[i, j] > 0.5 else "black", fontsize=13)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="Predicted class", ylabel="True class")
    ax.minorticks_off()
    fig.colorbar(image, ax=ax, label="Fraction of true class")
    if title:
        ax.set_title(title)
    return fig


def image_extent(spec: dict) -> tuple[float, float, float, float] | None:
    """imshow extent (φ, then η) of an image spec, or None (pixel axes) if its width is not
    known (pre-pixelated inputs that do not say)."""
    if not spec.get("width"):
        return None
    (w_eta, w_phi) = spec["width"]
    return (-w_phi / 2, w_phi / 2, -w_eta / 2, w_eta / 2)


def note_figure(text: str):
    """A figure that says why a plot is not available."""
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def mean_images_figure(means: np.ndarray, counts: np.ndarray, classes: Sequence[str],
                       spec: dict, *, channel: int = 0):
    """Mean image of each class (log colour scale), in the image's (y or η, φ) coordinates;
    ``means`` (classes, channels, η, φ) and ``counts`` as
    :func:`jetimage.evaluate.class_mean_images` gives them."""
    fig, axes = plt.subplots(1, len(classes), figsize=(7 * len(classes), 6), squeeze=False)
    extent = image_extent(spec)
    eta = "y'" if spec.get("coordinate") == "rapidity" else "\\eta'"
    for ax, (i, name) in zip(axes[0], enumerate(classes)):
        mean = means[i, channel]
        positive = mean[mean > 0]
        vmin = positive.min() if positive.size else 1e-6
        shown = ax.imshow(np.where(mean > 0, mean, np.nan), origin="lower", extent=extent,
                          norm=matplotlib.colors.LogNorm(vmin=vmin,
                                                         vmax=max(mean.max(), vmin * 10)),
                          cmap="viridis")
        ax.set(title=f"{name} (mean of {int(counts[i])})",
               xlabel="Rotated $\\phi'$" if extent else "$\\phi$ pixel",
               ylabel=f"Rotated ${eta}$" if extent else "$\\eta$ pixel")
        fig.colorbar(shown, ax=ax, label="Mean pixel value")
    return fig


def example_rows(scores: np.ndarray, *, signal: str, per_row: int = 5) -> dict[str, np.ndarray]:
    """The jets :func:`example_jets_figure` shows, by row title: the most signal-like, most
    background-like and most uncertain."""
    order = np.argsort(scores)
    return {f"most {signal}-like": order[::-1][:per_row],
            "most background-like": order[:per_row],
            "most uncertain (score ≈ 0.5)": np.argsort(np.abs(scores - 0.5))[:per_row]}


def example_jets_figure(images, scores: np.ndarray, truth: Sequence[str], spec: dict,
                        *, signal: str, per_row: int = 5, channel: int = 0):
    """The most signal-like, most background-like and most uncertain test jets, with their
    signal score and true class; ``images[i]`` is jet ``i``'s image (an array of all jets, or
    a mapping holding those of :func:`example_rows`)."""
    rows = example_rows(scores, signal=signal, per_row=per_row)
    fig, axes = plt.subplots(3, per_row, figsize=(3.2 * per_row, 10), squeeze=False)
    extent = image_extent(spec)
    for r, (title, index) in enumerate(rows.items()):
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(index):
                continue
            image = images[int(index[c])][channel]
            positive = image[image > 0]
            vmin = positive.min() if positive.size else 1e-6
            ax.imshow(np.where(image > 0, image, np.nan), origin="lower", extent=extent,
                      norm=matplotlib.colors.LogNorm(vmin=vmin, vmax=max(image.max(), vmin * 10)),
                      cmap="viridis")
            ax.set_title(f"{scores[index[c]]:.3f} (true: {truth[index[c]]})", fontsize=12)
        axes[r, 0].set_ylabel(title, fontsize=13)
    return fig


def sculpting_figure(masses: Mapping[str, np.ndarray], labels: np.ndarray, scores: np.ndarray,
                     cut: float, *, signal: str, signal_efficiency: float = 0.5):
    """Background (and signal) spectra of each mass (name → values: the plain and the
    soft-drop mass) before and after the cut at fixed εS, one panel each."""
    fig, axes = plt.subplots(1, len(masses), figsize=(8 * len(masses), 7), squeeze=False)
    passed = scores >= cut
    n_passed = int(np.sum((labels == 0) & passed))
    for ax, (name, mass) in zip(axes[0], masses.items()):
        finite = np.isfinite(mass)
        edges = np.linspace(0, max(np.quantile(mass[finite], 0.995), 1.0), 41)
        ax.hist(mass[(labels == 0) & finite], edges, density=True, histtype="step", lw=2,
                color="C0", label="background, all")
        ax.hist(mass[(labels == 0) & passed & finite], edges, density=True, histtype="step",
                lw=2, ls="--", color="C0",
                label=f"background after the cut at $\\varepsilon_S$ = {signal_efficiency:g} "
                      f"({n_passed} jets)")
        ax.hist(mass[(labels == 1) & finite], edges, density=True, histtype="stepfilled",
                alpha=0.25, color="C1", label=f"{signal}, all")
        ax.set(xlabel=f"{name} [GeV]", ylabel="Normalised to unit area")
        ax.legend(fontsize=12)
    return fig


def auc_vs_feature_figure(bins: Sequence[dict], *, feature: str, unit: str, title: str = ""):
    """AUC in bins of a jet feature, with bootstrap uncertainties."""
    fig, ax = plt.subplots()
    ok = [b for b in bins if b["auc"] is not None]
    centres = [(b["low"] + b["high"]) / 2 for b in ok]
    widths = [(b["high"] - b["low"]) / 2 for b in ok]
    values = [b["auc"]["value"] for b in ok]
    errors = [b["auc"]["std"] or 0.0 for b in ok]
    ax.errorbar(centres, values, xerr=widths, yerr=errors, fmt="o")
    ax.set(xlabel=f"Jet {feature} [{unit}]", ylabel="AUC")
    if title:
        ax.set_title(title)
    return fig
