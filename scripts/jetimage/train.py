"""Training of registry models on a dataset store, resumable and exportable.

The train and val splits are loaded into memory and normalised with the dataset's per-channel
statistics. Each epoch ends with a checkpoint (model, optimiser, scheduler, RNG states, history,
best weights); a restarted run with the same settings resumes from it. The best model (lowest
validation loss) is saved as ``model.pt`` (weights + everything needed to rebuild it) and
exported to ONNX (``model.onnx``), checked with onnxruntime against the torch outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from jetimage import loader, zarr_store
from jetimage.defaults import default
from jetimage.files import InputError, atomic_path, naming
from jetimage.inference import ONNX_OPSET, export_model
from jetimage.models import (
    CLOSED_FORM,
    INPUTS,
    TENSORS,
    build_model,
    count_parameters,
    output_layer,
)
from jetimage.transfer import (
    FINE_TUNE,
    OneCycle,
    discriminative_rates,
    freeze,
    head,
    kept_normalization,
    layer_groups,
    load_weights,
    parent_state,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """One model's training settings (the ``models:`` entry merged over ``training:``)."""

    architecture: str
    options: dict = field(default_factory=dict)
    epochs: int = default("training", "epochs")
    batch_size: int = default("training", "batch_size")
    learning_rate: float = default("training", "learning_rate")
    weight_decay: float = default("training", "weight_decay")
    optimizer: str = default("training", "optimizer")
    schedule: str = default("training", "schedule")
    patience: int = default("training", "patience")
    seed: int = 0
    device: str = default("training", "device")
    memory_budget_mb: float = default("training", "memory_budget_mb")
    mixed_precision: str = default("training", "mixed_precision")
    channels_last: str = default("training", "channels_last")
    compile: bool = default("training", "compile")
    planing: tuple[str, ...] = default("training", "planing")
    planing_bins: int = default("training", "planing_bins")
    #: ``{from, exclude, freeze}``: start from another model's weights (:mod:`jetimage.transfer`)
    init: dict | None = None
    #: ``{freeze_epochs, lr_mult}``: fastai's two phases (``init`` needed); ``epochs`` is the second
    fine_tune: dict | None = None
    #: train on the train split's first jets only (learning curves); None: all
    max_train_jets: int | None = None

    @property
    def total_epochs(self) -> int:
        """Epochs of training: ``epochs``, after fine-tuning's frozen ones if any."""
        return self.epochs + (self.fine_tune["freeze_epochs"] if self.fine_tune else 0)

    def __post_init__(self) -> None:
        for name in ("learning_rate", "weight_decay", "memory_budget_mb"):
            if not math.isfinite(getattr(self, name)):
                msg = f"TrainConfig.{name} must be finite, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.fine_tune is not None and not self.init:
            msg = "TrainConfig.fine_tune needs init: fine-tuning starts from another model"
            raise ValueError(msg)
        if self.total_epochs == 0 and not self.init:
            msg = "TrainConfig.epochs 0 (the parent applied as it is) needs init"
            raise ValueError(msg)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """From a model's training settings (config), refusing unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            msg = f"unknown training option(s) {unknown}; known: {sorted(names)}"
            raise ValueError(msg)
        init, fine_tune = data.get("init"), data.get("fine_tune")
        return cls(
            **{
                **data,
                "planing": tuple(data.get("planing", ())),
                "init": None if init is None else {"exclude": [], "freeze": [], **init},
                "fine_tune": None if fine_tune is None else {**FINE_TUNE, **fine_tune},
            }
        )

    def digest(self) -> str:
        """A digest of every setting (a checkpoint is resumed only with the same)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def choose_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU for ``"auto"``; otherwise the named device, which must be
    there (a ``RuntimeError`` naming the setting otherwise)."""
    if name != "auto":
        check_device(name)
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _optimizer(config: TrainConfig, params):
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay
        )
    msg = f"unknown optimizer {config.optimizer!r}; known: adam, adamw, sgd"
    raise ValueError(msg)


def _scheduler(config: TrainConfig, optimizer, epoch: int = 0):
    """The learning-rate schedule of ``epoch`` on: with ``fine_tune``, fastai's one cycle of
    the phase the epoch is in (the frozen one at ``learning_rate``; then at half of it, spread
    over the layer groups by ``lr_mult``)."""
    n = len(optimizer.param_groups)
    if config.fine_tune:
        frozen_epochs = config.fine_tune["freeze_epochs"]
        if epoch < frozen_epochs:
            lrs = [config.learning_rate] * n
            return OneCycle(optimizer, lrs, epochs=frozen_epochs, pct_start=0.99)
        lrs = discriminative_rates(config.learning_rate / 2, config.fine_tune["lr_mult"], n)
        return OneCycle(
            optimizer, lrs, epochs=config.epochs, first=frozen_epochs, pct_start=0.3, div=5.0
        )
    if config.schedule == "one-cycle":
        return OneCycle(optimizer, [config.learning_rate] * n, epochs=config.epochs)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    msg = f"unknown schedule {config.schedule!r}; known: cosine, constant, one-cycle"
    raise ValueError(msg)


def check_device(name: str) -> None:
    """Raise, naming the ``device`` setting, if the named torch device is not on this node."""
    device = torch.device(name)
    where = f"the device setting {name!r} (training/device, or the model's own device)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda or "no CUDA"
            msg = (
                f"{where}: torch {torch.__version__} (built with {built}) sees "
                f"no CUDA device on this node; use device: auto or cpu, or run "
                f"the train job on a GPU node (gpu: true)"
            )
            raise RuntimeError(msg)
        if device.index is not None and device.index >= torch.cuda.device_count():
            msg = f"{where}: this node has {torch.cuda.device_count()} CUDA device(s)"
            raise RuntimeError(msg)
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if not (mps and mps.is_available()):
            msg = f"{where}: Apple MPS is not available on this node"
            raise RuntimeError(msg)


def _weighted_loss(
    logits: torch.Tensor, y: torch.Tensor, weights: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, summed weight) of a batch: the weighted mean cross-entropy with per-jet
    ``weights`` (planing; ``weights`` is the batch's tail, empty for none), the mean otherwise."""
    losses = nn.functional.cross_entropy(logits.float(), y, reduction="none")
    if not weights:
        return losses.mean(), torch.tensor(float(len(y)))
    w = weights[0].to(losses.device)
    return (losses * w).sum() / w.sum(), w.sum().cpu()


def _evaluate(model, data, device, autocast) -> tuple[float, float]:
    """(loss, weighted as in training; accuracy) of a split."""
    model.eval()
    total_loss, total_weight, correct = 0.0, 0.0, 0
    with torch.no_grad():
        for x, y, *w in data.batches(1024):
            x, y = [t.to(device) for t in loader.cut_padding(x)], y.to(device)
            with autocast():
                logits = model(*x)
            loss, weight = _weighted_loss(logits, y, w)
            total_loss += loss.item() * float(weight)
            total_weight += float(weight)
            correct += (logits.argmax(1) == y).sum().item()
    return total_loss / max(total_weight, 1e-12), correct / max(len(data), 1)


def _accelerations(config: TrainConfig, device: torch.device):
    """(autocast context factory, gradient scaler or None, channels_last) for the device.

    ``auto`` turns mixed precision (float16 with a gradient scaler) and the channels-last memory
    layout on for CUDA only; on the CPU they slow small CNNs down.
    """
    import contextlib

    cuda = device.type == "cuda"
    amp = config.mixed_precision == "on" or (config.mixed_precision == "auto" and cuda)
    channels_last = config.channels_last == "on" or (config.channels_last == "auto" and cuda)
    if not amp:
        return contextlib.nullcontext, None, channels_last
    return (
        lambda: torch.autocast(device.type, dtype=torch.float16 if cuda else torch.bfloat16),
        torch.amp.GradScaler(device.type) if cuda else None,
        channels_last,
    )


def _rng_state() -> dict:
    """Torch's global RNG (dropout draws from it); the shuffle has its own generator."""
    return {"torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])


@dataclass
class _Run:
    """Everything one training run changes, and what a checkpoint saves of it."""

    model: nn.Module
    step_model: Callable[
        [torch.Tensor], torch.Tensor
    ]  # the compiled model when ``config.compile``, else ``model``
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    generator: torch.Generator
    autocast: Callable
    channels_last: bool
    device: torch.device
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"loss": math.inf, "epoch": -1, "state": None})
    start_epoch: int = 0
    #: what ``init`` loaded, adapted, skipped and froze (empty without ``init``)
    init: dict = field(default_factory=dict)
    #: the fine-tuning phase the parameters are set for (0: not fine-tuning)
    phase: int = 0


def _initialise(model: nn.Module, config: TrainConfig, state: dict | None) -> dict:
    """Load the parent's weights (``state``) and freeze as ``config.init`` says; the report."""
    if config.init is None or state is None:
        return {}
    report = {"from": config.init["from"], **load_weights(model, state, config.init["exclude"])}
    if config.init["from"] == "imagenet":
        from jetimage.resnets import check_fit

        check_fit(config.architecture, report)
    report["frozen"] = freeze(model, config.init["freeze"])
    return report


def _start(
    config: TrainConfig,
    device: torch.device,
    in_shape: tuple[int, ...],
    n_classes: int,
    normalization: dict,
    parent: dict | None = None,
) -> _Run:
    """A fresh model (started from the ``parent`` weights when ``config.init``), optimizer,
    learning-rate schedule and shuffle generator on ``device``. A model that needs its inputs'
    physical values (ParT's pair features) is told the statistics they are standardised with
    (its ``standardized_with``)."""
    torch.manual_seed(config.seed)
    model = build_model(
        config.architecture, in_shape=in_shape, n_classes=n_classes, **config.options
    )
    init = _initialise(model, config, parent)
    told = getattr(model, "standardized_with", None)
    if callable(told):
        told(normalization)
    model = model.to(device)
    autocast, scaler, channels_last = _accelerations(config, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    named = dict(model.named_parameters())
    optimizer = _optimizer(
        config,
        [{"params": [named[n] for n in group]} for group in layer_groups(model)]
        if config.fine_tune
        else model.parameters(),
    )
    return _Run(
        model=model,
        step_model=torch.compile(model) if config.compile else model,
        optimizer=optimizer,
        scheduler=_scheduler(config, optimizer),
        scaler=scaler,
        generator=torch.Generator().manual_seed(config.seed),
        autocast=autocast,
        channels_last=channels_last,
        device=device,
        init=init,
    )


def _enter_phase(run: _Run, config: TrainConfig, epoch: int) -> None:
    """Set which parameters train, and the schedule, for fine-tuning's phase of ``epoch``:
    the first trains :func:`jetimage.transfer.head` only, the second every parameter; those
    ``init.freeze`` names never."""
    if not config.fine_tune:
        return
    phase = 1 if epoch < config.fine_tune["freeze_epochs"] else 2
    if phase == run.phase:
        return
    trained = head(run.model, run.init["loaded"] + run.init["adapted"]) if phase == 1 else None
    for name, parameter in run.model.named_parameters():
        parameter.requires_grad_(
            name not in run.init["frozen"] and (trained is None or name in trained)
        )
    run.scheduler = _scheduler(config, run.optimizer, epoch)
    run.phase = phase


def _resume(
    run: _Run, checkpoint_path: Path, digest: str, *, name: str, progress: Callable[[str], None]
) -> None:
    """Continue ``run`` from its checkpoint when one was made with the same settings and data
    (``digest``)."""
    if not checkpoint_path.exists():
        return
    # on the CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    if checkpoint.get("digest") != digest:
        progress(f"ignoring a checkpoint of {name} made with other settings or data")
        return
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    run.generator.set_state(checkpoint["generator"])
    if run.scaler is not None and checkpoint.get("scaler"):
        run.scaler.load_state_dict(checkpoint["scaler"])
    _set_rng_state(checkpoint["rng"])
    run.history, run.best = checkpoint["history"], checkpoint["best"]
    run.start_epoch = checkpoint["epoch"] + 1
    progress(f"resuming {name} from its checkpoint after epoch {run.start_epoch}")


def _train_epoch(
    run: _Run, train, batch_size: int, description: str, epoch: int
) -> tuple[float, float, int]:
    """One pass over the train split: (mean loss, accuracy, jets seen); a one-cycle schedule
    sets the learning rates before each batch."""
    run.model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(
        total=len(train), desc=description, unit="jet", leave=False, disable=not sys.stderr.isatty()
    )
    for x, y, *w in train.batches(batch_size, run.generator):
        if isinstance(run.scheduler, OneCycle):
            run.scheduler.at(epoch + seen / len(train))
        loss, logits, y = step(run, x, y, w)
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        bar.update(len(y))
    bar.close()
    return total_loss / seen, correct / seen, seen


def step(run: _Run, x, y: torch.Tensor, w: list[torch.Tensor]):
    """One optimisation step on a batch (``x``, labels ``y``, planing weights ``w``) on the
    run's device, with its mixed precision and memory layout: (loss, logits, ``y`` there)."""
    x, y = [t.to(run.device) for t in loader.cut_padding(x)], y.to(run.device)
    if run.channels_last:
        x = [t.contiguous(memory_format=torch.channels_last) for t in x]
    run.optimizer.zero_grad(set_to_none=True)
    with run.autocast():
        logits = run.step_model(*x)
        loss, _ = _weighted_loss(logits, y, w)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    return loss, logits, y


def _epoch(
    run: _Run,
    epoch: int,
    train,
    val,
    config: TrainConfig,
    *,
    name: str,
    progress: Callable[[str], None],
) -> None:
    """Train one epoch, score the val split, keep the best state and log the epoch."""
    tic = time.perf_counter()
    train_loss, train_acc, seen = _train_epoch(
        run, train, config.batch_size, f"{name} epoch {epoch + 1}/{config.total_epochs}", epoch
    )
    lr = run.optimizer.param_groups[-1]["lr"]  # the last layers' (fine-tuning spreads them)
    run.scheduler.step()
    seconds = time.perf_counter() - tic
    val_loss, val_acc = _evaluate(run.step_model, val, run.device, run.autocast)
    run.history.append(
        {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "learning_rate": lr,
            "seconds": seconds,
            "jets_per_second": seen / seconds,
            **({"phase": run.phase} if run.phase else {}),
        }
    )
    if val_loss < run.best["loss"]:
        run.best = {"loss": val_loss, "epoch": epoch, "state": _cpu_state(run.model)}
    progress(
        f"epoch {epoch + 1}/{config.total_epochs}: train loss {train_loss:.4f} "
        f"acc {train_acc:.3f} | val loss {val_loss:.4f} acc {val_acc:.3f}"
        f" | lr {lr:.2e} | {seconds:.1f} s, {seen / seconds:.0f} jets/s"
    )


def _open_splits(
    dataset_path,
    root,
    config: TrainConfig,
    n_classes: int,
    progress: Callable[[str], None],
    normalization: dict | None = None,
):
    """The train and val splits as loaders (in memory or streamed, with planing weights when
    asked, standardised with ``normalization``, the dataset's by default); an InputError if
    either is empty."""
    n = root["train/labels"].shape[0]
    if config.max_train_jets is not None and config.max_train_jets > n:
        msg = (
            f"{dataset_path}: max_train_jets {config.max_train_jets} is more than the train "
            f"split's {n} jets"
        )
        raise InputError(msg)
    with naming(dataset_path):  # a missing planing variable names the dataset
        weights = _planing_weights(root, config, n_classes, progress)
    train, val = (
        loader.open_split(
            dataset_path,
            split,
            memory_budget_mb=config.memory_budget_mb,
            weights=weights.get(split),
            inputs=INPUTS[config.architecture],
            normalization=normalization,
            first=config.max_train_jets if split == "train" else None,
        )
        for split in ("train", "val")
    )
    if len(train) == 0 or len(val) == 0:
        msg = (
            f"{dataset_path}: the train and val splits must not be empty "
            f"(train {len(train)}, val {len(val)})"
        )
        raise InputError(msg)
    return train, val


def _describe(run: _Run, config: TrainConfig, *, name: str, train, val, in_shape) -> str:
    """One line saying what is trained on what, and how."""
    return (
        f"training {name} ({config.architecture}, {count_parameters(run.model)} "
        f"parameters) on {run.device} with {len(train)} train / {len(val)} val jets' "
        f"{INPUTS[config.architecture]} of {in_shape}"
        f"{' streamed from Zarr' if train.streaming else ''}"
        f"{', mixed precision' if run.autocast is not contextlib.nullcontext else ''}"
        f"{', channels-last' if run.channels_last else ''}"
        f"{', compiled' if config.compile else ''}"
        f"{', fine-tuned in two phases' if config.fine_tune else ''}"
    )


def _describe_init(init: dict, normalization: str) -> list[str]:
    """Lines saying what a model started from: every tensor loaded, adapted, skipped (and
    why) and frozen, and whose input standardisation it keeps."""
    lines = [
        (
            f"started from {init['from']}: {len(init['loaded'])} tensors loaded, "
            f"{len(init['adapted'])} adapted to the channels, {len(init['skipped'])} not "
            f"loaded, {len(init['frozen'])} frozen; standardised with {normalization} statistics"
        ),
        f"loaded: {', '.join(init['loaded']) or 'none'}",
    ]
    lines += [f"adapted (fastai's rule for the channels): {n}" for n in init["adapted"]]
    lines += [f"not loaded: {n} ({why})" for n, why in init["skipped"].items()]
    lines += [f"frozen: {n}" for n in init["frozen"]]
    if init["unused"]:
        lines.append(f"the parent's tensors with no place here: {', '.join(init['unused'])}")
    return lines


def prepare(
    dataset_path,
    root,
    config: TrainConfig,
    device: torch.device,
    *,
    parent: str | os.PathLike | None,
    progress: Callable[[str], None],
):
    """What a training (or the learning-rate finder) starts from: (the run, started from the
    parent's weights if ``config.init``, with what it loaded logged; the train and val
    loaders; the input standardisation, the parent's where it fits; a digest of the parent)."""
    state, info, parent_digest = _parent(config, parent)
    inputs = INPUTS[config.architecture]
    normalization, whose = kept_normalization(
        info, inputs, loader.normalization_of(root.attrs, inputs)
    )
    classes = len(root.attrs["classes"])
    train, val = _open_splits(dataset_path, root, config, classes, progress, normalization)
    in_shape = input_shape(root, config.architecture)
    run = _start(config, device, in_shape, classes, normalization, state)
    if run.init:
        run.init["normalization"] = whose
        for line in _describe_init(run.init, whose):
            progress(line)
    return run, train, val, normalization, parent_digest


def _parent(config: TrainConfig, parent: str | os.PathLike | None):
    """(weights, model.pt info or None, a digest of the file) of ``config.init``'s parent:
    ``parent`` (the path of its ``model.pt``, or ``"imagenet"``), ``init.from`` by default."""
    if config.init is None:
        return None, None, ""
    source = os.fspath(parent or config.init["from"])
    if source != "imagenet" and not Path(source).is_file():
        msg = f"init from {config.init['from']!r}: no model.pt at {source}"
        raise InputError(msg)
    state, info = parent_state(source, config.architecture)
    digest = source if info is None else hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return state, info, digest


def train_model(
    dataset_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    name: str,
    progress: Callable[[str], None] = log.info,
    max_epochs_this_run: int | None = None,
    parent: str | os.PathLike | None = None,
) -> list[dict]:
    """Train ``config`` on a dataset store; write ``model.pt``, ``model.onnx``, ``history.json``.
    With ``config.planing``, each jet's loss is weighted by :mod:`jetimage.planing`; the
    ``fisher`` architecture is fitted in closed form instead of epochs.

    Args:
        dataset_path: the dataset Zarr store.
        out_dir: the model's folder; ``checkpoint.pt`` lives there between runs.
        config: the model and its training settings.
        name: the model's name in the config (recorded in ``model.pt``).
        progress: receives one line per epoch.
        max_epochs_this_run: stop after this many epochs without writing the final outputs
            (tests use it to simulate a killed job).
        parent: with ``config.init``, the parent's ``model.pt`` (or ``"imagenet"``); its
            ``from`` by default.

    Returns:
        The per-epoch history.
    """
    device = choose_device(config.device)  # before any data is read (may be another node)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = zarr_store.open_store(dataset_path)
    if config.architecture in CLOSED_FORM:
        return _fit_closed_form(dataset_path, out_dir, config, name=name, progress=progress)
    run, train, val, normalization, parent_digest = prepare(
        dataset_path, root, config, device, parent=parent, progress=progress
    )
    in_shape = input_shape(root, config.architecture)
    checkpoint_path = out_dir / "checkpoint.pt"
    digest = config.digest() + ":" + _dataset_digest(root) + ":" + parent_digest
    _resume(run, checkpoint_path, digest, name=name, progress=progress)
    progress(_describe(run, config, name=name, train=train, val=val, in_shape=in_shape))
    for epochs_run, epoch in enumerate(range(run.start_epoch, config.total_epochs)):
        if run.best["epoch"] >= 0 and epoch - run.best["epoch"] > config.patience:
            progress(f"early stopping: no val-loss improvement for {config.patience} epochs")
            break
        if max_epochs_this_run is not None and epochs_run >= max_epochs_this_run:
            return run.history
        _enter_phase(run, config, epoch)
        _epoch(run, epoch, train, val, config, name=name, progress=progress)
        _save_checkpoint(checkpoint_path, run, epoch, digest)

    if run.best["state"] is None:  # epochs 0: the parent as it is, scored on the val split
        _keep_as_is(run, val, progress)
    run.model.load_state_dict(run.best["state"])
    _finish(
        run.model,
        out_dir,
        root,
        config,
        name=name,
        history=run.history,
        best_epoch=run.best["epoch"] + 1,
        example=next(val.batches(256))[0],
        progress=progress,
        normalization=normalization,
        init=run.init,
    )
    return run.history


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights on the CPU (the best state kept between epochs)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _keep_as_is(run: _Run, val, progress: Callable[[str], None]) -> None:
    """Keep the model as its parent made it (no epoch), with its val loss on record."""
    val_loss, val_acc = _evaluate(run.model, val, run.device, run.autocast)
    run.best = {"loss": val_loss, "epoch": -1, "state": _cpu_state(run.model)}
    run.init["as_is"] = {"val_loss": val_loss, "val_accuracy": val_acc}
    progress(f"the parent as it is (no epoch): val loss {val_loss:.4f} acc {val_acc:.3f}")


def _finish(
    model: nn.Module,
    out_dir: Path,
    root,
    config: TrainConfig,
    *,
    name: str,
    history: list[dict],
    best_epoch: int,
    example,
    progress: Callable[[str], None],
    normalization: dict | None = None,
    init: dict | None = None,
) -> None:
    """Write ``model.pt`` (weights and everything to rebuild the model, with the input
    ``normalization``, the dataset's by default), ``model.onnx`` (checked against torch on
    ``example``, a batch's ``x``) and ``history.json`` (with the training jets per class and
    what ``init`` loaded, if any)."""
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    inputs = INPUTS[config.architecture]
    labels = root["train/labels"][: config.max_train_jets]
    train_counts = np.bincount(labels, minlength=len(root.attrs["classes"]))
    info = {
        "name": name,
        "architecture": config.architecture,
        "options": config.options,
        "inputs": inputs,
        "in_shape": list(input_shape(root, config.architecture)),
        "classes": list(root.attrs["classes"]),
        "normalization": normalization or loader.normalization_of(root.attrs, inputs),
        "image_spec": dict(root.attrs["image_spec"]),
        **({"particles": dict(root.attrs["particles"])} if inputs == "particles" else {}),
        "best_epoch": best_epoch,
        "config": dataclasses.asdict(config),
    }
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "info": info}, tmp)
    diff = export_model(model, out_dir / "model.onnx", loader.as_inputs(example), TENSORS[inputs])
    progress(
        f"exported to {out_dir / 'model.onnx'} (ONNX opset {ONNX_OPSET}, max deviation "
        f"from torch {diff:.1e})"
    )
    with atomic_path(out_dir / "history.json") as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "model": name,
                    "best_epoch": best_epoch,
                    "train_jets": {c: int(n) for c, n in zip(root.attrs["classes"], train_counts)},
                    **({"init": init} if init else {}),
                    "epochs": history,
                },
                indent=2,
            )
        )


def _planing_weights(
    root, config: TrainConfig, n_classes: int, progress: Callable[[str], None]
) -> dict[str, np.ndarray]:
    """Per-jet weights of the train and val splits when the model is planed (none if not)."""
    if not config.planing:
        return {}
    from jetimage.planing import Planing, split_weights

    planing = Planing.fit(
        zarr_store.read_table(root["train"]),
        root["train/labels"][...],
        config.planing,
        n_classes=n_classes,
        bins=config.planing_bins,
    )
    weights = split_weights(planing, root)
    progress(
        f"planing in {list(config.planing)} ({config.planing_bins} bins each): train "
        f"weights from {weights['train'].min():.3g} to {weights['train'].max():.3g}"
    )
    return weights


def _fit_closed_form(
    dataset_path, out_dir: Path, config: TrainConfig, *, name: str, progress: Callable[[str], None]
) -> list[dict]:
    """Fit Fisher's linear discriminant (:func:`jetimage.interpret.fit_fisher`) into the
    registry's ``fisher`` model and write the same outputs as a trained model."""
    from jetimage.interpret import fit_fisher

    root = zarr_store.open_store(dataset_path)
    in_shape = input_shape(root, config.architecture)
    model = build_model(
        config.architecture,
        in_shape=in_shape,
        n_classes=len(root.attrs["classes"]),
        **config.options,
    )
    tic = time.perf_counter()
    fit = fit_fisher(dataset_path, memory_budget_mb=config.memory_budget_mb)
    linear = output_layer(model)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(fit["weight"]))
        linear.bias.copy_(torch.from_numpy(fit["bias"]))
    seconds = time.perf_counter() - tic
    record = {
        "epoch": 1,
        "train_loss": fit["train_loss"],
        "train_accuracy": fit["train_accuracy"],
        "val_loss": fit["val_loss"],
        "val_accuracy": fit["val_accuracy"],
        "learning_rate": 0.0,
        "seconds": seconds,
        "jets_per_second": fit["n_train"] / seconds,
        "shrinkage": fit["shrinkage"],
    }
    progress(
        f"fisher discriminant of {name} fitted in closed form on {fit['n_train']} train "
        f"images in {seconds:.1f} s: shrinkage {fit['shrinkage']:g} (chosen on val), val "
        f"loss {fit['val_loss']:.4f} acc {fit['val_accuracy']:.3f}"
    )
    example = next(
        loader.open_split(dataset_path, "val", memory_budget_mb=config.memory_budget_mb).batches(
            256
        )
    )[0]
    _finish(
        model,
        out_dir,
        root,
        config,
        name=name,
        history=[record],
        best_epoch=1,
        example=example,
        progress=progress,
    )
    return [record]


def input_shape(root, architecture: str) -> tuple[int, ...]:
    """One jet's input of ``architecture`` in a dataset: (channels, η, φ) of its images or
    (particles, features) of its particle view; an InputError if the dataset has none."""
    inputs = INPUTS[architecture]
    name = loader.ARRAYS[inputs][0]
    if f"train/{name}" not in root:
        msg = (
            f"{architecture} takes the jets' {inputs}, which this dataset does not hold "
            f"(its per-file stores were written without them)"
        )
        raise InputError(msg)
    return tuple(int(s) for s in root[f"train/{name}"].shape[1:])


def _dataset_digest(root) -> str:
    return hashlib.sha256(
        json.dumps(
            {
                k: root.attrs.get(k)
                for k in ("splits", "seed", "image_spec", "particles", "sources")
            },
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()


def _save_checkpoint(path: Path, run: _Run, epoch: int, digest: str) -> None:
    """Save everything :func:`_resume` needs to continue after ``epoch``, atomically."""
    with atomic_path(path) as tmp:
        torch.save(
            {
                "model": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "generator": run.generator.get_state(),
                "scaler": run.scaler.state_dict() if run.scaler is not None else None,
                "rng": _rng_state(),
                "history": run.history,
                "best": run.best,
                "epoch": epoch,
                "digest": digest,
            },
            tmp,
        )
