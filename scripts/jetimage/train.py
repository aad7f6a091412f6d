"""Training of registry models on a dataset store, resumable and exportable.

The train and val splits are loaded into memory and normalised with the dataset's per-channel
statistics. Each epoch ends with a checkpoint (model, optimiser, scheduler, RNG states, history,
best weights); a restarted run with the same settings resumes from it. The best model (lowest
validation loss) is saved as ``model.pt`` (weights + everything needed to rebuild it) and
exported with ``torch.export`` (``model.pt2``), checked against the torch outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jetimage import dataset as ds
from jetimage import io
from jetimage.models import build_model, count_parameters

log = logging.getLogger(__name__)

EXPORT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class TrainConfig:
    """One model's training settings (the ``models:`` entry merged over ``training:``)."""

    architecture: str
    options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "cosine"
    patience: int = 5
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()


def choose_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU for ``"auto"``; otherwise the named device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def normalize(images: np.ndarray, normalization: dict) -> torch.Tensor:
    """(x - mean) / std per channel, with the dataset's train-split statistics."""
    mean = np.asarray(normalization["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(normalization["std"], dtype=np.float32)[None, :, None, None]
    return torch.from_numpy((images - mean) / std)


def _optimizer(config: TrainConfig, params):
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=0.9,
                               weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; known: adam, adamw, sgd")


def _scheduler(config: TrainConfig, optimizer):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    raise ValueError(f"unknown schedule {config.schedule!r}; known: cosine, constant")


def _evaluate(model, images, labels, device, batch_size, loss_fn) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            logits = model(x)
            total_loss += loss_fn(logits, y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
    n = max(len(images), 1)
    return total_loss / n, correct / n


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])


def train_model(
    dataset_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    name: str,
    progress: Callable[[str], None] = log.info,
    max_epochs_this_run: int | None = None,
) -> list[dict]:
    """Train ``config`` on a dataset store; write ``model.pt``, ``model.pt2``, ``history.json``.

    Args:
        dataset_path: the dataset Zarr store.
        out_dir: the model's folder; ``checkpoint.pt`` lives there between runs.
        config: the model and its training settings.
        name: the model's name in the config (recorded in ``model.pt``).
        progress: receives one line per epoch.
        max_epochs_this_run: stop after this many epochs without writing the final outputs
            (tests use it to simulate a killed job).

    Returns:
        The per-epoch history.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = ds.store.open_store(dataset_path)
    classes = list(root.attrs["classes"])
    normalization = dict(root.attrs["normalization"])
    x_train, y_train, _ = ds.load_split(dataset_path, "train")
    x_val, y_val, _ = ds.load_split(dataset_path, "val")
    if len(x_train) == 0 or len(x_val) == 0:
        raise io.InputError(f"{dataset_path}: the train and val splits must not be empty "
                            f"(train {len(x_train)}, val {len(x_val)})")
    in_shape = tuple(int(s) for s in x_train.shape[1:])
    x_train, x_val = normalize(x_train, normalization), normalize(x_val, normalization)
    y_train, y_val = torch.from_numpy(y_train), torch.from_numpy(y_val)

    device = choose_device(config.device)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    model = build_model(config.architecture, in_shape=in_shape, n_classes=len(classes),
                        **config.options).to(device)
    optimizer = _optimizer(config, model.parameters())
    scheduler = _scheduler(config, optimizer)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)

    history: list[dict] = []
    best = {"loss": math.inf, "epoch": -1, "state": None}
    start_epoch = 0
    checkpoint_path = out_dir / "checkpoint.pt"
    digest = config.digest() + ":" + _dataset_digest(root)
    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if checkpoint.get("digest") == digest:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            generator.set_state(checkpoint["generator"])
            _set_rng_state(checkpoint["rng"])
            history, best = checkpoint["history"], checkpoint["best"]
            start_epoch = checkpoint["epoch"] + 1
            progress(f"resuming {name} from its checkpoint after epoch {start_epoch}")
        else:
            progress(f"ignoring a checkpoint of {name} made with other settings or data")

    progress(f"training {name} ({config.architecture}, {count_parameters(model)} parameters) "
             f"on {device} with {len(x_train)} train / {len(x_val)} val images of {in_shape}")
    epochs_run = 0
    for epoch in range(start_epoch, config.epochs):
        if best["epoch"] >= 0 and epoch - best["epoch"] > config.patience:
            progress(f"early stopping: no val-loss improvement for {config.patience} epochs")
            break
        if max_epochs_this_run is not None and epochs_run >= max_epochs_this_run:
            return history
        tic = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total_loss, correct = 0.0, 0
        for begin in range(0, len(order), config.batch_size):
            idx = order[begin:begin + config.batch_size]
            x, y = x_train[idx].to(device), y_train[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        seconds = time.perf_counter() - tic
        val_loss, val_acc = _evaluate(model, x_val, y_val, device, 1024, loss_fn)
        record = {"epoch": epoch + 1, "train_loss": total_loss / len(order),
                  "train_accuracy": correct / len(order), "val_loss": val_loss,
                  "val_accuracy": val_acc, "learning_rate": lr, "seconds": seconds,
                  "images_per_second": len(order) / seconds}
        history.append(record)
        if val_loss < best["loss"]:
            best = {"loss": val_loss, "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        progress(f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f} "
                 f"acc {record['train_accuracy']:.3f} | val loss {val_loss:.4f} acc {val_acc:.3f}"
                 f" | lr {lr:.2e} | {seconds:.1f} s, {record['images_per_second']:.0f} img/s")
        _save_checkpoint(checkpoint_path, model, optimizer, scheduler, generator,
                         history, best, epoch, digest)
        epochs_run += 1

    model.load_state_dict(best["state"])
    model.to("cpu").eval()
    info = {"name": name, "architecture": config.architecture, "options": config.options,
            "in_shape": list(in_shape), "classes": classes, "normalization": normalization,
            "image_spec": dict(root.attrs["image_spec"]), "best_epoch": best["epoch"] + 1,
            "config": dataclasses.asdict(config)}
    with io.atomic_path(out_dir / "model.pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "info": info}, tmp)
    diff = export_model(model, out_dir / "model.pt2", x_val[:256])
    progress(f"exported to {out_dir / 'model.pt2'} (max deviation from torch {diff:.1e})")
    with io.atomic_path(out_dir / "history.json") as tmp:
        tmp.write_text(json.dumps({"model": name, "best_epoch": best["epoch"] + 1,
                                   "epochs": history}, indent=2))
    return history


def _dataset_digest(root) -> str:
    return hashlib.sha256(json.dumps(
        {k: root.attrs[k] for k in ("splits", "seed", "image_spec", "sources")},
        sort_keys=True, default=str).encode()).hexdigest()


def _save_checkpoint(path, model, optimizer, scheduler, generator, history, best, epoch, digest):
    with io.atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                    "rng": _rng_state(), "history": history, "best": best, "epoch": epoch,
                    "digest": digest}, tmp)


def export_model(model: nn.Module, path: str | os.PathLike, example: torch.Tensor) -> float:
    """Export ``model`` with ``torch.export`` (dynamic batch size) and check that the saved
    program reproduces the torch outputs.

    The file loads without jetimage: ``torch.export.load(path).module()(images)``.

    Returns:
        The largest absolute difference on ``example``.

    Raises:
        RuntimeError: the exported model differs by more than :data:`EXPORT_TOLERANCE`.
    """
    model = model.to("cpu").eval()
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        expected = model(example)
    with io.atomic_path(path) as tmp:
        torch.export.save(program, str(tmp))
        reloaded = torch.export.load(str(tmp)).module()
        with torch.no_grad():
            diff = (reloaded(example) - expected).abs().max().item()
        if diff > EXPORT_TOLERANCE:
            raise RuntimeError(f"exported model differs from torch by {diff:.2e} "
                               f"(> {EXPORT_TOLERANCE})")
    return diff


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a trained model from ``model.pt`` alone (no config needed)."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    info = saved["info"]
    model = build_model(info["architecture"], in_shape=tuple(info["in_shape"]),
                        n_classes=len(info["classes"]), **info["options"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), info


def predict_scores(model: nn.Module, images: np.ndarray, normalization: dict, *,
                   batch_size: int = 1024, device: str = "cpu") -> np.ndarray:
    """Class probabilities (softmax) for raw images."""
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = normalize(images[start:start + batch_size], normalization).to(device)
            out.append(torch.softmax(model(x), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
