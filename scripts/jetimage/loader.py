"""Batches of a model's normalised inputs from a dataset split: in memory, or streamed from Zarr.

A model takes images or the particle view (:data:`jetimage.models.INPUTS`); a batch is
``(x, y)``, or ``(x, y, w)`` with per-jet weights, where ``x`` is the images tensor, or the
tuple ``(particles, mask)`` (:func:`as_inputs` makes either a tuple of the model's arguments).

A split that fits in the memory budget is loaded once and shuffled per epoch as a whole. A larger
one is streamed: each epoch visits the Zarr chunks in a seeded random order, a few chunks at a
time, shuffled together, so memory holds only ``buffer_chunks`` chunks whatever the split's size.
Both draw their randomness from the caller's ``torch.Generator``, so a run is reproducible and
resumable.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from jetimage import zarr_store

#: The dataset arrays of each kind of input, in the order of the model's arguments.
ARRAYS = {"images": ("images",), "particles": ("particles/features", "particles/mask")}


def normalization_of(attrs, inputs: str) -> dict:
    """The train-split statistics a kind of input is standardised with (a dataset's attrs)."""
    if inputs == "particles":
        return dict(attrs["particles"]["normalization"])
    return dict(attrs["normalization"])


def as_inputs(x) -> tuple[torch.Tensor, ...]:
    """A batch's ``x`` as the tuple of the model's arguments."""
    return x if isinstance(x, tuple) else (x,)


def cut_padding(x) -> tuple[torch.Tensor, ...]:
    """The model's arguments of a batch's ``x`` (:func:`as_inputs`), a particle batch without
    the trailing particle slots that are padding in every jet of the batch (the hardest come
    first): particle models are blind to padding, so the scores stay and the work follows the
    batch's largest multiplicity rather than ``particles.max``. Not for an ONNX export's
    example, whose particle axis must keep its full length."""
    if not isinstance(x, tuple):
        return (x,)
    particles, mask = x
    used = torch.nonzero(mask.any(dim=0))
    n = int(used[-1]) + 1 if len(used) else 1
    return (particles[:, :n], mask[:, :n]) if n < mask.shape[1] else x


def standardize_particles(
    features: np.ndarray, mask: np.ndarray, normalization: dict, *, copy: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """((x - mean) / std per feature for the real particles, 0 for the padding; the mask as
    float32), with the dataset's train-split statistics. ``copy=False`` works in place on a
    float32 ``features`` the caller no longer needs."""
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    scale = (1 / np.asarray(normalization["std"], dtype=np.float32)).astype(np.float32)
    x = features.astype(np.float32, copy=copy)
    np.subtract(x, mean, out=x)
    np.multiply(x, scale, out=x)
    x *= mask[..., None]
    return torch.from_numpy(x), torch.from_numpy(mask.astype(np.float32))


def prepare(
    inputs: str, arrays: tuple[np.ndarray, ...], normalization: dict, *, copy: bool = True
) -> tuple[torch.Tensor, ...]:
    """The model's arguments from the raw arrays of :data:`ARRAYS` ``[inputs]``."""
    if inputs == "particles":
        return standardize_particles(arrays[0], arrays[1], normalization, copy=copy)
    return (normalize(arrays[0], normalization, copy=copy),)


def _batch_x(tensors: tuple[torch.Tensor, ...]):
    return tensors if len(tensors) > 1 else tensors[0]


def normalize(images: np.ndarray, normalization: dict, *, copy: bool = True) -> torch.Tensor:
    """(x - mean) / std per channel, with the dataset's train-split statistics.

    ``copy=False`` works in place on a float32 array the caller no longer needs, sparing the
    page faults of fresh memory.
    """
    mean = np.asarray(normalization["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(normalization["std"], dtype=np.float32)[None, :, None, None]
    if copy or images.dtype != np.float32:
        return torch.from_numpy((images - mean) / std)
    np.subtract(images, mean, out=images)
    np.divide(images, std, out=images)
    return torch.from_numpy(images)


class InMemory:
    """The whole split as tensors; with per-jet ``weights``, batches are (x, y, w)."""

    streaming = False

    def __init__(
        self,
        x: np.ndarray | tuple[np.ndarray, ...],
        labels: np.ndarray,
        normalization: dict,
        weights: np.ndarray | None = None,
        *,
        inputs: str = "images",
    ):
        """Takes ownership of ``x`` (the images, or the particles' features and mask),
        normalised in place."""
        self.x = prepare(inputs, x if isinstance(x, tuple) else (x,), normalization, copy=False)
        self.labels = torch.from_numpy(np.asarray(labels))
        self.weights = (
            None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))
        )

    @property
    def images(self) -> torch.Tensor:
        """The normalised images (image inputs)."""
        return self.x[0]

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Shuffled batches if a generator is given, in order otherwise."""
        n, k = len(self), len(self.x)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        columns = (*self.x, self.labels) + (() if self.weights is None else (self.weights,))
        for start in range(0, n, batch_size):
            if order is None:
                batch = tuple(c[start : start + batch_size] for c in columns)
            else:  # a gather per batch (index_select): small buffers the allocator reuses
                idx = order[start : start + batch_size]
                batch = tuple(torch.index_select(c, 0, idx) for c in columns)
            yield (_batch_x(batch[:k]), *batch[k:])


class ZarrStream:
    """The split read chunk by chunk from its Zarr store, on all the job's cores.

    Each epoch visits the Zarr chunks in a seeded random order, ``buffer_chunks`` at a time.
    Worker threads decode (Zstandard releases the GIL) and normalise each chunk in place in a
    group buffer (one per array of the input: the images, or the particles' features and mask)
    while the previous groups are consumed, so reading overlaps the training step. The dataset
    is already shuffled jet by jet (:mod:`jetimage.dataset`), so a group's batches are
    contiguous views of the buffers (no gather); a random shift of the batch boundaries and a
    random order of the batches vary their make-up from epoch to epoch. A buffer is reused once
    no batch refers to it any more.
    """

    streaming = True

    #: Groups decoded ahead of the one being consumed.
    LOOKAHEAD = 2

    def __init__(
        self,
        group,
        normalization: dict,
        *,
        buffer_chunks: int = 8,
        workers: int | None = None,
        weights: np.ndarray | None = None,
        inputs: str = "images",
    ):
        self.inputs = inputs
        self.arrays = [group[name] for name in ARRAYS[inputs]]
        self.labels = np.asarray(group["labels"][...], dtype=np.int64)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.normalization = normalization
        if inputs == "images":
            channels = self.arrays[0].shape[1]
            self.mean = np.asarray(normalization["mean"], dtype=np.float32).reshape(channels, 1, 1)
            self.scale = (1 / np.asarray(normalization["std"], dtype=np.float32)).reshape(
                channels, 1, 1
            )
        self.chunk = int(self.arrays[0].chunks[0])
        self.buffer_chunks = buffer_chunks
        self.workers = workers or len(os.sched_getaffinity(0))
        self._chunk_files = [zarr_store.chunk_file_reader(a) for a in self.arrays]
        self._buffers: list[list[np.ndarray]] = []

    @property
    def images(self):
        """The images array (image inputs)."""
        return self.arrays[0]

    def __len__(self) -> int:
        return len(self.labels)

    def _rows(self, c: int) -> int:
        return min(self.chunk, len(self) - c * self.chunk)

    def _buffer(self) -> list[np.ndarray]:
        """Group buffers that nothing refers to any more (new if none are free): a group's
        tensors refer to them from :meth:`_submit` on, its batches after that."""
        for buffers in self._buffers:
            # the list, this loop, getrefcount's argument
            if all(sys.getrefcount(b) <= 3 for b in buffers):
                return buffers
        buffers = [
            np.empty((self.buffer_chunks * self.chunk, *a.shape[1:]), dtype=a.dtype)
            for a in self.arrays
        ]
        self._buffers.append(buffers)
        return buffers

    def _fill(self, outs: list[np.ndarray], c: int) -> None:
        """Decode chunk ``c`` of every array into ``outs`` and normalise it there."""
        for array, read, out in zip(self.arrays, self._chunk_files, outs):
            if read is not None and self._rows(c) == self.chunk:
                read(c, out)
            else:
                out[...] = array[c * self.chunk : c * self.chunk + len(out)]
        if self.inputs == "images":
            np.subtract(outs[0], self.mean, out=outs[0])
            np.multiply(outs[0], self.scale, out=outs[0])
        else:
            standardize_particles(outs[0], outs[1], self.normalization, copy=False)

    def _submit(self, pool, chunks: list[int]):
        """Start decoding ``chunks`` into free group buffers; returns the group's tensors
        (views that mark the buffers as in use from now until no batch refers to them), its
        per-jet columns and the decoding futures."""
        buffers = self._buffer()
        offsets = np.concatenate([[0], np.cumsum([self._rows(c) for c in chunks])])
        x = [torch.from_numpy(b[: offsets[-1]]) for b in buffers]
        futures = [
            pool.submit(self._fill, [b[offsets[i] : offsets[i + 1]] for b in buffers], c)
            for i, c in enumerate(chunks)
        ]
        per_jet = [self.labels] + ([] if self.weights is None else [self.weights])
        columns = [
            torch.from_numpy(
                np.concatenate(
                    [column[c * self.chunk : c * self.chunk + self._rows(c)] for c in chunks]
                )
            )
            for column in per_jet
        ]
        return x, columns, futures

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Normalised batches (x, y), or (x, y, w) with weights, in the store's order
        without a generator."""
        n_chunks = -(-len(self) // self.chunk)
        chunks = (
            torch.randperm(n_chunks, generator=generator).tolist()
            if generator is not None
            else list(range(n_chunks))
        )
        groups = [
            chunks[i : i + self.buffer_chunks] for i in range(0, n_chunks, self.buffer_chunks)
        ]
        k = len(self.arrays)
        with ThreadPoolExecutor(self.workers) as pool:
            ahead = deque(self._submit(pool, g) for g in groups[: self.LOOKAHEAD])
            for g in range(len(groups)):
                x, columns, futures = ahead.popleft()
                for future in futures:
                    future.result()
                if g + self.LOOKAHEAD < len(groups):
                    ahead.append(self._submit(pool, groups[g + self.LOOKAHEAD]))
                if self.inputs == "particles":
                    x[1] = x[1].to(torch.float32)  # the mask, as the model takes it
                batch: tuple[torch.Tensor, ...] = ()
                for batch in _contiguous_batches((*x, *columns), batch_size, generator):
                    yield (_batch_x(batch[:k]), *batch[k:])
                del batch  # the last batch of a group must not keep its buffers in use


def _contiguous_batches(
    columns: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator | None
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches of consecutive rows of every column (views); with a generator, the boundaries
    shifted by a random offset (the rows before it join the last batch) and the batches in
    random order."""
    n = len(columns[0])
    shift = (
        int(torch.randint(min(batch_size, n), (1,), generator=generator))
        if generator is not None and n > batch_size
        else 0
    )
    starts = list(range(shift, n - batch_size + 1, batch_size)) if n >= batch_size else []
    end = starts[-1] + batch_size if starts else shift
    if generator is not None:
        starts = [starts[i] for i in torch.randperm(len(starts), generator=generator)]
    for start in starts:
        yield tuple(c[start : start + batch_size] for c in columns)
    rest = torch.cat([torch.arange(end, n), torch.arange(0, shift)])  # after the last batch,
    for piece in torch.tensor_split(rest, -(-len(rest) // batch_size)) if len(rest) else ():
        yield tuple(c[piece] for c in columns)  # and before the shift: one or two, evenly


def open_split(
    path: str | os.PathLike,
    split: str,
    *,
    memory_budget_mb: float,
    weights: np.ndarray | None = None,
    inputs: str = "images",
    normalization: dict | None = None,
    first: int | None = None,
):
    """:class:`InMemory` if the split's ``inputs`` (images or particles) fit in the budget,
    :class:`ZarrStream` if not; with per-jet ``weights`` (in the split's order), batches carry
    them as a third tensor. Standardised with ``normalization``, the dataset's by default.
    With ``first``, only the split's first jets (a random subset: splits are shuffled), in
    memory whatever the budget."""
    root = zarr_store.open_store(path)
    group = root[split]
    normalization = normalization or normalization_of(root.attrs, inputs)
    arrays = [group[name] for name in ARRAYS[inputs]]
    if first is not None:
        x = tuple(a[:first] for a in arrays)
        w = None if weights is None else weights[:first]
        return InMemory(x, group["labels"][:first], normalization, w, inputs=inputs)
    if sum(a.nbytes for a in arrays) / 1e6 <= memory_budget_mb:
        x = tuple(a[...] for a in arrays)
        return InMemory(x, group["labels"][...], normalization, weights, inputs=inputs)
    return ZarrStream(group, normalization, weights=weights, inputs=inputs)
