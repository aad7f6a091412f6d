"""Zarr layout of image stores, written in parallel by Dask.

A store is written in phases (as pangeo-forge does): the group, its arrays and attributes are laid
down first, then Dask tasks each compute and write one region aligned to the Zarr chunks along the
jet axis, so no two tasks touch the same chunk and no locks are needed. The whole store is built
under a temporary name and renamed when complete.

Layout of a per-file store (``results/images/{sample}/{part}.zarr``)::

    images   float32 (jets, channels, η pixels, φ pixels), chunked along jets, Zstandard
    jets/    one 1-d array per jet feature: pt, eta, phi, mass, n_constituents, entry, ...
    attrs    image_spec, sample, class_name, source, source_sha256, versions, dropped, ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import dask
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from jetimage import io
from jetimage.pixelate import ImageSpec, flatten_constituents, images_from_flat

log = logging.getLogger(__name__)

#: Jets per Zarr chunk along the jet axis (a 40×40 float32 chunk of 1024 jets is 6.5 MB raw).
#: Measured by scripts/bench/images.py: 1024 reads fastest of 256, 1024 and 4096, and is also
#: the Dask task size, so that each task writes exactly its own chunk.
DEFAULT_CHUNK_JETS = 1024


def compressor() -> ZstdCodec:
    """Plain Zstandard, level 3. Jet images are mostly zeros: on 40×40 top-jet images it stores
    16.5× smaller and reads 2× faster than Blosc-zstd with bit-shuffle (6.6×), which breaks
    the runs of zero bytes apart (scripts/bench/images.py, results/benchmarks/images.json)."""
    return ZstdCodec(level=3)


def versions() -> dict[str, str]:
    """Versions of the packages that shape a store's content."""
    import awkward
    import uproot

    import jetimage

    return {"jetimage": jetimage.__version__, "numpy": np.__version__,
            "awkward": awkward.__version__, "uproot": uproot.__version__,
            "zarr": zarr.__version__, "dask": dask.__version__}


def dask_config(scheduler: str, num_workers: int) -> dict:
    """Keyword arguments for ``dask.compute``: ``threads``, ``processes``, ``synchronous``,
    or the address of a ``dask.distributed`` scheduler (``tcp://host:port``)."""
    if "://" in scheduler:
        try:
            from dask.distributed import Client
        except ImportError as err:  # pragma: no cover - optional dependency
            raise ImportError("a scheduler address needs 'pip install distributed'") from err
        return {"scheduler": Client(scheduler).get}
    if scheduler not in ("threads", "processes", "synchronous"):
        raise ValueError(f"dask scheduler must be threads, processes, synchronous or an address, "
                         f"not {scheduler!r}")
    return {"scheduler": scheduler, "num_workers": num_workers}


def create_array(group: zarr.Group, name: str, data=None, *, shape=None, dtype=None,
                 chunk_jets: int = DEFAULT_CHUNK_JETS) -> zarr.Array:
    """An array chunked along its first (jet) axis only, compressed with :func:`compressor`."""
    shape = np.shape(data) if data is not None else shape
    chunks = (max(1, min(chunk_jets, shape[0] or 1)), *shape[1:])
    array = group.create_array(name, shape=shape, chunks=chunks,
                               dtype=dtype if data is None else np.asarray(data).dtype,
                               compressors=compressor(), fill_value=0)
    if data is not None and shape[0]:
        array[...] = data
    return array


def _image_task(flat, spec: ImageSpec, store: str, start: int, stop: int) -> np.ndarray:
    images, outside = images_from_flat(flat.chunk(start, stop), spec)
    zarr.open_array(f"{store}/images", mode="r+")[start:stop] = images
    return outside


def write_image_store(
    path: str | os.PathLike,
    jets: io.Jets,
    spec: ImageSpec,
    *,
    attrs: dict,
    chunk_jets: int = DEFAULT_CHUNK_JETS,
    scheduler: str = "threads",
    num_workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Pixelate ``jets`` and write a per-file image store, atomically.

    Returns:
        The store's attributes, including the count of constituents outside the window.
    """
    n = len(jets)
    with io.atomic_path(path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        create_array(group, "images", shape=(n, len(spec.channels), *spec.npix),
                     dtype="float32", chunk_jets=chunk_jets)
        # flatten once: awkward calls hold the GIL, the kernel and the codecs do not. The
        # arrays ride in a partial, which Dask neither traverses nor hashes.
        flat = flatten_constituents(jets.constituents, need_charge=spec.needs_charge)
        task = dask.delayed(partial(_image_task, flat, spec, str(tmp)), pure=False)
        tasks = [task(start, min(start + chunk_jets, n)) for start in range(0, n, chunk_jets)]
        if progress:
            progress(f"pixelating {n} jets in {len(tasks)} chunk(s) of {chunk_jets} "
                     f"({scheduler}, {num_workers} worker(s))")
        outside = np.concatenate(dask.compute(*tasks, **dask_config(scheduler, num_workers))) \
            if tasks else np.zeros(0, dtype=np.int64)
        table = group.create_group("jets")
        for name, values in {**jets.table, "n_outside_window": outside}.items():
            create_array(table, name, np.asarray(values), chunk_jets=chunk_jets)
        attrs = {**attrs, "image_spec": spec.to_dict(), "n_jets": n,
                 "n_constituents_outside_window": int(outside.sum()), "versions": versions()}
        group.attrs.update(attrs)
    return attrs


def open_store(path: str | os.PathLike) -> zarr.Group:
    """Open a store read-only, with a clear error if it is missing or incomplete."""
    path = Path(path)
    try:
        return zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        raise io.InputError(f"{path}: not a Zarr store") from err


def read_table(group: zarr.Group, rows=None) -> dict[str, np.ndarray]:
    """The ``jets`` table of a store (optionally only ``rows``) as numpy arrays."""
    table = group["jets"]
    return {name: (array[...] if rows is None else array.oindex[rows])
            for name, array in table.arrays()}
