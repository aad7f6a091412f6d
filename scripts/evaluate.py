"""Rule evaluate: metrics, per-jet scores and plots of one model on the test split."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from jetimage import dataset, io, plots
from jetimage.logs import setup
from jetimage.metrics import classification_metrics
from jetimage.train import load_model, predict_scores

log = setup(snakemake.log[0], "jetimage.evaluate")  # noqa: F821
params = snakemake.params[0]  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
name = snakemake.wildcards.model  # noqa: F821

model, info = load_model(inp.model)
classes = info["classes"]
images, labels, jets = dataset.load_split(inp.dataset, "test")
probabilities = predict_scores(model, images, info["normalization"])
metrics = classification_metrics(
    labels,
    probabilities,
    classes,
    signal=params["signal"],
    efficiencies=params["efficiencies"],
    bootstrap=params["bootstrap"],
    seed=params["seed"],
)
metrics["model"] = name
log.info(
    "%s: AUC %.4f, accuracy %.4f, 1/eB(0.3) %.1f, 1/eB(0.5) %.1f on %d test jets",
    name,
    metrics["auc"]["value"],
    metrics["accuracy"],
    metrics["rejection_at_0.3"]["value"],
    metrics["rejection_at_0.5"]["value"],
    len(labels),
)
with io.atomic_path(out.metrics) as tmp:
    tmp.write_text(json.dumps(metrics, indent=2))

scores = pd.DataFrame({f"score_{c}": probabilities[:, i] for i, c in enumerate(classes)})
scores.insert(0, "label", labels)
scores.insert(1, "class_name", np.asarray(classes)[labels])
for column, values in jets.items():
    scores[f"jet_{column}"] = values
with io.atomic_path(out.scores) as tmp:
    scores.to_parquet(tmp, index=False)

signal = classes.index(params["signal"])
background = ", ".join(c for c in classes if c != params["signal"])
binary = (labels == signal).astype(int)
plots.save(
    plots.roc_figure({name: (binary, probabilities[:, signal])}, signal=params["signal"],
                     background=background, title=name),
    out.roc,
)
history = json.loads(Path(inp.history).read_text())["epochs"]
plots.save(plots.history_figure(history, title=name), out.history)
cm = metrics["confusion_matrix"]
plots.save(plots.confusion_figure(np.array(cm["normalized"]), cm["counts"], classes, title=name),
           out.confusion)
log.info("wrote %s, %s and plots", out.metrics, out.scores)
