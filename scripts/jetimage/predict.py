"""Scoring new jet files with a trained, exported model.

The exported ONNX model (``model.onnx``, run by onnxruntime) scores images made with the image
spec and normalisation the model was trained with (both recorded in ``model.pt``), so any file
the readers accept can be scored without the dataset or the config.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from jetimage import io
from jetimage.loader import normalize
from jetimage.pixelate import ImageSpec, make_images, normalize_images
from jetimage.train import onnx_session


def load_exported(model_pt: str | os.PathLike, exported: str | os.PathLike):
    """(onnxruntime session, model info) of a trained model."""
    info = torch.load(model_pt, map_location="cpu", weights_only=False)["info"]
    return onnx_session(exported), info


def score_batches(batches: Iterable[io.Jets | io.ImageBatch], session, info: dict, *,
                  source: str, batch_size: int = 1024) -> pd.DataFrame:
    """One row per jet: ``source_file``, ``entry`` (row in the file), the truth ``label`` and
    ``class_name`` when the file was read with labels, a ``score_<class>`` column per class
    (softmax), and the jet features. Jets are pixelated with the image spec the model was
    trained with; pre-pixelated images are normalised as in training."""
    spec = info["image_spec"]
    frames = []
    for batch in batches:
        if isinstance(batch, io.ImageBatch):
            images = normalize_images(batch.images, spec.get("normalize", "none"))
        else:
            images = make_images(batch.constituents, ImageSpec.from_dict(spec))
        scores = []
        for start in range(0, len(images), batch_size):
            x = normalize(images[start:start + batch_size], info["normalization"]).numpy()
            logits = session.run(None, {"images": x})[0]
            scores.append(torch.softmax(torch.from_numpy(logits), dim=1).numpy())
        table = {k: v for k, v in batch.table.items() if k != "label"}
        frame = scores_frame(np.full(len(images), source), table, np.concatenate(scores),
                             info["classes"])
        if "label" in batch.table:
            frame.insert(2, "label", batch.table["label"])
            frame.insert(3, "class_name", np.asarray(info["classes"])[batch.table["label"]])
        frames.append(frame)
    if not frames:
        raise io.InputError(f"{source}: no jet to score")
    return pd.concat(frames, ignore_index=True)


def scores_frame(source_file: np.ndarray, table: dict[str, np.ndarray],
                 probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per-jet scores keyed by (``source_file``, ``entry``) so they join back to the input:
    those keys, a ``score_<class>`` column per class, then the jet features as ``jet_*``."""
    frame = pd.DataFrame({"source_file": source_file, "entry": table["entry"]})
    for i, name in enumerate(classes):
        frame[f"score_{name}"] = probabilities[:, i]
    for column, values in table.items():
        if column != "entry":
            frame[f"jet_{column}"] = values
    return frame

