"""The parent a model starts from (its ``init.from``): where its weights are, and whether this
run can start from it, checked when the config is read, before any job.

A parent is a model of the same run (by name: the DAG trains it first), the ``model.pt`` of any
run (a path), or ``imagenet`` (torchvision's weights, :mod:`jetimage.resnets`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from jetimage.models import CLOSED_FORM, IMAGENET, INPUTS
from jetimage.suggest import did_you_mean

#: Image settings a parent may differ in: the loading adapts the first convolution.
ADAPTED = ("channels",)


def _settings(config: dict, model: str) -> dict:
    from jetimage.config import train_config

    return train_config(config, model)


def _trainable(config: dict, model: str) -> bool:
    """Whether a model is trained by gradient descent (not a baseline, not fitted in closed
    form), so that it can start from another model."""
    from jetimage.config import is_baseline

    architecture = config["models"][model]["architecture"]
    return not is_baseline(config, model) and architecture not in CLOSED_FORM


def parent_model(config: dict, model: str) -> str | None:
    """The ``model.pt`` a model starts from (a file the train job depends on), ``"imagenet"``,
    or None."""
    init = _settings(config, model)["init"] if _trainable(config, model) else None
    if not init:
        return None
    source = init["from"]
    if source in config["models"]:
        return f"results/models/{source}/model.pt"
    return source


def _where(config: dict, model: str, key: str) -> str:
    own = key in config["models"][model]
    return f"config key {'models/' + model if own else 'training'}/{key}"


def check(config: dict) -> None:
    """Refuse, naming the key, an ``init`` or ``fine_tune`` this run cannot honour: an unknown
    parent, a model starting from itself or from a model that starts from it, a parent taking
    other inputs, ImageNet weights for an architecture without them, a ``model.pt`` made with
    other image settings (but the channels, which the loading adapts), a bad regular
    expression, and ``fine_tune`` without ``init``."""
    from jetimage.config import ConfigError

    for model in config["models"]:
        settings = _settings(config, model)
        if not _trainable(config, model):
            for key in ("init", "fine_tune"):
                if config["models"][model].get(key) is not None:
                    msg = f"config key models/{model}/{key}: {model} is not trained by epochs"
                    raise ConfigError(msg)
            continue
        if settings["fine_tune"] is not None and not settings["init"]:
            msg = f"{_where(config, model, 'fine_tune')}: fine-tuning needs init (a parent)"
            raise ConfigError(msg)
        if settings["epochs"] == 0 and not settings["fine_tune"] and not settings["init"]:
            msg = f"{_where(config, model, 'epochs')}: 0 epochs (the parent as it is) needs init"
            raise ConfigError(msg)
        if settings["init"]:
            problem = _problem(config, model, settings["init"])
            if problem:
                msg = f"{_where(config, model, 'init')}: {problem}"
                raise ConfigError(msg)


def _problem(config: dict, model: str, init: dict) -> str | None:
    """What is wrong with a model's ``init``, if anything."""
    for key in ("exclude", "freeze"):
        for pattern in init.get(key, []):
            try:
                re.compile(pattern)
            except re.error as err:
                return f"{key}: {pattern!r} is not a regular expression ({err})"
    source, architecture = init["from"], config["models"][model]["architecture"]
    if source == "imagenet":
        if architecture not in IMAGENET:
            return f"no ImageNet weights for {architecture}; there are for {list(IMAGENET)}"
        return None
    if source in config["models"]:
        return _model_problem(config, model, source)
    if not Path(source).is_file():
        hint = did_you_mean(source, list(config["models"]))
        return (
            f"from: {source!r} is neither a model of this run ({sorted(config['models'])}), "
            f"nor imagenet, nor a model.pt file{hint}"
        )
    return _file_problem(config, architecture, Path(source))


def _model_problem(config: dict, model: str, source: str) -> str | None:
    """What forbids ``model`` to start from ``source``, a model of the same run."""
    seen: list[str] = [model]
    at: str | None = source
    while at is not None and at in config["models"]:
        if at in seen:
            cycle = [*seen[seen.index(at) :], at]
            return f"from: {' -> '.join(cycle)} is a cycle (a model cannot start from itself)"
        if not _trainable(config, at):
            return f"from: {at} is not trained by epochs (its weights start no network)"
        seen.append(at)
        init = _settings(config, at)["init"]
        at = init["from"] if init else None
    mine, theirs = (INPUTS[config["models"][m]["architecture"]] for m in (model, seen[1]))
    if mine != theirs:
        return f"from: {seen[1]} takes the jets' {theirs}, {model} their {mine}"
    return None


def _file_problem(config: dict, architecture: str, path: Path) -> str | None:
    """What forbids ``architecture`` in this run to start from the ``model.pt`` at ``path``."""
    import torch

    from jetimage.config import IMAGE_FORMATS, image_spec, sample_format

    try:
        info = torch.load(path, map_location="cpu", weights_only=True)["info"]
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same config error
        return f"from: {path} is not a model.pt jetimage wrote ({type(err).__name__}: {err})"
    mine = INPUTS[architecture]
    if info["inputs"] != mine:
        return f"from: {path} ({info['architecture']}) takes the jets' {info['inputs']}, not {mine}"
    pixelated = any(sample_format(s) in IMAGE_FORMATS for s in config["samples"].values())
    if mine != "images" or pixelated:
        return None
    ours = json.loads(json.dumps(image_spec(config).to_dict()))
    differ = [
        f"{key} {info['image_spec'].get(key)!r} there, {ours[key]!r} here"
        for key in ours
        if key not in ADAPTED and info["image_spec"].get(key) != ours[key]
    ]
    if differ:
        return f"from: {path} was trained on other images: images/" + "; ".join(differ)
    return None
