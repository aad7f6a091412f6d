"""Batches of normalised images from a dataset split: in memory, or streamed from Zarr.

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
        images: np.ndarray,
        labels: np.ndarray,
        normalization: dict,
        weights: np.ndarray | None = None,
    ):
        """Takes ownership of ``images``, normalised in place."""
        self.images = normalize(images, normalization, copy=False)
        self.labels = torch.from_numpy(np.asarray(labels))
        self.weights = (
            None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))
        )

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Shuffled batches if a generator is given, in order otherwise."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        columns = (self.images, self.labels) + (() if self.weights is None else (self.weights,))
        for start in range(0, n, batch_size):
            if order is None:
                yield tuple(c[start : start + batch_size] for c in columns)
            else:  # a gather per batch (index_select): small buffers the allocator reuses
                idx = order[start : start + batch_size]
                yield tuple(torch.index_select(c, 0, idx) for c in columns)


class ZarrStream:
    """The split read chunk by chunk from its Zarr store, on all the job's cores.

    Each epoch visits the Zarr chunks in a seeded random order, ``buffer_chunks`` at a time.
    Worker threads decode (Zstandard releases the GIL) and normalise each chunk in place in a
    group buffer while the previous groups are consumed, so reading overlaps the training step.
    The dataset is already shuffled jet by jet (:mod:`jetimage.dataset`), so a group's batches
    are contiguous views of the buffer (no gather); a random shift of the batch boundaries and a
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
    ):
        self.images = group["images"]
        self.labels = np.asarray(group["labels"][...], dtype=np.int64)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        channels = self.images.shape[1]
        self.mean = np.asarray(normalization["mean"], dtype=np.float32).reshape(channels, 1, 1)
        self.scale = (1 / np.asarray(normalization["std"], dtype=np.float32)).reshape(
            channels, 1, 1
        )
        self.chunk = int(self.images.chunks[0])
        self.buffer_chunks = buffer_chunks
        self.workers = workers or len(os.sched_getaffinity(0))
        self._chunk_file = zarr_store.chunk_file_reader(self.images)
        self._buffers: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.labels)

    def _rows(self, c: int) -> int:
        return min(self.chunk, len(self) - c * self.chunk)

    def _buffer(self) -> np.ndarray:
        """A group buffer that no batch refers to any more (new if none is free)."""
        for buffer in self._buffers:
            if sys.getrefcount(buffer) <= 3:  # the list, this loop, getrefcount's argument
                return buffer
        buffer = np.empty(
            (self.buffer_chunks * self.chunk, *self.images.shape[1:]), dtype=np.float32
        )
        self._buffers.append(buffer)
        return buffer

    def _fill(self, out: np.ndarray, c: int) -> None:
        """Decode chunk ``c`` into ``out`` and normalise it there."""
        if self._chunk_file is not None and self._rows(c) == self.chunk:
            self._chunk_file(c, out)
        else:
            out[...] = self.images[c * self.chunk : c * self.chunk + len(out)]
        np.subtract(out, self.mean, out=out)
        np.multiply(out, self.scale, out=out)

    def _submit(self, pool, chunks: list[int]):
        buffer = self._buffer()
        offsets = np.concatenate([[0], np.cumsum([self._rows(c) for c in chunks])])
        futures = [
            pool.submit(self._fill, buffer[offsets[i] : offsets[i + 1]], c)
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
        return buffer, int(offsets[-1]), columns, futures

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
        with ThreadPoolExecutor(self.workers) as pool:
            ahead = deque(self._submit(pool, g) for g in groups[: self.LOOKAHEAD])
            for k in range(len(groups)):
                buffer, n, columns, futures = ahead.popleft()
                for future in futures:
                    future.result()
                if k + self.LOOKAHEAD < len(groups):
                    ahead.append(self._submit(pool, groups[k + self.LOOKAHEAD]))
                x = torch.from_numpy(buffer[:n])
                del buffer
                yield from _contiguous_batches((x, *columns), batch_size, generator)


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
):
    """:class:`InMemory` if the split's images fit in the budget, :class:`ZarrStream` if not;
    with per-jet ``weights`` (in the split's order), batches carry them as a third tensor."""
    root = zarr_store.open_store(path)
    group = root[split]
    normalization = dict(root.attrs["normalization"])
    size_mb = group["images"].nbytes / 1e6
    if size_mb <= memory_budget_mb:
        return InMemory(group["images"][...], group["labels"][...], normalization, weights)
    return ZarrStream(group, normalization, weights=weights)
