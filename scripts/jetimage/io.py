"""Readers and writers of jet files, and atomic output paths.

Jets travel between stages as a :class:`Jets` object: ragged constituents (an awkward array of
vector ``Momentum4D`` records with ``px, py, pz, E, charge, pid``) and a flat table of per-jet
features. Files on disk use the JetClass layout: tree ``tree`` with ragged ``part_*`` branches
and flat ``jet_*`` branches.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import vector

vector.register_awkward()

#: Branches a JetClass-layout file must have, and the record fields they become.
PART_BRANCHES = {"part_px": "px", "part_py": "py", "part_pz": "pz", "part_energy": "E"}
OPTIONAL_PART_BRANCHES = {"part_charge": "charge", "part_pid": "pid"}


class InputError(ValueError):
    """An input file cannot be used; the message names the file and the field."""


@dataclass
class Jets:
    """Constituents and per-jet features of a set of jets."""

    constituents: ak.Array
    table: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.constituents)

    def __getitem__(self, where) -> Jets:
        return Jets(self.constituents[where], {k: v[where] for k, v in self.table.items()})


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it into place only if the block succeeds.

    Works for files and directories (Zarr stores). A failure removes the temporary path, so
    nothing that looks finished is left behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def sha256sum(path: str | os.PathLike, *, block: int = 1 << 20) -> str:
    """SHA-256 of a file, or of every file under a directory (in sorted order)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            while data := handle.read(block):
                digest.update(data)
    return digest.hexdigest()


def write_jets_root(path: str | os.PathLike, columns: dict) -> None:
    """Write jets in the JetClass layout (tree ``tree``) with uproot, atomically.

    Args:
        path: the ``.root`` file to write.
        columns: ``part_*`` ragged arrays (same counts) and flat per-jet arrays.
    """
    import uproot

    part = {k[len("part_"):]: v for k, v in columns.items() if k.startswith("part_")}
    flat = {k: np.asarray(v) for k, v in columns.items() if not k.startswith("part_")}
    data = {"part": ak.zip(part), **flat}
    types = {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    with atomic_path(path) as tmp:
        with uproot.recreate(tmp) as file:
            tree = file.mktree(
                "tree", types,
                field_name=lambda outer, inner: f"{outer}_{inner}",
                counter_name=lambda counted: f"n{counted}",
            )
            tree.extend(data)


def read_jets_root(path: str | os.PathLike, *, tree: str = "tree") -> Jets:
    """Read a JetClass-layout ROOT file into :class:`Jets`.

    Raises:
        InputError: the file cannot be opened, lacks the tree or a branch, is empty, or holds
            NaN/inf momenta. The message names the file and the field.
    """
    import uproot

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    try:
        file = uproot.open(path)
    except Exception as err:  # uproot raises many kinds for a corrupt file
        raise InputError(f"{path}: not a readable ROOT file ({err})") from err
    with file:
        if tree not in file:
            raise InputError(f"{path}: no tree {tree!r}; the file has {sorted(file.keys())}")
        ttree = file[tree]
        missing = [b for b in PART_BRANCHES if b not in ttree]
        if missing:
            raise InputError(
                f"{path}: tree {tree!r} lacks branch(es) {missing}; it has {sorted(ttree.keys())}"
            )
        if ttree.num_entries == 0:
            raise InputError(f"{path}: tree {tree!r} has no jets")
        wanted = [*PART_BRANCHES, *[b for b in OPTIONAL_PART_BRANCHES if b in ttree]]
        jet_branches = [k for k in ttree.keys() if k.startswith("jet_") or k == "event_index"]
        arrays = ttree.arrays([*wanted, *jet_branches])
    fields = {**PART_BRANCHES, **OPTIONAL_PART_BRANCHES}
    record = {fields[b]: arrays[b] for b in wanted}
    for branch in PART_BRANCHES:
        flat = ak.to_numpy(ak.flatten(arrays[branch]))
        if not np.all(np.isfinite(flat)):
            bad = int(np.count_nonzero(~np.isfinite(flat)))
            raise InputError(f"{path}: branch {branch!r} holds {bad} NaN/inf value(s)")
    constituents = ak.zip(record, with_name="Momentum4D")
    table = {b[len("jet_"):] if b.startswith("jet_") else b: ak.to_numpy(arrays[b])
             for b in jet_branches}
    return Jets(constituents, table)


def drop_jets_without_constituents(jets: Jets) -> tuple[Jets, dict[str, int]]:
    """Jets ready for pixelation: those without constituents dropped (and counted), and the
    standard jet table (pt, eta, phi, mass, n_constituents, entry = row in the source file,
    then any other feature the file had)."""
    counts = ak.to_numpy(ak.num(jets.constituents, axis=1))
    keep = counts > 0
    table = {
        "pt": jets.table["pt"], "eta": jets.table["eta"], "phi": jets.table["phi"],
        "mass": jets.table["mass"], "n_constituents": counts, "entry": np.arange(len(jets)),
        **{k: v for k, v in jets.table.items()
           if k not in ("pt", "eta", "phi", "mass", "nparticles", "entry")},
    }
    return Jets(jets.constituents, table)[keep], {"no_constituents": int((~keep).sum())}
