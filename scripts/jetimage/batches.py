"""Batches of jets as they travel between stages.

A :class:`Jets` batch holds ragged constituents (an awkward array of vector ``Momentum4D``
records with ``px, py, pz, E, charge, pid``) and a flat table of per-jet features; an
:class:`ImageBatch` holds already-pixelated images and their table; :class:`Counts` is what a
reader saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np
import vector

vector.register_awkward()


@dataclass
class Jets:
    """Constituents and per-jet features of a set of jets."""

    constituents: ak.Array
    table: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.constituents)

    def __getitem__(self, where) -> Jets:
        return Jets(self.constituents[where], {k: v[where] for k, v in self.table.items()})


@dataclass(frozen=True)
class ImageBatch:
    """Already-pixelated images (jets, channels, η, φ) with their per-jet table."""

    images: np.ndarray
    table: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, where) -> ImageBatch:
        return ImageBatch(self.images[where], {k: v[where] for k, v in self.table.items()})


@dataclass
class Counts:
    """What a reader saw: jets read, kept, and dropped by reason."""

    read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, n: int) -> None:
        """Count ``n`` jets dropped for ``reason``."""
        self.dropped[reason] = self.dropped.get(reason, 0) + int(n)
