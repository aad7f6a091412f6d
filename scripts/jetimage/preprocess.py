"""Jet preprocessing in hadronic coordinates, vectorised over all jets of a chunk.

Constituents are held flat: one numpy array per quantity, with ``jet`` giving each
constituent's jet index (sorted, as in an awkward array's content). Per-jet reductions are
``np.bincount`` sums, so there is no Python loop over jets. The steps follow energyflow's
``ptyphims_from_p4s``, ``center_ptyphims``, ``rotate_ptyphims`` and ``reflect_ptyphims``
formula for formula, so that the ``energyflow`` preset reproduces its images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

TWO_PI = 2.0 * np.pi


@dataclass
class FlatJets:
    """Flat constituents of jets: 4-momenta, charge, where each jet's constituents start, and
    the particle-type code (PDG id) where the input has one."""

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    E: np.ndarray
    charge: np.ndarray | None
    offsets: np.ndarray
    pid: np.ndarray | None = None

    @property
    def n_jets(self) -> int:
        """Number of jets."""
        return len(self.offsets) - 1

    def chunk(self, start: int, stop: int) -> FlatJets:
        """Jets ``start`` to ``stop`` as views of the same arrays (no copy)."""
        offsets = self.offsets[start : stop + 1]
        first, last = offsets[0], offsets[-1]

        def view(values):
            return None if values is None else values[first:last]

        return FlatJets(
            px=view(self.px),
            py=view(self.py),
            pz=view(self.pz),
            E=view(self.E),
            charge=view(self.charge),
            offsets=offsets - first,
            pid=view(self.pid),
        )

    @cached_property
    def jet(self) -> np.ndarray:
        """The jet index of each constituent."""
        return np.repeat(np.arange(self.n_jets), np.diff(self.offsets))

    def jet_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-constituent quantity over each jet."""
        return np.bincount(self.jet, weights=values, minlength=self.n_jets)


def first_argmax(values: np.ndarray, jet: np.ndarray, n_jets: int) -> np.ndarray:
    """Index (into the flat arrays) of each jet's largest value; the first one on ties.

    Jets without constituents get index -1.
    """
    best = np.full(n_jets, -np.inf)
    np.maximum.at(best, jet, values)
    is_best = values == best[jet]
    first = np.full(n_jets, np.iinfo(np.int64).max)
    np.minimum.at(first, jet[is_best], np.flatnonzero(is_best))
    first[first == np.iinfo(np.int64).max] = -1
    return first


def phi_fix(phi: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Move each φ by ±2π so that it lies within π of ``ref`` (energyflow's ``phi_fix``)."""
    diff = phi - ref
    phi = phi.copy()
    phi[diff > np.pi] -= TWO_PI
    phi[diff < -np.pi] += TWO_PI
    return phi


def farthest_constituent(jets: FlatJets) -> np.ndarray:
    """Per jet, the largest distance ΔR = √(Δy² + Δφ²) of a constituent (with pT > 0) from
    the jet's E-scheme axis (the sum of its constituents); 0 for a jet without any."""
    with np.errstate(divide="ignore", invalid="ignore"):
        px, py, pz, e = (jets.jet_sum(v) for v in (jets.px, jets.py, jets.pz, jets.E))
        axis_y = 0.5 * np.log((e + pz) / (e - pz))
    y = longitudinal(jets, coordinate="rapidity")
    dphi = np.arctan2(jets.py, jets.px) - np.arctan2(py, px)[jets.jet]
    dphi = (dphi + np.pi) % (2 * np.pi) - np.pi
    distance = np.hypot(y - axis_y[jets.jet], dphi)
    distance = np.where(np.hypot(jets.px, jets.py) > 0, np.nan_to_num(distance, nan=np.inf), 0.0)
    farthest = np.zeros(jets.n_jets)
    filled = np.diff(jets.offsets) > 0
    if np.any(filled):
        starts = np.asarray(jets.offsets[:-1])[filled]
        farthest[filled] = np.maximum.reduceat(distance, starts)
    return farthest


def longitudinal(jets: FlatJets, *, coordinate: str = "rapidity") -> np.ndarray:
    """y = artanh(pz/E) or η = arsinh(pz/pT) of every constituent, with numpy's vectorised
    functions (those energyflow calls); undefined (NaN/inf) where pT or E is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if coordinate == "rapidity":
            return np.arctanh(jets.pz / jets.E)
        if coordinate == "pseudorapidity":
            return np.arcsinh(jets.pz / np.sqrt(jets.px**2 + jets.py**2))
    msg = f"coordinate must be 'rapidity' or 'pseudorapidity', not {coordinate!r}"
    raise ValueError(msg)


def coordinates(jets: FlatJets, *, coordinate: str = "rapidity"):
    """(pT, y or η, φ in [0, 2π)) of every constituent, as energyflow's ``ptyphims_from_p4s``
    computes them; zero-pT entries (padding) get y = 0."""
    pt = np.sqrt(jets.px**2 + jets.py**2)
    y = longitudinal(jets, coordinate=coordinate)
    y[pt == 0] = 0.0
    phi = np.arctan2(jets.py, jets.px)
    phi[phi < 0] += TWO_PI
    return pt, y, phi


def hadronic_coordinates(
    jets: FlatJets, *, coordinate: str = "rapidity", phi_ref: str = "hardest"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pT, y or η, φ) of every constituent, φ unwrapped around a per-jet reference.

    Args:
        coordinate: ``"rapidity"`` (y) or ``"pseudorapidity"`` (η).
        phi_ref: ``"hardest"`` (φ of the highest-pT constituent) or ``"axis"`` (φ of the jet's
            summed four-momentum).
    """
    pt, y, phi = coordinates(jets, coordinate=coordinate)
    if phi_ref == "hardest":
        hardest = first_argmax(pt, jets.jet, jets.n_jets)
        ref = phi[np.maximum(hardest, 0)]
    elif phi_ref == "axis":
        ref = np.arctan2(jets.jet_sum(jets.py), jets.jet_sum(jets.px)) % TWO_PI
    else:
        msg = f"phi_ref must be 'hardest' or 'axis', not {phi_ref!r}"
        raise ValueError(msg)
    return pt, y, phi_fix(phi, ref[jets.jet])


def jet_axis(
    jets: FlatJets,
    pt: np.ndarray,
    y: np.ndarray,
    phi: np.ndarray,
    *,
    center: str,
    coordinate: str = "rapidity",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-jet (y, φ) of the centring axis.

    Args:
        center: ``"escheme"`` (summed four-momentum, as energyflow), ``"ptcentroid"``
            (pT-weighted mean of y and φ), ``"leading"`` (the highest-pT constituent).
    """
    n = jets.n_jets
    if center == "escheme":
        px, py, pz, e = (jets.jet_sum(v) for v in (jets.px, jets.py, jets.pz, jets.E))
        with np.errstate(divide="ignore", invalid="ignore"):
            if coordinate == "rapidity":
                axis_y = np.arctanh(pz / e)
            else:
                axis_y = np.arcsinh(pz / np.sqrt(px**2 + py**2))
        axis_phi = np.arctan2(py, px)
        axis_phi[axis_phi < 0] += TWO_PI
        hardest = first_argmax(pt, jets.jet, n)
        axis_phi = phi_fix(axis_phi, phi[np.maximum(hardest, 0)])
    elif center == "ptcentroid":
        total = jets.jet_sum(pt)
        with np.errstate(divide="ignore", invalid="ignore"):
            axis_y = jets.jet_sum(pt * y) / total
            axis_phi = jets.jet_sum(pt * phi) / total
    elif center == "leading":
        hardest = np.maximum(first_argmax(pt, jets.jet, n), 0)
        axis_y, axis_phi = y[hardest], phi[hardest]
    else:
        msg = f"center must be 'escheme', 'ptcentroid' or 'leading', not {center!r}"
        raise ValueError(msg)
    return np.nan_to_num(axis_y), np.nan_to_num(axis_phi)


def _flip_if_heavier_below(jets: FlatJets, pt: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """Per-jet boolean: more pT at negative ``coord`` than at positive (energyflow's rule)."""
    above = jets.jet_sum(np.where(coord > 0, pt, 0.0))
    below = jets.jet_sum(np.where(coord < 0, pt, 0.0))
    return above < below


def rotate(jets: FlatJets, pt: np.ndarray, y: np.ndarray, phi: np.ndarray):
    """Rotate each jet so that the principal axis of its pT flow is vertical (along φ).

    The axis is the eigenvector of the largest eigenvalue of Σ pT (y, φ)⊗(y, φ); its sign is
    fixed so that more pT lies at positive φ, as energyflow's ``rotate_ptyphims`` does.
    """
    cov = np.empty((jets.n_jets, 2, 2))
    cov[:, 0, 0] = jets.jet_sum(pt * y * y)
    cov[:, 0, 1] = cov[:, 1, 0] = jets.jet_sum(pt * y * phi)
    cov[:, 1, 1] = jets.jet_sum(pt * phi * phi)
    _, vecs = np.linalg.eigh(cov)
    v = vecs[jets.jet]
    new_y = y * v[:, 0, 0] + phi * v[:, 1, 0]
    new_phi = y * v[:, 0, 1] + phi * v[:, 1, 1]
    flip = _flip_if_heavier_below(jets, pt, new_phi)[jets.jet]
    sign = np.where(flip, -1.0, 1.0)
    return new_y * sign, new_phi * sign


def reflect(jets: FlatJets, pt: np.ndarray, y: np.ndarray, phi: np.ndarray, *, which: str):
    """Reflect so that the side with more pT is positive.

    Args:
        which: ``"both"``, ``"eta"``, ``"phi"`` or ``"none"``.
    """
    if which not in ("both", "eta", "phi", "none"):
        msg = f"reflect must be 'both', 'eta', 'phi' or 'none', not {which!r}"
        raise ValueError(msg)
    if which in ("both", "eta"):
        y = np.where(_flip_if_heavier_below(jets, pt, y)[jets.jet], -y, y)
    if which in ("both", "phi"):
        phi = np.where(_flip_if_heavier_below(jets, pt, phi)[jets.jet], -phi, phi)
    return y, phi
