"""Baseline taggers on the high-level features: they learn on real generated jets, are scored
like any model, and are configured and scheduled as ordinary models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from conftest import REPO, scheduled_jobs
from jetimage.baselines import train_baseline
from jetimage.config import ConfigError, validate
from jetimage.files import InputError
from jetimage.inference import score_saved_model
from jetimage.substructure import HLS4ML

CLASSES = ["qcd", "top"]


@pytest.fixture(scope="module")
def dataset(observables_dataset):
    return observables_dataset


@pytest.mark.parametrize(
    ("architecture", "options", "min_auc"),
    [
        ("bdt", {}, 0.93),
        ("cuts", {}, 0.85),
        ("bdt", {"features": ["msd"]}, 0.85),
        ("hlf-mlp", {}, 0.93),
        ("hlf-mlp", {"features": "hls4ml"}, 0.93),
    ],
)
def test_baselines_separate_top_from_qcd_jets(dataset, tmp_path, architecture, options, min_auc):
    info = train_baseline(
        dataset, tmp_path, architecture=architecture, options=options, signal="top", seed=1
    )
    probabilities, labels, table, loaded = score_saved_model(tmp_path / "model.pt", dataset, "test")
    assert loaded == info
    assert len(probabilities) == len(labels) == len(table["pt"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert roc_auc_score(labels == 1, probabilities[:, 1]) > min_auc
    assert (tmp_path / "history.json").is_file()
    if options.get("features") == "hls4ml":
        assert info["features"] == list(HLS4ML)
    if architecture == "cuts":
        # top vs QCD: τ32, and a window around the top mass chosen on the train split
        assert info["cuts"]["shape"] == "tau32"
        low, high = info["cuts"]["window"]
        assert 50 < low < 165
        assert 180 < high < 300


def test_the_cut_based_score_scans_the_tau_cut_inside_the_window(dataset, tmp_path):
    train_baseline(dataset, tmp_path, architecture="cuts", options={}, signal="top", seed=1)
    tagger = torch.load(tmp_path / "model.pt", weights_only=False)["tagger"]
    table = {
        "msd": np.array([170.0, 170.0, 30.0, 170.0]),
        "tau32": np.array([0.3, 0.6, 0.3, np.nan]),
    }
    score = tagger.score(table)
    assert score[0] > score[1] > score[2]
    assert score[2] == score[3] == -1.0


def tiny(**models) -> dict:
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config["models"].update(models)
    return config


def test_baselines_are_checked_with_the_config(shared_data):
    with pytest.raises(
        ConfigError,
        match=r"models/bdt/options/max_iter: must be a positive "
        r"integer, not 0",
    ):
        validate(tiny(bdt={"architecture": "bdt", "options": {"max_iter": 0}}))
    with pytest.raises(
        ConfigError,
        match=r"models/bdt/options/features: must be a feature set \(default, hls4ml\) or a "
        r"list of jet variables, not \[\]",
    ):
        validate(tiny(bdt={"architecture": "bdt", "options": {"features": []}}))
    with pytest.raises(ConfigError, match=r"not 'hls4m'; did you mean 'hls4ml'\?"):
        validate(tiny(bdt={"architecture": "bdt", "options": {"features": "hls4m"}}))
    with pytest.raises(
        ConfigError, match=r"\['tau23'\] are not among them, not .*; did you mean 'tau3'\?"
    ):
        validate(tiny(mlp={"architecture": "hlf-mlp", "options": {"features": ["tau23"]}}))
    config = tiny(bdt={"architecture": "bdt"})
    config["predict"] = {"models": ["bdt"], "samples": ["top"]}
    with pytest.raises(ConfigError, match=r"predict/models: \['bdt'\] are baselines"):
        validate(config)
    config = yaml.safe_load((REPO / "config" / "cms-images.yaml").read_text())
    config["samples"]["cms2011"]["files"] = str(shared_data / "cms2011_jet_images.h5")
    config["models"]["cuts"] = {"architecture": "cuts"}
    with pytest.raises(
        ConfigError,
        match=r"models/cuts: cuts tags jets by their substructure "
        r"observables, which need constituents",
    ):
        validate(config)


@pytest.mark.parametrize("architecture", ["bdt", "hlf-mlp", "cuts"])
def test_a_feature_nan_for_every_train_jet_is_an_error_naming_it(dataset, tmp_path, architecture):
    """τ32 of jets of two constituents is NaN: for every train jet, the MLP and the cuts
    reported AUC 0.5 as a result and the BDT crashed in scikit-learn."""
    import shutil

    import zarr

    copy = tmp_path / "nan.zarr"
    shutil.copytree(dataset, copy)
    tau32 = zarr.open_group(copy, mode="r+")["train/jets/tau32"]
    tau32[...] = np.nan
    with pytest.raises(
        InputError,
        match=rf"{copy}: feature\(s\) \['tau32'\] are NaN or infinite for every one of the "
        rf"\d+ train jets: nothing to learn from",
    ):
        train_baseline(
            copy,
            tmp_path / "model",
            architecture=architecture,
            options={} if architecture == "cuts" else {"features": ["msd", "tau32"]},
            signal="top",
            seed=1,
        )
    assert not (tmp_path / "model").exists()


def test_the_cut_based_tagger_is_refused_beyond_two_classes():
    config = tiny(cuts={"architecture": "cuts"})
    config["classes"] = ["qcd", "top", "w"]
    config["samples"]["w"] = {"source": "generate", "process": "w", "class": "w"}
    with pytest.raises(
        ConfigError,
        match=r"models/cuts: the cut-based tagger separates the signal from the rest, so with "
        r"3 classes \['qcd', 'top', 'w'\] its accuracy",
    ):
        validate(config)


def test_a_baseline_is_fitted_by_its_own_rule_and_evaluated_as_any_model(tmp_path):
    config = tiny(bdt={"architecture": "bdt"}, cuts={"architecture": "cuts"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = scheduled_jobs(tmp_path, path)
    assert jobs["train"] == 4  # logistic, hsf-cnn, hsf-cnn-tuned, pfn
    assert jobs["train_baseline"] == 2
    assert jobs["evaluate"] == 6
    assert jobs["images"] == 4  # the observables come with the images, in one pass
    assert jobs["report"] == 1
