"""Jets seen twice: a content digest per jet, and the check that no jet enters a run twice.

A jet's identity for the splits is its file and entry (:mod:`jetimage.dataset`), so the same
jet in two files, or twice in one, would land in different splits and leak from train into
test. The images stage records a 64-bit digest of each jet's content (``jets/digest``): its
constituents' four-momenta, whatever their order, or the pixels of an already-pixelated image;
the dataset stage compares the digests of every store of the run before reading any image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jetimage.files import InputError

#: 2^64 over the golden ratio: spreads consecutive integers over the 64 bits.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(x) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 whose output bits look independent."""
    x = np.array(x, dtype=np.uint64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def constituent_digests(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, E: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """A 64-bit digest per jet of its constituents' four-momenta (their float64 bits), the same
    whatever their order; ``offsets`` says where each jet's constituents start."""
    h = np.zeros(len(px), dtype=np.uint64)
    for values in (px, py, pz, E):
        bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
        h = mix(h * GOLDEN + bits)
    total = np.concatenate([[np.uint64(0)], np.cumsum(h, dtype=np.uint64)])
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = (offsets[1:] - offsets[:-1]).astype(np.uint64)
    return mix(total[offsets[1:]] - total[offsets[:-1]] + counts * GOLDEN)


def image_digests(images: np.ndarray) -> np.ndarray:
    """A 64-bit digest per image of its pixels (their float32 bits, position by position),
    a few thousand images at a time."""
    flat = np.ascontiguousarray(images, dtype=np.float32).reshape(len(images), -1)
    position = np.arange(flat.shape[1], dtype=np.uint64) * GOLDEN
    out = np.empty(len(flat), dtype=np.uint64)
    for start in range(0, len(flat), 4096):
        bits = flat[start : start + 4096].view(np.uint32).astype(np.uint64)
        out[start : start + 4096] = mix(np.sum(mix(bits + position), axis=1, dtype=np.uint64))
    return out


@dataclass
class Store:
    """What the check needs of one per-file store: the input file it was read from, its
    sample, its jets' digests and their entries in the file (in the store's row order;
    anything indexable, read only to name a copy)."""

    source: str
    sample: str
    digests: np.ndarray
    entries: Any


@dataclass
class Found:
    """Jets seen more than once: ``copies`` jets beyond the first of each, ``dropped`` rows
    per store (by index) that the dataset leaves out, and the count per sample."""

    copies: int = 0
    dropped: dict[int, np.ndarray] = field(default_factory=dict)
    per_sample: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        """For the dataset's attributes."""
        return {
            "copies": self.copies,
            "dropped": sum(len(v) for v in self.dropped.values()),
            "dropped_per_sample": dict(sorted(self.per_sample.items())),
        }


def find(stores: Sequence[Store], drop: Sequence[str] = ()) -> Found:
    """Every jet whose digest another jet of the run has, in one store or across stores.

    A group of identical jets keeps one: the one in a sample that does not drop copies, if
    any; the others must all be in ``drop`` samples, and are returned to be left out.

    Raises:
        InputError: two identical jets in samples that do not drop copies, naming both files
            and entries and how many jets are seen more than once.
    """
    if not stores:
        return Found()
    digests = np.concatenate([s.digests for s in stores])
    owner = np.concatenate([np.full(len(s.digests), i) for i, s in enumerate(stores)])
    row = np.concatenate([np.arange(len(s.digests)) for s in stores])
    order = np.argsort(digests, kind="stable")
    sorted_digests = digests[order]
    repeated = np.flatnonzero(sorted_digests[1:] == sorted_digests[:-1])
    found = Found()
    if not len(repeated):
        return found
    in_group = np.zeros(len(order), dtype=bool)
    in_group[repeated] = in_group[repeated + 1] = True
    members = order[in_group]  # grouped by digest, stably: store order, then row order
    starts = np.flatnonzero(
        np.r_[True, sorted_digests[in_group][1:] != sorted_digests[in_group][:-1]]
    )
    dropping = set(drop)
    droppable = np.array([s.sample in dropping for s in stores])[owner[members]]
    found.copies = len(members) - len(starts)
    dropped: list[int] = []
    for start, stop in zip(starts, [*starts[1:], len(members)]):
        group = members[start:stop]
        kept = [m for m, d in zip(group, droppable[start:stop]) if not d]
        if len(kept) > 1:
            raise InputError(_message(stores, owner, row, kept[:2], found.copies))
        keep = kept[0] if kept else group[0]
        dropped.extend(m for m in group if m != keep)
    for m in dropped:
        store = int(owner[m])
        found.per_sample[stores[store].sample] = found.per_sample.get(stores[store].sample, 0) + 1
    dropped_array = np.array(dropped, dtype=np.int64)
    for store in np.unique(owner[dropped_array]):
        found.dropped[int(store)] = np.sort(row[dropped_array[owner[dropped_array] == store]])
    return found


def _message(stores, owner, row, pair, copies: int) -> str:
    (a, b) = ((stores[int(owner[m])], int(row[m])) for m in pair)
    where = [f"{s.source} entry {int(s.entries[r])}" for s, r in (a, b)]
    samples = sorted({a[0].sample, b[0].sample})
    return (
        f"the same jet (the same constituents, or pixels) is read twice: {where[0]} and "
        f"{where[1]}; {copies} jet(s) of the run are copies of another. A jet's split follows "
        f"its file and entry, so copies would leak from train into test. Remove the copies "
        f"from the files, or set duplicates: drop on sample(s) {samples} to keep one of each "
        f"(counted in the dataset's attributes)"
    )
