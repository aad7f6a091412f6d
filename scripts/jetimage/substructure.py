"""Jet substructure observables of whole batches of jets, through FastJet contrib.

Each jet's constituents are one "event" of scikit-hep ``fastjet``'s awkward interface, reclustered
with Cambridge/Aachen into one jet; FastJet contrib then gives, for every jet of the batch in one
call each (no Python loop over jets):

- soft drop (β = 0, z_cut = 0.1, R0 = the jet radius: the modified mass-drop tagger) groomed
  mass ``msd`` and pT ``pt_sd``;
- N-subjettiness ``tau1..3`` (β = 1, normalised measure, one-pass kT axes: CMS's and ATLAS's
  definition) on the ungroomed jet, with ``tau21`` and ``tau32``;
- energy-correlation ratios on the groomed jet: ``c2_b1``, ``d2_b1``, ``d2_b2`` and ``n2_b1``
  (CMS NanoAOD's ``FatJet_n2b1``);
- the constituent multiplicity ``multiplicity``.

A ratio whose denominator vanishes (a one-constituent jet) is NaN.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

#: The observables :func:`observables` returns, in order.
NAMES = ("msd", "pt_sd", "tau1", "tau2", "tau3", "tau21", "tau32", "c2_b1", "d2_b1", "d2_b2",
         "n2_b1", "multiplicity")

#: Soft-drop settings: the modified mass-drop tagger (β = 0) at z_cut = 0.1.
SOFT_DROP = {"beta": 0.0, "symmetry_cut": 0.1}

#: Energy-correlation ratios of the groomed jet: name → (FastJet contrib function, β).
CORRELATORS = {"c2_b1": ("c2", 1), "d2_b1": ("d2", 1), "d2_b2": ("d2", 2), "n2_b1": ("n2", 1)}


def _cambridge_aachen():
    import fastjet

    # one jet per "event": the radius only has to exceed any distance inside a jet
    return fastjet.JetDefinition(fastjet.cambridge_algorithm, 10.0)


def _sequence(constituents: ak.Array):
    import fastjet

    four = ak.zip({q: ak.values_astype(constituents[q], np.float64)
                   for q in ("px", "py", "pz", "E")})
    return fastjet.ClusterSequence(four, _cambridge_aachen())


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


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
    n = len(constituents)
    multiplicity = ak.to_numpy(ak.num(constituents, axis=1)).astype(np.int64)
    out = {name: np.full(n, np.nan) for name in NAMES}
    out["multiplicity"] = multiplicity
    has = np.flatnonzero(multiplicity > 0)
    if len(has) == 0:
        return out
    sequence = _sequence(constituents[has])
    groomed = sequence.exclusive_jets_softdrop_grooming(njets=1, R0=radius, **SOFT_DROP)
    out["msd"][has] = ak.to_numpy(groomed.msoftdrop)
    out["pt_sd"][has] = ak.to_numpy(groomed.ptsoftdrop)
    taus = np.asarray(sequence.njettiness(njets=[1, 2, 3], beta=1.0, R0=radius))
    taus = taus.reshape(len(has), 3)
    for i in range(3):
        out[f"tau{i + 1}"][has] = taus[:, i]
    out["tau21"] = _ratio(out["tau2"], out["tau1"])
    out["tau32"] = _ratio(out["tau3"], out["tau2"])
    groomed_sequence = _sequence(groomed.constituents)
    for name, (function, beta) in CORRELATORS.items():
        values = groomed_sequence.exclusive_jets_energy_correlator(njets=1, beta=beta,
                                                                   func=function)
        out[name][has] = ak.to_numpy(values)
    return out
