"""Batches of normalised images from a dataset split: in memory, or streamed from Zarr.

A split that fits in the memory budget is loaded once and shuffled per epoch as a whole. A larger
one is streamed: each epoch visits the Zarr chunks in a seeded random order, a few chunks at a
time, shuffled together, so memory holds only ``buffer_chunks`` chunks whatever the split's size.
Both draw their randomness from the caller's ``torch.Generator``, so a run is reproducible and
resumable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from jetimage import store


def normalize(images: np.ndarray, normalization: dict) -> torch.Tensor:
    """(x - mean) / std per channel, with the dataset's train-split statistics."""
    mean = np.asarray(normalization["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(normalization["std"], dtype=np.float32)[None, :, None, None]
    return torch.from_numpy((images - mean) / std)


class InMemory:
    """The whole split as tensors."""

    streaming = False

    def __init__(self, images: np.ndarray, labels: np.ndarray, normalization: dict):
        self.images = normalize(images, normalization)
        self.labels = torch.from_numpy(np.asarray(labels))

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches if a generator is given, in order otherwise."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            if order is None:
                yield self.images[start:start + batch_size], self.labels[start:start + batch_size]
            else:  # a gather per batch: small buffers the allocator reuses (a whole-split
                # gather per epoch measured 2x slower here, paying page faults on fresh memory)
                idx = order[start:start + batch_size]
                yield self.images[idx], self.labels[idx]


class ZarrStream:
    """The split read chunk by chunk from its Zarr store."""

    streaming = True

    def __init__(self, group, normalization: dict, *, buffer_chunks: int = 4):
        self.images, self.labels = group["images"], group["labels"]
        self.normalization = normalization
        self.chunk = self.images.chunks[0]
        self.buffer_chunks = buffer_chunks

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batches(self, batch_size: int, generator: torch.Generator | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n_chunks = -(-len(self) // self.chunk)
        chunks = (torch.randperm(n_chunks, generator=generator).tolist()
                  if generator is not None else list(range(n_chunks)))
        for first in range(0, n_chunks, self.buffer_chunks):
            group = chunks[first:first + self.buffer_chunks]
            x = np.concatenate([self.images[c * self.chunk:(c + 1) * self.chunk] for c in group])
            y = np.concatenate([self.labels[c * self.chunk:(c + 1) * self.chunk] for c in group])
            yield from InMemory(x, y, self.normalization).batches(batch_size, generator)


def open_split(path: str | os.PathLike, split: str, *, memory_budget_mb: float):
    """:class:`InMemory` if the split's images fit in the budget, :class:`ZarrStream` if not."""
    root = store.open_store(path)
    group = root[split]
    normalization = dict(root.attrs["normalization"])
    size_mb = group["images"].nbytes / 1e6
    if size_mb <= memory_budget_mb:
        return InMemory(group["images"][...], group["labels"][...], normalization)
    return ZarrStream(group, normalization)
