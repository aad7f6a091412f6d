"""Metrics: against scikit-learn and hand-computed rejection; bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jetimage.metrics import binary_metrics, classification_metrics, rejection_at


@pytest.fixture
def scores():
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(2000, int), np.zeros(3000, int)]
    values = np.r_[rng.normal(1.5, 1, 2000), rng.normal(0, 1, 3000)]
    return labels, values


def test_rejection_at_fixed_efficiency_by_hand():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.4, 0.2, 0.1])
    # εS = 0.5: cut above 0.8 keeps 2 of 4 signal and no background
    assert rejection_at(labels, s, 0.5) == float("inf")
    # εS = 0.75: cut at 0.6 keeps 3 signal and 1 of 5 background (0.7)
    assert rejection_at(labels, s, 0.75) == pytest.approx(5.0)
    # εS = 0.625 lies between the working points (0.5, 0.2) at cut 0.7 and (0.75, 0.2) at 0.6
    assert rejection_at(labels, s, 0.625) == pytest.approx(5.0)
    # εS = 1: every signal jet passes the cut at 0.3, with 3 of 5 background
    assert rejection_at(labels, s, 1.0) == pytest.approx(5 / 3)


def test_gaussian_rejection_matches_the_analytic_value(scores):
    labels, values = scores
    from scipy.stats import norm

    cut = norm.ppf(1 - 0.5, loc=1.5)  # keeps half of the signal
    expected = 1 / norm.sf(cut)
    assert rejection_at(labels, values, 0.5) == pytest.approx(expected, rel=0.15)


def test_auc_and_bootstrap_interval(scores):
    labels, values = scores
    out = binary_metrics(labels, values, bootstrap=200, seed=1)
    assert out["auc"]["value"] == pytest.approx(roc_auc_score(labels, values), abs=1e-12)
    for key in ("auc", "rejection_at_0.3", "rejection_at_0.5"):
        low, high = out[key]["interval68"]
        assert low <= out[key]["value"] <= high
        assert out[key]["std"] > 0


def test_multiclass_metrics_against_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3)) + 1.5 * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = classification_metrics(labels, probabilities, ["g", "q", "t"], bootstrap=10)
    assert out["signal"] == "t"
    counts = np.asarray(out["confusion_matrix"]["counts"])
    assert counts.sum() == 600
    assert np.all(counts.sum(axis=1) == np.bincount(labels))
    np.testing.assert_allclose(np.asarray(out["confusion_matrix"]["normalized"]).sum(axis=1), 1)
    for i, name in enumerate(["g", "q", "t"]):
        assert out["auc_one_vs_rest"][name] == pytest.approx(
            roc_auc_score(labels == i, probabilities[:, i])
        )
    assert out["accuracy"]["value"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    low, high = out["accuracy"]["interval68"]
    assert low <= out["accuracy"]["value"] <= high


def test_no_background_passing_gives_a_lower_limit_and_strict_json():
    """metrics.json must parse with strict JSON parsers: no Infinity where no background
    jet passes the cut, but the 68% CL lower limit on 1/εB, marked as such."""
    import json

    from jetimage.metrics import rejection_lower_limit

    labels = np.r_[np.ones(50, int), np.zeros(400, int)]
    values = np.r_[np.linspace(2, 3, 50), np.linspace(0, 1, 400)]  # fully separated
    out = binary_metrics(labels, values, efficiencies=(0.3, 0.5), bootstrap=10)
    for eff in (0.3, 0.5):
        entry = out[f"rejection_at_{eff:g}"]
        assert entry["lower_limit"] is True
        assert entry["value"] == pytest.approx(rejection_lower_limit(400))
        # 0 of 400 passing: εB < 1.14/400 at 68% CL (Poisson: -ln 0.32 = 1.14)
        assert entry["value"] == pytest.approx(400 / 1.139, rel=0.01)
    json.dumps(out, allow_nan=False)


def test_rejection_in_a_mass_window_uses_only_the_jets_inside_it():
    """A tagger that only knows the mass separates the whole sample but nothing inside a narrow
    mass window; one that knows more keeps its power there."""
    from jetimage.metrics import in_mass_window

    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(4000, int), np.zeros(4000, int)]
    mass = np.r_[rng.normal(175, 15, 4000), rng.uniform(0, 300, 4000)]
    shape = np.r_[rng.normal(1, 1, 4000), rng.normal(0, 1, 4000)]  # another, independent feature
    mass_only = -np.abs(mass - 175)
    knows_more = mass_only / 15 + shape
    whole = binary_metrics(labels, mass_only, bootstrap=0)["auc"]["value"]
    window = in_mass_window(labels, mass_only, mass, bootstrap=0)
    low, high = window["window"]
    assert 160 < low < 170
    assert 180 < high < 190
    inside = (mass >= low) & (mass < high)
    assert window["n_signal"] == int(np.sum(inside & (labels == 1))) == 2000
    assert whole > 0.85
    assert window["auc"]["value"] < 0.6
    assert in_mass_window(labels, knows_more, mass, bootstrap=0)["auc"]["value"] > 0.7
    assert in_mass_window(labels, knows_more, mass, window=(400, 500))["auc"] is None


def test_efficiency_in_pt_bins_one_cut_and_a_cut_per_bin_by_hand():
    """Two pT bins; in the high one the tagger works better. One cut keeping half of all
    signal keeps more of the high bin's signal; a cut per bin keeps half in each."""
    from jetimage.metrics import efficiency_in_bins

    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    pt = np.r_[np.full(8, 100.0), np.full(8, 300.0)]
    # low bin: signal 0.5-0.8, background 0.4-0.7; high bin: signal 0.9-1.2, background 0-0.3
    scores = np.r_[
        [0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7], [0.9, 1.0, 1.1, 1.2], [0.0, 0.1, 0.2, 0.3]
    ]
    low, high = efficiency_in_bins(
        labels, scores, pt, np.array([0.0, 200.0, 400.0]), working_point=0.5
    )
    # the global cut at the median signal score (0.85) keeps no low-bin and all high-bin signal
    assert low["global"]["signal_efficiency"]["value"] == 0.0
    assert high["global"]["signal_efficiency"]["value"] == 1.0
    assert low["global"]["rejection"]["lower_limit"]
    assert high["global"]["rejection"]["lower_limit"]
    # per bin: the cut at the bin's own signal median (0.65 low): background 0.7 passes
    assert low["flat"]["cut"] == pytest.approx(0.65)
    assert low["flat"]["rejection"]["value"] == pytest.approx(4.0)
    # binomial: εB = 1/4, σ = sqrt(0.25 × 0.75 / 4); σ(1/εB) = σ/εB²
    assert low["flat"]["rejection"]["std"] == pytest.approx(np.sqrt(0.25 * 0.75 / 4) * 16)
    assert low["n_signal"] == low["n_background"] == 4


def test_rejection_band_follows_the_rejection_and_ends_with_the_background():
    from jetimage.metrics import rejection_band

    rng = np.random.default_rng(2)
    labels = np.r_[np.ones(3000, int), np.zeros(3000, int)]
    values = np.r_[rng.normal(2, 1, 3000), rng.normal(0, 1, 3000)]
    grid = np.array([0.3, 0.5, 0.9])
    value, low, high = rejection_band(labels, values, grid)
    for eff, v in zip(grid, value):
        assert v == pytest.approx(rejection_at(labels, values, eff), rel=0.02)
    eps = 1 / value
    sigma = np.sqrt(eps * (1 - eps) / 3000)
    np.testing.assert_allclose(low, 1 / (eps + sigma))
    np.testing.assert_allclose(high, 1 / (eps - sigma))
    assert np.all(low < value)
    assert np.all(value < high)
    # fully separated: less than one background jet passes anywhere below εS = 1
    separated = np.r_[np.linspace(2, 3, 100), np.linspace(0, 1, 100)]
    assert np.all(np.isnan(rejection_band(labels[2900:3100], separated, grid)[0]))


def test_a_working_point_a_tagger_cannot_reach_gives_no_efficiency_or_sculpting():
    """The cut-based tagger gives every jet outside its window one score: a cut keeping 80% of
    the signal would keep them all, so neither the pT dependence nor the sculpting exists."""
    from jetimage.metrics import efficiency_in_bins, mass_sculpting

    labels = np.r_[np.ones(100, int), np.zeros(100, int)]
    scores = np.r_[np.linspace(0.5, 1, 60), np.full(40, -1.0), np.full(100, -1.0)]
    pt = np.linspace(500, 600, 200)
    bins = efficiency_in_bins(labels, scores, pt, np.array([500, 550, 601]), working_point=0.8)
    assert all(b["global"] is None and b["flat"] is None for b in bins)
    sculpting = mass_sculpting(labels, scores, pt, signal_efficiency=0.8)
    assert sculpting["jensen_shannon_bits"] is None
    assert sculpting["signal_efficiency_passed"] == 1.0
    assert (
        efficiency_in_bins(labels, scores, pt, np.array([500, 601]), working_point=0.5)[0]["global"]
        is not None
    )


def test_a_rejection_beyond_what_a_cut_reaches_is_marked_and_not_shown_as_a_result():
    """A cut-based tagger gives every jet outside its window the same lowest score: past the
    signal efficiency of its window, a rejection would be interpolated across that tie (a
    random pick among those jets), not a cut."""
    from jetimage.report import _fmt

    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(1000), np.zeros(1000)].astype(int)
    scores = np.r_[rng.uniform(0.5, 1, 600), np.full(400, -1.0), rng.uniform(0, 0.9, 300)]
    scores = np.r_[scores, np.full(700, -1.0)]
    metrics = binary_metrics(labels, scores, efficiencies=(0.3, 0.8), bootstrap=0)
    assert "beyond_reach" not in metrics["rejection_at_0.3"]
    assert metrics["rejection_at_0.8"]["beyond_reach"] == pytest.approx(0.6)
    assert _fmt(metrics["rejection_at_0.8"], 1) == "– (its cut reaches ε<sub>S</sub> ≤ 0.60 only)"
    assert "reaches" not in _fmt(metrics["rejection_at_0.3"], 1)
    continuous = binary_metrics(labels, rng.random(2000), efficiencies=(0.99,), bootstrap=0)
    assert "beyond_reach" not in continuous["rejection_at_0.99"]
