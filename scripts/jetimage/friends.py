"""Predictions as ROOT friend trees: one entry per entry of the input tree, in its order, so
that ``tree.AddFriend`` joins them to the input in ROOT."""

from __future__ import annotations

import os

import awkward as ak
import numpy as np
import pandas as pd

from jetimage.files import atomic_path
from jetimage.readers import open_root, option_default, root_tree


def write_friend_tree(
    frame: pd.DataFrame,
    jets_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str,
    options: dict,
) -> int:
    """Write the scores of one ROOT input file as a ROOT friend tree (a TTree of the input
    tree's name, one entry per input entry, in order): ``score_<class>`` per jet, and the truth
    ``label`` where the frame has one (-1 where unknown); NaN for entries whose jet was not
    scored (dropped). For NanoAOD, each event's entry holds one value per fat jet
    (``<FatJet>_score_<class>``, jagged like the fat jets). Returns the entries written."""
    import uproot

    tree = options.get("tree", option_default(format, "tree"))
    jets = options.get("jets", option_default("nanoaod", "jets"))
    with open_root(jets_path) as file:
        source = root_tree(jets_path, file, tree)
        n = int(source.num_entries)
        per_event = (
            ak.num(source.arrays([f"{jets}_pt"])[f"{jets}_pt"]) if format == "nanoaod" else None
        )
    columns = [c for c in frame.columns if c.startswith("score_")] + (
        ["label"] if "label" in frame else []
    )
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
    with atomic_path(out) as tmp, uproot.recreate(tmp) as target:
        target.mktree(
            tree, {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
        )
        target[tree].extend(branches)
    return n
