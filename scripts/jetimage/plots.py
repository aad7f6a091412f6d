"""Figures of the evaluation and the report, in HEP style (mplhep), saved as PNG and PDF."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mplhep
import numpy as np

from jetimage.files import atomic_path
from jetimage.metrics import rejection_band, roc

plt.style.use(mplhep.style.CMS)
plt.rcParams.update({"font.size": 16, "figure.figsize": (8, 7)})


def save(fig, path: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as ``path`` (.png) and beside it as .pdf, atomically; close it."""
    path = Path(path)
    written = []
    for target in (path.with_suffix(".png"), path.with_suffix(".pdf")):
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=target.suffix[1:], dpi=110, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written


def roc_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    signal: str,
    background: str,
    title: str = "",
    efficiencies: Sequence[float] = (0.3, 0.5),
):
    """Two panels: the ROC curve (εB vs εS) and background rejection 1/εB vs εS (log), with
    the working points ``efficiencies`` marked."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 7))
    for name, (labels, scores) in curves.items():
        eps_s, eps_b = roc(labels, scores)
        left.plot(eps_s, eps_b, label=name)
        ok = eps_b > 0
        right.plot(eps_s[ok], 1.0 / eps_b[ok], label=name)
    left.plot([0, 1], [0, 1], ls=":", color="grey", label="random")
    left.set(
        xlabel=f"Signal efficiency $\\varepsilon_S$ ({signal})",
        ylabel=f"Background efficiency $\\varepsilon_B$ ({background})",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    right.set(
        xlabel=f"Signal efficiency $\\varepsilon_S$ ({signal})",
        ylabel="Background rejection $1/\\varepsilon_B$",
        yscale="log",
        xlim=(0, 1),
    )
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


def confusion_figure(
    normalized: np.ndarray, counts: np.ndarray, classes: Sequence[str], *, title: str = ""
):
    """Row-normalised confusion matrix with class names and counts."""
    normalized = np.asarray(normalized)
    fig, ax = plt.subplots(figsize=(3 + 1.6 * len(classes), 2.5 + 1.6 * len(classes)))
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{normalized[i, j]:.2f}\n({counts[i][j]})",
                ha="center",
                va="center",
                color="white" if normalized[i, j] > 0.5 else "black",
                fontsize=13,
            )
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


def no_mass_figure() -> plt.Figure:
    """The note drawn instead of a mass-sculpting figure where the jets have no mass."""
    return note_figure(
        "No jet mass in this dataset (pre-pixelated images):\nmass sculpting cannot be shown."
    )


def _axis_labels(spec: dict) -> tuple[str, str]:
    """(x, y) labels of an image panel: rotated φ' and y' (or η'), or pixel indices."""
    eta = "y'" if spec.get("coordinate") == "rapidity" else "\\eta'"
    if image_extent(spec):
        return "Rotated $\\phi'$", f"Rotated ${eta}$"
    return "$\\phi$ pixel", "$\\eta$ pixel"


def _diverging(
    ax, fig, image: np.ndarray, spec: dict, *, title: str, label: str, symlog: bool = False
) -> None:
    """An image on a symmetric red-blue scale around 0 (NaN pixels left blank); ``symlog``:
    logarithmic beyond a thousandth of the largest value, so that small structures show."""
    finite = np.abs(image[np.isfinite(image)])
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    norm = (
        matplotlib.colors.SymLogNorm(limit * 1e-3, vmin=-limit, vmax=limit)
        if symlog
        else matplotlib.colors.Normalize(-limit, limit)
    )
    shown = ax.imshow(image, origin="lower", extent=image_extent(spec), cmap="RdBu_r", norm=norm)
    xlabel, ylabel = _axis_labels(spec)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(shown, ax=ax, label=label)


def mean_images_figure(
    means: np.ndarray,
    counts: np.ndarray,
    classes: Sequence[str],
    spec: dict,
    *,
    signal: int | None = None,
    channel: int = 0,
):
    """Mean image of each class (log colour scale), in the image's (y or η, φ) coordinates,
    and, given the ``signal`` class, the difference between its mean image and the others'
    (linear, red where the signal deposits more); ``means`` (classes, channels, η, φ) and
    ``counts`` as :func:`jetimage.dataset.class_mean_images` gives them."""
    panels = len(classes) + (signal is not None)
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 6), squeeze=False)
    extent = image_extent(spec)
    xlabel, ylabel = _axis_labels(spec)
    for ax, (i, name) in zip(axes[0], enumerate(classes)):
        mean = means[i, channel]
        positive = mean[mean > 0]
        vmin = positive.min() if positive.size else 1e-6
        shown = ax.imshow(
            np.where(mean > 0, mean, np.nan),
            origin="lower",
            extent=extent,
            norm=matplotlib.colors.LogNorm(vmin=vmin, vmax=max(mean.max(), vmin * 10)),
            cmap="viridis",
        )
        ax.set(title=f"{name} (mean of {int(counts[i])})", xlabel=xlabel, ylabel=ylabel)
        fig.colorbar(shown, ax=ax, label="Mean pixel value")
    if signal is not None:
        others = [i for i in range(len(classes)) if i != signal]
        weights = np.asarray(counts, dtype=float)[others]
        background = np.average(
            means[others, channel], axis=0, weights=weights if weights.sum() > 0 else None
        )
        _diverging(
            axes[0, -1],
            fig,
            means[signal, channel] - background,
            spec,
            title=f"{classes[signal]} minus the rest",
            label="Difference of means",
            symlog=True,
        )
    return fig


def learned_figure(
    correlation: np.ndarray,
    spec: dict,
    *,
    title: str = "",
    weights: np.ndarray | None = None,
    filters: np.ndarray | None = None,
    filter_width: float = 0.8,
    channel: int = 0,
):
    """What a model looks at: the per-pixel Pearson correlation between its signal score and
    the pixel intensity over the test jets (de Oliveira et al., arXiv:1511.05190), for a
    model linear in the pixels its discriminant direction drawn as an image (the Fisher jet
    image of Cogan et al., arXiv:1407.5675), and for a particle flow network its filters
    (:func:`jetimage.interpret.pfn_filters`, ±``filter_width`` in Δη and Δφ) beside them."""
    panels = 1 + (weights is not None)
    side = 12 if filters is not None else 0
    fig = plt.figure(figsize=(8 * panels + side, 6.5))
    top, bottom = fig, None
    if filters is not None:
        halves = np.asarray(fig.subfigures(1, 2, width_ratios=[8 * panels, side]))
        top, bottom = halves[0], halves[1]
    axes = top.subplots(1, panels, squeeze=False)
    _diverging(
        axes[0, 0],
        top,
        correlation[channel],
        spec,
        title="Score–pixel correlation",
        label="Pearson correlation",
    )
    if weights is not None:
        _diverging(
            axes[0, 1],
            top,
            weights[channel],
            spec,
            title="Linear weights",
            label="Signal − background weight (normalised pixel)",
        )
    if bottom is not None and filters is not None:
        _filter_panels(bottom, filters, filter_width)
    if title:
        top.suptitle(title)  # over its own panels, beside the filters' title
    return fig


def _filter_panels(fig, filters: np.ndarray, width: float) -> None:
    """The PFN's filters, one panel each in two rows, on one scale (each filter divided by its
    largest value)."""
    columns = -(-len(filters) // 2)
    axes = fig.subplots(2, columns, squeeze=False, sharex=True, sharey=True)
    extent = (-width, width, -width, width)
    for ax, image, a in zip(axes.flat, filters, range(len(filters))):
        shown = ax.imshow(image, origin="lower", extent=extent, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"$\\Phi_{{{a}}}$", fontsize="small")
    for ax in axes.flat[len(filters) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("$\\Delta\\phi$")
    for ax in axes[:, 0]:
        ax.set_ylabel("$\\Delta\\eta$")
    fig.colorbar(shown, ax=axes, label="Latent value / its largest")
    fig.suptitle(
        "Particle filters: Φ for one particle at (Δη, Δφ), its other features at the train mean",
        fontsize="medium",
    )


def example_rows(scores: np.ndarray, *, signal: str, per_row: int = 5) -> dict[str, np.ndarray]:
    """The jets :func:`example_jets_figure` shows, by row title: the most signal-like, most
    background-like and most uncertain."""
    order = np.argsort(scores)
    return {
        f"most {signal}-like": order[::-1][:per_row],
        "most background-like": order[:per_row],
        "most uncertain (score ≈ 0.5)": np.argsort(np.abs(scores - 0.5))[:per_row],
    }


def example_jets_figure(
    images,
    scores: np.ndarray,
    truth: Sequence[str],
    spec: dict,
    *,
    signal: str,
    per_row: int = 5,
    channel: int = 0,
):
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
            ax.imshow(
                np.where(image > 0, image, np.nan),
                origin="lower",
                extent=extent,
                norm=matplotlib.colors.LogNorm(vmin=vmin, vmax=max(image.max(), vmin * 10)),
                cmap="viridis",
            )
            ax.set_title(f"{scores[index[c]]:.3f} (true: {truth[index[c]]})", fontsize=12)
        axes[r, 0].set_ylabel(title, fontsize=13)
    return fig


def sculpting_figure(
    masses: Mapping[str, np.ndarray],
    labels: np.ndarray,
    scores: np.ndarray,
    cut: float,
    *,
    signal: str,
    signal_efficiency: float = 0.5,
):
    """Background (and signal) spectra of each mass (name → values: the plain and the
    soft-drop mass) before and after the cut at fixed εS, one panel each."""
    fig, axes = plt.subplots(1, len(masses), figsize=(8 * len(masses), 7), squeeze=False)
    passed = scores >= cut
    n_passed = int(np.sum((labels == 0) & passed))
    for ax, (name, mass) in zip(axes[0], masses.items()):
        finite = np.isfinite(mass)
        edges = np.linspace(0, max(np.quantile(mass[finite], 0.995), 1.0), 41)
        ax.hist(
            mass[(labels == 0) & finite],
            edges,
            density=True,
            histtype="step",
            lw=2,
            color="C0",
            label="background, all",
        )
        ax.hist(
            mass[(labels == 0) & passed & finite],
            edges,
            density=True,
            histtype="step",
            lw=2,
            ls="--",
            color="C0",
            label=f"background after the cut at $\\varepsilon_S$ = {signal_efficiency:g} "
            f"({n_passed} jets)",
        )
        ax.hist(
            mass[(labels == 1) & finite],
            edges,
            density=True,
            histtype="stepfilled",
            alpha=0.25,
            color="C1",
            label=f"{signal}, all",
        )
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


def rejection_comparison_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    reference: str,
    signal: str,
    background: str,
    efficiencies: Sequence[float] = (0.3, 0.5),
):
    """Background rejection 1/εB against signal efficiency of several models, with binomial
    uncertainty bands from the number of background jets, and a ratio panel to the
    ``reference`` model (the layout of ATLAS's puma)."""
    fig, (top, ratio) = plt.subplots(
        2, 1, figsize=(9, 9), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    grid = np.linspace(0.1, 1.0, 181)
    bands = {
        name: rejection_band(labels, scores, grid) for name, (labels, scores) in curves.items()
    }
    ref_value = bands[reference][0]
    ceiling = 10 * np.nanmax([np.nanmax(b[0]) for b in bands.values()] + [1.0])
    for i, (name, (value, low, high)) in enumerate(bands.items()):
        color = _color(i)
        high = np.minimum(high, ceiling)
        top.plot(
            grid, value, color=color, label=name + (" (reference)" if name == reference else "")
        )
        top.fill_between(grid, low, high, color=color, alpha=0.2, lw=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio.plot(grid, value / ref_value, color=color)
            ratio.fill_between(
                grid, low / ref_value, high / ref_value, color=color, alpha=0.2, lw=0
            )
    for eff in efficiencies:
        top.axvline(eff, ls=":", color="grey")
        ratio.axvline(eff, ls=":", color="grey")
    top.set(
        ylabel=f"Background rejection $1/\\varepsilon_B$ ({background})",
        yscale="log",
        ylim=(1.0, ceiling / 3),
    )
    top.legend(loc="upper right", fontsize=13)
    ratio.set(
        xlabel=f"Signal efficiency $\\varepsilon_S$ ({signal})",
        ylabel=f"Ratio to\n{reference}",
        xlim=(grid[0], 1.0),
    )
    ratio.axhline(1.0, color="grey", lw=1)
    ratio.set_ylim(0, min(ratio.get_ylim()[1], 3.0))
    top.text(
        0.02,
        0.02,
        "curves end where fewer than one background jet passes",
        transform=top.transAxes,
        fontsize=11,
        color="grey",
    )
    return fig


def _color(i: int):
    """The i-th of ten well-separated colours (the CMS style's cycle has only six)."""
    return plt.get_cmap("tab10")(i % 10)


def _bin_points(bins: Sequence[dict], way: str, quantity: str):
    """(centres, half widths, values, errors) of one quantity of efficiency_in_bins output."""
    rows = [b for b in bins if b[way] is not None and b[way][quantity]["value"] is not None]
    centres = [(b["low"] + b["high"]) / 2 for b in rows]
    widths = [(b["high"] - b["low"]) / 2 for b in rows]
    values = [b[way][quantity]["value"] for b in rows]
    errors = [b[way][quantity]["std"] or 0.0 for b in rows]
    limits = [bool(b[way][quantity].get("lower_limit")) for b in rows]
    return centres, widths, values, errors, limits


def pt_dependence_figure(
    bins_by_model: Mapping[str, Sequence[dict]], *, working_point: float, signal: str
):
    """Signal efficiency and background rejection against jet pT at one working point: with
    one cut for all jets (εS and 1/εB per bin), and with the cut set per bin to keep
    ``working_point`` of each bin's signal (1/εB per bin); binomial error bars, lower limits
    as upward triangles. ``bins_by_model``: model → :func:`jetimage.metrics.efficiency_in_bins`."""
    fig, axes = plt.subplots(1, 3, figsize=(24, 7))
    panels = [
        ("global", "signal_efficiency", f"$\\varepsilon_S$ ({signal}), one cut"),
        ("global", "rejection", "$1/\\varepsilon_B$, one cut"),
        (
            "flat",
            "rejection",
            (f"$1/\\varepsilon_B$, cut per bin ($\\varepsilon_S$ = {working_point:g} in each)"),
        ),
    ]
    for ax, (way, quantity, label) in zip(axes, panels):
        for i, (name, bins) in enumerate(bins_by_model.items()):
            x, dx, y, dy, limits = _bin_points(bins, way, quantity)
            shift = (i - (len(bins_by_model) - 1) / 2) * 0.06 * np.asarray(dx)
            x = np.asarray(x) + shift
            exact = ~np.asarray(limits, dtype=bool)
            y, dy = np.asarray(y, dtype=float), np.asarray(dy, dtype=float)
            low = np.minimum(dy, y - 1.0) if quantity == "rejection" else dy  # 1/εB ≥ 1
            ax.errorbar(
                x[exact],
                y[exact],
                xerr=np.asarray(dx)[exact],
                yerr=np.stack([low, dy])[:, exact],
                fmt="o",
                color=_color(i),
                label=name,
            )
            ax.plot(x[~exact], y[~exact], "^", color=_color(i), ms=10)
        ax.set(xlabel="Jet $p_T$ [GeV]", ylabel=label)
        if quantity == "rejection":
            ax.set_yscale("log")
    axes[0].axhline(working_point, ls=":", color="grey")
    axes[0].legend(fontsize=12)
    fig.suptitle(
        f"Working point $\\varepsilon_S$ = {working_point:g} (triangles: no "
        f"background jet passes, 68% CL lower limit)"
    )
    return fig


def sculpting_comparison_figure(
    background: np.ndarray,
    mass: Mapping[str, tuple[np.ndarray, np.ndarray, float]],
    *,
    name: str,
    signal_efficiency: float = 0.5,
):
    """The ``background`` jets' (soft-drop) mass spectrum before any cut and after each model's
    cut at fixed εS, overlaid: which models sculpt it (a mass-decorrelated model keeps its
    shape). ``mass``: model → (background masses, their scores, the model's cut)."""
    fig, ax = plt.subplots(figsize=(10, 7))
    finite = background[np.isfinite(background)]
    top = max(np.quantile(finite, 0.995), 1.0) if finite.size else 1.0
    edges = np.linspace(0, top, 26).tolist()
    ax.hist(
        finite,
        edges,
        density=True,
        histtype="stepfilled",
        color="grey",
        alpha=0.3,
        label="background, all",
    )
    for i, (model, (values, scores, cut)) in enumerate(mass.items()):
        kept = values[(scores >= cut) & np.isfinite(values)]
        if kept.size:
            ax.hist(
                kept,
                edges,
                density=True,
                histtype="step",
                lw=2,
                color=_color(i),
                label=f"{model} ({kept.size} jets pass)",
            )
    ax.set(
        xlabel=f"{name} [GeV]",
        ylabel="Normalised to unit area",
        title=f"Background after each model's cut at $\\varepsilon_S$ = {signal_efficiency:g}",
    )
    ax.legend(fontsize=12)
    return fig


def lr_find_figure(found: Mapping, *, title: str = ""):
    """The learning-rate finder's smoothed loss against the rate, with its suggestion."""
    fig, ax = plt.subplots()
    ax.plot(found["lrs"], found["losses"], "-")
    i = found["lrs"].index(found["suggestion"])
    ax.plot(found["suggestion"], found["losses"][i], "o", color="C3", ms=10)
    ax.axvline(found["suggestion"], color="C3", ls="--", label=f"valley: {found['suggestion']:.1e}")
    ax.set(xscale="log", xlabel="Learning rate", ylabel="Training loss (smoothed)")
    ax.legend(title=title or None)
    return fig


def learning_curves_figure(curves: Mapping[str, Sequence[tuple[int, dict]]], *, efficiency: float):
    """AUC and 1/εB at ``efficiency`` against the training jets, one line per family of models
    (``curves``: family → [(training jets, metrics.json)], the bootstrap 68% intervals as error
    bars, none where there are none); a family trained on no jet (a model applied as it is) is
    a band."""
    fig, (auc, rejection) = plt.subplots(1, 2, figsize=(16, 7))
    key = f"rejection_at_{efficiency:g}"
    sizes = sorted({n for points in curves.values() for n, _ in points if n})
    for i, (family, points) in enumerate(sorted(curves.items())):
        for ax, name in ((auc, "auc"), (rejection, key)):
            jets = [n for n, _ in points]
            values = np.array([m[name]["value"] for _, m in points], dtype=float)
            intervals = [m[name]["interval68"] or [m[name]["value"]] * 2 for _, m in points]
            low, high = np.array(intervals, dtype=float).T
            if jets == [0]:
                ax.axhline(values[0], color=_color(i), ls="--", label=family)
                ax.axhspan(low[0], high[0], color=_color(i), alpha=0.2)
            else:
                bars = [values - low, high - values]
                ax.errorbar(jets, values, bars, fmt="o-", color=_color(i), capsize=4, label=family)
    for ax in (auc, rejection):
        ax.set(xscale="log", xlabel="Training jets")
        ax.minorticks_off()
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    auc.set(ylabel="AUC")
    rejection.set(
        yscale="log",
        ylabel=rf"Background rejection $1/\varepsilon_B$ at $\varepsilon_S = {efficiency:g}$",
    )
    auc.legend(fontsize=12)
    return fig
