"""The substructure observables through FastJet contrib itself: the reference that
:mod:`jetimage.substructure`'s compiled kernel is tested and benchmarked against.

Each jet's constituents are one "event" of scikit-hep ``fastjet``'s awkward interface,
reclustered with Cambridge/Aachen into one jet; contrib's SoftDrop, Nsubjettiness
(OnePass_KT_Axes, NormalizedMeasure) and EnergyCorrelator classes then give every observable of
``substructure.NAMES`` for the whole batch, one call each (``zlogz`` with numpy).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from jetimage.substructure import NAMES, SOFT_DROP, finish

#: Energy-correlation ratios of the groomed jet: name → (FastJet contrib function, its keyword
#: arguments) for :func:`contrib_observables`.
CORRELATORS = {
    **{f"c1_b{b}": ("c1", {"beta": b}) for b in (0, 1, 2)},
    **{f"{f}_b{b}": (f, {"beta": b}) for f in ("c2", "d2", "m2", "n2") for b in (1, 2)},
    **{f"d2_a1_b{b}": ("generalizedd2", {"alpha": 1, "beta": b}) for b in (1, 2)},
}


def cluster_events(constituents: ak.Array):
    """Each jet's constituents as one "event" of scikit-hep ``fastjet``, clustered with C/A."""
    import fastjet

    four = ak.zip(
        {q: ak.values_astype(constituents[q], np.float64) for q in ("px", "py", "pz", "E")}
    )
    # one jet per "event": the radius only has to exceed any distance inside a jet
    return fastjet.ClusterSequence(four, fastjet.JetDefinition(fastjet.cambridge_algorithm, 10.0))


def contrib_observables(constituents: ak.Array, *, radius: float) -> dict[str, np.ndarray]:
    """:func:`jetimage.substructure.observables` computed by FastJet contrib itself (SoftDrop,
    Nsubjettiness with OnePass_KT_Axes and NormalizedMeasure, the EnergyCorrelator classes;
    ``zlogz`` with numpy), 20-30× slower than the kernel (docs/benchmarks.md)."""
    multiplicity = ak.to_numpy(ak.num(constituents, axis=1)).astype(np.int64)
    out = {name: np.full(len(constituents), np.nan) for name in NAMES}
    has = np.flatnonzero(multiplicity > 0)
    if len(has) == 0:
        return finish(out, multiplicity)
    present = constituents[has]
    sequence = cluster_events(present)
    groomed = sequence.exclusive_jets_softdrop_grooming(njets=1, R0=radius, **SOFT_DROP)
    out["msd"][has] = ak.to_numpy(groomed.msoftdrop)
    out["pt_sd"][has] = ak.to_numpy(groomed.ptsoftdrop)
    taus = np.asarray(sequence.njettiness(njets=[1, 2, 3], beta=1.0, R0=radius))
    for i, column in enumerate(taus.reshape(len(has), 3).T):
        out[f"tau{i + 1}"][has] = column
    groomed_sequence = cluster_events(groomed.constituents)
    for name, (function, arguments) in CORRELATORS.items():
        values = groomed_sequence.exclusive_jets_energy_correlator(
            njets=1, func=function, **arguments
        )
        out[name][has] = ak.to_numpy(values)
    px, py = (ak.values_astype(present[q], np.float64) for q in ("px", "py"))
    pt = np.hypot(px, py)
    z = pt / ak.sum(pt, axis=1)
    out["zlogz"][has] = ak.to_numpy(ak.sum(ak.where(z > 0, z * np.log(z), 0.0), axis=1))
    return finish(out, multiplicity)
