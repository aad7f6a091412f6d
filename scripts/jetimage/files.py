"""Files: the error for an unusable input file, atomic output paths, checksums, and the writer
of jet files in the JetClass layout (tree ``tree`` with ragged ``part_*`` branches and flat
``jet_*`` branches). Reading every format is :mod:`jetimage.readers`' job."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np


class InputError(ValueError):
    """An input file cannot be used; the message names the file and the field."""


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Prefix an InputError raised in the block with ``path`` unless it names it already (for
    checks of a file's content made where the file is not known, as a table's columns)."""
    try:
        yield
    except InputError as err:
        if str(err).startswith(str(path)):
            raise
        msg = f"{path}: {err}"
        raise InputError(msg) from err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it into place only if the block succeeds.

    Works for files and directories (Zarr stores). A failure removes the temporary path, so
    nothing that looks finished is left behind; temporaries left by a killed earlier attempt are
    removed on the next.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # temporaries of earlier attempts killed before they could clean up (SIGKILL, node failure):
    # Snakemake runs one job per output at a time, so no other writer owns them
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        _remove(stale)
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


def write_jets_root(path: str | os.PathLike, columns: dict, *, basket_jets: int = 10_000) -> None:
    """Write jets in the JetClass layout (tree ``tree``) with uproot, atomically.

    Compressed with LZ4 level 1, which ROOT ≥ 6.12 reads (why LZ4: docs/benchmarks.md).

    Args:
        path: the ``.root`` file to write.
        columns: ``part_*`` ragged arrays (same counts) and flat per-jet arrays.
        basket_jets: jets per ROOT basket, so that readers can stream the file.
    """
    import uproot

    part = {k[len("part_") :]: v for k, v in columns.items() if k.startswith("part_")}
    flat = {k: np.asarray(v) for k, v in columns.items() if not k.startswith("part_")}
    data = {"part": ak.zip(part), **flat}
    types = {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    with atomic_path(path) as tmp, uproot.recreate(tmp, compression=uproot.LZ4(1)) as file:
        tree = file.mktree(
            "tree",
            types,
            field_name=lambda outer, inner: f"{outer}_{inner}",
            counter_name=lambda counted: f"n{counted}",
        )
        n = len(next(iter(data.values())))
        for start in range(0, max(n, 1), basket_jets):
            tree.extend({k: v[start : start + basket_jets] for k, v in data.items()})
