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


def test_model_entries_override_training_defaults():
    config = validate(TINY)
    config["models"]["logistic"]["epochs"] = 7
    assert train_config(config, "logistic")["epochs"] == 7
    assert train_config(config, "hsf-cnn")["epochs"] == TINY["training"]["epochs"]
    assert train_config(config, "hsf-cnn")["seed"] == TINY["seed"]


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(colour="red"), "Additional properties"),
    (lambda c: c["images"].update(npix=[0, 20]), "images/npix/0"),
    (lambda c: c["images"].update(channels=["hue"]), "images/channels/0"),
    (lambda c: c["models"]["logistic"].update(architecture="vit"), "models/logistic/architecture"),
    (lambda c: c["models"]["logistic"].update(epocs=3), "epocs"),
    (lambda c: c["samples"]["top"].update({"class": "higgs"}), "samples/top/class"),
    (lambda c: c.update(classes=["qcd", "top", "w"]), "no sample provides class"),
    (lambda c: c.update(dataset={"split": {"train": 0.9, "val": 0.2, "test": 0.1}}),
     "sum to 1"),
    (lambda c: c.update(signal="w"), "config key signal"),
])
def test_bad_configs_are_rejected_with_the_key(change, message):
    config = copy.deepcopy(TINY)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)
