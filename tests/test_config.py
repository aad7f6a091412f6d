"""Config validation: the schema's defaults and the cross-field checks."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO
from jetimage.config import ConfigError, train_config, validate

TINY = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())


def test_shipped_configs_validate_and_get_defaults():
    for name in ("config.yaml", "tiny.yaml"):
        config = validate(yaml.safe_load((REPO / "config" / name).read_text()))
        assert config["generation"]["jets"]["radius"] == 0.8
        assert config["images"]["channels"] == ["pt"]
    tiny = validate(TINY)
    assert tiny["dataset"]["split"] == {"train": 0.7, "val": 0.15, "test": 0.15}


def test_planing_set_for_training_applies_to_every_model_but_the_cuts():
    config = copy.deepcopy(TINY)
    config["training"]["planing"] = ["pt", "msd"]
    config["models"]["cuts"] = {"architecture": "cuts"}
    config = validate(config)
    assert train_config(config, "hsf-cnn")["planing"] == ["pt", "msd"]
    assert train_config(config, "hsf-cnn")["planing_bins"] == 10


def test_model_entries_override_training_defaults():
    config = validate(TINY)
    config["models"]["logistic"]["epochs"] = 7
    assert train_config(config, "logistic")["epochs"] == 7
    assert train_config(config, "hsf-cnn")["epochs"] == TINY["training"]["epochs"]
    assert train_config(config, "hsf-cnn")["seed"] == TINY["seed"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(colour="red"), r"'colour' is not a key here \(known: classes, dask"),
        (lambda c: c.update(trainig={}), r"'trainig': did you mean 'training'\?"),
        (
            lambda c: c.setdefault("evaluation", {}).update(efficiencies=[]),
            r"evaluation/efficiencies: \[\] should be non-empty",
        ),
        (
            lambda c: c.setdefault("evaluation", {}).update(efficiencies=[0.3, 0.5, 0.3]),
            r"evaluation/efficiencies: \[0\.3, 0\.5, 0\.3\] has non-unique elements",
        ),
        (
            lambda c: c.setdefault("evaluation", {}).update(bootstrap=100_000_000),
            r"evaluation/bootstrap: 100000000 is greater than the maximum of 10000",
        ),
        (
            lambda c: c["samples"]["top"].update(jet_radius=0.4),
            (
                r"samples/top/jet_radius: applies to source: files only; the radius of "
                r"generated jets is generation/jets/radius \(0\.8\)"
            ),
        ),
        (
            lambda c: c["images"].update(width=[1.2, 1.6]),
            (
                r"images/width: \[1\.2, 1\.6\] is narrower "
                r"than the generated jets \(R = 0\.8\)"
            ),
        ),
        (
            lambda c: c["models"]["hsf-cnn"]["options"].update(filter=[2, 4]),
            r"models/hsf-cnn/options: hsf-cnn has no option 'filter' .*did you mean 'filters'\?",
        ),
        (
            lambda c: c["models"]["logistic"].update(options={"hidden": [8]}),
            r"logistic has no option 'hidden' \(it has none\)",
        ),
        (
            lambda c: c["images"].update(npix=[3, 20]),
            (
                r"models/hsf-cnn: hsf-cnn needs images of at "
                r"least 4×4 pixels"
            ),
        ),
        (
            lambda c: c["images"].update(chanels=["pt"]),
            (
                r"images: .*'chanels': did you mean "
                r"'channels'\?"
            ),
        ),
        (lambda c: c["images"].update(npix=[0, 20]), "images/npix/0"),
        (lambda c: c["images"].update(channels=["hue"]), "images/channels/0"),
        (
            lambda c: c["models"]["logistic"].update(architecture="vit"),
            "models/logistic/architecture",
        ),
        (
            lambda c: c["models"]["logistic"].update(epocs=3),
            (
                r"models/logistic: .*'epocs': did you "
                r"mean 'epochs'\?"
            ),
        ),
        (lambda c: c["samples"]["top"].update({"class": "higgs"}), "samples/top/class"),
        (lambda c: c.update(classes=["qcd", "top", "w"]), "no sample provides class"),
        (
            lambda c: c.update(dataset={"split": {"train": 0.9, "val": 0.2, "test": 0.1}}),
            "sum to 1",
        ),
        (lambda c: c.update(signal="w"), "config key signal"),
        (
            lambda c: c["evaluation"].update(reference_model="bdt"),
            (
                r"evaluation/reference_model: 'bdt' is not a model "
                r"\(models: \['hsf-cnn', 'hsf-cnn-tuned', 'logistic', 'pfn'\]\)"
            ),
        ),
        (lambda c: c["evaluation"].update(working_point=1.0), "evaluation/working_point"),
        (
            lambda c: c["models"].update(cuts={"architecture": "cuts", "planing": ["msd"]}),
            r"models/cuts/planing: the cut-based tagger takes no training weights",
        ),
        (
            lambda c: c["models"]["hsf-cnn"].update(planing=["pt", "sdmass"]),
            r"models/hsf-cnn/planing: \['sdmass'\] are not jet-table variables",
        ),
        (lambda c: c["training"].update(planing=["msd", "msd"]), "training/planing"),
        (
            lambda c: c["predict"].update(
                files=[{"files": "x.h5", "format": "toptagging", "class": "higgs"}]
            ),
            r"predict/files/0/class: 'higgs' is not one of the classes",
        ),
        (
            lambda c: c["predict"].update(
                files=[{"files": "x.root", "labels": {0: "qcd", "0": "top"}}]
            ),
            r"predict/files/0/labels: keys \[0, '0'\] are the same label value",
        ),
        (
            lambda c: c["predict"].update(files=[{"files": "x.root", "reader": {"tre": "t"}}]),
            r"predict/files/0/reader: .*did you mean 'tree'",
        ),
    ],
)
def test_bad_configs_are_rejected_with_the_key(change, message):
    config = copy.deepcopy(TINY)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def files_config(tmp_path, **sample) -> dict:
    (tmp_path / "a.root").touch()
    (tmp_path / "b.root").touch()
    config = copy.deepcopy(TINY)
    config["samples"] = {
        "user": {
            "source": "files",
            "files": str(tmp_path / "*.root"),
            "format": "root",
            "labels": {"label_QCD": "qcd", "label_Tbqq": "top"},
            **sample,
        }
    }
    config["predict"] = {}
    return config


def test_file_samples_expand_their_glob_into_parts(tmp_path):
    from jetimage.config import reader_settings, sample_files, sample_parts

    config = validate(files_config(tmp_path))
    assert sample_parts(config, "user") == ["a", "b"]
    assert sample_files(config, "user")["b"] == str(tmp_path / "b.root")
    settings = reader_settings(config, "user")
    assert settings["format"] == "root"
    assert settings["labels"]["unmapped"] == "error"
    assert settings["labels"]["mapping"] == {"label_QCD": "qcd", "label_Tbqq": "top"}


def test_a_file_name_that_exists_is_literal_even_with_glob_characters(tmp_path):
    """``top[1].root`` names that file when it exists (as a glob it matches ``top1.root``);
    the characters act as a glob only when no file has that name."""
    from jetimage.config import sample_files

    for name in ("top[1].root", "top1.root", "top2.root"):
        (tmp_path / name).touch()
    config = validate(files_config(tmp_path, files=str(tmp_path / "top[1].root")))
    assert sample_files(config, "user") == {"top[1]": str(tmp_path / "top[1].root")}
    config = validate(files_config(tmp_path, files=str(tmp_path / "top[12].root")))
    assert list(sample_files(config, "user")) == ["top1", "top2"]


def test_shipped_file_configs_validate(shared_data):
    import os

    for name in ("quark-gluon.yaml", "cms-images.yaml"):
        config = yaml.safe_load((REPO / "config" / name).read_text())
        for sample in config["samples"].values():  # relative to the repository root
            sample["files"] = os.path.join(REPO, sample["files"])
        validate(config)


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"files": "/nowhere/*.root"}, r"samples/user/files: '/nowhere/\*\.root' matches no file"),
        ({"class": "top"}, "give either class .* or labels .*, not both"),
        ({"labels": {"1": "higgs"}}, r"samples/user/labels: 'higgs' is not one of the classes"),
        (
            {"reader": {"tre": "Events"}},
            (
                r"samples/user/reader: .*no reader option 'tre'.*did you "
                r"mean 'tree'"
            ),
        ),
        ({"format": "csv"}, "samples/user/format"),
        ({"unmapped_labels": "ignore"}, "samples/user/unmapped_labels"),
    ],
)
def test_bad_file_samples_are_rejected_with_the_key(tmp_path, sample, message):
    with pytest.raises(ConfigError, match=message):
        validate(files_config(tmp_path, **sample))


def test_two_files_with_one_name_and_mixed_image_inputs_are_rejected(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.root").touch()
    config = files_config(tmp_path, files=[str(tmp_path / "*.root"), str(tmp_path / "x/*.root")])
    with pytest.raises(ConfigError, match="have the same name 'a'"):
        validate(config)
    config = files_config(tmp_path)
    config["samples"]["images"] = {
        "source": "files",
        "files": str(tmp_path / "a.root"),
        "format": "images-h5",
        "class": "top",
    }
    with pytest.raises(ConfigError, match="cannot be mixed"):
        validate(config)


def test_code_digest_follows_imports_and_ignores_comments_and_docstrings():
    import ast

    from jetimage.lineage import _without_docstrings, code_digest, library_modules

    images = library_modules(REPO / "scripts" / "images.py")
    assert {"readers", "pixelate", "kernel", "images", "zarr_store", "parallel"} <= set(images)
    assert not {"plots", "train", "generate", "logs"} & set(images)
    evaluate = library_modules(REPO / "scripts" / "evaluate.py")
    assert {"plots", "metrics", "inference"} <= set(evaluate)
    assert code_digest(REPO / "scripts" / "images.py") != code_digest(REPO / "scripts" / "train.py")

    def syntax(text):
        return ast.dump(_without_docstrings(ast.parse(text)))

    base = 'def f(x):\n    """Square."""\n    return x * x\n'
    assert syntax(base) == syntax('def f(x):  # note\n    """Squared."""\n\n    return x*x\n')
    assert syntax(base) != syntax('def f(x):\n    """Square."""\n    return x * x + 0\n')


def test_model_options_come_from_the_registries_and_the_config_needs_no_torch():
    import inspect
    import subprocess
    import sys

    from jetimage import baselines
    from jetimage.config import model_options, option_value_problem
    from jetimage.models import MODELS

    options = model_options()
    assert set(options) == set(MODELS) | set(baselines.BASELINES)
    assert options["hsf-cnn"] == {
        "filters": "tuple[int, int]",
        "kernel": "int",
        "dense": "int",
        "dropout": "float",
    }
    assert "signal" not in options["bdt"]
    assert "seed" not in options["bdt"]
    # every default passes the value check, in the form a YAML config gives it (a list)
    for name, factory in (MODELS | baselines.BASELINES).items():
        for option, annotation in options[name].items():
            default = inspect.signature(factory).parameters[option].default
            value = list(default) if isinstance(default, tuple) else default
            assert option_value_problem(option, annotation, value) is None, (name, option)
    # Snakemake parses the config in every job: checking it must not import torch
    check = (
        "import sys, jetimage.config as c; c.load('config/config.yaml'); "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", check], cwd=REPO).returncode == 0


def test_detector_settings_reach_the_generate_rule_and_back():
    """The generate rule gets ``asdict`` of the settings through JSON-like params; the detector
    (off by default) must come back equal, with its resolutions."""
    import dataclasses

    from jetimage.config import canonical, generator_settings
    from jetimage.generate import Detector, GeneratorSettings

    config = validate(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    assert generator_settings(config, "top").detector is None
    config["generation"]["detector"].update(enabled=True, hadron_resolution=[0.8, 0.1])
    settings = generator_settings(config, "top")
    assert settings.detector == Detector(hadron_resolution=(0.8, 0.1))
    assert GeneratorSettings.from_dict(canonical(dataclasses.asdict(settings))) == settings
