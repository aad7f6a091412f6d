"""Scoring new jet files with a trained, exported model.

The exported ONNX model (``model.onnx``, run by onnxruntime) scores the view of each jet the
model takes, made as it was in training (images with the image spec and normalisation, or the
particle view with its number of particles and standardisation, all recorded in
``model.pt``), so any file the readers accept can be scored without the dataset or the
config.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from jetimage.batches import Counts, ImageBatch, Jets
from jetimage.files import InputError
from jetimage.inference import onnx_scores, scores_frame
from jetimage.particles import identity_fields, particle_view
from jetimage.pixelate import ImageSpec, flatten_constituents, make_images, normalize_images


def model_input(
    batch: Jets | ImageBatch, info: dict, *, source: str, images: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """The raw arrays of the view a saved model takes (``info``) of a batch of jets
    (``images``: the batch's images with the model's image spec, if already made)."""
    spec = info["image_spec"]
    if info.get("inputs", "images") == "particles":
        if isinstance(batch, ImageBatch):
            msg = f"{source}: {info['architecture']} takes particles; the file holds images only"
            raise InputError(msg)
        flat = flatten_constituents(batch.constituents, identities=True)
        missing = set(info["particles"]["identities"]) - set(identity_fields(flat))
        if missing and info["options"].get("identities", True):
            msg = (
                f"{source}: {info['name']} was trained on particles with "
                f"{sorted(info['particles']['identities'])}, and this file's constituents "
                f"have no {sorted(missing)}; score it with a model trained with the option "
                f"identities: false"
            )
            raise InputError(msg)
        return particle_view(flat, info["particles"]["max"])
    if isinstance(batch, ImageBatch):
        return (normalize_images(batch.images, spec.get("normalize", "none")),)
    if images is None:
        images = make_images(batch.constituents, ImageSpec.from_dict(spec))
    return (images,)


def _without_empty_images(batch: Jets, info: dict, counts: Counts):
    """The batch without the jets whose image (the model's image spec) is empty, which the
    images stage drops from every view, so no model was trained on them; their count goes
    to ``counts`` (``empty_image``). Returns the batch and its images."""
    images = make_images(batch.constituents, ImageSpec.from_dict(info["image_spec"]))
    empty = ~np.any(images, axis=(1, 2, 3))
    if not np.any(empty):
        return batch, images
    counts.drop("empty_image", int(np.sum(empty)))
    return batch[~empty], images[~empty]


def score_batches(
    batches: Iterable[Jets | ImageBatch],
    session,
    info: dict,
    *,
    source: str,
    batch_size: int = 1024,
    labelled: bool = True,
    counts: Counts | None = None,
) -> pd.DataFrame:
    """One row per jet: ``source_file``, ``entry`` (row in the file), the truth ``label`` and
    ``class_name`` when the file was read with labels (``labelled``: a file read without
    them claims none), a ``score_<class>`` column per class (softmax), and the jet features.
    Each jet's view is made as the model was trained on it (recorded in ``info``): pixelated
    with its image spec (pre-pixelated images normalised as in training), or its particle
    view with the same number of particles. A jet whose image is empty is not scored (no
    row; counted in ``counts`` as ``empty_image``): the images stage drops it from every
    view, so no model saw one like it."""
    counts = counts if counts is not None else Counts()
    frames = []
    for batch in batches:
        images = None
        if isinstance(batch, Jets):
            batch, images = _without_empty_images(batch, info, counts)
            if not len(batch):
                continue
        arrays = model_input(batch, info, source=source, images=images)
        scores = onnx_scores(
            session,
            arrays,
            info["normalization"],
            inputs=info.get("inputs", "images"),
            batch_size=batch_size,
        )
        table = {k: v for k, v in batch.table.items() if k != "label"}
        frame = scores_frame(np.full(len(batch), source), table, scores, info["classes"])
        if labelled and "label" in batch.table:
            frame.insert(2, "label", batch.table["label"])
            frame.insert(3, "class_name", np.asarray(info["classes"])[batch.table["label"]])
        frames.append(frame)
    if not frames:
        msg = f"{source}: no jet to score"
        raise InputError(msg)
    return pd.concat(frames, ignore_index=True)
