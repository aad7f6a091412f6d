"""The learning-rate finder of a configured model (fastai's ``lr_find``) on its dataset.

A short run over exponentially growing learning rates on the train split, from the model as
its training would start it (its parent's weights, and fine-tuning's frozen body, if it has
them); the loss against the rate as a figure and the suggested rates in JSON. Nothing it
trains is kept.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from jetimage import zarr_store
from jetimage.files import atomic_path
from jetimage.train import TrainConfig, _enter_phase, choose_device, prepare, step
from jetimage.transfer import lr_find

log = logging.getLogger(__name__)


def _batches(train, batch_size: int, generator: torch.Generator):
    """The train split's shuffled batches, epoch after epoch."""
    while True:
        yield from train.batches(batch_size, generator)


def find_learning_rate(
    dataset_path: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig,
    *,
    name: str,
    parent: str | os.PathLike | None = None,
    iterations: int = 100,
    progress: Callable[[str], None] = log.info,
) -> dict:
    """Run :func:`jetimage.transfer.lr_find` on a model of ``config``; write ``out`` (JSON:
    rates, smoothed losses, suggestions) and the figure beside it (.png, .pdf)."""
    root = zarr_store.open_store(dataset_path)
    device = choose_device(config.device)
    run, train, *_ = prepare(dataset_path, root, config, device, parent=parent, progress=progress)
    _enter_phase(run, config, 0)  # fine-tuning's frozen body, as training starts
    run.model.train()
    batches = _batches(train, config.batch_size, run.generator)

    def step_at(lr: float) -> float:
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        x, y, *w = next(batches)
        return step(run, x, y, w)[0].item()

    found = lr_find(step_at, iterations=iterations)
    progress(
        f"learning-rate finder of {name}: {len(found['lrs'])} batches, suggested "
        f"{found['suggestion']:.2e} (valley), minimum loss at {found['minimum']:.2e}"
    )
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"model": name, **found}, indent=2))
    from jetimage.plots import lr_find_figure, save

    save(lr_find_figure(found, title=name), out.with_suffix(".png"))
    return found
