"""Zarr layout of image stores, written in parallel by Dask.

A store is written in phases (as pangeo-forge does): the group and its arrays are laid down
first, then, batch by batch as a reader streams the file, Dask tasks each compute and write one
region aligned to the Zarr chunks along the jet axis, so no two tasks touch the same chunk and no
locks are needed; attributes come last. The whole store is built under a temporary name and
renamed when complete.

Layout of a per-file store (``results/images/{sample}/{part}.zarr``)::

    images   float32 (jets, channels, η pixels, φ pixels), chunked along jets, Zstandard
    labels   int64 class index of each jet (into attrs ``classes``)
    jets/    one 1-d array per jet feature: pt, eta, phi, mass, n_constituents, entry, ...
    attrs    image_spec, sample, classes, source, source_sha256, jets_sha256 (a digest of the
             jets' table as read, and of pre-pixelated images: the same jets give the same
             digest even where a regenerated file's bytes differ), format, n_read, dropped,
             label_counts, versions, ...
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import dask
import dask.local
import dask.multiprocessing
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from jetimage import io
from jetimage.pixelate import ImageSpec, flatten_constituents, images_from_flat, normalize_images

log = logging.getLogger(__name__)

#: Jets per Zarr chunk along the jet axis (a 40×40 float32 chunk of 1024 jets is 6.5 MB raw).
#: Measured by scripts/bench/images.py: 1024 reads fastest of 256, 1024 and 4096, and is also
#: the Dask task size, so that each task writes exactly its own chunk.
DEFAULT_CHUNK_JETS = 1024

#: Jets per chunk of the per-jet 1-d arrays (labels, jets/*) of a per-file store: 128 kB of
#: int64 or float64. Chunks of 1024 (8 kB) made each append of a 16,384-jet batch cost 14 ms
#: per column (one file per chunk) against 3 ms, and reading a column 13× slower.
TABLE_CHUNK_JETS = 16384

#: Largest fraction of a file's jets the images stage may drop (no constituents, empty image,
#: invalid constituents) before it fails the file.
DEFAULT_MAX_DROPPED_FRACTION = 0.05

#: Zarr's runtime settings for writing: no check of each chunk for being all fill value (jet
#: image chunks never are; the check made zstd writes 2.8× slower, scripts/bench/images.py).
WRITE_CONFIG = {"write_empty_chunks": True}

#: Processes and a distributed cluster get the calls joined into at most this many tasks per
#: worker (consecutive calls; enough tasks left to balance the load): a task per chunk costs
#: Dask ~75 µs against ~25 µs (two workers, 36 chunks of 1024 jets; scripts/bench/images.py).
TASKS_PER_WORKER = 4


def compressor(level: int = 1) -> ZstdCodec:
    """Plain Zstandard, level 1 by default. Jet images are mostly zeros: on 40×40 top-jet
    images it stores them 18.7× smaller than raw, smaller than level 3 does (16.5×) and writes
    ~1.4× faster, and 2.8× smaller than Blosc-zstd with bit-shuffle, which breaks the runs of
    zero bytes apart (scripts/bench/images.py, results/benchmarks/images.json)."""
    return ZstdCodec(level=level)


def versions() -> dict[str, str]:
    """Versions of the packages that shape a store's content."""
    import awkward
    import uproot

    import jetimage

    return {"jetimage": jetimage.__version__, "numpy": np.__version__,
            "awkward": awkward.__version__, "uproot": uproot.__version__,
            "zarr": zarr.__version__, "dask": dask.__version__}


SCHEDULERS = ("threads", "processes", "synchronous")


def check_scheduler(scheduler: str) -> None:
    """Raise ``ValueError`` unless ``scheduler`` is one of :data:`SCHEDULERS` or the address of
    a ``dask.distributed`` scheduler (``tcp://host:port``)."""
    if "://" not in scheduler and scheduler not in SCHEDULERS:
        raise ValueError(f"dask scheduler must be threads, processes, synchronous or an address, "
                         f"not {scheduler!r}")


@contextmanager
def dask_runner(scheduler: str, num_workers: int):
    """A function ``run(function, arguments) -> results`` calling ``function(*args)`` for each
    tuple of ``arguments`` (results in order) as independent Dask tasks on the chosen
    scheduler: ``threads``, ``processes``, ``synchronous``, or the address of a
    ``dask.distributed`` scheduler (``tcp://host:port``; the client is closed on exit, the
    cluster left running).

    ``threads`` runs one Dask task per worker thread (Dask's local scheduler,
    ``dask.local.get_async``, what ``dask.threaded.get`` wraps, on a pool of ``num_workers``
    threads), each taking the next call from a shared queue as soon as it finishes one, so the
    threads finish within one call of each other. Fixed shares of the calls (4 tasks per
    worker) had left ~10% of a 36-chunk run to one thread: two cores gave 1.51-1.90× one core
    (medians of rounds, ten runs), now 1.88-2.00× (15 runs; scripts/bench/images.py).
    ``processes`` and a cluster, whose tasks share no memory, get the calls joined into at most
    :data:`TASKS_PER_WORKER` tasks per worker, handed to the scheduler's ``get`` as a plain
    task graph (Dask's custom-graph interface: ~25 µs of Dask per call against ~260 µs for
    ``dask.compute`` on a ``dask.delayed`` call each); ``processes`` keeps one pool of worker
    processes for the whole run."""
    check_scheduler(scheduler)
    if "://" in scheduler:
        try:
            from dask.distributed import Client
        except ImportError as err:  # pragma: no cover - optional dependency
            raise ImportError("a scheduler address needs 'pip install distributed'") from err
        with Client(scheduler) as client:
            # the cluster's threads; none yet (an adaptive cluster): a task per call
            threads = sum(client.nthreads().values()) or 1 << 30
            yield partial(_run_graph, client.get, threads)
        return
    if scheduler == "threads":
        with ThreadPoolExecutor(num_workers) as pool:
            def get(graph, keys):
                return dask.local.get_async(pool.submit, len(graph), graph, keys)

            yield partial(_run_from_shared_queue, get, num_workers)
        return
    if scheduler == "processes":
        # one pool for the whole run: dask.multiprocessing.get would start (spawn) new worker
        # processes, each importing numpy, numba and jetimage, at every call, that is per batch
        context = dask.multiprocessing.get_context()
        with ProcessPoolExecutor(num_workers, mp_context=context) as pool:
            yield partial(_run_graph, partial(dask.multiprocessing.get, pool=pool), num_workers)
        return
    yield partial(_run_from_shared_queue, dask.get, 1)


def _run_from_shared_queue(get: Callable, workers: int, function: Callable,
                           arguments: Iterable[tuple]) -> list:
    """``workers`` Dask tasks of one process, each calling ``function`` on the next arguments
    not yet taken until none is left; the first error stops them all and reaches the caller."""
    arguments = list(arguments)
    if not arguments:
        return []
    results = [None] * len(arguments)
    calls = iter(range(len(arguments)))
    lock, failed = threading.Lock(), threading.Event()

    def work() -> None:
        while not failed.is_set():
            with lock:
                i = next(calls, None)
            if i is None:
                return
            try:
                results[i] = function(*arguments[i])
            except BaseException:
                failed.set()
                raise

    graph = {("worker", i): (work,) for i in range(min(len(arguments), max(workers, 1)))}
    get(graph, list(graph))
    return results


def _run_graph(get: Callable, workers: int, function: Callable,
               arguments: Iterable[tuple]) -> list:
    arguments = list(arguments)
    if not arguments:
        return []
    n_tasks = min(len(arguments), TASKS_PER_WORKER * max(workers, 1))
    shares = [arguments[i * len(arguments) // n_tasks:(i + 1) * len(arguments) // n_tasks]
              for i in range(n_tasks)]
    # each task is a call without arguments of a partial, which Dask neither traverses nor
    # mistakes for keys or nested tasks
    graph = {("task", i): (partial(_call_each, function, share),)
             for i, share in enumerate(shares)}
    return [result for results in get(graph, list(graph)) for result in results]


def _call_each(function: Callable, arguments: list[tuple]) -> list:
    return [function(*args) for args in arguments]


def create_array(group: zarr.Group, name: str, data=None, *, shape=None, dtype=None,
                 chunk_jets: int = DEFAULT_CHUNK_JETS, level: int = 1) -> zarr.Array:
    """An array chunked along its first (jet) axis only, compressed with :func:`compressor` at
    Zstandard ``level``."""
    shape = np.shape(data) if data is not None else shape
    # an empty array grows as batches arrive (resize), so it gets whole chunks from the start
    chunks = (min(chunk_jets, shape[0]) if shape[0] else chunk_jets, *shape[1:])
    array = group.create_array(name, shape=shape, chunks=chunks,
                               dtype=dtype if data is None else np.asarray(data).dtype,
                               compressors=compressor(level), fill_value=0, config=WRITE_CONFIG)
    if data is not None and shape[0]:
        array[...] = data
    return array


def _pixelate_task(spec: ImageSpec, flat) -> tuple[np.ndarray, np.ndarray]:
    """(images, constituents outside the window per jet) of a chunk of flat jets. Each task
    gets its own chunk as argument, so that a process or a cluster worker receives only it."""
    return images_from_flat(flat, spec)


def _write_task(target: zarr.Array, images: np.ndarray, row: int) -> None:
    """Write ``images`` as rows ``row...`` of ``target`` (the store's images array, opened
    once per batch: opening it costs ~1.3 ms)."""
    target[row:row + len(images)] = images


def _concat(a: io.ImageBatch | None, b: io.ImageBatch) -> io.ImageBatch:
    """Two batches of images as one."""
    if a is None:
        return b
    return io.ImageBatch(np.concatenate([a.images, b.images]),
                         {k: np.concatenate([a.table[k], b.table[k]]) for k in a.table})


def _packed(batch: io.ImageBatch) -> io.ImageBatch:
    """A copy holding only its own jets (a slice keeps the whole batch's memory alive)."""
    return io.ImageBatch(batch.images.copy(), {k: v.copy() for k, v in batch.table.items()})


class _StoreWriter:
    """Pixelates each batch (Dask tasks over chunks of jets), drops the jets whose image is
    empty (counted as ``empty_image``), and appends the images in whole Zarr chunks (Dask
    tasks over chunks), keeping the remainder (< one chunk) for the next batch, so every write
    is chunk-aligned and memory holds one batch at a time. The per-jet table columns are
    likewise written in whole chunks of TABLE_CHUNK_JETS rows: appending each batch's rows
    instead rewrote the column's last chunk every time (read, decompress, merge, compress),
    30% of the images stage."""

    def __init__(self, path: str, spec: ImageSpec | None, *, normalize: str,
                 chunk_jets: int, run: Callable, counts: io.Counts):
        self.group = zarr.open_group(path, mode="w")
        self.group.require_group("jets")
        self.spec, self.normalize = spec, normalize
        self.chunk_jets, self.run, self.counts = chunk_jets, run, counts
        self.pending: io.ImageBatch | None = None
        self.n = 0  # jets written
        self.n_given = 0  # jets given to add()
        self.n_outside = 0
        self.table: dict[tuple[str, str], list[np.ndarray]] = {}  # rows not yet written
        self.table_rows = 0  # rows written to every table column
        self.digest = hashlib.sha256()

    def add(self, batch: io.Jets | io.ImageBatch) -> None:
        for name in sorted(batch.table):  # the jets' content, for their identity (jets_sha256)
            self.digest.update(name.encode())
            self.digest.update(np.ascontiguousarray(batch.table[name]).tobytes())
        if isinstance(batch, io.ImageBatch):
            self.digest.update(np.ascontiguousarray(batch.images).tobytes())
        if "label" not in batch.table:
            raise ValueError("each batch's table needs 'label' (class index per jet), as "
                             "jetimage.readers gives it")
        self.n_given += len(batch)
        images = self._images(batch)
        empty = ~np.any(images.images, axis=tuple(range(1, images.images.ndim)))
        self.counts.drop("empty_image", np.sum(empty))
        if np.any(empty):
            images = images[~empty]
        self.n_outside += int(images.table["n_outside_window"].sum())
        self.pending = _concat(self.pending, images)
        whole = len(self.pending) // self.chunk_jets * self.chunk_jets
        if whole:
            self._write(self.pending[:whole])
            self.pending = _packed(self.pending[whole:])

    def _images(self, batch: io.Jets | io.ImageBatch) -> io.ImageBatch:
        """The batch's images (pixelated, or pre-pixelated and normalised), with the
        constituents outside the window per jet in the table (``n_outside_window``)."""
        table = dict(batch.table)
        if isinstance(batch, io.ImageBatch):
            table["n_outside_window"] = np.zeros(len(batch), dtype=np.int64)
            return io.ImageBatch(normalize_images(batch.images, self.normalize), table)
        n = len(batch)
        flat = flatten_constituents(batch.constituents, need_charge=self.spec.needs_charge)
        shape = (0, len(self.spec.channels), *self.spec.npix)
        done = self.run(partial(_pixelate_task, self.spec),
                        [(flat.chunk(start, min(start + self.chunk_jets, n)),)
                         for start in range(0, n, self.chunk_jets)])
        images = np.concatenate([i for i, _ in done]) if done else np.zeros(shape, np.float32)
        table["n_outside_window"] = (np.concatenate([o for _, o in done]) if done
                                     else np.zeros(0, dtype=np.int64))
        return io.ImageBatch(images, table)

    def finish(self) -> int:
        if self.pending is not None and len(self.pending):
            self._write(self.pending)
        self._write_table(everything=True)
        if "images" not in self.group:
            shape = (0, len(self.spec.channels), *self.spec.npix) if self.spec else (0, 1, 1, 1)
            create_array(self.group, "images", shape=shape, dtype="float32",
                         chunk_jets=self.chunk_jets)
        return self.n

    def _write_table(self, *, everything: bool = False) -> None:
        """Write the buffered table rows: all of them, or as many as fill whole chunks."""
        rows = self.n - self.table_rows
        if not everything:
            rows = rows // TABLE_CHUNK_JETS * TABLE_CHUNK_JETS
        if rows == 0:
            return
        for (group_name, name), parts in self.table.items():
            values = np.concatenate(parts)
            group = self.group[group_name] if group_name else self.group
            if name not in group:
                create_array(group, name, shape=(0, *values.shape[1:]), dtype=values.dtype,
                             chunk_jets=TABLE_CHUNK_JETS)
            array = group[name].with_config(WRITE_CONFIG)
            array.resize((self.table_rows + rows, *values.shape[1:]))
            array[self.table_rows:] = values[:rows]
            self.table[group_name, name] = [values[rows:]]
        self.table_rows += rows

    def _write(self, batch: io.ImageBatch) -> None:
        n = len(batch)
        if "images" not in self.group:
            create_array(self.group, "images", shape=(0, *batch.images.shape[1:]),
                         dtype="float32", chunk_jets=self.chunk_jets)
        images = self.group["images"]
        images.resize((self.n + n, *batch.images.shape[1:]))
        target = images.with_config(WRITE_CONFIG)
        self.run(partial(_write_task, target),
                 [(batch.images[start:start + self.chunk_jets], self.n + start)
                  for start in range(0, n, self.chunk_jets)])
        table = dict(batch.table)
        columns = {("", "labels"): np.asarray(table.pop("label"), dtype=np.int64)}
        columns |= {("jets", name): np.asarray(values) for name, values in table.items()}
        for key, values in columns.items():
            self.table.setdefault(key, []).append(values)
        self.n += n
        self._write_table()


def write_image_store(
    path: str | os.PathLike,
    batches: Iterable[io.Jets | io.ImageBatch] | io.Jets,
    spec: ImageSpec | None,
    *,
    attrs: dict,
    normalize: str = "l1",
    chunk_jets: int = DEFAULT_CHUNK_JETS,
    scheduler: str = "threads",
    num_workers: int = 1,
    progress: Callable[[str], None] | None = None,
    counts: io.Counts | None = None,
    max_dropped_fraction: float = DEFAULT_MAX_DROPPED_FRACTION,
) -> dict:
    """Pixelate batches of jets (or copy pre-pixelated images) into a per-file store, atomically.

    Batches stream through in whole chunks, so memory holds one batch whatever the file's size.
    Each batch's table must hold ``label`` (class index), which becomes the ``labels`` array.
    A jet whose image is empty (no constituent inside the window) is dropped and counted
    (``empty_image``), like a jet without constituents.

    Args:
        spec: the image definition; ``None`` for pre-pixelated batches (:class:`ImageBatch`).
        normalize: ``"l1"`` or ``"none"``, for pre-pixelated images (``spec`` rules otherwise).
        counts: the reader's counts; recorded in the attributes (``n_read``, ``dropped``)
            once the file has been read.
        max_dropped_fraction: the largest fraction of the jets read that may be dropped for
            any reason but a label the sample's map leaves out (a selection the user asked
            for).

    Raises:
        InputError: no jet is left to write, or more than ``max_dropped_fraction`` of them
            were dropped (the store is not created).

    Returns:
        The store's attributes, including jets written and constituents outside the window.
    """
    if isinstance(batches, io.Jets | io.ImageBatch):
        batches = [batches]
    check_scheduler(scheduler)
    counts = counts if counts is not None else io.Counts()
    with io.atomic_path(path) as tmp, dask_runner(scheduler, num_workers) as run:
        writer = _StoreWriter(str(tmp), spec, normalize=normalize, chunk_jets=chunk_jets,
                              run=run, counts=counts)
        if progress:
            progress(f"pixelating in chunks of {chunk_jets} jets ({scheduler}, "
                     f"{num_workers} worker(s))")
        for batch in batches:
            writer.add(batch)
            if progress:
                progress(f"{writer.n} jets written")
        n = writer.finish()
        group = writer.group
        counts.read = counts.read or writer.n_given  # batches given without a reader's counts
        attrs = {**attrs, "n_read": counts.read, "dropped": counts.dropped}
        source = attrs.get("source", path)
        if n == 0:
            raise io.InputError(f"{source}: no jet left to write (dropped: {counts.dropped})")
        _check_dropped(source, counts, max_dropped_fraction)
        labels = group["labels"][...]
        classes = attrs.get("classes")
        if classes:
            attrs["label_counts"] = {c: int(np.sum(labels == i)) for i, c in enumerate(classes)}
        attrs = {**attrs, "image_spec": spec.to_dict() if spec else attrs.get("image_spec"),
                 "jets_sha256": writer.digest.hexdigest(), "n_jets": n,
                 "n_constituents_outside_window": writer.n_outside,
                 "versions": versions()}
        group.attrs.update(attrs)
    return attrs


def _check_dropped(source, counts: io.Counts, max_fraction: float) -> None:
    """Raise if more than ``max_fraction`` of the jets read were lost (any reason but a label
    the sample's map leaves out)."""
    lost = {k: v for k, v in counts.dropped.items() if v and k != "unmapped_label"}
    n_lost = sum(lost.values())
    if counts.read and n_lost > max_fraction * counts.read:
        raise io.InputError(f"{source}: {n_lost} of {counts.read} jets "
                            f"({n_lost / counts.read:.1%}) were dropped, more than the sample's "
                            f"max_dropped_fraction {max_fraction:g}; by reason: {lost}")


def chunk_path(array: zarr.Array, index: int) -> Path | None:
    """The file of chunk ``index`` (along the jet axis) of an array in a local store, or
    ``None`` for another kind of store. The key is Zarr v3's chunk key encoding."""
    root = getattr(array.store, "root", None)
    if root is None:
        return None
    key = array.metadata.encode_chunk_key((index,) + (0,) * (array.ndim - 1))
    return Path(root) / array.path / key


def _plain_zstd(array: zarr.Array):
    """Zstandard (numcodecs, the codec Zarr's ``ZstdCodec`` runs) if ``array`` is local and its
    chunks are little-endian bytes compressed by Zstandard alone, as :func:`create_array`
    writes them; ``None`` otherwise."""
    codecs = array.metadata.codecs if array.metadata.zarr_format == 3 else ()
    plain = (len(codecs) == 2 and isinstance(codecs[0], zarr.codecs.BytesCodec)
             and str(getattr(codecs[0].endian, "value", codecs[0].endian)) == "little"
             and isinstance(codecs[1], ZstdCodec) and not codecs[1].checksum)
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
        path = chunk_path(array, c)
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
            full[:len(block)] = block
            block = full
        path = chunk_path(array, c)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zstd.encode(block))

    return write


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
