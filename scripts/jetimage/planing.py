"""Training weights that decorrelate a tagger from chosen jet variables (planing).

Planing (Chang, Cohen, Ostdiek, arXiv:1709.10106; weaver's ``reweight_method: flat``) weights
each training jet by the inverse density of its class in the planed variables, so that in the
weighted training sample every class is flat in them (here in (pT, soft-drop mass) by default):
they then carry no information a classifier could learn, and it must separate the classes by
something else, which sculpts the background mass less.

The densities are histograms of the train split, equal-width bins between the 0.5% and 99.5%
quantiles of all its jets (jets beyond go into the edge bins). A jet's weight is capped at
:data:`MAX_WEIGHT` times its class's mean weight, then each class's weights are scaled to mean
1, which keeps the class balance of the sample. The same histograms weigh the val split, so the
early stopping watches the loss the model is trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from jetimage.files import InputError

#: A weight is at most this many times its class's mean (a few jets in a sparse bin must not
#: dominate the loss).
MAX_WEIGHT = 10.0


@dataclasses.dataclass(frozen=True)
class Planing:
    """Per-class inverse densities in bins of the planed variables, fitted on a train split."""

    variables: tuple[str, ...]
    edges: tuple[np.ndarray, ...]
    inverse_density: np.ndarray  # (classes, bins of variable 1, bins of variable 2, ...)

    @classmethod
    def fit(
        cls,
        table: Mapping[str, np.ndarray],
        labels: np.ndarray,
        variables: Sequence[str],
        *,
        n_classes: int,
        bins: int = 10,
    ) -> Planing:
        """Histogram each class of a split's jets in ``bins`` equal-width bins per variable.

        Raises:
            InputError: a variable that is missing, not finite for any jet, or without
                spread (99% of the jets at one value): planing would weight every jet alike
                and still call the model planed.
        """
        variables = tuple(variables)
        values = _values(table, variables)
        edges = []
        for name, v in zip(variables, values.T):
            finite = v[np.isfinite(v)]
            if not finite.size:
                msg = (
                    f"planing variable {name!r} is NaN or infinite for every one of the "
                    f"{len(v)} jets: there is nothing to plane in"
                )
                raise InputError(msg)
            low, high = np.quantile(finite, [0.005, 0.995])
            if not high > low:
                msg = (
                    f"planing variable {name!r} has no spread: 99% of the {len(v)} jets have "
                    f"{low:g}, so planing would weight every jet alike; plane in another "
                    f"variable or drop it"
                )
                raise InputError(msg)
            edges.append(np.linspace(low, high, bins + 1))
        planing = cls(variables, tuple(edges), np.zeros((n_classes,) + (bins,) * len(variables)))
        cells = planing._cells(values)
        counts = np.zeros_like(planing.inverse_density)
        for c in range(n_classes):
            np.add.at(counts[c], tuple(cells[labels == c].T), 1.0)
        np.divide(1.0, counts, out=planing.inverse_density, where=counts > 0)
        return planing

    def _cells(self, values: np.ndarray) -> np.ndarray:
        """(jets, variables) bin indices, clipped into the edge bins (NaN: the first bin)."""
        cells = [
            np.clip(
                np.searchsorted(e, np.nan_to_num(v, nan=-np.inf), side="right") - 1, 0, len(e) - 2
            )
            for v, e in zip(values.T, self.edges)
        ]
        return np.stack(cells, axis=1)

    def weights(self, table: Mapping[str, np.ndarray], labels: np.ndarray) -> np.ndarray:
        """float32 weight of each jet: its class's inverse density in its bin, capped at
        :data:`MAX_WEIGHT` × the class mean, scaled to mean 1 within each class (a jet in a bin
        its class never filled in the train split gets the class's largest weight)."""
        labels = np.asarray(labels)
        cells = self._cells(_values(table, self.variables))
        raw = self.inverse_density[(labels, *cells.T)]
        out = np.zeros(len(labels), dtype=np.float64)
        for c in np.unique(labels):
            mine = labels == c
            w = raw[mine]
            filled = w > 0
            w = np.where(filled, w, w.max() if filled.any() else 1.0)
            for _ in range(5):  # capping lowers the mean; a few rounds settle it
                w = np.minimum(w / w.mean(), MAX_WEIGHT)
            out[mine] = w / w.mean()
        return out.astype(np.float32)


def _values(table: Mapping[str, np.ndarray], variables: Sequence[str]) -> np.ndarray:
    from jetimage.baselines import feature_matrix

    return feature_matrix(table, variables, what="planing variable")


def split_weights(
    planing: Planing, root, splits: Sequence[str] = ("train", "val")
) -> dict[str, np.ndarray]:
    """The weights of each named split of a dataset store (``jetimage.zarr_store.open_store``)."""
    from jetimage import zarr_store

    return {
        s: planing.weights(zarr_store.read_table(root[s]), root[s]["labels"][...]) for s in splits
    }
