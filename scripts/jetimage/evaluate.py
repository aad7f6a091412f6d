"""The evaluate stage: a saved model's scores on a dataset split in bounded memory (one group of
Zarr chunks at a time), and the metrics, per-jet scores and figures written from them
(:func:`evaluate_model`).

Only per-jet numbers (scores, labels, the jet table) are held for the whole split, so memory
does not grow with the split's images (see also :func:`jetimage.dataset.class_mean_images` and
:func:`jetimage.dataset.images_at`).
"""

from __future__ import annotations

import os

import numpy as np

from jetimage import zarr_store
from jetimage.files import atomic_path
from jetimage.inference import load_model, score_saved_model, scores_frame

#: Jet-table masses whose background sculpting is measured: column → (metrics key, label).
MASSES = {"mass": ("mass_sculpting", "Jet mass"), "msd": ("msd_sculpting", "Soft-drop mass")}


def _linear_direction(model_path: str | os.PathLike, info: dict, signal: int) -> np.ndarray | None:
    """The pixel weights of a model linear in the pixels (``info`` as saved), as an image;
    None for others."""
    from jetimage.interpret import discriminant_direction
    from jetimage.models import LINEAR

    if info.get("inputs") == "features" or info["architecture"] not in LINEAR:
        return None
    return discriminant_direction(load_model(model_path)[0], info["in_shape"], signal)


def _filters(model_path: str | os.PathLike, info: dict, half_width: float) -> np.ndarray | None:
    """A particle flow network's filters in the (Δη, Δφ) plane; None for other models."""
    from jetimage.interpret import pfn_filters
    from jetimage.layers import ParticleFlow

    if info.get("inputs") != "particles":
        return None
    model = load_model(model_path)[0]
    if not isinstance(model, ParticleFlow):
        return None
    return pfn_filters(model, info["normalization"], half_width=half_width)


def model_cost(model_path: str | os.PathLike, dataset_path, info: dict) -> dict:
    """What a model takes (``view``: images, particles or features), its trainable
    ``parameters`` and, exported ones, the median ``onnx_latency_us`` to score one jet on one
    CPU core (of the test split's first 50 jets); None where a model has no such figure."""
    from pathlib import Path

    from jetimage.inference import onnx_latency
    from jetimage.loader import ARRAYS
    from jetimage.models import count_parameters

    view = info.get("inputs", "images")
    exported = Path(model_path).with_name("model.onnx")
    if view == "features" or not exported.exists():
        return {"view": view, "parameters": None, "onnx_latency_us": None}
    test = zarr_store.open_store(dataset_path)["test"]
    arrays = tuple(np.asarray(test[name][:50]) for name in ARRAYS[view])
    latency = onnx_latency(exported, arrays, info["normalization"], inputs=view)
    return {
        "view": view,
        "parameters": count_parameters(load_model(model_path)[0]),
        "onnx_latency_us": round(latency * 1e6, 1),
    }


def score_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    jets: dict[str, np.ndarray],
    classes: list[str],
    *,
    signal: str,
    efficiencies: list[float],
    working_point: float,
    bootstrap: int,
    seed: int,
) -> dict:
    """The metrics of one model's scores on the test split: classification metrics, the AUC and
    the efficiencies at ``working_point`` in pT bins (quantiles), background mass sculpting and
    the metrics inside the soft-drop mass window (where the jet table has those masses)."""
    from jetimage.metrics import (
        auc_in_bins,
        classification_metrics,
        efficiency_in_bins,
        in_mass_window,
        mass_sculpting,
        quantile_edges,
    )

    metrics = classification_metrics(
        labels,
        probabilities,
        classes,
        signal=signal,
        efficiencies=efficiencies,
        bootstrap=bootstrap,
        seed=seed,
    )
    binary = (labels == classes.index(signal)).astype(int)
    score = probabilities[:, classes.index(signal)]
    pt_edges = quantile_edges(jets["pt"])
    metrics["working_point"] = working_point
    metrics["auc_in_pt_bins"] = auc_in_bins(
        binary, score, jets["pt"], pt_edges, bootstrap=min(bootstrap, 50), seed=seed
    )
    metrics["efficiency_in_pt_bins"] = efficiency_in_bins(
        binary, score, jets["pt"], pt_edges, working_point=working_point
    )
    masses = _masses(jets)
    for column, mass in masses.items():
        metrics[MASSES[column][0]] = mass_sculpting(
            binary, score, mass, signal_efficiency=working_point
        )
    if "msd" in masses:
        metrics["in_msd_window"] = in_mass_window(
            binary, score, jets["msd"], efficiencies=efficiencies, bootstrap=bootstrap, seed=seed
        )
    return metrics


def _masses(jets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The jet-table masses of :data:`MASSES` the jets have (pre-pixelated inputs carry none)."""
    return {
        column: jets[column]
        for column in MASSES
        if column in jets and np.any(np.isfinite(jets[column]))
    }


def _write_scores(
    path,
    dataset_attrs,
    jets: dict[str, np.ndarray],
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
) -> None:
    """``scores.parquet``: the score table of :func:`jetimage.inference.scores_frame` with
    each jet's source file (from the dataset's ``sources``), truth label and class name."""
    sources = [src["source"] for src in dataset_attrs["sources"]]
    source_files = np.asarray(sources)[jets["source"]]
    frame = scores_frame(source_files, jets, probabilities, classes)
    frame.insert(2, "label", labels)
    frame.insert(3, "class_name", np.asarray(classes)[labels])
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _score_figures(
    outputs,
    metrics: dict,
    binary: np.ndarray,
    score: np.ndarray,
    jets: dict[str, np.ndarray],
    *,
    history_path,
    classes: list[str],
    name: str,
    signal: str,
    efficiencies: list[float],
) -> None:
    """The evaluate stage's figures drawn from the scores and metrics alone: ROC, background
    mass after the cut, AUC and efficiencies against pT, training history, confusion."""
    import json
    from pathlib import Path

    from jetimage import plots

    background = ", ".join(c for c in classes if c != signal)
    roc = plots.roc_figure(
        {name: (binary, score)},
        signal=signal,
        background=background,
        title=name,
        efficiencies=efficiencies,
    )
    plots.save(roc, outputs.roc)
    plots.save(_sculpting_figure(metrics, binary, score, jets, signal=signal), outputs.sculpting)
    auc = plots.auc_vs_feature_figure(
        metrics["auc_in_pt_bins"], feature="$p_T$", unit="GeV", title=name
    )
    plots.save(auc, outputs.auc_vs_pt)
    pt = plots.pt_dependence_figure(
        {name: metrics["efficiency_in_pt_bins"]},
        working_point=metrics["working_point"],
        signal=signal,
    )
    plots.save(pt, outputs.pt_dependence)
    history = json.loads(Path(history_path).read_text())["epochs"]
    plots.save(plots.history_figure(history, title=name), outputs.history)
    cm = metrics["confusion_matrix"]
    confusion = plots.confusion_figure(
        np.array(cm["normalized"]), cm["counts"], classes, title=name
    )
    plots.save(confusion, outputs.confusion)


def _sculpting_figure(
    metrics: dict,
    binary: np.ndarray,
    score: np.ndarray,
    jets: dict[str, np.ndarray],
    *,
    signal: str,
):
    """The jet masses before and after the cut at the working point, or a note where the
    jets have no mass (pre-pixelated images)."""
    from jetimage import plots

    masses = _masses(jets)
    if not masses:
        return plots.no_mass_figure()
    cut = metrics[MASSES[next(iter(masses))][0]]["cut"]
    return plots.sculpting_figure(
        {MASSES[c][1]: m for c, m in masses.items()},
        binary,
        score,
        cut,
        signal=signal,
        signal_efficiency=metrics["working_point"],
    )


def _image_figures(
    outputs,
    labels: np.ndarray,
    score: np.ndarray,
    *,
    model_path,
    dataset_path,
    spec: dict,
    info: dict,
    name: str,
    signal: str,
) -> None:
    """The evaluate stage's figures of images, drawn with the dataset's image ``spec``: example
    jets (only those are read) and what the model looks at (the score-pixel correlation
    streams the test split; a linear model's weights)."""
    from jetimage import plots
    from jetimage.dataset import images_at
    from jetimage.interpret import pixel_correlation

    classes = info["classes"]
    shown = np.concatenate(list(plots.example_rows(score, signal=signal).values()))
    examples = plots.example_jets_figure(
        images_at(dataset_path, "test", shown),
        score,
        np.asarray(classes)[labels],
        spec,
        signal=signal,
    )
    plots.save(examples, outputs.examples)
    direction = _linear_direction(model_path, info, classes.index(signal))
    half_width = max(spec.get("width") or [0.8]) / 2
    learned = plots.learned_figure(
        pixel_correlation(dataset_path, "test", score),
        spec,
        title=name,
        weights=direction,
        filters=_filters(model_path, info, half_width),
        filter_width=half_width,
    )
    plots.save(learned, outputs.learned)


def evaluate_model(
    model_path: str | os.PathLike,
    history_path: str | os.PathLike,
    dataset_path: str | os.PathLike,
    outputs,
    *,
    name: str,
    signal: str,
    efficiencies: list[float],
    working_point: float,
    bootstrap: int,
    seed: int,
    log,
) -> dict:
    """Score the test split with a saved model and write ``outputs.metrics`` (metrics.json),
    ``outputs.scores`` (scores.parquet) and each figure of ``outputs`` (roc, history,
    confusion, examples, sculpting, auc_vs_pt, pt_dependence, learned; PNG + PDF). Only
    per-jet numbers are held for the whole split; figures of images stream them or read only
    the jets they show. Returns the metrics."""
    import json

    probabilities, labels, jets, info = score_saved_model(model_path, dataset_path, "test")
    classes = info["classes"]
    metrics = {
        "model": name,
        **score_metrics(
            labels,
            probabilities,
            jets,
            classes,
            signal=signal,
            efficiencies=efficiencies,
            working_point=working_point,
            bootstrap=bootstrap,
            seed=seed,
        ),
    }
    rejections = ", ".join(
        f"1/eB({e:g}) {metrics[f'rejection_at_{e:g}']['value']:.1f}" for e in efficiencies
    )
    log.info(
        "%s: AUC %.4f, accuracy %.4f, %s on %d test jets",
        name,
        metrics["auc"]["value"],
        metrics["accuracy"]["value"],
        rejections,
        len(labels),
    )
    metrics.update(model_cost(model_path, dataset_path, info))
    with atomic_path(outputs.metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    attrs = zarr_store.open_store(dataset_path).attrs
    _write_scores(outputs.scores, attrs, jets, probabilities, labels, classes)
    s = classes.index(signal)
    binary, score = (labels == s).astype(int), probabilities[:, s]
    _score_figures(
        outputs,
        metrics,
        binary,
        score,
        jets,
        history_path=history_path,
        classes=classes,
        name=name,
        signal=signal,
        efficiencies=efficiencies,
    )
    _image_figures(
        outputs,
        labels,
        score,
        model_path=model_path,
        dataset_path=dataset_path,
        spec=attrs["image_spec"],
        info=info,
        name=name,
        signal=signal,
    )
    return metrics
