"""Scoring new jet files with a trained, exported model.

The exported ONNX model (``model.onnx``, run by onnxruntime) scores images made with the image
spec and normalisation the model was trained with (both recorded in ``model.pt``), so any file
the readers accept can be scored without the dataset or the config.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from jetimage.batches import ImageBatch, Jets
from jetimage.files import InputError
from jetimage.inference import onnx_scores, scores_frame
from jetimage.pixelate import ImageSpec, make_images, normalize_images


def score_batches(
    batches: Iterable[Jets | ImageBatch],
    session,
    info: dict,
    *,
    source: str,
    batch_size: int = 1024,
) -> pd.DataFrame:
    """One row per jet: ``source_file``, ``entry`` (row in the file), the truth ``label`` and
    ``class_name`` when the file was read with labels, a ``score_<class>`` column per class
    (softmax), and the jet features. Jets are pixelated with the image spec the model was
    trained with; pre-pixelated images are normalised as in training."""
    spec = info["image_spec"]
    frames = []
    for batch in batches:
        if isinstance(batch, ImageBatch):
            images = normalize_images(batch.images, spec.get("normalize", "none"))
        else:
            images = make_images(batch.constituents, ImageSpec.from_dict(spec))
        scores = onnx_scores(session, images, info["normalization"], batch_size=batch_size)
        table = {k: v for k, v in batch.table.items() if k != "label"}
        frame = scores_frame(np.full(len(images), source), table, scores, info["classes"])
        if "label" in batch.table:
            frame.insert(2, "label", batch.table["label"])
            frame.insert(3, "class_name", np.asarray(info["classes"])[batch.table["label"]])
        frames.append(frame)
    if not frames:
        msg = f"{source}: no jet to score"
        raise InputError(msg)
    return pd.concat(frames, ignore_index=True)
