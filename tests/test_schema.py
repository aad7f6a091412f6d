"""The config schema and the code agree. Each default is written once, in the schema, and the
settings classes and stage defaults read it (jetimage.defaults); each list of names lives in the
code and the schema marks where it goes (x-names). These tests fail when a literal creeps back
into either home."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from jetimage import (
    baselines,
    dataset,
    generate,
    images,
    kernel,
    models,
    pixelate,
    readers,
    zarr_store,
)
from jetimage.config import TRAINING_KEYS, schema_document
from jetimage.defaults import SCHEMA
from jetimage.train import TrainConfig

PROPERTIES = yaml.safe_load(SCHEMA.read_text())["properties"]


def defaults(section: str) -> dict:
    return {k: v["default"] for k, v in PROPERTIES[section]["properties"].items() if "default" in v}


def class_defaults(cls) -> dict:
    """Field defaults of a dataclass, tuples as the lists YAML gives."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
    return out


@pytest.mark.parametrize(
    ("section", "cls"), [("images", pixelate.ImageSpec), ("training", TrainConfig)]
)
def test_section_defaults_equal_the_settings_class_defaults(section, cls):
    schema, code = defaults(section), class_defaults(cls)
    shared = set(schema) & set(code)
    assert shared, section
    assert {k: schema[k] for k in shared} == {k: code[k] for k in shared}


def test_training_keys_are_the_schemas_training_options():
    assert set(TRAINING_KEYS) == set(defaults("training")) - {"gpu"}
    assert set(TRAINING_KEYS) <= {f.name for f in dataclasses.fields(TrainConfig)}


def test_generation_defaults_equal_the_generator_classes():
    generation = PROPERTIES["generation"]["properties"]
    jets = {k: v["default"] for k, v in generation["jets"]["properties"].items()}
    assert jets == class_defaults(generate.JetSelection)
    detector = {
        k: v["default"] for k, v in generation["detector"]["properties"].items() if k != "enabled"
    }
    assert detector == class_defaults(generate.Detector)


def test_name_lists_come_from_the_code():
    text = SCHEMA.read_text()
    for names in (pixelate.CHANNELS, readers.FORMATS, generate.PROCESSES, models.MODELS):
        assert f"enum: [{', '.join(names)}]" not in text  # no second home in the schema
    properties = schema_document()["properties"]
    images = properties["images"]["properties"]
    assert images["channels"]["items"]["enum"] == list(pixelate.CHANNELS)
    assert list(kernel.CHANNELS) == list(pixelate.CHANNELS)
    sample = properties["samples"]["additionalProperties"]["properties"]
    assert sample["format"]["enum"] == list(readers.FORMATS)
    assert set(sample["process"]["enum"]) == set(generate.PROCESSES)
    architectures = properties["models"]["additionalProperties"]["properties"]["architecture"]
    assert set(architectures["enum"]) == set(models.MODELS) | set(baselines.BASELINES)
    predict = properties["predict"]["properties"]["files"]["items"]["oneOf"][1]["properties"]
    assert set(predict["format"]["enum"]) == set(readers.FORMATS) - set(readers.IMAGE_FORMATS)
    assert "'x-names':" not in str(schema_document())  # every marker filled in


def test_an_unknown_name_is_refused_with_the_codes_list():
    from jetimage.config import ConfigError, validate

    config = yaml.safe_load((SCHEMA.parents[2] / "config" / "config.yaml").read_text())
    config["images"] = {"channels": ["pt", "charge_pt"]}
    with pytest.raises(ConfigError, match="did you mean 'charged_pt'"):
        validate(config)


def test_stage_defaults_equal_the_library_defaults():
    assert defaults("dask")["chunk_jets"] == zarr_store.DEFAULT_CHUNK_JETS
    assert (
        defaults("dask")["batch_jets"] == inspect.signature(readers.read).parameters["step"].default
    )
    assert defaults("dataset")["memory_mb"] == dataset.DEFAULT_MEMORY_MB
    sample = PROPERTIES["samples"]["additionalProperties"]["properties"]
    assert sample["max_dropped_fraction"]["default"] == images.DEFAULT_MAX_DROPPED_FRACTION
