"""Classifier metrics of the tagging literature, with bootstrap uncertainties.

Background rejection is 1/εB at a fixed signal efficiency εS (0.3 and 0.5 by the Top Quark
Tagging convention), read off the ROC curve by linear interpolation of εB in εS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve


def roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(εS, εB) along the ROC curve for binary ``labels`` (1 = signal)."""
    eps_b, eps_s, _ = roc_curve(labels, scores)
    return eps_s, eps_b


def rejection_at(labels: np.ndarray, scores: np.ndarray, signal_efficiency: float) -> float:
    """Background rejection 1/εB at the given signal efficiency (inf if εB is 0 there).

    Examples:
        >>> labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
        >>> scores = np.array([.9, .8, .7, .2, .75, .3, .1, .05])
        >>> rejection_at(labels, scores, 0.5)   # two signal jets above 0.8 > all background
        inf
        >>> rejection_at(labels, scores, 0.75)  # the third signal jet at 0.7 passes 1 of 4 bkg
        4.0
    """
    eps_b_curve, eps_s_curve, _ = roc_curve(labels, scores, drop_intermediate=False)
    i = int(np.searchsorted(eps_s_curve, signal_efficiency, side="left"))
    if eps_s_curve[i] == signal_efficiency or i == 0:
        eps = float(eps_b_curve[i])
    else:  # linear interpolation between the two working points around εS
        s0, s1, b0, b1 = eps_s_curve[i - 1], eps_s_curve[i], eps_b_curve[i - 1], eps_b_curve[i]
        eps = float(b0 + (signal_efficiency - s0) * (b1 - b0) / (s1 - s0))
    return 1.0 / eps if eps > 0 else float("inf")


def _bootstrap(fn, labels, scores, *, n: int, seed: int) -> dict:
    value = fn(labels, scores)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        idx = rng.integers(0, len(labels), len(labels))
        if len(np.unique(labels[idx])) < 2:
            continue
        draws.append(fn(labels[idx], scores[idx]))
    values = np.asarray(draws, dtype=float)
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return {"value": value, "std": None, "interval68": None}
    low, high = np.percentile(finite, [16, 84])
    return {
        "value": value,
        "std": float(np.std(finite)),
        "interval68": [float(min(low, value)), float(max(high, value))],
    }


def binary_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    efficiencies: Sequence[float] = (0.3, 0.5),
    bootstrap: int = 100,
    seed: int = 0,
) -> dict:
    """AUC and background rejection at fixed εS, each with a bootstrap uncertainty.

    Args:
        labels: 1 for signal, 0 for background.
        scores: signal score, larger is more signal-like.
        efficiencies: signal efficiencies at which to quote 1/εB.
        bootstrap: resamplings of the test set for the uncertainties.
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    out = {
        "auc": _bootstrap(
            lambda y, s: float(roc_auc_score(y, s)), labels, scores, n=bootstrap, seed=seed
        )
    }
    n_background = int(np.sum(labels == 0))
    reach = _reach(labels, scores)
    for eff in efficiencies:
        entry = _bootstrap(
            lambda y, s, e=eff: rejection_at(y, s, e), labels, scores, n=bootstrap, seed=seed
        )
        if entry["value"] == float("inf"):  # no background jet passes: a lower limit
            entry = {
                "value": rejection_lower_limit(n_background),
                "std": None,
                "interval68": None,
                "lower_limit": True,
            }
        if reach is not None and eff > reach:  # interpolated across a tie: no cut gives it
            entry["beyond_reach"] = reach
        out[f"rejection_at_{eff:g}"] = entry
    return out


def _reach(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The largest signal efficiency a cut on ``scores`` reaches short of accepting every jet,
    when at least 1% of the signal jets share the lowest score (a cut-based tagger gives every
    jet outside its window that score); None otherwise. A rejection quoted beyond it would be
    interpolated across the tie, a random choice among those jets, not a cut."""
    if not len(scores):
        return None
    tied = float(np.mean(scores[labels == 1] == scores.min())) if np.any(labels == 1) else 0.0
    return 1.0 - tied if tied >= 0.01 else None


def rejection_lower_limit(n_background: int, cl: float = 0.68) -> float:
    """Lower limit on 1/εB at confidence level ``cl`` when none of ``n_background`` jets
    passes: εB < 1 - (1 - cl)^(1/n), so that ``metrics.json`` never holds Infinity.

    Examples:
        >>> round(rejection_lower_limit(1250), 1)
        1097.5
    """
    return 1.0 / (1.0 - (1.0 - cl) ** (1.0 / max(n_background, 1)))


def classification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    signal: str | None = None,
    efficiencies: Sequence[float] = (0.3, 0.5),
    bootstrap: int = 100,
    seed: int = 0,
) -> dict:
    """Everything ``metrics.json`` holds for one model on the test split.

    Args:
        labels: class index per jet.
        probabilities: (jets, classes) softmax outputs.
        classes: class names, in label order.
        signal: the signal class for the binary metrics (default: the last class).
    """
    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    signal = signal if signal is not None else classes[-1]
    s = list(classes).index(signal)
    counts = confusion_matrix(labels, predicted, labels=range(len(classes)))
    rows = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    per_class = {}
    for i, name in enumerate(classes):
        target = labels == i
        if 0 < target.sum() < len(target):
            per_class[name] = float(roc_auc_score(target, probabilities[:, i]))
    return {
        "classes": list(classes),
        "signal": signal,
        "n_test": int(len(labels)),
        "accuracy": _bootstrap(
            lambda y, p: float(np.mean(p == y)), labels, predicted, n=bootstrap, seed=seed
        ),
        **binary_metrics(
            (labels == s).astype(int),
            probabilities[:, s],
            efficiencies=efficiencies,
            bootstrap=bootstrap,
            seed=seed,
        ),
        "confusion_matrix": {"counts": counts.tolist(), "normalized": normalized.tolist()},
        "auc_one_vs_rest": per_class,
        "auc_macro": float(np.mean(list(per_class.values()))) if per_class else None,
    }


#: A cut reaches a working point when the signal it passes exceeds it by at most this much (more
#: means the scores tie at the cut, as the cut-based tagger's do outside its window).
TIE_TOLERANCE = 0.05


def reaches(passed_fraction: float, working_point: float) -> bool:
    """Whether a cut passing ``passed_fraction`` of the signal realises ``working_point``."""
    return bool(passed_fraction <= working_point + TIE_TOLERANCE)


def threshold_at(labels: np.ndarray, scores: np.ndarray, signal_efficiency: float) -> float:
    """The score cut that keeps the fraction ``signal_efficiency`` of the signal jets."""
    return float(np.quantile(scores[labels == 1], 1.0 - signal_efficiency))


def auc_in_bins(
    labels: np.ndarray,
    scores: np.ndarray,
    values: np.ndarray,
    edges: np.ndarray,
    *,
    bootstrap: int = 50,
    seed: int = 0,
) -> list[dict]:
    """AUC (with bootstrap uncertainty) in bins of a jet feature such as pT.

    Bins holding only one class get ``None``.
    """
    out = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (values >= low) & (values < high)
        y, s = labels[inside], scores[inside]
        entry: dict[str, Any] = {"low": float(low), "high": float(high), "jets": int(inside.sum())}
        if len(np.unique(y)) < 2:
            entry["auc"] = None
        else:
            entry["auc"] = _bootstrap(
                lambda a, b: float(roc_auc_score(a, b)), y, s, n=bootstrap, seed=seed
            )
        out.append(entry)
    return out


def mass_sculpting(
    labels: np.ndarray,
    scores: np.ndarray,
    mass: np.ndarray,
    *,
    signal_efficiency: float = 0.5,
    bins: int = 30,
) -> dict:
    """How a cut at fixed signal efficiency reshapes the background jet-mass spectrum.

    Returns the cut, the signal and background efficiencies it gives, the background mass mean
    before and after, and the Jensen-Shannon divergence (bits) between the normalised spectra
    before and after; ``None`` for the divergence when the tagger cannot reach the signal
    efficiency (scores tied at the cut, as the cut-based tagger's outside its window, pass more
    than 5% above it) or no background jet passes.
    """
    cut = threshold_at(labels, scores, signal_efficiency)
    background = labels == 0
    passed = scores >= cut
    reached = float(np.mean(passed[labels == 1])) if np.any(labels == 1) else float("nan")
    before = mass[background]
    after = mass[background & passed]
    edges = np.histogram_bin_edges(before, bins=bins)
    p = np.histogram(before, edges)[0].astype(float)
    q = np.histogram(after, edges)[0].astype(float)
    jsd = None
    if p.sum() > 0 and q.sum() > 0 and reaches(reached, signal_efficiency):
        p, q = p / p.sum(), q / q.sum()
        m = 0.5 * (p + q)

        def kl(a, b):
            nz = a > 0
            return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

        jsd = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    return {
        "signal_efficiency": signal_efficiency,
        "cut": cut,
        "signal_efficiency_passed": reached,
        "background_efficiency": float(len(after) / max(len(before), 1)),
        "background_mass_mean_before": float(np.mean(before)) if len(before) else None,
        "background_mass_mean_after": float(np.mean(after)) if len(after) else None,
        "jensen_shannon_bits": jsd,
    }


def in_mass_window(
    labels: np.ndarray,
    scores: np.ndarray,
    mass: np.ndarray,
    *,
    window: Sequence[float] | None = None,
    efficiencies: Sequence[float] = (0.3, 0.5),
    bootstrap: int = 100,
    seed: int = 0,
) -> dict:
    """AUC and 1/εB at fixed εS among the jets inside a narrow window of (soft-drop) mass
    around the signal's, where the mass alone no longer separates (de Oliveira et al.,
    arXiv:1511.05190): what a tagger learns beyond the mass. ``window``: [low, high) in GeV,
    by default the signal's interquartile range; efficiencies are of the signal inside it.
    ``None`` values where the window holds jets of one class only."""
    labels, scores, mass = (np.asarray(a) for a in (labels, scores, mass))
    finite = np.isfinite(mass)
    if window is None:
        window = np.quantile(mass[(labels == 1) & finite], [0.25, 0.75])
    low, high = (float(w) for w in window)
    inside = finite & (mass >= low) & (mass < high)
    out = {
        "window": [low, high],
        "n_signal": int(np.sum(inside & (labels == 1))),
        "n_background": int(np.sum(inside & (labels == 0))),
    }
    if out["n_signal"] == 0 or out["n_background"] == 0:
        return {**out, "auc": None}
    return {
        **out,
        **binary_metrics(
            labels[inside],
            scores[inside],
            efficiencies=efficiencies,
            bootstrap=bootstrap,
            seed=seed,
        ),
    }


def binomial_efficiency(passed: int, total: int) -> dict:
    """An efficiency with its binomial standard deviation sqrt(ε(1 - ε)/N)."""
    eps = passed / total if total else float("nan")
    std = float(np.sqrt(eps * (1.0 - eps) / total)) if total else None
    return {"value": float(eps), "std": std, "passed": int(passed), "total": int(total)}


def binomial_rejection(passed: int, total: int) -> dict:
    """1/εB with the binomial uncertainty of εB propagated (σ/εB²), or the 68% CL lower
    limit (``lower_limit: true``) when no background jet passes."""
    if total and passed == 0:
        return {"value": rejection_lower_limit(total), "std": None, "lower_limit": True}
    eps = binomial_efficiency(passed, total)
    if not total:
        return {"value": None, "std": None}
    return {"value": 1.0 / eps["value"], "std": eps["std"] / eps["value"] ** 2}


def efficiency_in_bins(
    labels: np.ndarray,
    scores: np.ndarray,
    values: np.ndarray,
    edges: np.ndarray,
    *,
    working_point: float = 0.5,
) -> list[dict]:
    """Signal efficiency and background rejection in bins of a jet feature (pT) at one working
    point, both ways the field quotes them (as ATLAS's puma does): ``global``, one cut keeping
    ``working_point`` of all signal jets, so εS varies from bin to bin; and ``flat``, a cut set
    in each bin to keep ``working_point`` of that bin's signal jets. Binomial uncertainties.
    ``None`` for a way the tagger cannot reach: scores tied at the cut pass more than 5% more
    signal than the working point (as the cut-based tagger's outside its window)."""
    labels, scores, values = (np.asarray(a) for a in (labels, scores, values))
    cut = threshold_at(labels, scores, working_point)
    reachable = reaches(np.mean(scores[labels == 1] >= cut), working_point)
    out = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (values >= low) & (values < high)
        signal, background = inside & (labels == 1), inside & (labels == 0)
        entry: dict[str, Any] = {
            "low": float(low),
            "high": float(high),
            "n_signal": int(signal.sum()),
            "n_background": int(background.sum()),
            "global": None,
            "flat": None,
        }
        if entry["n_signal"] and entry["n_background"] and reachable:
            passed = scores >= cut
            entry["global"] = {
                "signal_efficiency": binomial_efficiency(
                    int(np.sum(signal & passed)), entry["n_signal"]
                ),
                "rejection": binomial_rejection(
                    int(np.sum(background & passed)), entry["n_background"]
                ),
            }
            bin_cut = threshold_at(labels[inside], scores[inside], working_point)
            if reaches(np.mean(scores[signal] >= bin_cut), working_point):
                entry["flat"] = {
                    "cut": bin_cut,
                    "rejection": binomial_rejection(
                        int(np.sum(background & (scores >= bin_cut))), entry["n_background"]
                    ),
                }
        out.append(entry)
    return out


def quantile_edges(values: np.ndarray, bins: int = 5) -> np.ndarray:
    """Bin edges holding equal numbers of jets; the last edge nudged up so that the largest
    value falls inside."""
    edges = np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0, 1, bins + 1))
    edges[-1] = np.nextafter(edges[-1], np.inf)
    return edges


def rejection_band(
    labels: np.ndarray, scores: np.ndarray, signal_efficiencies: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1/εB at each signal efficiency (interpolated along the ROC curve) and the band
    1/(εB ± σ) of its binomial standard deviation σ = sqrt(εB(1 - εB)/N_B) (the upper edge
    infinite where σ ≥ εB); NaN where less than one background jet passes (the curve's end is
    a bound there, not a value)."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    eps_s, eps_b = roc(labels, scores)
    n_background = max(int(np.sum(labels == 0)), 1)
    eps = np.interp(signal_efficiencies, eps_s, eps_b)
    eps = np.where(eps * n_background >= 1.0, eps, np.nan)
    sigma = np.sqrt(eps * (1.0 - eps) / n_background)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / eps, 1.0 / (eps + sigma), np.where(eps > sigma, 1.0 / (eps - sigma), np.inf)
