"""Run configuration: schema validation with defaults, cross-field checks, per-stage views.

The workflow validates ``config.yaml`` against ``config.schema.yaml`` (beside this module, shipped
with the package; ``workflow/schemas/`` links to it) before any job runs; the functions here
turn the validated config into the typed settings of each stage, so that each rule's ``params``
hold exactly what its output depends on.
"""

from __future__ import annotations

import copy
import glob
import inspect
import json
import math
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import jsonschema
import yaml

from jetimage import parents, readers, remote
from jetimage.baselines import BASELINES, RUN_ARGUMENTS
from jetimage.defaults import schema
from jetimage.generate import PROCESSES, Detector, GeneratorSettings, JetSelection
from jetimage.models import INPUTS, MIN_PIXELS, MODELS
from jetimage.parallel import check_scheduler
from jetimage.pixelate import CHANNELS, ImageSpec
from jetimage.readers import IMAGE_FORMATS
from jetimage.suggest import did_you_mean

#: The config's JSON Schema, shipped with the package (workflow/schemas/ links to it).
#: No generated jet reaches REACH times the pT-hat range's upper edge.
REACH = 2.0
TRAINING_KEYS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "optimizer",
    "schedule",
    "patience",
    "device",
    "memory_budget_mb",
    "mixed_precision",
    "channels_last",
    "compile",
    "planing",
    "planing_bins",
    "init",
    "fine_tune",
    "max_train_jets",
)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _with_defaults(validator_class):
    set_props = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from set_props(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def load(path: str | os.PathLike) -> dict:
    """A config file's mapping; an error names the file (and the line) if it is not valid
    YAML, is empty, or is not a mapping of keys."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        msg = f"{path}: cannot read the config file ({err.strerror})"
        raise ConfigError(msg) from err
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        msg = f"{path}{where}: not valid YAML ({problem})"
        raise ConfigError(msg) from err
    if config is None:
        msg = f"{path}: the config file is empty; it needs at least classes, samples and models"
        raise ConfigError(msg)
    if not isinstance(config, dict):
        msg = (
            f"{path}, line 1: the config must be a mapping of keys (classes, "
            f"samples, models, ...), not a {type(config).__name__}"
        )
        raise ConfigError(msg)
    return config


def _names() -> dict[str, list[str]]:
    """The lists of names the schema marks with ``x-names``, from their homes in the code."""
    return {
        "jetimage.generate.PROCESSES": list(PROCESSES),
        "jetimage.readers.FORMATS": list(readers.FORMATS),
        "jetimage.readers.CONSTITUENT_FORMATS": list(readers.CONSTITUENT_FORMATS),
        "jetimage.pixelate.CHANNELS": list(CHANNELS),
        "jetimage.models.MODELS + jetimage.baselines.BASELINES": [*MODELS, *BASELINES],
    }


def _fill_names(node, names: dict[str, list[str]]):
    """A copy of a schema node with every ``x-names`` marker replaced by its ``enum``."""
    if isinstance(node, list):
        return [_fill_names(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    filled = {k: _fill_names(v, names) for k, v in node.items() if k != "x-names"}
    if "x-names" in node:
        filled["enum"] = names[node["x-names"]]
    return filled


@cache
def schema_document() -> dict:
    """The config schema with its lists of names filled in (see :func:`_names`)."""
    return _fill_names(schema(), _names())


def validate(config: dict) -> dict:
    """A validated copy of ``config`` with the schema's defaults filled in, then :func:`check`."""
    schema_doc = schema_document()
    _check_finite(config, "")
    config = copy.deepcopy(config)
    validator = _with_defaults(jsonschema.validators.validator_for(schema_doc))(schema_doc)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        msg = f"config key {where}: {err.message}{_hint(err, schema_doc)}"
        raise ConfigError(msg)
    check(config)
    return config


def _check_finite(value, where: str) -> None:
    """Reject NaN and infinity anywhere (JSON Schema's bounds let NaN through)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}/{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}/{i}")
    elif isinstance(value, float) and not math.isfinite(value):
        msg = f"config key {where}: {value} is not a finite number"
        raise ConfigError(msg)


def _hint(err: jsonschema.ValidationError, schema_doc: dict) -> str:
    """'; did you mean ...?' for an unknown key or name close to a known one."""
    if err.validator == "enum":
        return did_you_mean(err.instance, err.validator_value)
    if err.validator not in ("additionalProperties", "unevaluatedProperties") or not isinstance(
        err.instance, dict
    ):
        return ""
    known = set(err.schema.get("properties", {}))
    ref = err.schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        known |= set(schema_doc["$defs"][ref.split("/")[-1]].get("properties", {}))
    hints = []
    for name in err.instance:
        if name not in known:
            hint = did_you_mean(name, known)
            hints.append(
                f"{name!r}:{hint[1:]}"
                if hint
                else f"{name!r} is not a key here (known: {', '.join(sorted(known))})"
            )
    return "; " + "; ".join(hints) if hints else ""


def check(config: dict) -> None:
    """Cross-field checks the schema cannot express."""
    classes = config["classes"]
    signal = config.get("signal", classes[-1])
    if signal not in classes:
        msg = f"config key signal: {signal!r} is not one of the classes {classes}"
        raise ConfigError(msg)
    used = set()
    if "files" in config["samples"]:
        msg = (
            "config key samples/files: 'files' is reserved (predictions of "
            "predict.files are written under results/predictions/{model}/files/)"
        )
        raise ConfigError(msg)
    for name, sample in config["samples"].items():
        used.update(_check_sample(config, name, sample))
    formats = {sample_format(s) in IMAGE_FORMATS for s in config["samples"].values()}
    if len(formats) > 1:
        msg = (
            "config key samples: already-pixelated samples (format images-h5) "
            "cannot be mixed with samples of constituents in one dataset"
        )
        raise ConfigError(msg)
    missing = [c for c in classes if c not in used]
    if missing:
        msg = f"config key classes: no sample provides class(es) {missing}"
        raise ConfigError(msg)
    _check_shared_files(config)
    predict = config.get("predict", {})
    for kind, known in (("models", config["models"]), ("samples", config["samples"])):
        unknown = [n for n in predict.get(kind, []) if n not in known]
        if unknown:
            msg = f"config key predict/{kind}: {unknown} not in {kind} {sorted(known)}"
            raise ConfigError(msg)
    _check_predict_entries(config)
    if predict.get("files") and formats == {True}:
        msg = (
            "config key predict/files: the models are trained on already-"
            "pixelated images (format images-h5), whose grid and preprocessing "
            "jetimage does not know, so they cannot score constituent files; "
            "list images-h5 samples under predict/samples instead"
        )
        raise ConfigError(msg)
    try:
        check_scheduler(config.get("dask", {}).get("scheduler", "threads"))
    except ValueError as err:
        msg = f"config key dask/scheduler: {err}"
        raise ConfigError(msg) from err
    split = config.get("dataset", {}).get("split")
    if split and abs(sum(split.values()) - 1.0) > 1e-9:
        msg = f"config key dataset/split: fractions must sum to 1, got {split}"
        raise ConfigError(msg)
    _check_generation(config)
    _check_images(config)
    reference = config.get("evaluation", {}).get("reference_model")
    if reference is not None and reference not in config["models"]:
        msg = (
            f"config key evaluation/reference_model: {reference!r} is not a "
            f"model (models: {sorted(config['models'])})"
        )
        raise ConfigError(msg)
    _check_planing(config)
    parents.check(config)
    _check_predict_files(config)  # last: it opens files


def jet_variables() -> set[str]:
    """The per-jet variables of every dataset made from constituents: the jet's kinematics
    and its substructure observables (jetimage.substructure.NAMES)."""
    from jetimage.substructure import NAMES

    return {"pt", "eta", "phi", "mass", "n_constituents", *NAMES}


def _check_planing(config: dict) -> None:
    """Planed models name jet-table variables their samples have, and take weights."""
    pixelated = any(sample_format(s) in IMAGE_FORMATS for s in config["samples"].values())
    known = jet_variables()
    for name, model in config["models"].items():
        own = "planing" in model
        planing = model.get("planing", config.get("training", {}).get("planing", []))
        where = f"config key models/{name}/planing" if own else "config key training/planing"
        if not planing or (model["architecture"] == "cuts" and not own):
            continue  # the cut-based tagger ignores the training default
        if model["architecture"] == "cuts":
            msg = (
                f"{where}: the cut-based tagger takes no training weights; "
                f"planing applies to image models, bdt and hlf-mlp"
            )
            raise ConfigError(msg)
        unknown = sorted(set(planing) - known)
        if unknown:
            msg = f"{where}: {unknown} are not jet-table variables (known: {sorted(known)})"
            raise ConfigError(msg)
        if pixelated:
            msg = (
                f"{where}: already-pixelated samples (images-h5) carry no jet variables to plane in"
            )
            raise ConfigError(msg)


def _check_generation(config: dict) -> None:
    """pT windows in order, and a jet window the pT-hat range can reach."""
    generation = config.get("generation", {})
    jets, pt_hat = generation.get("jets"), generation.get("pt_hat")
    if jets and jets["pt_min"] >= jets["pt_max"]:
        msg = "config key generation/jets: pt_min must be below pt_max"
        raise ConfigError(msg)
    if pt_hat and pt_hat[0] >= pt_hat[1]:
        msg = f"config key generation/pt_hat: [low, high] in GeV with low below high, got {pt_hat}"
        raise ConfigError(msg)
    generated = any(s.get("source") == "generate" for s in config["samples"].values())
    if generated and jets and pt_hat and jets["pt_min"] >= REACH * pt_hat[1]:
        msg = (
            f"config key generation/jets/pt_min: jets of pT above "
            f"{jets['pt_min']} GeV are out of reach of generation/pt_hat "
            f"{pt_hat} (a jet's pT seldom exceeds the hard process's pT-hat, and "
            f"never by {REACH}×): raise pt_hat to cover the jet window "
            f"[{jets['pt_min']}, {jets['pt_max']}]"
        )
        raise ConfigError(msg)


def _check_shared_files(config: dict) -> None:
    """A file in two samples must give its jets to at most one of them: both samples map
    labels, drop what they leave out, and map disjoint label values."""
    seen: dict[str, tuple[str, dict]] = {}
    for name, sample in config["samples"].items():
        if sample["source"] != "files":
            continue
        for path in sample_files(config, name).values():
            key = os.path.realpath(path)
            if key not in seen:
                seen[key] = (name, sample)
                continue
            other, first = seen[key]
            selects = [
                s.get("unmapped_labels") == "drop" and "labels" in s for s in (first, sample)
            ]
            overlap = set(map(str, first.get("labels", {}))) & set(
                map(str, sample.get("labels", {}))
            )
            if not all(selects) or overlap:
                why = (
                    f"both map label value(s) {sorted(overlap)}"
                    if all(selects)
                    else f"its jets would be {_describe_classes(first)} in {other!r} and "
                    f"{_describe_classes(sample)} in {name!r}"
                )
                msg = (
                    f"config key samples: {path!r} is in samples {other!r} and "
                    f"{name!r}: {why}. A file may be in two samples only if "
                    f"each maps disjoint labels and drops the rest "
                    f"(unmapped_labels: drop)"
                )
                raise ConfigError(msg)


def _describe_classes(sample: dict) -> str:
    if "class" in sample:
        return f"class {sample['class']!r}"
    return f"labelled by {dict(sample['labels'])}"


def is_baseline(config: dict, model: str) -> bool:
    """Whether a model is a baseline on high-level features (jetimage.baselines)."""
    return config["models"][model]["architecture"] in baseline_architectures()


def baseline_architectures() -> set[str]:
    """The architectures of :mod:`jetimage.baselines` (taggers on high-level features)."""
    return set(BASELINES)


@cache
def model_options() -> dict[str, dict[str, str]]:
    """Keyword options of each registered architecture (image models and baselines) and their
    annotations (``int``, ``float``, ``str``, ``tuple[int, int]``, ``tuple[int, ...]``,
    ``tuple[str, ...]``), from the factories' signatures."""
    return {
        name: {
            p.name: str(p.annotation)
            for p in inspect.signature(factory).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in RUN_ARGUMENTS
        }
        for name, factory in (MODELS | BASELINES).items()
    }


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def option_value_problem(name: str, annotation: str, value) -> str | None:
    """What is wrong with a model option's value (``None`` if nothing): sizes are positive
    integers (one, a pair, or a non-empty list), dropout a number in [0, 1), ``hardest`` a
    non-negative integer."""
    if name == "features":
        return _features_problem(value)
    if name == "hardest":  # the particles a cloud model reads; 0: all
        return None if _is_int(value) and value >= 0 else "a non-negative integer (0: all)"
    if name == "dropout":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
        return None if ok else "a number in [0, 1)"
    if annotation == "bool":
        return None if isinstance(value, bool) else "true or false"
    if annotation == "int":
        return None if _is_int(value) and value >= 1 else "a positive integer"
    if annotation == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "a number"
    if annotation == "str":
        return None if isinstance(value, str) else "a name (text)"
    if annotation == "tuple[str, ...]":
        ok = (
            isinstance(value, list | tuple)
            and len(value) >= 1
            and all(isinstance(v, str) for v in value)
        )
        return None if ok else "a list of names"
    if annotation.startswith("tuple[int"):
        length = None if annotation.endswith("...]") else annotation.count("int")
        ok = (
            isinstance(value, list | tuple)
            and len(value) >= 1
            and all(_is_int(v) and v >= 1 for v in value)
            and (length is None or len(value) == length)
        )
        what = f"{length} positive integers" if length else "a list of positive integers"
        return None if ok else what
    return None


def _features_problem(value) -> str | None:
    """What is wrong with a baseline's ``features``: one of the named feature sets, or a list
    of jet variables."""
    from jetimage.baselines import FEATURE_SETS

    what = f"a feature set ({', '.join(FEATURE_SETS)}) or a list of jet variables"
    if isinstance(value, str):
        return None if value in FEATURE_SETS else what
    if not isinstance(value, list | tuple) or not value:
        return what
    unknown = _unknown_variables(value)
    if unknown:
        return f"{what} ({', '.join(sorted(jet_variables()))}); {unknown} are not among them"
    return None


def _unknown_variables(names) -> list:
    """The entries of a list that are not jet variables."""
    return [v for v in names if v not in jet_variables()]


def _option_hint(option: str, value) -> str:
    """A "did you mean" for a misspelt feature set or jet variable."""
    from jetimage.baselines import FEATURE_SETS

    if option != "features":
        return ""
    if isinstance(value, str):
        return did_you_mean(value, FEATURE_SETS)
    unknown = _unknown_variables(value) if isinstance(value, list | tuple) else []
    return did_you_mean(unknown[0], jet_variables()) if unknown else ""


def _check_model_options(name: str, model: dict) -> None:
    known = model_options().get(model["architecture"], {})
    for option, value in model.get("options", {}).items():
        if option not in known:
            msg = (
                f"config key models/{name}/options: {model['architecture']} has "
                f"no option {option!r} (it has {sorted(known) or 'none'})"
                f"{did_you_mean(option, known)}"
            )
            raise ConfigError(msg)
        problem = option_value_problem(option, known[option], value)
        if problem:
            msg = (
                f"config key models/{name}/options/{option}: must be {problem}, not "
                f"{value!r}{_option_hint(option, value)}"
            )
            raise ConfigError(msg)


def _check_images(config: dict) -> None:
    """The image window against the generated jets' radius, the grid against the models."""
    images = config.get("images", {})
    constituents = [s for s in config["samples"].values() if sample_format(s) not in IMAGE_FORMATS]
    for name, model in config["models"].items():
        _check_model_options(name, model)
        if model["architecture"] in baseline_architectures() and not constituents:
            msg = (
                f"config key models/{name}: {model['architecture']} tags jets by "
                f"their substructure observables, which need constituents; "
                f"already-pixelated samples (images-h5) have none"
            )
            raise ConfigError(msg)
        if INPUTS.get(model["architecture"]) == "particles" and not constituents:
            msg = (
                f"config key models/{name}: {model['architecture']} takes the jets' "
                f"particles, which need constituents; already-pixelated samples "
                f"(images-h5) have none"
            )
            raise ConfigError(msg)
        if model["architecture"] == "cuts" and len(config["classes"]) > 2:
            msg = (
                f"config key models/{name}: the cut-based tagger separates the signal from "
                f"the rest, so with {len(config['classes'])} classes {config['classes']} its "
                f"accuracy, confusion matrix and one-vs-rest AUCs would be figures of a "
                f"choice it cannot make; use bdt or hlf-mlp, or two classes"
            )
            raise ConfigError(msg)
    baselines = [
        m
        for m in config.get("predict", {}).get("models", [])
        if config["models"][m]["architecture"] in baseline_architectures()
    ]
    if baselines:
        msg = (
            f"config key predict/models: {baselines} are baselines on high-level "
            f"features; predict scores files with image models (ONNX)"
        )
        raise ConfigError(msg)
    if not constituents:  # pre-pixelated inputs bring their own grid: read it
        _check_pixelated_grids(config)
        return
    if not images:
        return
    radius = config.get("generation", {}).get("jets", {}).get("radius")
    generated = any(s["source"] == "generate" for s in constituents)
    if generated and radius and min(images["width"]) < 2 * radius:
        msg = (
            f"config key images/width: {images['width']} is narrower than the "
            f"generated jets (R = {radius}): constituents beyond ±width/2 of the "
            f"axis would be cut; use a width of at least 2R = {2 * radius}"
        )
        raise ConfigError(msg)
    for name, model in config["models"].items():
        if INPUTS.get(model["architecture"]) != "images":  # baselines and particle models
            continue
        needed = MIN_PIXELS.get(model["architecture"], 1)
        if min(images["npix"]) < needed:
            msg = (
                f"config key models/{name}: {model['architecture']} needs images "
                f"of at least {needed}×{needed} pixels, images/npix is "
                f"{images['npix']}"
            )
            raise ConfigError(msg)


def _check_pixelated_grids(config: dict) -> None:
    """The grid of each already-pixelated sample (its first file's header) against each image
    model's smallest image, so that a grid too small fails here rather than in training."""
    for sample_name, sample in config["samples"].items():
        path = next(iter(sample_files(config, sample_name).values()))
        settings = _reader_of(sample)
        labels = readers.Labels(tuple(config["classes"]), **settings["labels"])
        try:
            npix = readers.image_grid(path, labels=labels, **settings["options"])["npix"]
        except (readers.InputError, OSError) as err:
            msg = f"config key samples/{sample_name}/files: {err}"
            raise ConfigError(msg) from err
        for name, model in config["models"].items():
            needed = MIN_PIXELS.get(model["architecture"], 1)
            if INPUTS.get(model["architecture"]) == "images" and min(npix) < needed:
                msg = (
                    f"config key models/{name}: {model['architecture']} needs images of at "
                    f"least {needed}×{needed} pixels, and {path} (sample {sample_name}) holds "
                    f"{npix[0]}×{npix[1]} images"
                )
                raise ConfigError(msg)


def _check_sample(config: dict, name: str, sample: dict) -> set[str]:
    """Check one sample entry; returns the classes it provides."""
    classes, key = config["classes"], f"config key samples/{name}"
    if ("class" in sample) == ("labels" in sample):
        msg = (
            f"{key}: give either class (every jet one class) or labels (a map "
            f"from the file's label values to classes), not "
            f"{'both' if 'class' in sample else 'neither'}"
        )
        raise ConfigError(msg)
    targets = _label_targets(key, sample, classes)
    if sample["source"] == "generate":
        if "process" not in sample:
            msg = f"{key}/process: a generated sample needs a process"
            raise ConfigError(msg)
        extra = [k for k in ("files", "format", "labels", "label_field") if k in sample]
        if extra or sample.get("reader"):
            msg = f"{key}: {extra or ['reader']} apply to source: files only"
            raise ConfigError(msg)
        if "jet_radius" in sample:
            msg = (
                f"{key}/jet_radius: applies to source: files only; the radius of generated "
                f"jets is generation/jets/radius ({config['generation']['jets']['radius']})"
            )
            raise ConfigError(msg)
        return set(targets)
    for field_name in ("files", "format"):
        if field_name not in sample:
            msg = f"{key}/{field_name}: a source: files sample needs {field_name}"
            raise ConfigError(msg)
    _check_reader(key, sample)
    if any(map(remote.is_remote, sample_files(config, name).values())) and sample["format"] not in (
        "root",
        "nanoaod",
    ):
        msg = (
            f"{key}/files: root:// files are read as ROOT (format root or "
            f"nanoaod), not {sample['format']}"
        )
        raise ConfigError(msg)
    return set(targets)


def _label_targets(key: str, entry: dict, classes: list[str]) -> list[str]:
    """The classes a sample's (or predict.files entry's) class or labels name, checked: each a
    class, no two map keys one label value."""
    clash = readers.clashing_keys(entry.get("labels", {}))
    if clash:
        msg = (
            f"{key}/labels: keys {clash} are the same label value "
            f"{str(clash[0])!r} (a file's label values are compared as text); "
            f"keep one"
        )
        raise ConfigError(msg)
    targets = [entry["class"]] if "class" in entry else list(entry.get("labels", {}).values())
    for target in targets:
        if target not in classes:
            where = "class" if "class" in entry else "labels"
            msg = f"{key}/{where}: {target!r} is not one of the classes {classes}"
            raise ConfigError(msg)
    return targets


def _check_reader(key: str, entry: dict) -> None:
    """Reader option names and values of a sample or predict.files entry for its format."""
    try:
        readers.check_options(sample_format(entry), entry.get("reader", {}))
        readers.check_option_values(sample_format(entry), entry.get("reader", {}))
    except ValueError as err:
        msg = f"{key}/reader: {err}"
        raise ConfigError(msg) from err


def sample_format(sample: dict) -> str:
    """The input format of a sample (``root`` for generated samples)."""
    return sample.get("format", "root")


def sample_files(config: dict, sample: str) -> dict[str, str]:
    """``{part}`` name (:func:`part_name`) → path of each file of a sample, in
    sorted order; globs are expanded here, when the DAG is built."""
    entry = config["samples"][sample]
    patterns = [entry["files"]] if isinstance(entry["files"], str) else entry["files"]
    found = _expand_globs(
        patterns,
        f"samples/{sample}/files",
        "have the same name {name!r}; put them in separate samples",
    )
    return dict(sorted(found.items()))


def _expand_globs(patterns: list[str], key: str, clash: str) -> dict[str, str]:
    """File name without extension → path of every file the globs match; a glob that matches
    nothing, or two files of one name (``clash`` says why that matters), is a ConfigError."""
    found: dict[str, str] = {}
    for pattern in patterns:
        try:
            matches = remote.expand(pattern) if remote.is_remote(pattern) else _local(pattern)
        except readers.InputError as err:
            msg = f"config key {key}: {err}"
            raise ConfigError(msg) from err
        if not matches:
            relative = (
                ""
                if Path(pattern).is_absolute()
                else f" (relative paths are relative to the working directory {os.getcwd()})"
            )
            msg = f"config key {key}: {pattern!r} matches no file{relative}"
            raise ConfigError(msg)
        for path in matches:
            name = part_name(path)
            if found.get(name, path) != path:
                raise ConfigError(
                    f"config key {key}: {found[name]!r} and {path!r} " + clash.format(name=name)
                )
            found[name] = path
    return found


def _local(pattern: str) -> list[str]:
    """The local files a ``files`` entry names: the file itself when one has that very name
    (``top[1].root`` is a file name, not a glob, when such a file exists), else the glob's
    matches, sorted."""
    if os.path.isfile(pattern):
        return [pattern]
    return sorted(glob.glob(pattern))


def part_name(path: str) -> str:
    """The ``{part}`` of an input file: its name without the final extension
    (``run.2024.parquet`` → ``run.2024``)."""
    return Path(path).stem


def reader_settings(config: dict, sample: str) -> dict:
    """How the images and predict rules read a sample's files: format, reader options and
    labels (keyword arguments of :class:`jetimage.readers.Labels`, without classes)."""
    return _reader_of(config["samples"][sample])


def _reader_of(entry: dict) -> dict:
    """Reader settings of a sample or a ``predict.files`` entry (labels None if it has none)."""
    labels = {
        "class_name": entry.get("class"),
        "field": entry.get("label_field"),
        "unmapped": entry.get("unmapped_labels", "error"),
        "mapping": {str(k): v for k, v in entry["labels"].items()} if "labels" in entry else None,
    }
    return {
        "format": sample_format(entry),
        "options": dict(entry.get("reader", {})),
        "labels": labels if "class" in entry or "labels" in entry else None,
    }


def predict_entries(config: dict) -> list[dict]:
    """``predict.files`` as entries with ``files`` and the reader settings (a plain path or
    glob is a JetClass-layout ROOT file without labels)."""
    return [
        {"files": e} if isinstance(e, str) else e
        for e in config.get("predict", {}).get("files", [])
    ]


def predict_file_readers(config: dict) -> dict[str, tuple[str, dict]]:
    """Name → (path, reader settings) of every file ``predict.files`` matches, each with the
    settings of the entry that matched it; two files of one name, or one file that two
    entries match (which settings would it be read with?), are a ConfigError."""
    found: dict[str, tuple[str, dict]] = {}
    matched_by: dict[str, int] = {}
    for i, entry in enumerate(predict_entries(config)):
        patterns = [entry["files"]] if isinstance(entry["files"], str) else entry["files"]
        for name, path in _expand_globs(
            patterns, f"predict/files/{i}", "would both be written as {name!r}"
        ).items():
            if found.get(name, (path,))[0] != path:
                msg = (
                    f"config key predict/files: {found[name][0]!r} and {path!r} "
                    f"would both be written as {name!r}"
                )
                raise ConfigError(msg)
            if name in found:
                msg = (
                    f"config key predict/files: {path!r} is matched by entries "
                    f"{matched_by[name]} and {i}; each file is read with one entry's format, "
                    f"reader and labels: narrow one of the patterns"
                )
                raise ConfigError(msg)
            found[name] = (path, _reader_of(entry))
            matched_by[name] = i
    return found


def _check_predict_entries(config: dict) -> None:
    """Reader options and label targets of every ``predict.files`` entry."""
    for i, entry in enumerate(predict_entries(config)):
        key = f"config key predict/files/{i}"
        if "class" in entry and "labels" in entry:
            msg = f"{key}: give class or labels, not both"
            raise ConfigError(msg)
        _label_targets(key, entry, config["classes"])
        _check_reader(key, entry)


def _check_predict_files(config: dict) -> None:
    """Each ``predict.files`` file read as its entry says, up to its first jets: the format,
    tree, branches and label fields, and the charge the image channels need, are checked
    when the DAG is built rather than in a predict job after every training job."""
    spec = image_spec(config)
    for path, reader in predict_file_readers(config).values():
        settings = reader["labels"]
        labels = readers.Labels(tuple(config["classes"]), **settings) if settings else None
        what = f"config key predict/files: {path} (format {reader['format']})"
        try:
            batches = readers.read(
                path, format=reader["format"], labels=labels, step=8, **reader["options"]
            )
            first = next(iter(batches), None)
        except (readers.InputError, OSError, ValueError, KeyError) as err:
            msg = f"{what}: {err}"
            raise ConfigError(msg) from err
        if first is None:
            msg = f"{what}: no jet to score"
            raise ConfigError(msg)
        fields = getattr(getattr(first, "constituents", None), "fields", None)
        if spec.needs_charge and fields is not None and "charge" not in fields:
            msg = (
                f"{what}: the image channels {list(spec.channels)} need the constituents' "
                f"charge, and this file's constituents have {sorted(fields)}"
            )
            raise ConfigError(msg)


def canonical(value):
    """``value`` with every mapping's keys sorted, so that Snakemake's params rerun trigger
    (which compares params as text) sees a reordered but equal config as unchanged."""
    return json.loads(json.dumps(value, sort_keys=True))


def generator_settings(config: dict, sample: str) -> GeneratorSettings:
    """The generator settings of a generated sample of a validated config."""
    return process_settings(config["generation"], config["samples"][sample]["process"])


def process_settings(generation: dict, process: str) -> GeneratorSettings:
    """The generator settings of ``process`` under a validated config's ``generation``
    section."""
    detector = generation["detector"]
    return GeneratorSettings(
        process=process,
        sqrt_s=generation["sqrt_s"],
        pt_hat_min=generation["pt_hat"][0],
        pt_hat_max=generation["pt_hat"][1],
        jets=JetSelection(**generation["jets"]),
        extra=tuple(generation["pythia_settings"]),
        detector=Detector.from_dict(detector) if detector["enabled"] else None,
    )


def sample_parts(config: dict, sample: str) -> list[str]:
    """The ``{part}`` names of a sample: one per generated shard, or one per input file."""
    entry = config["samples"][sample]
    if entry["source"] == "files":
        return list(sample_files(config, sample))
    return [f"{i:03d}" for i in range(entry["shards"])]


#: R of a file sample's jets when its ``jet_radius`` is not given.
DEFAULT_JET_RADIUS = 0.8


def jet_radius(config: dict, sample: str) -> float:
    """R of a sample's jets (soft drop's and N-subjettiness's R0): the generator's for a
    generated sample, the sample's ``jet_radius`` for files."""
    entry = config["samples"][sample]
    if entry["source"] == "generate":
        return float(config["generation"]["jets"]["radius"])
    return float(entry.get("jet_radius", DEFAULT_JET_RADIUS))


def image_spec(config: dict) -> ImageSpec:
    """The run's image definition (``images:``)."""
    return ImageSpec.from_dict(config["images"])


def train_config(config: dict, model: str) -> dict:
    """A model's settings (:class:`jetimage.train.TrainConfig` fields): its entry over the
    ``training`` defaults, with the run seed."""
    entry = config["models"][model]
    merged = {k: entry.get(k, config["training"][k]) for k in TRAINING_KEYS}
    return {
        "architecture": entry["architecture"],
        "options": dict(entry.get("options", {})),
        "seed": config["seed"],
        **merged,
    }


#: What each input format's jets are, for the report's "where the jets come from".
FORMAT_ORIGINS = {
    "root": "JetClass-layout ROOT files",
    "parquet": "JetClass-layout Parquet files",
    "toptagging": "Top Quark Tagging reference HDF5 (Pythia 8 + Delphes detector simulation)",
    "nanoaod": "CMS NanoAOD fat jets (full CMS simulation and reconstruction, PF candidates)",
    "images-h5": "already-pixelated images",
}


def sample_origins(config: dict, files: Mapping[str, Mapping]) -> list[str]:
    """One phrase per sample saying where its jets come from: generated (at particle level, or
    with jetimage's calorimeter model) or read from the user's files (``files``: sample → its
    files, as :func:`sample_files` gives them) and what those are."""
    detector = config.get("generation", {}).get("detector", {}).get("enabled", False)
    level = (
        "with jetimage's simple calorimeter model (smeared neutral energy in 0.1 × 0.1 cells)"
        if detector
        else "at particle level (no detector simulation)"
    )
    out = []
    for name, sample in sorted(config.get("samples", {}).items()):
        if sample["source"] == "generate":
            out.append(f"{name}: generated with Pythia 8 ({sample['process']}) {level}")
        else:
            n = len(files[name])
            what = FORMAT_ORIGINS.get(sample_format(sample), sample_format(sample))
            out.append(f"{name}: read from {n} file{'s' if n != 1 else ''}, {what}")
    return out


def model_kinds(config: dict) -> dict[str, str]:
    """model → what it is: its architecture, and what it is planed in, if anything."""
    kinds = {}
    for name, entry in config.get("models", {}).items():
        planing = train_config(config, name)["planing"] if entry["architecture"] != "cuts" else []
        kinds[name] = entry["architecture"] + (
            f", planed in {', '.join(planing)}" if planing else ""
        )
    return kinds


def training_sizes(config: dict) -> dict[str, dict]:
    """model → what the report's learning curves need of it (:func:`jetimage.report.
    learning_curves`): its architecture, its parent (``init.from``, or None), whether it is the
    parent as it is (``epochs: 0`` without ``fine_tune``) and its ``max_train_jets``; for the
    models trained by epochs."""
    out = {}
    for model, entry in config.get("models", {}).items():
        if is_baseline(config, model):
            continue
        s = train_config(config, model)
        out[model] = {
            "architecture": entry["architecture"],
            "parent": s["init"]["from"] if s["init"] else None,
            "as_is": s["epochs"] == 0 and s["fine_tune"] is None,
            "max_train_jets": s["max_train_jets"],
        }
    return out


def wants_gpu(config: dict, model: str) -> bool:
    """Whether a model's training asks for a GPU (its ``gpu`` setting)."""
    return bool(config["models"][model].get("gpu", config["training"]["gpu"]))


def signal_class(config: dict) -> str:
    """The signal class: ``signal``, else the last of ``classes``."""
    return config.get("signal", config["classes"][-1])


def main(argv: list[str] | None = None) -> int:
    """``python -m jetimage.config FILE...``: check config files as the workflow would (from
    the directory the workflow runs in), naming the file and line of a YAML error. Snakemake
    reads ``--configfile`` itself before the workflow's checks run, and its YAML errors name
    neither."""
    import sys

    status = 0
    for path in argv if argv is not None else sys.argv[1:]:
        try:
            validate(load(path))
        except ConfigError as err:
            print(
                f"{path}: {err}" if not str(err).startswith(str(path)) else str(err),
                file=sys.stderr,
            )
            status = 1
        else:
            print(f"{path}: valid")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
