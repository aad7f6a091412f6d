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


def write_friend_tree(frame: pd.DataFrame, jets_path: str | os.PathLike,
                      out: str | os.PathLike, *, format: str, options: dict) -> int:
    """Write the scores of one ROOT input file as a ROOT friend tree (a TTree of the input
    tree's name, one entry per input entry, in order): ``score_<class>`` per jet, and the truth
    ``label`` where the frame has one (-1 where unknown); NaN for entries whose jet was not
    scored (dropped). For NanoAOD, each event's entry holds one value per fat jet
    (``<FatJet>_score_<class>``, jagged like the fat jets). Returns the entries written."""
    import awkward as ak
    import uproot

    from jetimage.readers import _entries, _open_root

    tree = options.get("tree", "Events" if format == "nanoaod" else "tree")
    with _open_root(jets_path) as file:
        source = _entries(jets_path, file, tree)
        n = int(source.num_entries)
        jets = options.get("jets", "FatJet")
        per_event = ak.num(source.arrays([f"{jets}_pt"])[f"{jets}_pt"]) if format == "nanoaod" \
            else None
    columns = [c for c in frame.columns if c.startswith("score_")] + \
        (["label"] if "label" in frame else [])
    entry = frame["entry"].to_numpy()
    if per_event is None:
        slots, counts = entry, None
    else:  # one slot per fat jet: the event's first slot plus the jet's index in it
        counts = ak.to_numpy(per_event)
        slots = np.concatenate([[0], np.cumsum(counts)])[entry] + frame["jet_subentry"].to_numpy()
    size = n if counts is None else int(counts.sum())
    branches = {}
    for column in columns:
        fill, dtype = (-1, np.int32) if column == "label" else (np.nan, np.float32)
        values = np.full(size, fill, dtype=dtype)
        values[slots] = frame[column].to_numpy()
        name = column if counts is None else f"{jets}_{column}"
        branches[name] = values if counts is None else ak.unflatten(values, counts)
    with io.atomic_path(out) as tmp, uproot.recreate(tmp) as target:
        target.mktree(tree, {k: v.type if isinstance(v, ak.Array) else v.dtype
                             for k, v in branches.items()})
        target[tree].extend(branches)
    return n
