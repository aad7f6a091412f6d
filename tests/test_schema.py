"""The config schema and the code agree: every default and every list of names that both the
schema and a settings class or registry hold is the same in both (a step of #21: each now has
two homes, and this test fails when they drift apart)."""

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
from jetimage.config import SCHEMA, TRAINING_KEYS
from jetimage.train import TrainConfig

PROPERTIES = yaml.safe_load(SCHEMA.read_text())["properties"]


def defaults(section: str) -> dict:
    return {k: v["default"] for k, v in PROPERTIES[section]["properties"].items()
            if "default" in v}


def class_defaults(cls) -> dict:
    """Field defaults of a dataclass, tuples as the lists YAML gives."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
    return out


@pytest.mark.parametrize("section, cls", [
    ("images", pixelate.ImageSpec), ("training", TrainConfig)])
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
    detector = {k: v["default"] for k, v in generation["detector"]["properties"].items()
                if k != "enabled"}
    assert detector == class_defaults(generate.Detector)


def test_name_lists_equal_the_code():
    images = PROPERTIES["images"]["properties"]
    assert images["channels"]["items"]["enum"] == list(pixelate.CHANNELS) == list(kernel.CHANNELS)
    sample = PROPERTIES["samples"]["additionalProperties"]["properties"]
    assert sample["format"]["enum"] == list(readers.FORMATS)
    assert set(sample["process"]["enum"]) == set(generate.PROCESSES)
    architectures = PROPERTIES["models"]["additionalProperties"]["properties"]["architecture"]
    assert set(architectures["enum"]) == set(models.MODELS) | set(baselines.BASELINES)
    predict = PROPERTIES["predict"]["properties"]["files"]["items"]["oneOf"][1]["properties"]
    assert set(predict["format"]["enum"]) == set(readers.FORMATS) - set(readers.IMAGE_FORMATS)


def test_stage_defaults_equal_the_library_defaults():
    assert defaults("dask")["chunk_jets"] == zarr_store.DEFAULT_CHUNK_JETS
    assert defaults("dask")["batch_jets"] == inspect.signature(readers.read).parameters[
        "step"].default
    assert defaults("dataset")["memory_mb"] == dataset.DEFAULT_MEMORY_MB
    sample = PROPERTIES["samples"]["additionalProperties"]["properties"]
    assert sample["max_dropped_fraction"]["default"] == images.DEFAULT_MAX_DROPPED_FRACTION
