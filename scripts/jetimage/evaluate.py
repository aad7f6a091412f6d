"""Scoring a dataset split in bounded memory: a trained model's class probabilities, one group
of Zarr chunks at a time.

Only per-jet numbers (scores, labels, the jet table) are held for the whole split, so memory
does not grow with the split's images (see also :func:`jetimage.dataset.class_mean_images` and
:func:`jetimage.dataset.images_at`).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from jetimage import loader, store


def score_split(model: nn.Module, path: str | os.PathLike, split: str, normalization: dict, *,
                batch_size: int = 1024, device: str = "cpu"
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Class probabilities (softmax), labels and jet table of one split, in the store's order;
    the images are streamed (decoded on every core while the model runs)."""
    group = store.open_store(path)[split]
    stream = loader.ZarrStream(group, normalization)
    model = model.to(device).eval()
    scores = []
    with torch.no_grad():
        for x, _ in stream.batches(batch_size):
            scores.append(torch.softmax(model(x.to(device)), dim=1).cpu().numpy())
    probabilities = np.concatenate(scores) if scores else np.zeros((0, 0), np.float32)
    return probabilities, stream.labels, store.read_table(group)


def score_saved_model(model_path: str | os.PathLike, path: str | os.PathLike, split: str
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict]:
    """(probabilities, labels, jet table, model info) of a saved model on one split: an image
    model (:func:`score_split`, streamed) or a baseline on the jets' table
    (:mod:`jetimage.baselines`, no image read)."""
    saved = torch.load(model_path, map_location="cpu", weights_only=False)
    info = saved["info"]
    if info.get("inputs") == "features":
        group = store.open_store(path)[split]
        table = store.read_table(group)
        return saved["tagger"].probabilities(table), group["labels"][...], table, info
    from jetimage.train import load_model

    model, info = load_model(model_path)
    return (*score_split(model, path, split, info["normalization"]), info)
