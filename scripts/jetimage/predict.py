"""Scoring new jet files with a trained, exported model.

The exported ONNX model (``model.onnx``, run by onnxruntime) scores images made with the image
spec and normalisation
the model was trained with (both recorded in ``model.pt``), so any file the readers accept can be
scored without the dataset or the config.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from jetimage import io
from jetimage.loader import normalize
from jetimage.pixelate import ImageSpec, make_images
from jetimage.train import onnx_session


def load_exported(model_pt: str | os.PathLike, exported: str | os.PathLike):
    """(onnxruntime session, model info) of a trained model."""
    info = torch.load(model_pt, map_location="cpu", weights_only=False)["info"]
    return onnx_session(exported), info


def score_jets(jets: io.Jets, session, info: dict, *, source: str,
               batch_size: int = 1024) -> pd.DataFrame:
    """One row per jet with constituents: ``source_file``, ``entry`` (row in the file), a
    ``score_<class>`` column per class (softmax), and the jet features."""
    jets, _ = io.drop_jets_without_constituents(jets)
    images = make_images(jets.constituents, ImageSpec.from_dict(info["image_spec"]))
    scores = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size], info["normalization"]).numpy()
        logits = session.run(None, {"images": x})[0]
        scores.append(torch.softmax(torch.from_numpy(logits), dim=1).numpy())
    scores = np.concatenate(scores) if scores else np.zeros((0, len(info["classes"])))
    return scores_frame(np.full(len(scores), source), jets.table, scores, info["classes"])


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
