"""Zarr helpers shared by the stages: arrays chunked along the jet axis and compressed with
Zstandard, read-only opening with a clear error, the per-jet table, and whole-chunk reads and
writes straight between a local array's chunk files and Zstandard.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dask
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from jetimage.defaults import default
from jetimage.files import InputError

#: Jets per Zarr chunk along the jet axis, also the Dask task size, so that each task writes
#: exactly its own chunk (why this size: docs/benchmarks.md).
DEFAULT_CHUNK_JETS = default("dask", "chunk_jets")

#: Jets per chunk of the per-jet 1-d arrays (labels, jets/*) of a per-file store: 128 kB of
#: int64 or float64 (why not smaller: docs/benchmarks.md).
TABLE_CHUNK_JETS = 16384

#: Zarr's runtime settings for writing: no check of each chunk for being all fill value (jet
#: image chunks never are, and the check is slow).
WRITE_CONFIG = {"write_empty_chunks": True}


def compressor(level: int = 1) -> ZstdCodec:
    """Plain Zstandard, level 1 by default: jet images are mostly zeros, whose runs Zstandard
    stores compactly and shuffling filters would break apart (docs/benchmarks.md)."""
    return ZstdCodec(level=level)


def versions() -> dict[str, str]:
    """Versions of the packages that shape a store's content."""
    import awkward
    import uproot

    import jetimage

    return {
        "jetimage": jetimage.__version__,
        "numpy": np.__version__,
        "awkward": awkward.__version__,
        "uproot": uproot.__version__,
        "zarr": zarr.__version__,
        "dask": dask.__version__,
    }


def create_array(
    group: zarr.Group,
    name: str,
    data=None,
    *,
    shape=None,
    dtype=None,
    chunk_jets: int = DEFAULT_CHUNK_JETS,
    level: int = 1,
) -> zarr.Array:
    """An array chunked along its first (jet) axis only, compressed with :func:`compressor` at
    Zstandard ``level``."""
    shape = np.shape(data) if data is not None else shape
    # an empty array grows as batches arrive (resize), so it gets whole chunks from the start
    chunks = (min(chunk_jets, shape[0]) if shape[0] else chunk_jets, *shape[1:])
    array = group.create_array(
        name,
        shape=shape,
        chunks=chunks,
        dtype=dtype if data is None else np.asarray(data).dtype,
        compressors=compressor(level),
        fill_value=0,
        config=WRITE_CONFIG,
    )
    if data is not None and shape[0]:
        array[...] = data
    return array


class ColumnWriter:
    """Per-jet columns (``"labels"``, ``"jets/pt"``, … within ``group``) appended batch by
    batch in whole chunks of ``chunk_jets`` rows (default :data:`TABLE_CHUNK_JETS`), so that
    no chunk is written twice and memory holds less than a chunk of each column; :meth:`close`
    writes the rest."""

    def __init__(self, group: zarr.Group, *, chunk_jets: int | None = None):
        self.group, self.chunk_jets = group, chunk_jets or TABLE_CHUNK_JETS
        self.pending: dict[str, list[np.ndarray]] = {}  # rows not yet written, per column
        self.rows = 0  # rows written to every column
        self.buffered = 0  # rows appended but not yet written

    def append(self, columns: Mapping[str, np.ndarray]) -> None:
        """Add the same number of rows to every column; write the whole chunks now filled."""
        for key, values in columns.items():
            self.pending.setdefault(key, []).append(np.asarray(values))
        self.buffered += len(next(iter(columns.values()))) if columns else 0
        self._write(self.buffered // self.chunk_jets * self.chunk_jets)

    def close(self) -> int:
        """Write every remaining row; returns the rows of each column."""
        self._write(self.buffered)
        return self.rows

    def _write(self, rows: int) -> None:
        if rows == 0:
            return
        for key, parts in self.pending.items():
            values = np.concatenate(parts)
            if key not in self.group:
                parent, _, name = key.rpartition("/")
                group = self.group.require_group(parent) if parent else self.group
                shape, dtype = (0, *values.shape[1:]), values.dtype
                create_array(group, name, shape=shape, dtype=dtype, chunk_jets=self.chunk_jets)
            array = self.group[key].with_config(WRITE_CONFIG)
            array.resize((self.rows + rows, *values.shape[1:]))
            array[self.rows :] = values[:rows]
            self.pending[key] = [values[rows:]]
        self.rows += rows
        self.buffered -= rows


def chunk_path(array: zarr.Array, index: int) -> Path | None:
    """The file of chunk ``index`` (along the jet axis) of an array in a local store, or
    ``None`` for another kind of store. The key is Zarr v3's chunk key encoding."""
    root = getattr(array.store, "root", None)
    if root is None:
        return None
    key = array.metadata.encode_chunk_key((index,) + (0,) * (array.ndim - 1))
    return Path(root) / array.path / key


def _local_chunk_path(array: zarr.Array, index: int) -> Path:
    """:func:`chunk_path` of an array known to be in a local store."""
    path = chunk_path(array, index)
    if path is None:
        msg = f"{array.store}: not a local store"
        raise ValueError(msg)
    return path


def _plain_zstd(array: zarr.Array):
    """Zstandard (numcodecs, the codec Zarr's ``ZstdCodec`` runs) if ``array`` is local and its
    chunks are little-endian bytes compressed by Zstandard alone, as :func:`create_array`
    writes them; ``None`` otherwise."""
    codecs: tuple[Any, ...] = (
        tuple(array.metadata.codecs) if array.metadata.zarr_format == 3 else ()
    )
    plain = (
        len(codecs) == 2
        and isinstance(codecs[0], zarr.codecs.BytesCodec)
        and str(getattr(codecs[0].endian, "value", codecs[0].endian)) == "little"
        and isinstance(codecs[1], ZstdCodec)
        and not codecs[1].checksum
    )
    if not plain or chunk_path(array, 0) is None or array.dtype.str[0] == ">":
        return None
    import numcodecs

    return numcodecs.Zstd(level=codecs[1].level)


def chunk_file_reader(array: zarr.Array) -> Callable[[int, np.ndarray], None] | None:
    """A function ``read(c, out)`` that decodes whole chunk ``c`` of a local array (see
    :func:`_plain_zstd`) straight from its file into ``out``, without Zarr's machinery (which
    costs about as much again as the decoding); ``None`` for any other array."""
    zstd = _plain_zstd(array)
    if zstd is None:
        return None

    def read(c: int, out: np.ndarray) -> None:
        path = _local_chunk_path(array, c)
        if not path.exists():  # never written: the fill value
            out[...] = array.metadata.fill_value
            return
        zstd.decode(path.read_bytes(), out=out)

    return read


def chunk_file_writer(array: zarr.Array) -> Callable[[int, np.ndarray], None] | None:
    """A function ``write(c, block)`` that encodes rows ``block`` as chunk ``c`` of a local
    array (see :func:`_plain_zstd`; a last, shorter chunk padded with the fill value, as Zarr
    stores it) and writes its file, on the caller's thread: Zarr encodes on its own event
    loop, so threads writing through it do not run in parallel. ``None`` for any other
    array."""
    zstd = _plain_zstd(array)
    if zstd is None:
        return None
    chunk = array.chunks[0]

    def write(c: int, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=array.dtype)
        if len(block) < chunk:
            full = np.full((chunk, *block.shape[1:]), array.metadata.fill_value, array.dtype)
            full[: len(block)] = block
            block = full
        path = _local_chunk_path(array, c)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zstd.encode(block))

    return write


def open_store(path: str | os.PathLike) -> zarr.Group:
    """Open a store read-only, with a clear error if it is missing or incomplete."""
    path = Path(path)
    try:
        return zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        msg = f"{path}: not a Zarr store"
        raise InputError(msg) from err


def read_table(group: zarr.Group, rows=None) -> dict[str, np.ndarray]:
    """The ``jets`` table of a store (optionally only ``rows``) as numpy arrays."""
    table = group["jets"]
    return {
        name: (array[...] if rows is None else array.oindex[rows]) for name, array in table.arrays()
    }
