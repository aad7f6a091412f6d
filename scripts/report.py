"""Rule report: the HTML page comparing every model, and the cross-model figures."""

import json
from pathlib import Path

import pandas as pd

from jetimage import plots, store
from jetimage.dataset import class_mean_images
from jetimage.logs import setup
from jetimage.report import build_report

log = setup(snakemake.log[0], "jetimage.report")  # noqa: F821
inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
models = params.models

metrics = {m: json.loads(Path(path).read_text()) for m, path in zip(models, inp.metrics)}
root = store.open_store(inp.dataset)
attrs = dict(root.attrs)
classes = attrs["classes"]
signal = classes.index(params.signal)

curves = {}
for m, path in zip(models, inp.scores):
    scores = pd.read_parquet(path)
    curves[m] = ((scores["label"].to_numpy() == signal).astype(int),
                 scores[f"score_{params.signal}"].to_numpy())
background = ", ".join(c for c in classes if c != params.signal)
efficiencies = params.efficiencies
plots.save(plots.roc_figure(curves, signal=params.signal, background=background,
                            title="All models", efficiencies=efficiencies), out.comparison)

means, counts = class_mean_images(inp.dataset, "test", len(classes))
plots.save(plots.mean_images_figure(means, counts, classes, attrs["image_spec"]),
           out.mean_images)

captions = {
    "roc": "ROC curve and background rejection",
    "history": "Loss and accuracy per epoch",
    "confusion": "Confusion matrix (test split)",
    "examples": "Most signal-like, most background-like and most uncertain test jets",
    "sculpting": "Jet mass (and soft-drop mass) before and after the cut at εS = 0.5 "
                 "(sculpting)",
    "auc_vs_pt": "AUC in bins of jet pT",
}
per_model = {
    m: {caption: inp[key][i] for key, caption in captions.items()} for i, m in enumerate(models)
}
build_report(
    out.html,
    metrics=metrics,
    plots=per_model,
    comparison_plot=out.comparison,
    mean_images=out.mean_images,
    dataset=attrs,
    config=snakemake.config,  # noqa: F821
    versions=attrs["versions"],
)
log.info("wrote %s (%d models)", out.html, len(models))
