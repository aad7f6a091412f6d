"""The config's defaults, written once, in ``config.schema.yaml``: the settings classes
(:class:`~jetimage.pixelate.ImageSpec`, :class:`~jetimage.train.TrainConfig`,
:class:`~jetimage.generate.JetSelection`, :class:`~jetimage.generate.Detector`) and the
stages' keyword defaults read them from here, so the schema and the code cannot disagree."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

#: The config schema (JSON Schema in YAML), shipped in the package.
SCHEMA = Path(__file__).with_name("config.schema.yaml")


@cache
def schema() -> dict:
    """The config schema as a mapping."""
    return yaml.safe_load(SCHEMA.read_text())


def default(*keys: str) -> Any:
    """The schema's default of the config key at ``keys``, e.g. ``default("training",
    "epochs")``; ``"*"`` steps into a mapping's entries (``default("samples", "*",
    "max_dropped_fraction")``). Lists come back as tuples (dataclass defaults are immutable)."""
    node = schema()
    for key in keys:
        node = node["additionalProperties"] if key == "*" else node["properties"][key]
    value = node["default"]
    return tuple(value) if isinstance(value, list) else value
