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
NAMES = (
    "msd",
    "pt_sd",
    "tau1",
    "tau2",
    "tau3",
    "tau21",
    "tau32",
    "c2_b1",
    "d2_b1",
    "d2_b2",
    "n2_b1",
    "multiplicity",
)

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

    four = ak.zip(
        {q: ak.values_astype(constituents[q], np.float64) for q in ("px", "py", "pz", "E")}
    )
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
        values = groomed_sequence.exclusive_jets_energy_correlator(
            njets=1, beta=beta, func=function
        )
        out[name][has] = ak.to_numpy(values)
    return out


def _keys(table) -> np.ndarray:
    """One int64 key per jet: its file entry, and its index within the entry (NanoAOD)."""
    entry = np.asarray(table["entry"], dtype=np.int64)
    if "subentry" in table:
        return entry * (1 << 20) + np.asarray(table["subentry"], dtype=np.int64)
    return entry


def write_observables_store(path, batches, image_store, *, radius: float, progress=None) -> dict:
    """The observables of the jets of ``image_store``, row for row, as a Zarr store (atomic).

    ``batches`` stream the file the image store was made from, with the same reader settings:
    the store holds a subsequence of them (jets with empty images are dropped there), matched
    by entry (and subentry) and checked by their pT. Layout: ``jets/<name>`` for each of
    :data:`NAMES`, chunked like a per-file store's table, so that the dataset stage reads them
    as more table columns.

    Raises:
        InputError: the file's jets no longer match the image store's.
    """
    import zarr

    from jetimage import zarr_store
    from jetimage.files import InputError, atomic_path

    table = zarr_store.read_table(zarr_store.open_store(image_store))
    wanted = _keys(table)
    found: list[np.ndarray] = []
    found_pt: list[np.ndarray] = []
    values: dict[str, list[np.ndarray]] = {name: [] for name in NAMES}
    for batch in batches:
        keys = _keys(batch.table)
        keep = np.isin(keys, wanted)
        if not np.any(keep):
            continue
        found.append(keys[keep])
        found_pt.append(np.asarray(batch.table["pt"])[keep])
        for name, column in observables(batch[keep].constituents, radius=radius).items():
            values[name].append(column)
        if progress:
            progress(f"{sum(map(len, found))} of {len(wanted)} jets")
    found_keys = np.concatenate(found) if found else np.zeros(0, np.int64)
    found_pts = np.concatenate(found_pt) if found_pt else np.zeros(0)
    same = np.array_equal(found_keys, wanted) and np.array_equal(found_pts, table["pt"])
    if not same:
        msg = (
            f"{image_store}: its {len(wanted)} jets are not the file's "
            f"({len(found_keys)} match): was the file changed after the "
            f"images stage?"
        )
        raise InputError(msg)
    with atomic_path(path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        jets = group.require_group("jets")
        for name, parts in values.items():
            column = np.concatenate(parts) if parts else np.zeros(0)
            zarr_store.create_array(jets, name, column, chunk_jets=zarr_store.TABLE_CHUNK_JETS)
        attrs = {
            "image_store": str(image_store),
            "radius": radius,
            "n_jets": len(wanted),
            "soft_drop": SOFT_DROP,
            "observables": list(NAMES),
        }
        group.attrs.update(attrs)
    return attrs
