"""Rule evaluate: metrics, per-jet scores and plots of one model on the test split."""

import json
from pathlib import Path

import numpy as np

from jetimage import io, plots, store
from jetimage.dataset import images_at
from jetimage.evaluate import score_saved_model
from jetimage.logs import setup
from jetimage.metrics import auc_in_bins, classification_metrics, in_mass_window, mass_sculpting
from jetimage.predict import scores_frame

log = setup(snakemake.log[0], "jetimage.evaluate")  # noqa: F821
params = snakemake.params[0]  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
name = snakemake.wildcards.model  # noqa: F821

# streamed: only per-jet numbers are held for the whole test split
probabilities, labels, jets, info = score_saved_model(inp.model, inp.dataset, "test")
classes = info["classes"]
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
signal = classes.index(params["signal"])
binary = (labels == signal).astype(int)
scores_signal = probabilities[:, signal]
pt_edges = np.quantile(jets["pt"], np.linspace(0, 1, 6))
pt_edges[-1] = np.nextafter(pt_edges[-1], np.inf)
metrics["auc_in_pt_bins"] = auc_in_bins(binary, scores_signal, jets["pt"], pt_edges,
                                        bootstrap=min(params["bootstrap"], 50), seed=params["seed"])
has_mass = bool(np.any(np.isfinite(jets["mass"])))  # pre-pixelated inputs carry no jet mass
metrics["mass_sculpting"] = mass_sculpting(binary, scores_signal, jets["mass"]) if has_mass else {}
if "msd" in jets:  # the observables stage's soft-drop mass
    metrics["msd_sculpting"] = mass_sculpting(binary, scores_signal, jets["msd"])
    metrics["in_msd_window"] = in_mass_window(binary, scores_signal, jets["msd"],
                                              efficiencies=params["efficiencies"],
                                              bootstrap=params["bootstrap"], seed=params["seed"])
rejections = ", ".join(f"1/eB({e:g}) {metrics[f'rejection_at_{e:g}']['value']:.1f}"
                       for e in params["efficiencies"])
log.info("%s: AUC %.4f, accuracy %.4f, %s on %d test jets", name, metrics["auc"]["value"],
         metrics["accuracy"]["value"], rejections, len(labels))
with io.atomic_path(out.metrics) as tmp:
    tmp.write_text(json.dumps(metrics, indent=2))

dataset_attrs = store.open_store(inp.dataset).attrs
source_files = np.asarray([s["source"] for s in dataset_attrs["sources"]])[jets["source"]]
scores = scores_frame(source_files, jets, probabilities, classes)
scores.insert(2, "label", labels)
scores.insert(3, "class_name", np.asarray(classes)[labels])
with io.atomic_path(out.scores) as tmp:
    scores.to_parquet(tmp, index=False)

background = ", ".join(c for c in classes if c != params["signal"])
plots.save(
    plots.roc_figure({name: (binary, scores_signal)}, signal=params["signal"],
                     background=background, title=name, efficiencies=params["efficiencies"]),
    out.roc,
)
# only the shown jets' images are read
shown = np.concatenate(list(plots.example_rows(scores_signal, signal=params["signal"]).values()))
plots.save(plots.example_jets_figure(images_at(inp.dataset, "test", shown), scores_signal,
                                     np.asarray(classes)[labels], dataset_attrs["image_spec"],
                                     signal=params["signal"]), out.examples)
if has_mass:
    masses = {"Jet mass": jets["mass"]} | ({"Soft-drop mass": jets["msd"]} if "msd" in jets
                                           else {})
    plots.save(plots.sculpting_figure(masses, binary, scores_signal,
                                      metrics["mass_sculpting"]["cut"], signal=params["signal"]),
               out.sculpting)
else:
    plots.save(plots.note_figure("No jet mass in this dataset (pre-pixelated images):\n"
                                 "mass sculpting cannot be shown."), out.sculpting)
plots.save(plots.auc_vs_feature_figure(metrics["auc_in_pt_bins"], feature="$p_T$", unit="GeV",
                                       title=name), out.auc_vs_pt)
history = json.loads(Path(inp.history).read_text())["epochs"]
plots.save(plots.history_figure(history, title=name), out.history)
cm = metrics["confusion_matrix"]
plots.save(plots.confusion_figure(np.array(cm["normalized"]), cm["counts"], classes, title=name),
           out.confusion)
log.info("wrote %s, %s and plots", out.metrics, out.scores)
