"""The run's report: one self-contained HTML page comparing every model.

Images are embedded as base64 PNG, so the page can be mailed or archived alone. The first screen
holds the table of models ranked by AUC, the best model and its rejection at the first of the
configured signal efficiencies, and where the jets come from; then the figures comparing every
model, what the models learned, each model's own figures, the dataset and the provenance. The
page is rendered from ``templates/report.html.j2`` (Jinja2).
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
import pandas as pd
import yaml
from markupsafe import Markup

from jetimage import zarr_store
from jetimage.defaults import default
from jetimage.files import atomic_path

#: Published figures for comparison (different, much larger dataset: 1.2 M training jets).
TOP_TAGGING_REFERENCE = {
    "source": "Kasieczka et al., 'The Machine Learning Landscape of Top Taggers', "
    "SciPost Phys. 7, 014 (2019), Table 1",
    "rows": [
        ("CNN (image)", 0.981, 914),
        ("ResNeXt (image)", 0.984, 1122),
        ("ParticleNet", 0.985, 1615),
    ],
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;
text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}.best{background:#e6f4e6}
img{max-width:100%;border:1px solid #eee}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.note{color:#666;font-size:90%}
.warning{background:#fff3cd;border-left:4px solid #d39e00;padding:.4em .8em}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:85%}
.headline{font-size:120%;background:#eef5ff;padding:.8em;border-radius:6px}
"""


def embed_png(path: str | os.PathLike, alt: str) -> str:
    """An ``<img>`` tag with the PNG at ``path`` embedded (base64)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(entry: dict, digits: int) -> str:
    """A value with its bootstrap uncertainty: ± std, or the asymmetric 68% interval when the
    distribution is skewed (as rejections at high purity are)."""
    value, std, interval = entry["value"], entry.get("std"), entry.get("interval68")
    if entry.get("lower_limit"):
        return f"&gt; {value:.{digits}f} (no background passes; 68% CL)"
    if entry.get("beyond_reach") is not None:
        return f"– (its cut reaches ε<sub>S</sub> ≤ {entry['beyond_reach']:.2f} only)"
    if std is None or interval is None:
        return f"{value:.{digits}f}"
    up, down = interval[1] - value, value - interval[0]
    if abs(up - down) > 0.25 * max(up, down, 1e-12):
        return f"{value:.{digits}f} <sup>+{up:.{digits}f}</sup><sub>−{down:.{digits}f}</sub>"
    return f"{value:.{digits}f} ± {std:.{digits}f}"


def _jsd(metrics: dict, key: str = "mass_sculpting") -> str:
    value = metrics.get(key, {}).get("jensen_shannon_bits")
    return "–" if value is None else f"{value:.3f}"


def _window(metrics: dict, efficiency: float) -> str:
    """1/εB at ``efficiency`` among the jets of the soft-drop-mass window."""
    entry = metrics.get("in_msd_window", {}).get(f"rejection_at_{efficiency:g}")
    return "–" if entry is None else _fmt(entry, 1)


def git_commit(where: str | os.PathLike = ".") -> str | None:
    """The git commit of the checkout at ``where``, or None outside one."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _figure(path: str | os.PathLike, caption: str) -> dict:
    return {"img": Markup(embed_png(path, caption)), "caption": caption}


def _model_row(name: str, m: dict, *, best: str | None, efficiencies, kinds) -> dict:
    window = m.get("in_msd_window", {})
    return {
        "name": name,
        "best": name == best,
        "kind": kinds.get(name, ""),
        "auc": Markup(_fmt(m["auc"], 4)),
        "accuracy": Markup(_fmt(m["accuracy"], 4)),
        "rejections": [Markup(_fmt(m[f"rejection_at_{e:g}"], 1)) for e in efficiencies],
        "window_rejection": Markup(_window(m, efficiencies[-1])),
        "window_auc": Markup(_fmt(window["auc"], 3)) if window.get("auc") else "–",
        "jsd_mass": _jsd(m),
        "jsd_msd": _jsd(m, "msd_sculpting"),
        "n_test": m["n_test"],
        "view": m.get("view", ""),
        "parameters": f"{m['parameters']:,}" if m.get("parameters") else "–",
        "latency": f"{m['onnx_latency_us']:.0f}" if m.get("onnx_latency_us") else "–",
    }


#: The order of the views in the report's first table.
VIEWS = ("images", "particles", "features")


def _source_row(s: dict) -> dict:
    return {
        "source": s.get("source"),
        "format": s.get("format", ""),
        "per_class": ", ".join(f"{c} {n}" for c, n in (s.get("label_counts") or {}).items() if n),
        "n_read": s.get("n_read", ""),
        "n_jets": s.get("n_jets"),
        "dropped": ", ".join(f"{k} {n}" for k, n in (s.get("dropped") or {}).items() if n) or "–",
        "sha": str(s.get("source_sha256"))[:16],
    }


def _run_context(dataset: dict, config: dict, versions: dict, origins) -> dict:
    """What the report's template shows of the run: the dataset (classes, splits, image spec,
    source files, where the jets come from), the published reference where the classes are
    top and QCD, provenance and the config."""
    classes = dataset["classes"]
    return {
        "warnings": _warnings(dataset, config),
        "classes": classes,
        "splits": dataset["splits"],
        "n_train": sum(dataset["splits"]["train"].values()),
        "origins": list(origins),
        "reference": TOP_TAGGING_REFERENCE
        if {c.lower() for c in classes} == {"qcd", "top"}
        else None,
        "image_spec": json.dumps(dataset["image_spec"], indent=1),
        "sources": [_source_row(s) for s in dataset["sources"]],
        "provenance": {
            "git commit": git_commit() or "not a git checkout",
            "python": platform.python_version(),
            "platform": platform.platform(),
            **versions,
        },
        "config": yaml.safe_dump(config, sort_keys=False),
    }


def _warnings(dataset: dict, config: dict) -> list[str]:
    """What the reader must know before trusting the figures: classes with fewer test jets
    than ``evaluation.min_test_jets``, and copies of jets the dataset left out."""
    least = config.get("evaluation", {}).get(
        "min_test_jets", default("evaluation", "min_test_jets")
    )
    test = dataset["splits"]["test"]
    warnings = [
        f"class {c!r} has {n} test jet(s), fewer than evaluation/min_test_jets = {least}: "
        f"its rates, ROC and figures rest on too few jets to trust"
        for c, n in test.items()
        if n < least
    ]
    copies = dataset.get("duplicates", {})
    if copies.get("dropped"):
        warnings.append(
            f"{copies['dropped']} jet(s) read more than once were left out (duplicates: drop; "
            f"per sample: {copies.get('dropped_per_sample')})"
        )
    return warnings


def _view_order(view: str) -> int:
    return VIEWS.index(view) if view in VIEWS else len(VIEWS)


def build_report(
    path: str | os.PathLike,
    *,
    metrics: Mapping[str, dict],
    plots: Mapping[str, Mapping[str, str]],
    comparison: Mapping[str, str],
    learned: Mapping[str, str],
    mean_images: str | None,
    dataset: dict,
    config: dict,
    versions: dict,
    origins: Sequence[str] = (),
    kinds: Mapping[str, str] | None = None,
    learning_curves_png: str | None = None,
) -> None:
    """Write the HTML report (rendered from ``templates/report.html.j2``).

    Args:
        metrics: model name → contents of its ``metrics.json``.
        plots: model name → {caption: PNG path}, the model's own figures.
        comparison: caption → PNG of a figure comparing every model.
        learned: model name → PNG of what it learned (correlation and weight images).
        mean_images: PNG of the mean test image of each class and their difference.
        dataset: the dataset store's attributes.
        config: the run's config.
        versions: package versions.
        origins: where each sample's jets come from (:func:`jetimage.config.sample_origins`).
        kinds: model → what it is (:func:`jetimage.config.model_kinds`).
        learning_curves_png: the learning curves (:func:`learning_curves`), if any.
    """
    ranked = sorted(metrics, key=lambda m: -metrics[m]["auc"]["value"])
    best = ranked[0] if ranked else None
    evaluation = config.get("evaluation", {})
    efficiencies = list(evaluation.get("efficiencies", default("evaluation", "efficiencies")))
    kinds = kinds or {}
    by_view = sorted(ranked, key=lambda n: _view_order(metrics[n].get("view", "")))
    rows = [
        _model_row(n, metrics[n], best=best, efficiencies=efficiencies, kinds=kinds)
        for n in by_view
    ]
    windows = [m["in_msd_window"]["window"] for m in metrics.values() if "in_msd_window" in m]
    resamplings = evaluation.get("bootstrap", 0)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    page = environment.get_template("report.html.j2").render(
        css=Markup(_CSS),
        best=next((r for r in rows if r["best"]), None),
        signal=metrics[best]["signal"] if best else "",
        efficiencies=efficiencies,
        rows=rows,
        windowed=bool(windows),
        groomed=any("msd_sculpting" in m for m in metrics.values()),
        window=windows[0] if windows else None,
        working_point=evaluation.get("working_point", default("evaluation", "working_point")),
        uncertainties=(
            f"Uncertainties from {resamplings} bootstrap resamplings of the test "
            f"set: ± standard deviation, or the 68% interval where it is asymmetric."
            if resamplings
            else "No uncertainties: evaluation/bootstrap is 0."
        ),
        comparison=[_figure(png, caption) for caption, png in comparison.items()],
        mean_images=Markup(embed_png(mean_images, "mean image per class")) if mean_images else None,
        learning_curves=_figure(learning_curves_png, CURVES) if learning_curves_png else None,
        learned=[_figure(learned[n], f"{n}: what it looks at") for n in ranked if n in learned],
        models=[
            {
                "name": n,
                "figures": [_figure(png, caption) for caption, png in plots.get(n, {}).items()],
            }
            for n in ranked
        ],
        **_run_context(dataset, config, versions, origins),
    )
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")


#: The caption of the learning curves.
CURVES = (
    "AUC and background rejection against the number of training jets: each family of models "
    "(from scratch, fine-tuned from a parent) on the same val and test jets; a parent applied "
    "as it is as a band. Error bars: bootstrap standard deviations of the test set."
)

#: Captions of each model's figures in the report, by figure name (rule evaluate's outputs).
CAPTIONS = {
    "roc": "ROC curve and background rejection",
    "history": "Loss and accuracy per epoch",
    "confusion": "Confusion matrix (test split)",
    "examples": "Most signal-like, most background-like and most uncertain test jets",
    "sculpting": "Jet mass (and soft-drop mass) before and after the cut at the working point "
    "(sculpting)",
    "auc_vs_pt": "AUC in bins of jet pT",
    "pt_dependence": "Signal efficiency and background rejection against jet pT at the "
    "working point",
    "learned": "What it looks at: score-pixel correlation (and, if linear, its weights; for a "
    "PFN, its particle filters)",
}


def learning_curves(
    sizes: Mapping[str, dict], metrics: Mapping[str, dict], train_jets: int
) -> dict:
    """The models of a learning curve, when any sets ``max_train_jets`` (``sizes``: model →
    :func:`jetimage.config.training_sizes`'s entry): family (architecture, and from scratch,
    fine-tuned from a parent, or a parent as it is) → [(training jets, its metrics)], by jets;
    a parent as it is trains on 0 jets, a model without ``max_train_jets`` on the whole train
    split (``train_jets``). Empty when no model sets it."""
    if not any(s["max_train_jets"] for s in sizes.values()):
        return {}
    curves: dict[str, list] = {}
    for model, s in sizes.items():
        parent = s["parent"] if s["parent"] in sizes else "pretrained"
        family = (
            "from scratch"
            if s["parent"] is None
            else f"{parent}, as it is"
            if s["as_is"]
            else f"fine-tuned from {parent}"
        )
        jets = 0 if s["as_is"] else s["max_train_jets"] or train_jets
        curves.setdefault(f"{s['architecture']} {family}", []).append((jets, metrics[model]))
    return {f: sorted(points, key=lambda p: p[0]) for f, points in curves.items()}


def _comparison_figures(
    scores: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, dict],
    outputs,
    *,
    classes: list[str],
    signal: str,
    efficiencies,
    working_point: float,
    reference: str,
) -> None:
    """The figures comparing every model: rejection with ratios to ``reference``, efficiency
    and rejection against pT, background (soft-drop) mass after each model's cut."""
    from jetimage import plots

    s = classes.index(signal)
    curves = {
        m: ((f["label"].to_numpy() == s).astype(int), f[f"score_{signal}"].to_numpy())
        for m, f in scores.items()
    }
    background = ", ".join(c for c in classes if c != signal)
    plots.save(
        plots.rejection_comparison_figure(
            curves,
            reference=reference,
            signal=signal,
            background=background,
            efficiencies=efficiencies,
        ),
        outputs.comparison,
    )
    plots.save(
        plots.pt_dependence_figure(
            {m: metrics[m]["efficiency_in_pt_bins"] for m in scores},
            working_point=working_point,
            signal=signal,
        ),
        outputs.pt_dependence,
    )
    plots.save(
        _sculpting_comparison(
            scores, metrics, signal=signal, signal_index=s, working_point=working_point
        ),
        outputs.sculpting,
    )


#: Masses whose background distribution after each cut is compared, first found first:
#: (score-table column, metrics key, label).
_SCULPTED = (
    ("jet_msd", "msd_sculpting", "Soft-drop mass"),
    ("jet_mass", "mass_sculpting", "Jet mass"),
)


def _sculpting_comparison(
    scores: Mapping[str, pd.DataFrame],
    metrics: Mapping[str, dict],
    *,
    signal: str,
    signal_index: int,
    working_point: float,
):
    """The background's (soft-drop) mass after each model's cut at the working point, for the
    models whose cut reaches it; a note where the jets have no mass."""
    from jetimage import plots
    from jetimage.metrics import reaches

    found = [(c, k, lab) for c, k, lab in _SCULPTED if all(k in metrics[m] for m in scores)]
    if not found:
        return plots.no_mass_figure()
    column, key, label = found[0]
    background = {m: f["label"].to_numpy() != signal_index for m, f in scores.items()}
    cuts = {
        m: (
            f[column].to_numpy()[background[m]],
            f[f"score_{signal}"].to_numpy()[background[m]],
            metrics[m][key]["cut"],
        )
        for m, f in scores.items()
        if reaches(metrics[m][key]["signal_efficiency_passed"], working_point)
    }
    first = next(iter(scores))
    return plots.sculpting_comparison_figure(
        scores[first][column].to_numpy()[background[first]],
        cuts,
        name=label,
        signal_efficiency=working_point,
    )


def write_report(
    inputs,
    outputs,
    *,
    models: list[str],
    plot_names: list[str],
    signal: str,
    efficiencies: list[float],
    working_point: float,
    reference_model: str | None,
    origins: list[str],
    kinds: Mapping[str, str],
    config: dict,
    sizes: Mapping[str, dict] | None = None,
) -> None:
    """Rule report: the figures comparing every model and of the dataset (``outputs``), then
    the HTML page (``outputs.html``) from every model's metrics, scores and figures; the
    learning curves from ``sizes`` (:func:`jetimage.config.training_sizes`)."""
    from jetimage import plots
    from jetimage.dataset import class_mean_images

    metrics = {m: json.loads(Path(p).read_text()) for m, p in zip(models, inputs.metrics)}
    scores = {m: pd.read_parquet(p) for m, p in zip(models, inputs.scores)}
    attrs = dict(zarr_store.open_store(inputs.dataset).attrs)
    classes = list(attrs["classes"])
    reference = reference_model or max(metrics, key=lambda m: metrics[m]["auc"]["value"])
    _comparison_figures(
        scores,
        metrics,
        outputs,
        classes=classes,
        signal=signal,
        efficiencies=efficiencies,
        working_point=working_point,
        reference=reference,
    )
    train_jets = sum(attrs["splits"]["train"].values())
    curves = learning_curves(sizes or {}, metrics, train_jets)
    plots.save(
        plots.learning_curves_figure(curves, efficiency=efficiencies[0])
        if curves
        else plots.note_figure("No model sets max_train_jets: no learning curve"),
        outputs.learning_curves,
    )
    means, counts = class_mean_images(inputs.dataset, "test", len(classes))
    plots.save(
        plots.mean_images_figure(
            means, counts, classes, attrs["image_spec"], signal=classes.index(signal)
        ),
        outputs.mean_images,
    )
    figure = {
        (m, p): str(Path(inputs.metrics[i]).with_name(f"{p}.png"))
        for i, m in enumerate(models)
        for p in plot_names
    }
    build_report(
        outputs.html,
        metrics=metrics,
        plots={
            m: {CAPTIONS[p]: figure[m, p] for p in plot_names if p != "learned"} for m in models
        },
        comparison={
            "Background rejection of every model, with the ratio to "
            f"{reference}": outputs.comparison,
            "Efficiency and rejection against jet pT": outputs.pt_dependence,
            "Background mass after each model's cut": outputs.sculpting,
        },
        learned={m: figure[m, "learned"] for m in models},
        mean_images=outputs.mean_images,
        learning_curves_png=outputs.learning_curves if curves else None,
        dataset=attrs,
        config=config,
        versions=attrs["versions"],
        origins=origins,
        kinds=kinds,
    )
