"""The particle view of a jet: its constituents as a padded point cloud, as particle-cloud
taggers (Particle Flow Networks, ParticleNet, Particle Transformer) take them.

Per jet, the constituents ordered by decreasing pT, the hardest ``max_particles`` kept, padded
with zeros to ``max_particles`` rows, and a mask marking the real ones. Per particle the
features of :data:`FEATURES`, the kinematic ones relative to the jet axis as Particle
Transformer's (arXiv:2202.03772) JetClass inputs are:

- ``deta``: η − η_jet, with the sign of η_jet flipped to positive (``np.where(jet_eta > 0,
  Δη, −Δη)``, as JetClass's ``part_deta``); ``dphi``: φ − φ_jet wrapped into [−π, π);
- ``log_pt``, ``log_e``: ln pT and ln E (GeV); ``log_pt_rel``, ``log_e_rel``: ln(pT / pT_jet),
  ln(E / E_jet); ``delta_r``: √(Δη² + Δφ²);
- ``charge`` and the particle-type one-hots ``is_charged_hadron``, ``is_neutral_hadron``,
  ``is_photon``, ``is_electron``, ``is_muon`` (from the PDG id: |id| 11 electron, 13 muon, 22
  photon, any other charged particle a charged hadron and any other neutral one a neutral
  hadron, as CMS's particle-flow classes are); zero where the input has no charge or no PDG
  id (:func:`identity_fields` says which it has);
- ``px, py, pz, energy``: the four-momentum (GeV), for the pairwise features of ParT.

The jet axis is the E-scheme sum of all the jet's constituents (kept or not): its
pseudorapidity, azimuth, pT and energy. A constituent with pT = 0 has no direction in (η, φ)
and is left out of the view (its row stays padding).
"""

from __future__ import annotations

import numpy as np

from jetimage.defaults import default
from jetimage.preprocess import FlatJets

#: The per-particle features, in the order of the view's last axis.
FEATURES = (
    "deta",
    "dphi",
    "log_pt",
    "log_e",
    "log_pt_rel",
    "log_e_rel",
    "delta_r",
    "charge",
    "is_charged_hadron",
    "is_neutral_hadron",
    "is_photon",
    "is_electron",
    "is_muon",
    "px",
    "py",
    "pz",
    "energy",
)

#: Features that need the input's charge or PDG id (zero where it has none).
IDENTITY_FEATURES = FEATURES[7:13]

#: The four-momentum features, for pairwise features.
MOMENTUM_FEATURES = ("px", "py", "pz", "energy")

#: Particles kept per jet unless the config says otherwise.
DEFAULT_MAX_PARTICLES = default("particles", "max")


def identity_fields(flat: FlatJets) -> list[str]:
    """Which of ``charge`` and ``pid`` the constituents carry."""
    return [name for name in ("charge", "pid") if getattr(flat, name) is not None]


def _one_hots(n: int, charge: np.ndarray | None, pid: np.ndarray | None) -> np.ndarray:
    """(n constituents, 6): charge and the five particle-type flags (zero without a PDG id)."""
    out = np.zeros((n, 6))
    if charge is not None:
        out[:, 0] = charge
    if pid is not None:
        code = np.abs(pid)
        charged = charge != 0 if charge is not None else np.isin(code, (11, 13, 211, 321, 2212))
        lepton = (code == 11) | (code == 13)
        out[:, 1] = charged & ~lepton
        out[:, 2] = ~charged & (code != 22)
        out[:, 3] = code == 22
        out[:, 4] = code == 11
        out[:, 5] = code == 13
    return out


def particle_view(flat: FlatJets, max_particles: int = DEFAULT_MAX_PARTICLES):
    """(features float32 (jets, max_particles, len(FEATURES)), mask bool (jets, max_particles))
    of flat constituents (``charge`` and ``pid`` used where present): module docs.

    Examples:
        >>> from jetimage.pixelate import flatten_constituents
        >>> flat = flatten_constituents(jets.constituents, identities=True)  # doctest: +SKIP
        >>> features, mask = particle_view(flat, 128)  # doctest: +SKIP
    """
    if max_particles < 1:
        msg = f"max_particles must be at least 1, not {max_particles}"
        raise ValueError(msg)
    n = flat.n_jets
    features = np.zeros((n, max_particles, len(FEATURES)), dtype=np.float32)
    mask = np.zeros((n, max_particles), dtype=bool)
    if len(flat.px) == 0:
        return features, mask
    jet = flat.jet
    jpx, jpy, jpz, je = (flat.jet_sum(v) for v in (flat.px, flat.py, flat.pz, flat.E))
    jpt = np.hypot(jpx, jpy)
    with np.errstate(divide="ignore", invalid="ignore"):
        jeta = np.arcsinh(jpz / jpt)
        pt = np.hypot(flat.px, flat.py)
        eta = np.arcsinh(flat.pz / pt)
    jphi = np.arctan2(jpy, jpx)
    order = np.lexsort((-pt, jet))  # by jet, then hardest first (the file's order on ties)
    rank = np.arange(len(order)) - flat.offsets[jet[order]]
    kept = (rank < max_particles) & (pt[order] > 0)
    keep, slot = order[kept], rank[kept]
    j = jet[keep]
    deta = eta[keep] - jeta[j]
    deta = np.where(jeta[j] > 0, deta, -deta)
    dphi = (np.arctan2(flat.py[keep], flat.px[keep]) - jphi[j] + np.pi) % (2 * np.pi) - np.pi
    log_pt, log_e = np.log(pt[keep]), np.log(flat.E[keep])
    identity = _one_hots(
        len(keep),
        None if flat.charge is None else flat.charge[keep],
        None if flat.pid is None else flat.pid[keep],
    )
    columns = [
        deta,
        dphi,
        log_pt,
        log_e,
        log_pt - np.log(jpt[j]),
        log_e - np.log(je[j]),
        np.hypot(deta, dphi),
        *identity.T,
        flat.px[keep],
        flat.py[keep],
        flat.pz[keep],
        flat.E[keep],
    ]
    features[j, slot] = np.stack(columns, axis=1) if len(keep) else 0.0
    mask[j, slot] = True
    return features, mask
