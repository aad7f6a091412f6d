"""Dataset assembly: per-file image stores → one Zarr store with train/val/test splits.

Assembly is a bucket shuffle that reads every source chunk once, in time and memory linear in
the jets, and fans out over buckets:

1. **Buckets** (:func:`write_bucket`, one job per bucket). Chunk ``c`` of source ``f`` belongs
   to bucket ``(o_f + c) mod K`` (``o_f`` a seeded offset per source), so every bucket holds
   every K-th chunk of every file and the classes of one-class files mix in each bucket in
   their proportions. A bucket job reads its chunks (each source chunk is read by exactly one
   job, once), puts each jet in its split by a hash of (seed, source identity, entry), orders
   each split by a second hash of the same identity (a uniform shuffle, independent of the
   order of the inputs), and writes the split in chunk-aligned regions. Memory holds one
   bucket: ``dataset.buckets`` sets how many share the dataset, ``dataset.memory_mb`` bounds
   one (checked before any image is read).
2. **Assembly** (:func:`assemble_dataset`, one small job). The buckets' whole chunks become the
   dataset's chunks by hard links (the files are the same bytes: same chunk grid and codecs),
   the < 1 chunk left over in each bucket is shuffled and written once, and the per-channel
   normalisation comes from the train sums each bucket recorded. Nothing is decompressed but
   the leftovers.

A jet's split depends only on the seed and its identity, so adding a file never moves a jet
that was already in the dataset to another split; each class is split by the fractions up to
binomial fluctuations. A jet's identity is its entry in its file and the digest of that file's
jets (``jets_sha256``, written by the images stage): a regenerated shard holds the same jets in
new bytes (ROOT writes a timestamp and a UUID), so its file checksum alone would move them.

Layout of ``results/datasets/{dataset}.zarr``::

    train/, val/, test/   each: images (jets, C, H, W) float32, labels int64, jets/ (features,
                          observables, source index and row); particles/features (jets, max,
                          features) float32 and particles/mask (jets, max) bool where the
                          per-file stores have the particle view
    attrs                 classes, splits (counts per class), normalization (mean, std per
                          channel), image_spec, particles (max, features, identities,
                          normalization: mean, std per feature over the train split's real
                          particles), sources (path, sample, class, checksum), seed, buckets
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from jetimage import duplicates, parallel, zarr_store
from jetimage.defaults import default
from jetimage.duplicates import GOLDEN, mix
from jetimage.files import InputError, atomic_path

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

#: Default memory budget of one bucket job's images, in MB.
DEFAULT_MEMORY_MB = default("dataset", "memory_mb")

#: Zstandard level of the dataset's arrays: a fast level, since the dataset is written once and
#: read every epoch (why: docs/benchmarks.md).
ZSTD_LEVEL = -1


def _key(seed: int, identity: str, purpose: str) -> np.uint64:
    digest = hashlib.sha256(f"{seed}\0{purpose}\0{identity}".encode()).digest()
    return np.uint64(int.from_bytes(digest[:8], "little"))


def jet_hashes(seed: int, identity: str, entries: np.ndarray, purpose: str) -> np.ndarray:
    """A 64-bit hash per jet of (seed, source identity, entry), independent per ``purpose``."""
    entries = np.asarray(entries).astype(np.uint64)
    return mix(entries * GOLDEN + _key(seed, identity, purpose))


def split_of(hashes: np.ndarray, fractions: dict[str, float]) -> np.ndarray:
    """Index into :data:`SPLITS` of each jet: its hash as a uniform number in [0, 1), cut by the
    cumulative fractions.

    Examples:
        >>> h = jet_hashes(1, "file", np.arange(100_000), "split")
        >>> np.round(np.bincount(split_of(h, {"train": 0.6, "val": 0.2, "test": 0.2})) / 1e5, 2)
        array([0.6, 0.2, 0.2])
    """
    total = sum(fractions[s] for s in SPLITS)
    if not np.isclose(total, 1.0):
        msg = f"split fractions must sum to 1, got {fractions} (sum {total})"
        raise ValueError(msg)
    uniform = (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53
    edges = np.cumsum([fractions["train"], fractions["val"]]) / total
    return np.searchsorted(edges, uniform, side="right").astype(np.int8)


#: The per-jet arrays of more than one value a dataset carries beside the table: the views.
VIEWS = ("images", "particles/features", "particles/mask")


@dataclass
class _Source:
    path: str
    group: zarr.Group
    identity: str  # the digest of the source's jets (its checksum or name if none recorded)
    views: dict[str, zarr.Array]  # images, and the particle view where the store has it
    arrays: dict[str, zarr.Array]  # labels and the jets/ columns, opened once
    view_readers: dict[str, Callable[[int, np.ndarray], None] | None]  # decode a whole chunk
    column_readers: dict[str, Callable[[int, np.ndarray], None] | None]  # same, per column

    def column(self, name: str, low: int, high: int) -> np.ndarray:
        """Rows ``low:high`` of a per-jet column (within one of its chunks: decoded straight
        from the chunk's file, which costs a tenth of a read through Zarr)."""
        array, read = self.arrays[name], self.column_readers[name]
        chunk = array.chunks[0]
        if read is None or low // chunk != (high - 1) // chunk:
            return array[low:high]
        block = np.empty(chunk, dtype=array.dtype)
        read(low // chunk, block)
        return block[low % chunk : low % chunk + high - low]

    @property
    def images(self) -> zarr.Array:
        return self.views["images"]

    @property
    def chunk(self) -> int:
        """Jets per chunk of the source's images."""
        return int(self.images.chunks[0])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _open_source(path: str, classes: Sequence[str]) -> _Source:
    """One per-file store with its arrays opened, checked to hold the run's classes."""
    group = zarr_store.open_store(path)
    if list(group.attrs.get("classes", classes)) != list(classes):
        msg = (
            f"{path}: store classes {group.attrs['classes']} differ from the run's {list(classes)}"
        )
        raise InputError(msg)
    attrs = group.attrs
    identity = attrs.get("jets_sha256") or attrs.get("source_sha256") or attrs.get("source") or path
    arrays = {
        "labels": group["labels"],
        **{f"jets/{name}": array for name, array in group["jets"].arrays()},
    }
    views = {name: group[name] for name in VIEWS if name in group}
    return _Source(
        path,
        group,
        str(identity),
        views,
        arrays,
        {name: zarr_store.chunk_file_reader(a) for name, a in views.items()},
        {name: zarr_store.chunk_file_reader(a) for name, a in arrays.items()},
    )


def _open_sources(paths: Sequence[str | os.PathLike], classes: Sequence[str]) -> list[_Source]:
    """The per-file stores, checked to agree on the classes, the image spec and the particle
    view; a view that not every store has is left out."""
    sources = [_open_source(path, classes) for path in map(str, paths)]
    if not sources:
        msg = "no image store to build a dataset from"
        raise InputError(msg)
    for what in ("image_spec", "particles"):
        specs = {str(s.group.attrs.get(what)) for s in sources}
        if len(specs) > 1:
            msg = f"image stores disagree on {what}: {sorted(specs)}"
            raise InputError(msg)
    shapes = {s.images.shape[1:] for s in sources}
    if len(shapes) > 1:
        msg = f"image stores disagree on the image shape: {sorted(shapes)}"
        raise InputError(msg)
    shared = set.intersection(*(set(s.views) for s in sources))
    for s in sources:
        s.views = {k: v for k, v in s.views.items() if k in shared}
    return sources


def _columns(sources: list[_Source]) -> dict[str, np.dtype]:
    """The per-jet table columns every source has, with a dtype that holds each source's."""
    names = set.intersection(*({n for n in s.arrays if n.startswith("jets/")} for s in sources))
    return {
        n.removeprefix("jets/"): np.result_type(*(s.arrays[n].dtype for s in sources))
        for n in sorted(names)
    }


#: Largest ratio of two files' median jet pT: a file in MeV among files in GeV gives ~1000.
MAX_SCALE_RATIO = 300.0


def check_energy_scales(sources: list[_Source]) -> None:
    """Raise, naming both files and their median jet pT, if two stores' medians differ by more
    than :data:`MAX_SCALE_RATIO` (one file's momenta in MeV, the others' in GeV: a tagger
    would separate the units)."""
    medians = {
        str(s.group.attrs.get("source", s.path)): s.group.attrs["median_jet_pt"]
        for s in sources
        if s.group.attrs.get("median_jet_pt")
    }
    if len(medians) < 2:
        return
    low = min(medians, key=medians.__getitem__)
    high = max(medians, key=medians.__getitem__)
    if medians[high] > MAX_SCALE_RATIO * medians[low]:
        msg = (
            f"the median jet pT of {high} ({medians[high]:.6g} GeV) is "
            f"{medians[high] / medians[low]:.0f} times that of {low} ({medians[low]:.6g} GeV): "
            f"are one file's momenta in MeV? Set the reader option unit: MeV on its sample"
        )
        raise InputError(msg)


def find_duplicates(sources: list[_Source], drop: Sequence[str] = ()) -> duplicates.Found:
    """The jets of the run seen more than once, by their content digests (every bucket job
    finds the same, before reading any image); an InputError naming both files and entries
    unless the copies are in samples that ``drop`` them."""
    stores = []
    for s in sources:
        if "jets/digest" not in s.arrays:
            msg = (
                f"{s.path}: no jet digests (jets/digest), needed to find jets read twice: "
                f"the store was written by an older jetimage; rerun its images job"
            )
            raise InputError(msg)
        digests = s.arrays["jets/digest"][...]
        entries = s.arrays.get("jets/entry", np.arange(len(s)))  # read only for a message
        source = str(s.group.attrs.get("source", s.path))
        stores.append(duplicates.Store(source, str(s.group.attrs.get("sample")), digests, entries))
    found = duplicates.find(stores, drop)
    if found.copies:
        log.warning("duplicate jets: %s", found.summary())
    return found


def bucket_chunks(
    sources: list[_Source], *, seed: int, bucket: int, buckets: int
) -> list[tuple[int, int, int]]:
    """(source index, first row, end row) of each source chunk that belongs to ``bucket``."""
    plan = []
    for index, source in enumerate(sources):
        offset = int(_key(seed, source.identity, "bucket") % np.uint64(buckets))
        n_chunks = -(-len(source) // source.chunk)
        for c in range((bucket - offset) % buckets, n_chunks, buckets):
            plan.append((index, c * source.chunk, min((c + 1) * source.chunk, len(source))))
    return plan


def _jet_bytes(sources: list[_Source]) -> int:
    """Bytes per jet of the views in memory."""
    views = sources[0].views.values()
    return sum(int(np.prod(v.shape[1:])) * v.dtype.itemsize for v in views)


def buckets_needed(n_jets: int, jet_bytes: int, memory_mb: float) -> int:
    """How many buckets keep each one's views under ``memory_mb``, with 10% to spare for the
    unevenness of whole chunks (a bucket holds up to a chunk per file more than its share)."""
    return max(1, math.ceil(n_jets * jet_bytes / (0.9 * memory_mb * 1e6)))


class _Bucket:
    """One bucket's jets in memory: views, labels, table, and each jet's split and order."""

    def __init__(
        self,
        sources: list[_Source],
        plan: list[tuple[int, int, int]],
        columns: dict[str, np.dtype],
        *,
        seed: int,
        fractions: dict[str, float],
        dropped: dict[int, np.ndarray] | None = None,
    ):
        """``dropped``: the rows of each source (by index) the dataset leaves out (copies of
        another jet, :func:`jetimage.duplicates.find`)."""
        self.sources, self.plan, self.seed, self.fractions = sources, plan, seed, fractions
        self.dropped = dropped or {}
        sizes = np.array([stop - start for _, start, stop in plan], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        n = int(self.offsets[-1])
        self.views = {
            name: np.empty((n, *v.shape[1:]), dtype=v.dtype) for name, v in sources[0].views.items()
        }
        self.arrays = {
            "labels": np.empty(n, dtype=np.int64),
            **{f"jets/{name}": np.empty(n, dtype=dtype) for name, dtype in columns.items()},
            "jets/source": np.empty(n, dtype=np.int64),
            "jets/source_row": np.empty(n, dtype=np.int64),
        }
        self.split = np.empty(n, dtype=np.int8)
        self.order = np.empty(n, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.views["images"])

    def read_tasks(self) -> list[tuple[list[int]]]:
        """The plan's chunks grouped by source and table chunk: one task each, so that each
        task decodes the per-jet columns' chunk it needs once (they are chunked 16× longer)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for k, (index, start, _) in enumerate(self.plan):
            table_chunk = self.sources[index].arrays["labels"].chunks[0]
            groups.setdefault((index, start // table_chunk), []).append(k)
        return [(ks,) for ks in groups.values()]

    def read(self, ks: list[int]) -> None:
        """Read chunks ``ks`` of the plan (one source, one table chunk) into their rows (a Dask
        task: rows are disjoint)."""
        index = self.plan[ks[0]][0]
        source = self.sources[index]
        low, high = self.plan[ks[0]][1], self.plan[ks[-1]][2]
        columns = {
            name: source.column(name, low, high)
            for name in self.arrays
            if name not in ("jets/source", "jets/source_row")
        }
        for k in ks:
            _, start, stop = self.plan[k]
            rows = slice(self.offsets[k], self.offsets[k + 1])
            for name, view in self.views.items():
                read = source.view_readers[name]
                if read is not None and stop - start == source.chunk:
                    read(start // source.chunk, view[rows])  # not via Zarr
                else:
                    view[rows] = source.views[name][start:stop]
            for name, values in columns.items():
                self.arrays[name][rows] = values[start - low : stop - low]
            self.arrays["jets/source"][rows] = index
            self.arrays["jets/source_row"][rows] = np.arange(start, stop)
            entries = (
                self.arrays["jets/entry"][rows]
                if "jets/entry" in self.arrays
                else np.arange(start, stop)
            )
            self.split[rows] = split_of(
                jet_hashes(self.seed, source.identity, entries, "split"), self.fractions
            )
            self.order[rows] = jet_hashes(self.seed, source.identity, entries, "order")
            if index in self.dropped:  # in no split
                left_out = self.dropped[index]
                left_out = left_out[(left_out >= start) & (left_out < stop)] - start
                self.split[self.offsets[k] + left_out] = len(SPLITS)

    def rows_of(self, split: int) -> np.ndarray:
        """The bucket's rows of one split, in shuffled order (by their order hash)."""
        rows = np.flatnonzero(self.split == split)
        return rows[np.argsort(self.order[rows], kind="stable")]


def _split_array(group: zarr.Group, name: str, n: int, like, chunk_jets: int) -> zarr.Array:
    """An array of a dataset split for ``n`` jets, each shaped and typed like a row of
    ``like``, Zstandard at :data:`ZSTD_LEVEL`."""
    return zarr_store.create_array(
        group,
        name,
        shape=(n, *like.shape[1:]),
        dtype=like.dtype,
        chunk_jets=chunk_jets,
        level=ZSTD_LEVEL,
    )


class _SplitWriter:
    """Writes one split of a bucket, chunk by chunk: each task gathers the chunk's rows of every
    array and writes its chunk files (on the task's thread where the arrays allow it)."""

    def __init__(self, group: zarr.Group, data: _Bucket, rows: np.ndarray, chunk_jets: int):
        self.rows, self.chunk = rows, chunk_jets
        self.sources = {**data.views, **data.arrays}
        group.create_group("jets")
        self.targets = {
            name: _split_array(group, name, len(rows), v, chunk_jets)
            for name, v in self.sources.items()
        }
        self.writers = {name: zarr_store.chunk_file_writer(t) for name, t in self.targets.items()}

    def chunks(self) -> range:
        """The indices of the split's output chunks."""
        return range(-(-len(self.rows) // self.chunk))

    def write(self, j: int, with_sums: bool) -> dict[str, np.ndarray] | None:
        """Write chunk ``j``; returns, if ``with_sums``, its images' per-channel sum, sum of
        squares and number of pixels (``images``) and its real particles' per-feature ones
        (``particles``)."""
        rows = self.rows[j * self.chunk : (j + 1) * self.chunk]
        blocks = {}
        for name, values in self.sources.items():
            block = blocks[name] = values[rows]
            writer = self.writers[name]
            if writer is not None:
                writer(j, block)
            else:
                self.targets[name][j * self.chunk : j * self.chunk + len(rows)] = block
        if not with_sums:
            return None
        sums = {"images": _channel_sums(blocks["images"])}
        if "particles/features" in blocks:
            sums["particles"] = _feature_sums(
                blocks["particles/features"][blocks["particles/mask"]]
            )
        return sums


def _channel_sums(images: np.ndarray) -> np.ndarray:
    """Per-channel sum, sum of squares and number of pixels of a block of images (float64
    sums; the squares by a float32 dot product)."""
    sums = np.zeros((3, images.shape[1]))
    for c in range(images.shape[1]):
        pixels = np.ascontiguousarray(images[:, c]).ravel()
        sums[:, c] = pixels.sum(dtype=np.float64), np.dot(pixels, pixels), pixels.size
    return sums


def _feature_sums(features: np.ndarray) -> np.ndarray:
    """Per-feature sum, sum of squares and count of real particles' features (rows)."""
    values = features.astype(np.float64)
    count = np.full(values.shape[1], len(values), dtype=np.float64)
    return np.stack([values.sum(axis=0), (values * values).sum(axis=0), count])


def _train_sums(sums: list[dict[str, np.ndarray]], data: _Bucket) -> dict[str, list]:
    """The train split's sums of the bucket's chunks (zeros where it has none): the images'
    per channel (``train_sums``), the real particles' per feature (``train_particle_sums``)."""
    widths = {"images": data.views["images"].shape[1]}
    if "particles/features" in data.views:
        widths["particles"] = data.views["particles/features"].shape[-1]
    keys = {"images": "train_sums", "particles": "train_particle_sums"}
    return {
        keys[view]: (
            np.sum([x[view] for x in sums], axis=0) if sums else np.zeros((3, width))
        ).tolist()
        for view, width in widths.items()
    }


def _check_bucket_memory(
    opened: list[_Source], plan, *, bucket: int, buckets: int, memory_mb: float
) -> int:
    """The bucket's jets; an InputError naming the buckets needed if their views would exceed
    ``memory_mb``."""
    n = sum(stop - start for _, start, stop in plan)
    jet_bytes = _jet_bytes(opened)
    if n * jet_bytes > memory_mb * 1e6:
        total = sum(len(s) for s in opened)
        what = "images and particles" if "particles/features" in opened[0].views else "images"
        needed = max(buckets_needed(total, jet_bytes, memory_mb), buckets + 1)
        msg = (
            f"bucket {bucket} of {buckets} holds {n} jets ({n * jet_bytes / 1e6:.0f} MB of "
            f"{what}), over dataset.memory_mb = {memory_mb:g}: set dataset.buckets to at "
            f"least {needed} for these {total} jets"
        )
        raise InputError(msg)
    return n


def write_bucket(
    path: str | os.PathLike,
    sources: Sequence[str | os.PathLike],
    *,
    bucket: int,
    buckets: int,
    classes: Sequence[str],
    fractions: dict[str, float],
    seed: int,
    chunk_jets: int = zarr_store.DEFAULT_CHUNK_JETS,
    memory_mb: float = DEFAULT_MEMORY_MB,
    scheduler: str = "threads",
    num_workers: int = 1,
    progress: Callable[[str], None] | None = None,
    drop_duplicates: Sequence[str] = (),
) -> dict:
    """Write one bucket of the dataset: its source chunks, split and shuffled (module docs),
    without the copies of a jet that the samples in ``drop_duplicates`` hold.

    Raises:
        InputError: the bucket's views would exceed ``memory_mb`` (before any is read), the
            sources disagree on classes, image spec or particle view, or the same jet is in
            two of them, or twice in one (:func:`find_duplicates`).

    Returns:
        The bucket store's attributes: jets per split and class, train-split sums.
    """
    if not 0 <= bucket < buckets:
        msg = f"bucket {bucket} is not in 0..{buckets - 1}"
        raise ValueError(msg)
    parallel.check_scheduler(scheduler)
    opened = _open_sources(sources, classes)
    check_energy_scales(opened)
    found = find_duplicates(opened, drop_duplicates)
    plan = bucket_chunks(opened, seed=seed, bucket=bucket, buckets=buckets)
    n = _check_bucket_memory(opened, plan, bucket=bucket, buckets=buckets, memory_mb=memory_mb)
    data = _Bucket(
        opened, plan, _columns(opened), seed=seed, fractions=fractions, dropped=found.dropped
    )
    # the bucket lives in this process's memory, so its tasks run on this process's threads
    # whatever the scheduler (processes or a cluster could not fill it)
    local = scheduler if scheduler in ("threads", "synchronous") else "threads"
    if progress:
        progress(
            f"bucket {bucket} of {buckets}: reading {n} jets in {len(plan)} chunk(s) of "
            f"{len(opened)} store(s) ({local}, {num_workers} worker(s))"
        )
    attrs: dict = {
        "bucket": bucket,
        "buckets": buckets,
        "seed": seed,
        "fractions": dict(fractions),
        "classes": list(classes),
        "splits": {},
        "duplicates": found.summary(),
    }
    with atomic_path(path) as tmp, parallel.dask_runner(local, num_workers) as run:
        tic = time.perf_counter()
        run(data.read, data.read_tasks())
        if progress:
            progress(f"read {len(data)} jets in {time.perf_counter() - tic:.1f} s")
        root = zarr.open_group(tmp, mode="w")
        for s, name in enumerate(SPLITS):
            rows = data.rows_of(s)
            writer = _SplitWriter(root.create_group(name), data, rows, chunk_jets)
            sums = run(writer.write, [(j, s == 0) for j in writer.chunks()])
            labels = data.arrays["labels"][rows]
            attrs["splits"][name] = {
                "n": len(rows),
                "counts": {c: int(np.sum(labels == i)) for i, c in enumerate(classes)},
            }
            if s == 0:
                attrs |= _train_sums(sums, data)
            if progress:
                progress(f"{name}: {len(rows)} jets written")
        root.attrs.update(attrs)
    return attrs


def _same_chunk_format(a: zarr.Array, b: zarr.Array) -> bool:
    """Whether chunk files of ``a`` can serve as chunks of ``b`` as they are."""

    def fmt(array):
        meta = array.metadata.to_dict()
        meta.pop("shape", None)
        meta.pop("attributes", None)
        return meta

    return fmt(a) == fmt(b)


def _place_chunks(source: zarr.Array, target: zarr.Array, n_chunks: int, first: int) -> int:
    """Put the first ``n_chunks`` whole chunks of ``source`` at chunk ``first`` onward of
    ``target``: hard links where both are local and alike (a byte copy across file systems),
    decoded and written again otherwise. Returns how many were decoded."""
    alike = source.chunks == target.chunks and _same_chunk_format(source, target)
    chunk = target.chunks[0]
    decoded = 0
    for i in range(n_chunks):
        src, dst = zarr_store.chunk_path(source, i), zarr_store.chunk_path(target, first + i)
        if alike and src is not None and dst is not None and src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:  # another file system, or one without hard links
                shutil.copyfile(src, dst)
            continue
        target[(first + i) * chunk : (first + i + 1) * chunk] = source[i * chunk : (i + 1) * chunk]
        decoded += 1
    return decoded


def _check_buckets(
    buckets: Sequence[str | os.PathLike],
    parts: list[zarr.Group],
    *,
    classes: Sequence[str],
    fractions: dict[str, float],
    seed: int,
) -> None:
    """Raise unless the buckets were made with these settings and are 0..K-1, each once."""
    wanted = {
        "buckets": len(buckets),
        "seed": seed,
        "fractions": dict(fractions),
        "classes": list(classes),
    }
    for b, part in zip(buckets, parts):
        made = {k: part.attrs.get(k) for k in wanted}
        if made != wanted:
            msg = f"{b}: bucket made with {made}, the dataset needs {wanted}"
            raise InputError(msg)
    if sorted(p.attrs["bucket"] for p in parts) != list(range(len(parts))):
        msg = f"buckets {[p.attrs['bucket'] for p in parts]} are not 0..{len(parts) - 1} each once"
        raise InputError(msg)


def _assemble_split(
    root: zarr.Group, split: str, parts: list[zarr.Group], *, chunk_jets: int, seed: int
) -> tuple[int, int]:
    """Write one split of the dataset from the buckets' parts of it: their whole chunks one
    after the other (linked where the chunk format allows, else decoded and rewritten), then
    the buckets' remainders (< one chunk each) shuffled together. Returns (chunks linked,
    chunks decoded)."""
    linked, decoded = 0, 0
    sizes = [int(p.attrs["splits"][split]["n"]) for p in parts]
    wholes = [n // chunk_jets * chunk_jets for n in sizes]
    group = root.create_group(split)
    group.create_group("jets")
    views = [name for name in VIEWS if name in parts[0][split]]
    names = [*views, "labels"] + [f"jets/{n}" for n, _ in parts[0][split]["jets"].arrays()]
    tail_order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(
        sum(sizes) - sum(wholes)
    )
    for name in names:
        like = parts[0][f"{split}/{name}"]
        target = _split_array(group, name, sum(sizes), like, chunk_jets)
        offset = 0
        for part, whole in zip(parts, wholes):
            n_decoded = _place_chunks(
                part[f"{split}/{name}"], target, whole // chunk_jets, offset // chunk_jets
            )
            decoded += n_decoded
            linked += whole // chunk_jets - n_decoded
            offset += whole
        if len(tail_order):
            tails = [
                part[f"{split}/{name}"][whole:n] for part, whole, n in zip(parts, wholes, sizes)
            ]
            target[offset:] = np.concatenate(tails)[tail_order]
    return linked, decoded


#: Attributes of each per-file store that the dataset records in ``sources``.
SOURCE_ATTRS = (
    "sample",
    "source",
    "source_sha256",
    "jets_sha256",
    "format",
    "n_read",
    "n_jets",
    "dropped",
    "label_counts",
)


def _normalization(parts: list[zarr.Group], key: str = "train_sums") -> dict[str, list]:
    """Mean and standard deviation (1 where constant) of the train split from the buckets'
    sums: per channel of the images' pixels (``train_sums``), or per feature of the real
    particles (``train_particle_sums``)."""
    sums = np.sum([np.asarray(p.attrs[key], dtype=np.float64) for p in parts], axis=0)
    count = np.maximum(sums[2], 1)
    mean = sums[0] / count
    std = np.sqrt(np.maximum(sums[1] / count - mean**2, 0.0))
    return {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def _particle_attrs(opened: list[_Source], parts: list[zarr.Group]) -> dict:
    """The particle view's spec and its per-feature standardisation from the train split."""
    if "particles/features" not in opened[0].views:
        return {}
    spec = dict(opened[0].group.attrs["particles"])
    return {"particles": {**spec, "normalization": _normalization(parts, "train_particle_sums")}}


def assemble_dataset(
    path: str | os.PathLike,
    buckets: Sequence[str | os.PathLike],
    sources: Sequence[str | os.PathLike],
    *,
    classes: Sequence[str],
    fractions: dict[str, float],
    seed: int,
    chunk_jets: int = zarr_store.DEFAULT_CHUNK_JETS,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Join bucket stores into the dataset store (module docs); returns its attributes.

    Raises:
        InputError: a bucket was made with other settings, or one is missing.
    """
    opened = _open_sources(sources, classes)
    parts = [zarr_store.open_store(b) for b in buckets]
    _check_buckets(buckets, parts, classes=classes, fractions=fractions, seed=seed)
    summary = {
        split: {c: sum(int(p.attrs["splits"][split]["counts"][c]) for p in parts) for c in classes}
        for split in SPLITS
    }
    check_class_splits(summary, sources)
    linked, decoded = 0, 0
    with atomic_path(path) as tmp:
        root = zarr.open_group(tmp, mode="w")
        for split in SPLITS:
            n_linked, n_decoded = _assemble_split(
                root, split, parts, chunk_jets=chunk_jets, seed=seed
            )
            linked, decoded = linked + n_linked, decoded + n_decoded
        attrs = {
            "classes": list(classes),
            "splits": summary,
            "fractions": dict(fractions),
            "seed": seed,
            "buckets": len(parts),
            "normalization": _normalization(parts),
            "image_spec": dict(opened[0].group.attrs["image_spec"]),
            "duplicates": dict(parts[0].attrs.get("duplicates", {})),
            **_particle_attrs(opened, parts),
            "sources": [
                {"path": s.path, **{k: s.group.attrs.get(k) for k in SOURCE_ATTRS}} for s in opened
            ],
            "versions": zarr_store.versions(),
        }
        root.attrs.update(attrs)
    if progress:
        progress(
            f"assembled {sum(sum(c.values()) for c in summary.values())} jets from "
            f"{len(parts)} bucket(s): {linked} chunk(s) linked, {decoded} decoded and "
            f"rewritten"
        )
    return attrs


def check_class_splits(summary: dict[str, dict[str, int]], sources: Sequence) -> None:
    """Raise, with the jets per class and split, unless at least two classes have jets and
    every class with jets has some in every split (the metrics compare classes on the test
    split, early stopping on val)."""
    table = "; ".join(f"{split}: {counts}" for split, counts in summary.items())
    present = [
        c for c in next(iter(summary.values())) if any(counts[c] for counts in summary.values())
    ]
    if len(present) < 2:
        msg = (
            f"the dataset of {len(sources)} image store(s) has jets of "
            f"{len(present)} class(es) {present}: a classifier needs two "
            f"(jets per split and class: {table})"
        )
        raise InputError(msg)
    empty = [(split, c) for split, counts in summary.items() for c in present if not counts[c]]
    if empty:
        split, c = empty[0]
        msg = (
            f"class {c!r} has no jet in the {split} split: each class is "
            f"split by the fractions jet by jet, and {c!r} has too few jets "
            f"for every split (jets per split and class: {table}); add jets "
            f"of {c!r} or drop the class"
        )
        raise InputError(msg)


def build_dataset(
    path: str | os.PathLike,
    sources: Sequence[str | os.PathLike],
    *,
    classes: Sequence[str],
    fractions: dict[str, float],
    seed: int,
    chunk_jets: int = zarr_store.DEFAULT_CHUNK_JETS,
    buckets: int = 1,
    memory_mb: float = DEFAULT_MEMORY_MB,
    scheduler: str = "threads",
    num_workers: int = 1,
    progress: Callable[[str], None] | None = None,
    drop_duplicates: Sequence[str] = (),
) -> dict:
    """Build the dataset store in one call: every bucket, then the assembly (what the
    workflow's ``dataset_bucket`` and ``dataset`` jobs do in turn); returns its attributes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.buckets-", dir=path.parent) as tmp:
        parts = [Path(tmp) / f"{k}.zarr" for k in range(buckets)]
        for k, part in enumerate(parts):
            write_bucket(
                part,
                sources,
                bucket=k,
                buckets=buckets,
                classes=classes,
                fractions=fractions,
                seed=seed,
                chunk_jets=chunk_jets,
                memory_mb=memory_mb,
                scheduler=scheduler,
                num_workers=num_workers,
                progress=progress,
                drop_duplicates=drop_duplicates,
            )
        return assemble_dataset(
            path,
            parts,
            sources,
            classes=classes,
            fractions=fractions,
            seed=seed,
            chunk_jets=chunk_jets,
            progress=progress,
        )


def load_split(path: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Images, labels and jet features of one split, in memory (for small datasets)."""
    root = zarr_store.open_store(path)
    group = root[split]
    return group["images"][...], group["labels"][...], zarr_store.read_table(group)


def class_mean_images(
    path: str | os.PathLike, split: str, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mean image per class (classes, channels, η, φ), jets per class) of one split, summed
    one chunk at a time."""
    group = zarr_store.open_store(path)[split]
    images, labels = group["images"], group["labels"][...]
    sums = np.zeros((n_classes, *images.shape[1:]), dtype=np.float64)
    step = images.chunks[0]
    for start in range(0, images.shape[0], step):
        block, y = images[start : start + step], labels[start : start + step]
        for i in range(n_classes):
            sums[i] += block[y == i].sum(axis=0)
    counts = np.bincount(labels, minlength=n_classes)
    return sums / np.maximum(counts, 1)[:, None, None, None], counts


def images_at(path: str | os.PathLike, split: str, rows: np.ndarray) -> dict[int, np.ndarray]:
    """The images of the given rows of a split, keyed by row (only their chunks are read)."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    images = zarr_store.open_store(path)[split]["images"]
    return dict(zip(rows.tolist(), images.oindex[rows] if len(rows) else []))
