"""The workflow end to end on the tiny config, and what a change makes it rerun."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
import zarr

from conftest import REPO, add_code, dry_run_with_library, scheduled_jobs, snakemake_command
from jetimage.inference import load_model
from jetimage.models import INPUTS, count_parameters

pytestmark = pytest.mark.slow

#: The figures rule evaluate draws for every model.
PLOTS = (
    "roc",
    "history",
    "confusion",
    "examples",
    "sculpting",
    "auc_vs_pt",
    "pt_dependence",
    "learned",
)


def test_tiny_run_produces_every_stage_output(tiny_run):
    results = tiny_run / "results"
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    for sample, entry in config["samples"].items():
        for part in range(entry["shards"]):
            assert (results / "jets" / sample / f"{part:03d}.root").is_file()
            store = zarr.open_group(results / "images" / sample / f"{part:03d}.zarr", mode="r")
            assert store["images"].shape[1:] == (1, 20, 20)
            assert store.attrs["label_counts"][entry["class"]] == store["images"].shape[0]
            assert len(store.attrs["source_sha256"]) == 64
    dataset = zarr.open_group(results / "datasets" / "tiny.zarr", mode="r")
    assert dataset.attrs["classes"] == ["qcd", "top"]
    for model in config["models"]:
        for name in ("model.pt", "model.onnx", "history.json"):
            assert (results / "models" / model / name).is_file()
        metrics = json.loads((results / "evaluation" / model / "metrics.json").read_text())
        assert 0.0 <= metrics["auc"]["value"] <= 1.0
        # the config's efficiencies (tiny.yaml: 0.4, 0.6, 0.8), not the default 0.3 and 0.5
        assert {
            "rejection_at_0.4",
            "rejection_at_0.6",
            "rejection_at_0.8",
            "confusion_matrix",
        } <= set(metrics)
        assert "rejection_at_0.3" not in metrics
        assert "rejection_at_0.5" not in metrics
        assert set(metrics["in_msd_window"]) >= {"window", "rejection_at_0.8", "auc"}
        assert "jensen_shannon_bits" in metrics["msd_sculpting"]
        # what the model takes, its size and its ONNX latency on one core
        net, info = load_model(results / "models" / model / "model.pt")
        assert metrics["view"] == info["inputs"] == INPUTS[config["models"][model]["architecture"]]
        assert metrics["parameters"] == count_parameters(net) > 0
        assert metrics["onnx_latency_us"] > 0
        scores = pd.read_parquet(results / "evaluation" / model / "scores.parquet")
        assert len(scores) == metrics["n_test"] == dataset["test/labels"].shape[0]
        for plot in PLOTS:
            assert (results / "evaluation" / model / f"{plot}.png").is_file()
            assert (results / "evaluation" / model / f"{plot}.pdf").is_file()
        # pT dependence at the working point (default 0.5), both ways, in every pT bin
        assert metrics["working_point"] == 0.5
        assert all(
            set(b) >= {"global", "flat", "n_signal"} for b in metrics["efficiency_in_pt_bins"]
        )
    html = (results / "report.html").read_text()
    # the first screen: the best model, its AUC and its rejection at the first εS, before any
    # figure; the table has a column per configured efficiency
    headline = html[: html.index("<img")]
    aucs = {
        m: json.loads((results / "evaluation" / m / "metrics.json").read_text())["auc"]["value"]
        for m in config["models"]
    }
    named = re.search(r"Best model: <b>([^<]+)</b>", headline).group(1)
    assert aucs[named] == max(aucs.values())
    assert "at ε<sub>S</sub> = 0.4" in headline
    table = html[html.index("<h2>Models</h2>") : html.index("</table>")]
    assert [float(e) for e in re.findall(r"at ε<sub>S</sub>=([0-9.]+)</th>", table)] == [
        0.4,
        0.6,
        0.8,
    ]
    assert "ε<sub>S</sub>=0.3" not in table
    # grouped by view: every image model before every particle model
    views = re.findall(r'<tr[^>]*><td class="l">(images|particles|features)</td>', table)
    assert views == sorted(views, key=["images", "particles", "features"].index)
    assert set(views) == {"images", "particles"}
    assert "in the m<sub>SD</sub> window" in table
    assert all(model in html for model in config["models"])
    # every model's figures, and the report's own: comparison, pT, sculpting and mean images
    assert (
        len(re.findall(r"src=\"data:image/png;base64,", html))
        == len(PLOTS) * len(config["models"]) + 4
    )
    for caption in (
        "ROC curve",
        "Loss and accuracy",
        "Confusion matrix",
        "most uncertain",
        "sculpting",
        "AUC in bins of jet pT",
        "against jet pT",
        "what it looks at",
    ):
        assert html.count(caption) >= len(config["models"])
    assert "What the models learned" in html
    assert "with the ratio to" in html
    assert "generated with Pythia 8 (top) at particle level" in html
    assert not list(results.rglob(".*.tmp-*"))  # no temporary leftovers


def test_streamed_evaluation_equals_scoring_the_test_split_in_memory(tiny_run):
    """evaluate scores the test split chunk by chunk; the scores equal those of the whole
    split scored at once, and those it wrote."""
    import numpy as np

    from jetimage.dataset import load_split
    from jetimage.inference import load_model, predict_scores, score_split

    results = tiny_run / "results"
    dataset = results / "datasets" / "tiny.zarr"
    images, labels, _ = load_split(dataset, "test")
    for name in ("logistic", "hsf-cnn"):
        model, info = load_model(results / "models" / name / "model.pt")
        streamed, streamed_labels, jets = score_split(model, dataset, "test", info["normalization"])
        in_memory = predict_scores(model, images, info["normalization"])
        np.testing.assert_allclose(streamed, in_memory, rtol=0, atol=1e-6)
        assert np.array_equal(streamed_labels, labels)
        assert len(jets["pt"]) == len(labels)
        written = pd.read_parquet(results / "evaluation" / name / "scores.parquet")
        np.testing.assert_allclose(
            written[["score_qcd", "score_top"]].to_numpy(), streamed, rtol=0, atol=1e-6
        )


def changed_config(tiny_run, change) -> object:
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    change(config)
    path = tiny_run / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_unchanged_config_schedules_nothing(tiny_run):
    assert scheduled_jobs(tiny_run, changed_config(tiny_run, lambda c: None)) == {}


@pytest.mark.parametrize(
    ("figure", "jobs"),
    [
        ("evaluation/logistic/roc.pdf", {"evaluate": 1, "report": 1, "all": 1}),
        ("evaluation/hsf-cnn/sculpting.png", {"evaluate": 1, "report": 1, "all": 1}),
        ("evaluation/mean_images.pdf", {"report": 1, "all": 1}),
    ],
)
def test_a_deleted_figure_reruns_the_job_that_draws_it(tiny_run, figure, jobs):
    """Every figure (PDF as well as PNG) is a declared output, and the report's input."""
    path = tiny_run / "results" / figure
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        assert scheduled_jobs(tiny_run, tiny_run / "config.yaml") == jobs
    finally:
        aside.rename(path)


def test_training_option_change_schedules_only_train_evaluate_report(tiny_run):
    def fewer_epochs(config):
        config["models"]["logistic"]["epochs"] = 1

    jobs = scheduled_jobs(tiny_run, changed_config(tiny_run, fewer_epochs))
    assert jobs == {"train": 1, "evaluate": 1, "report": 1, "all": 1}


def test_image_spec_change_reruns_images_onward_but_no_generation(tiny_run):
    def finer(config):
        config["images"]["npix"] = [24, 24]

    jobs = scheduled_jobs(tiny_run, changed_config(tiny_run, finer))
    assert "generate" not in jobs
    assert jobs["images"] == 4
    assert jobs["dataset_bucket"] == 2
    assert jobs["dataset"] == 1
    # the observables and the particle view are written in the same pass as the images
    assert "observables" not in jobs
    assert jobs["train"] == 4
    assert jobs["predict"] == 4


def test_added_model_trains_only_that_model(tiny_run):
    def add_mlp(config):
        config["models"]["mlp"] = {"architecture": "mlp"}

    jobs = scheduled_jobs(tiny_run, changed_config(tiny_run, add_mlp))
    assert jobs == {"train": 1, "evaluate": 1, "report": 1, "all": 1}


def test_added_shard_generates_only_that_shard(tiny_run):
    def one_more(config):
        config["samples"]["top"]["shards"] = 3

    jobs = scheduled_jobs(tiny_run, changed_config(tiny_run, one_more))
    # hsf-cnn and pfn retrain, so they score every top file again (config predict), the new one too
    assert jobs == {
        "generate": 1,
        "images": 1,
        "dataset_bucket": 2,
        "dataset": 1,
        "train": 4,
        "evaluate": 4,
        "report": 1,
        "predict": 6,
        "all": 1,
    }


def test_snakemake_report_collects_the_figures(tiny_run):
    from conftest import run_snakemake

    run_snakemake(tiny_run, REPO / "config" / "tiny.yaml", "--report", "snakemake-report.zip")
    import zipfile

    names = zipfile.ZipFile(tiny_run / "snakemake-report.zip").namelist()
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    assert sum(name.endswith("roc.png") for name in names) == len(config["models"])
    assert any(name.endswith("rejection_all_models.png") for name in names)


def test_predict_reproduces_the_evaluated_scores(tiny_run):
    results = tiny_run / "results"
    evaluated = pd.read_parquet(results / "evaluation" / "hsf-cnn" / "scores.parquet")
    predicted = pd.concat(
        [
            pd.read_parquet(p)
            for p in sorted((results / "predictions" / "hsf-cnn" / "top").glob("*.parquet"))
        ]
    )
    assert set(predicted["source_file"]) == {
        "results/jets/top/000.root",
        "results/jets/top/001.root",
    }
    joined = evaluated.merge(predicted, on=["source_file", "entry"], suffixes=("", "_pred"))
    assert len(joined) == (evaluated["class_name"] == "top").sum() > 0
    for name in ("qcd", "top"):
        assert (joined[f"score_{name}"] - joined[f"score_{name}_pred"]).abs().max() < 1e-5
    assert (joined["jet_pt"] == joined["jet_pt_pred"]).all()


def test_predict_scores_any_file_named_in_the_config(tiny_run, qcd_file):
    from conftest import run_snakemake
    from jetimage.readers import read_jets

    def add_file(config):
        config["predict"]["files"] = [str(qcd_file)]

    config = changed_config(tiny_run, add_file)
    # one job per model that predict names (hsf-cnn, pfn)
    assert scheduled_jobs(tiny_run, config) == {"predict_file": 2, "all": 1}
    run_snakemake(tiny_run, config)
    frame = pd.read_parquet(
        tiny_run / "results" / "predictions" / "hsf-cnn" / "files" / "qcd.parquet"
    )
    jets = read_jets(qcd_file)
    assert list(frame["entry"]) == list(range(len(jets)))
    assert (frame["source_file"] == str(qcd_file)).all()
    assert ((frame["score_qcd"] + frame["score_top"] - 1).abs() < 1e-5).all()
    assert (frame["jet_pt"].to_numpy() == jets.table["pt"]).all()


def test_train_asks_for_a_gpu_when_the_config_says_so(tiny_run):
    from conftest import run_snakemake

    def gpu(config):
        config["training"]["gpu"] = True
        config["models"]["logistic"]["gpu"] = False

    out = run_snakemake(
        tiny_run, changed_config(tiny_run, gpu), "--dry-run", "--forcerun", "train"
    ).stdout
    jobs = out.split("rule train:")[1:]
    resources = {
        re.search(r"model=(\S+)", job).group(1): re.search(r"gpu=(\d)", job).group(1)
        for job in jobs
    }
    assert resources == {"hsf-cnn": "1", "hsf-cnn-tuned": "1", "logistic": "0", "pfn": "1"}


# --- samples read from files the user has -------------------------------------------------------


def write_jetclass_files(folder, top_file, qcd_file, parts: dict[str, slice]):
    """JetClass-layout files (top and QCD jets mixed, one-hot labels), one per named slice."""
    import numpy as np

    from conftest import jetclass_columns
    from jetimage.files import write_jets_root

    columns = jetclass_columns(top_file, qcd_file)
    order = np.random.default_rng(0).permutation(len(columns["jet_pt"]))
    folder.mkdir(exist_ok=True)
    for name, where in parts.items():
        write_jets_root(folder / f"{name}.root", {k: v[order[where]] for k, v in columns.items()})


@pytest.fixture(scope="module")
def files_run(top_file, qcd_file, tmp_path_factory):
    """A workflow over a glob of JetClass-layout files, run end to end."""
    from conftest import run_snakemake

    workdir = tmp_path_factory.mktemp("files-run")
    write_jetclass_files(
        workdir / "inputs",
        top_file,
        qcd_file,
        {"JetClass_000": slice(0, 200), "JetClass_001": slice(200, 400)},
    )
    config = {
        "seed": 3,
        "classes": ["qcd", "top"],
        "samples": {
            "jetclass": {
                "source": "files",
                "files": "inputs/*.root",
                "format": "root",
                "labels": {"label_QCD": "qcd", "label_Tbqq": "top"},
            }
        },
        "images": {"npix": [16, 16]},
        "dask": {"chunk_jets": 64, "batch_jets": 100},
        "training": {"epochs": 3, "batch_size": 32},
        "models": {"logistic": {"architecture": "logistic"}},
        "evaluation": {"bootstrap": 10},
        "predict": {"models": ["logistic"], "samples": ["jetclass"]},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, workdir / "config.yaml")
    return workdir


def test_a_glob_of_files_runs_one_images_job_per_file(files_run):
    import numpy as np

    results = files_run / "results"
    counts = {}
    for name in ("JetClass_000", "JetClass_001"):
        store = zarr.open_group(results / "images" / "jetclass" / f"{name}.zarr", mode="r")
        assert store.attrs["format"] == "root"
        assert store.attrs["n_read"] == 200
        labels = store["labels"][...]
        counts[name] = store.attrs["label_counts"]
        assert counts[name] == {"qcd": int(np.sum(labels == 0)), "top": int(np.sum(labels == 1))}
        assert min(counts[name].values()) > 40  # both classes in each file
    metrics = json.loads((results / "evaluation" / "logistic" / "metrics.json").read_text())
    assert metrics["auc"]["value"] > 0.7  # top vs QCD separates even with a logistic regression
    predicted = pd.read_parquet(
        results / "predictions" / "logistic" / "jetclass" / "JetClass_001.parquet"
    )
    assert len(predicted) == 200
    assert set(predicted["entry"]) == set(range(200))


def test_adding_a_file_runs_only_that_files_jobs(files_run, top_file, qcd_file):
    write_jetclass_files(
        files_run / "inputs", top_file, qcd_file, {"JetClass_002": slice(400, None)}
    )
    try:
        jobs = scheduled_jobs(files_run, files_run / "config.yaml")
    finally:
        (files_run / "inputs" / "JetClass_002.root").unlink()
    # no other file's images job: the buckets take chunks of every file, so all of them rerun
    assert jobs == {
        "images": 1,
        "dataset_bucket": 2,
        "dataset": 1,
        "train": 1,
        "evaluate": 1,
        "report": 1,
        "predict": 3,
        "all": 1,
    }


def test_a_bad_file_fails_its_job_clearly_and_leaves_no_store(files_run):
    import subprocess

    import awkward as ak
    import numpy as np

    from jetimage.files import write_jets_root

    ragged = {
        q: ak.unflatten(np.array([1.0, np.nan, 2.0]), [2, 1])
        for q in ("part_px", "part_py", "part_pz", "part_energy")
    }
    bad = files_run / "inputs" / "JetClass_bad.root"
    write_jets_root(
        bad,
        {
            **ragged,
            "jet_pt": np.ones(2),
            "label_QCD": np.array([1, 0]),
            "label_Tbqq": np.array([0, 1]),
        },
    )
    try:
        result = subprocess.run(
            snakemake_command(
                files_run,
                files_run / "config.yaml",
                "--cores",
                "2",
                "results/images/jetclass/JetClass_bad.zarr",
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        bad.unlink()
    assert result.returncode != 0
    log = (files_run / "results" / "logs" / "images" / "jetclass" / "JetClass_bad.log").read_text()
    assert re.search(
        r"JetClass_bad\.root: field 'part_px' holds 1 NaN/inf value\(s\) "
        r"\(first in entry 0\)",
        log,
    )
    stores = files_run / "results" / "images" / "jetclass"
    assert sorted(p.name for p in stores.iterdir()) == ["JetClass_000.zarr", "JetClass_001.zarr"]


@pytest.mark.parametrize(("name", "min_auc"), [("quark-gluon.yaml", 0.6), ("cms-images.yaml", 0.8)])
def test_shipped_file_configs_run_end_to_end(shared_data, tmp_path, name, min_auc):
    """The ready configs over the shared real samples (Parquet jets; pre-pixelated images) run
    end to end, separate their classes, and predict reproduces evaluate on the same jets."""
    from pathlib import Path

    from conftest import run_snakemake

    config = yaml.safe_load((REPO / "config" / name).read_text())
    ((sample, entry),) = config["samples"].items()
    entry["files"] = str(shared_data / Path(entry["files"]).name)
    config["models"] = {"logistic": {"architecture": "logistic", "epochs": 5}}
    config["predict"] = {"models": ["logistic"], "samples": [sample]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, tmp_path / "config.yaml")
    results = tmp_path / "results"
    metrics = json.loads((results / "evaluation" / "logistic" / "metrics.json").read_text())
    assert metrics["auc"]["value"] > min_auc
    evaluated = pd.read_parquet(results / "evaluation" / "logistic" / "scores.parquet")
    predicted = pd.read_parquet(next((results / "predictions" / "logistic" / sample).glob("*")))
    store = zarr.open_group(next((results / "images" / sample).glob("*.zarr")), mode="r")
    assert len(predicted) == store.attrs["n_jets"] == predicted["entry"].nunique()
    joined = evaluated.merge(predicted, on=["source_file", "entry"], suffixes=("", "_pred"))
    assert len(joined) == len(evaluated)
    for cls in config["classes"]:
        assert (joined[f"score_{cls}"] - joined[f"score_{cls}_pred"]).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {
                "kernel.py": lambda t: "# a comment\n" + t.replace("\n\n", "\n\n\n", 1),
                "plots.py": lambda t: t.replace('"""', '"""Edited docstring. ', 1),
            },
            {},
        ),
        (
            {"kernel.py": add_code},
            {
                "images": 4,
                "dataset_bucket": 2,
                "dataset": 1,
                "train": 4,
                "evaluate": 4,
                "report": 1,
                "predict": 4,
                "all": 1,
            },
        ),
        ({"plots.py": add_code}, {"evaluate": 4, "report": 1, "all": 1}),
        (
            {"generate.py": add_code},
            {
                "generate": 4,
                "images": 4,
                "dataset_bucket": 2,
                "dataset": 1,
                "train": 4,
                "evaluate": 4,
                "report": 1,
                "predict": 4,
                "all": 1,
            },
        ),
        (
            {"substructure.py": add_code},  # the retrained models score the predict files again
            {
                "images": 4,
                "dataset_bucket": 2,
                "dataset": 1,
                "train": 4,
                "evaluate": 4,
                "report": 1,
                "predict": 4,
                "all": 1,
            },
        ),
    ],
)
def test_a_library_change_reruns_the_stages_that_run_that_code(tiny_run, tmp_path, edits, expected):
    """Snakemake's code trigger sees only scripts/<rule>.py; the params' code digest follows
    the imports into the library: comments and docstrings rerun nothing, code reruns the stages
    that import it (the pixelation kernel: images onward, no generation; plots: evaluate and
    report only)."""
    assert dry_run_with_library(tiny_run, tmp_path, edits) == expected


def test_five_class_config_confuses_gluon_with_quark_and_w_with_z(tmp_path):
    """config/five-class.yaml, with fewer events, runs end to end: the lesson's CNN and the MLP
    on the hls4ml jet dataset's 16 features. In the CNN's 5×5 confusion matrix the largest
    confusion of gluon jets is with quark jets and vice versa, and likewise W↔Z; the MLP, at
    these statistics, confuses gluon with quark jets most and classifies 5 classes far above
    chance (its W and Z jets here go to quark jets as often as to each other); the report shows
    both matrices."""
    from conftest import run_snakemake

    config = yaml.safe_load((REPO / "config" / "five-class.yaml").read_text())
    events = {"gluon": 1200, "quark": 1100, "w": 700, "z": 700, "top": 600}
    for name, sample in config["samples"].items():
        sample.update(shards=1, events_per_shard=events[name])
    mlp = config["models"]["hlf-mlp-hls4ml"]
    assert mlp["options"]["features"] == "hls4ml"
    config["models"] = {"hsf-cnn": {"architecture": "hsf-cnn", "epochs": 15}, "hls4ml": mlp}
    config["evaluation"] = {"bootstrap": 20}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, tmp_path / "config.yaml", timeout=1200)
    results = tmp_path / "results"
    classes = config["classes"]
    for model in ("hsf-cnn", "hls4ml"):
        metrics = json.loads((results / "evaluation" / model / "metrics.json").read_text())
        confusion = pd.DataFrame(
            metrics["confusion_matrix"]["normalized"], index=classes, columns=classes
        )
        assert confusion.shape == (5, 5)
        pairs = [("gluon", "quark"), ("quark", "gluon")]
        pairs += [("w", "z"), ("z", "w")] if model == "hsf-cnn" else []
        for true, partner in pairs:
            assert confusion.loc[true].drop(true).idxmax() == partner, (model, confusion.round(3))
        assert metrics["accuracy"]["value"] > 0.5
    html = (results / "report.html").read_text()
    assert html.count("Confusion matrix") >= 2
    assert all(c in html for c in classes)
