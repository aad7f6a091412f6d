"""Jet substructure observables of whole batches of jets, at the speed of the algorithms.

:func:`observables` runs the compiled kernel of :mod:`jetimage.substructure_kernel` (numba, one
pass per jet, no Python loop over jets), which computes FastJet contrib's definitions with
FastJet's own formulas and choices; :func:`jetimage.substructure_contrib.contrib_observables`
computes the same values through FastJet contrib itself, the reference the tests hold the kernel
to (1e-6 relative, NaN where contrib's is).

- soft drop (β = 0, z_cut = 0.1, R0 = the jet radius: the modified mass-drop tagger, "mmdt")
  groomed mass ``msd`` and pT ``pt_sd``;
- N-subjettiness ``tau1..3`` (β = 1, normalised measure, one-pass kT axes: CMS's and ATLAS's
  definition) on the ungroomed jet, with ``tau21`` and ``tau32``;
- energy-correlation ratios of the groomed jet (EnergyCorrelator's C1, C2, D2, the generalised
  D2^(α=1, β), M2 and N2): ``c1_b0..2``, ``c2_b1/b2``, ``d2_b1/b2``, ``d2_a1_b1/b2``,
  ``m2_b1/b2``, ``n2_b1/b2`` (CMS NanoAOD's ``FatJet_n2b1`` is ``n2_b1``);
- ``zlogz`` (Σ z log z, z = pT / Σ pT of the constituents) and the constituent
  ``multiplicity`` of the ungroomed jet.

The 16 features of the hls4ml jet dataset (arXiv:1804.06913) are :data:`HLS4ML`. A ratio whose
denominator vanishes (a one-constituent groomed jet) is NaN; a jet without constituents is NaN
throughout.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

#: The energy-correlation ratios of the groomed jet, in the kernel's order.
RATIOS = (
    "c1_b0",
    "c1_b1",
    "c1_b2",
    "c2_b1",
    "c2_b2",
    "d2_b1",
    "d2_b2",
    "d2_a1_b1",
    "d2_a1_b2",
    "m2_b1",
    "m2_b2",
    "n2_b1",
    "n2_b2",
)

#: The columns :mod:`jetimage.substructure_kernel` computes, in its output's order.
COLUMNS = ("msd", "pt_sd", "tau1", "tau2", "tau3", *RATIOS, "zlogz")

#: The observables :func:`observables` returns, in order.
NAMES = (*COLUMNS[:5], "tau21", "tau32", *RATIOS, "zlogz", "multiplicity")

#: The hls4ml jet dataset's 16 features as jetimage names them: ``<name>_mmdt`` there is the
#: same observable of the soft-drop groomed jet here (``mass_mmdt`` is ``msd``).
HLS4ML = ("zlogz", *RATIOS, "msd", "multiplicity")

#: Soft-drop settings: the modified mass-drop tagger (β = 0) at z_cut = 0.1.
SOFT_DROP = {"beta": 0.0, "symmetry_cut": 0.1}


def kernel_input(constituents: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (jets + 1), momenta (constituents, 4: px, py, pz, E), float64) of the kernel."""
    from jetimage.pixelate import flatten_constituents

    return _kernel_arrays(flatten_constituents(constituents))


def _kernel_arrays(flat) -> tuple[np.ndarray, np.ndarray]:
    return flat.offsets, np.stack([flat.px, flat.py, flat.pz, flat.E], axis=1)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def finish(out: dict[str, np.ndarray], multiplicity: np.ndarray) -> dict[str, np.ndarray]:
    """The τ ratios and the multiplicity added, the columns in the order of :data:`NAMES`."""
    out["tau21"] = _ratio(out["tau2"], out["tau1"])
    out["tau32"] = _ratio(out["tau3"], out["tau2"])
    out["multiplicity"] = multiplicity
    return {name: out[name] for name in NAMES}


def observables(constituents: ak.Array, *, radius: float) -> dict[str, np.ndarray]:
    """The observables of :data:`NAMES` of every jet, as float64 arrays (``multiplicity`` int64).

    Args:
        constituents: per-jet records with ``px, py, pz, E`` (jetimage's ``Jets.constituents``);
            weight them first where the file's candidates carry weights (PUPPI).
        radius: the jets' radius R, soft drop's R0 and N-subjettiness's R0.

    Examples:
        >>> from jetimage.readers import read_jets
        >>> jets = read_jets("results/jets/top/000.root")  # doctest: +SKIP
        >>> observables(jets.constituents, radius=0.8)["msd"]  # doctest: +SKIP
    """
    from jetimage.pixelate import flatten_constituents

    return flat_observables(flatten_constituents(constituents), radius=radius)


def flat_observables(
    flat, *, radius: float, max_constituents: int | None = None
) -> dict[str, np.ndarray]:
    """:func:`observables` of flat constituents (a :class:`jetimage.preprocess.FlatJets`).

    ``max_constituents``: a jet with more constituents gets the observables of its hardest
    ``max_constituents`` (by pT; ``multiplicity`` stays the jet's own count), which bounds
    the time per jet (the three-point correlators grow as the cube of the constituents).
    """
    from jetimage import substructure_kernel as kernel  # numba: compiled on first use

    offsets, momenta = _kernel_arrays(flat)
    multiplicity = np.diff(offsets)
    if max_constituents is not None and np.any(multiplicity > max_constituents):
        offsets, momenta = _hardest(offsets, momenta, max_constituents)
    values = kernel.batch_observables(
        offsets, momenta, SOFT_DROP["symmetry_cut"], SOFT_DROP["beta"], float(radius)
    )
    out = {name: values[:, i] for i, name in enumerate(COLUMNS)}
    return finish(out, multiplicity)


def _hardest(offsets: np.ndarray, momenta: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's input with each jet cut to its ``n`` hardest constituents (by pT), in
    their order."""
    keep = np.ones(len(momenta), dtype=bool)
    pt = np.hypot(momenta[:, 0], momenta[:, 1])
    for j in np.flatnonzero(np.diff(offsets) > n):  # the few jets over the cap
        start, stop = offsets[j], offsets[j + 1]
        softest = np.argsort(-pt[start:stop], kind="stable")[n:]
        keep[start + softest] = False
    counts = np.minimum(np.diff(offsets), n)
    return np.concatenate([[0], np.cumsum(counts)]).astype(offsets.dtype), momenta[keep]


def compile_kernel() -> None:
    """Compile the kernel now (or load it from numba's cache beside the library): the install
    step runs this once (``make``), so that the first images jobs of a run, started together,
    do not each spend ~20 s compiling it."""
    one = {"px": 100.0, "py": 0.0, "pz": 0.0, "E": 100.0}
    observables(ak.Array([[one, one]], with_name="Momentum4D"), radius=0.8)


if __name__ == "__main__":  # python -m jetimage.substructure: compile the kernel
    compile_kernel()
