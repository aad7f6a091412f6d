"""Jet generation with Pythia 8 and FastJet.

Events come from Pythia in batches (``Pythia.nextBatch``, an awkward array), are clustered
all at once with FastJet's vectorised interface, and the jets inside the requested kinematic
window are kept, with their constituents, in the JetClass layout (see :mod:`jetimage.io`).

Processes are named recipes of Pythia settings (:data:`PROCESSES`). Top jets are kept only when
truth-matched: the top and its three decay quarks must all lie within ``match_dr`` of the jet axis
(the Top Quark Tagging reference recipe). QCD jets record the nearest outgoing hard parton.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

import awkward as ak
import numpy as np
import vector

log = logging.getLogger(__name__)

vector.register_awkward()

#: Pythia settings of each process, on top of the beam energy and the pT-hat range.
PROCESSES: dict[str, list[str]] = {
    # hadronic ttbar: both W bosons forced to decay to quarks (d u s c b).
    "top": [
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
        "24:onMode = off",
        "24:onIfAny = 1 2 3 4 5",
    ],
    # QCD dijets: every 2 -> 2 QCD process.
    "qcd": ["HardQCD:all = on"],
}

#: Settings that keep Pythia quiet: the per-shard log says what happened instead.
_QUIET = [
    "Print:quiet = on",
    "Next:numberCount = 0",
]

_NEUTRINOS = (12, 14, 16)
PYTHIA_MAX_SEED = 900_000_000


@dataclass(frozen=True)
class JetSelection:
    """Jet definition and kinematic window."""

    radius: float = 0.8
    algorithm: str = "antikt"
    pt_min: float = 550.0
    pt_max: float = 650.0
    abs_eta_max: float = 2.0
    match_dr: float = 0.8


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that determines a shard's content (with the seed)."""

    process: str
    sqrt_s: float = 14000.0
    pt_hat_min: float = 500.0
    pt_hat_max: float = 700.0
    jets: JetSelection = field(default_factory=JetSelection)
    extra: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict) -> GeneratorSettings:
        return cls(**{**data, "jets": JetSelection(**data["jets"]),
                      "extra": tuple(data.get("extra", ()))})


class PythiaSettingError(ValueError):
    """Pythia rejected a setting or failed to initialise."""


def derive_seed(seed: int, sample: str, part: str | int) -> int:
    """A Pythia seed (1 .. 900,000,000) from the run seed, the sample and the shard.

    Examples:
        >>> derive_seed(42, "top", 0) == derive_seed(42, "top", "0")
        True
    """
    digest = hashlib.sha256(f"{seed}:{sample}:{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % PYTHIA_MAX_SEED + 1


def make_pythia(settings: GeneratorSettings, seed: int):
    """A Pythia instance initialised for ``settings``; raises on any rejected setting."""
    import pythia8mc

    if settings.process not in PROCESSES:
        raise PythiaSettingError(
            f"unknown process {settings.process!r}; known: {sorted(PROCESSES)}"
        )
    pythia = pythia8mc.Pythia("", False)
    lines = [
        f"Beams:eCM = {settings.sqrt_s}",
        f"PhaseSpace:pTHatMin = {settings.pt_hat_min}",
        f"PhaseSpace:pTHatMax = {settings.pt_hat_max}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        *PROCESSES[settings.process],
        *settings.extra,
        *_QUIET,
    ]
    if not pythia.settings.isParm("Beams:eCM"):
        raise PythiaSettingError(
            "Pythia found no settings database (its xmldoc folder): point PYTHIA8DATA at "
            "share/Pythia8/xmldoc of the pythia8mc installation"
        )
    for line in lines:
        if not pythia.readString(line):
            raise PythiaSettingError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise PythiaSettingError(
            f"Pythia failed to initialise for process {settings.process!r} with settings {lines}"
        )
    return pythia


def _charges(pythia, pids: np.ndarray) -> np.ndarray:
    """Electric charge of each PDG id, looked up once per distinct id."""
    unique, inverse = np.unique(pids, return_inverse=True)
    table = np.array([pythia.particleData.charge(int(p)) for p in unique], dtype=np.float32)
    return table[inverse]


def _delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    return np.arcsinh(pz / pt), np.arctan2(py, px)


def _top_decays(event: dict) -> list[tuple[float, float, list[tuple[float, float]]]]:
    """(eta, phi) of each top (last copy) and of its decay quarks, in one event.

    ``event`` holds the columns of the candidate particles (tops, Ws, outgoing decay quarks)
    with their index in the full record.
    """
    rows = {
        i: (pid, m1, d1, px, py, pz)
        for i, pid, m1, d1, px, py, pz in zip(
            event["idx"], event["id"], event["mother1"], event["daughter1"],
            event["px"], event["py"], event["pz"],
        )
    }
    tops: dict[int, list] = {}
    for i, (pid, _m1, d1, px, py, pz) in rows.items():
        if abs(pid) == 6 and (d1 not in rows or rows[d1][0] != pid):
            tops[i] = [*_eta_phi(px, py, pz), []]
    for pid, m1, _d1, px, py, pz in rows.values():
        if abs(pid) > 5 or m1 not in rows:
            continue
        mother = m1
        while mother in rows and abs(rows[mother][0]) == 24:  # walk up the W's copies
            mother = rows[mother][1]
        if mother in tops:
            tops[mother][2].append(_eta_phi(px, py, pz))
    return [(eta, phi, quarks) for eta, phi, quarks in tops.values()]


def _match_tops(jets_eta, jets_phi, candidates, radius: float) -> list[list[bool]]:
    """Per event and jet: is the jet matched to a top whose three decay quarks lie inside?"""
    out = []
    for etas, phis, event in zip(jets_eta, jets_phi, candidates):
        decays = _top_decays(event)
        flags = []
        for eta, phi in zip(etas, phis):
            ok = False
            for teta, tphi, quarks in decays:
                if len(quarks) == 3 and _delta_r(eta, phi, teta, tphi) < radius:
                    ok = all(_delta_r(eta, phi, qe, qp) < radius for qe, qp in quarks)
                    if ok:
                        break
            flags.append(ok)
        out.append(flags)
    return out


def _hard_parton_ids(jets_eta, jets_phi, partons, radius: float) -> list[list[int]]:
    """PDG id of the nearest outgoing hard-process parton within ``radius`` (0 if none)."""
    out = []
    for etas, phis, ev in zip(jets_eta, jets_phi, partons):
        p_eta, p_phi = _eta_phi(np.asarray(ev["px"]), np.asarray(ev["py"]), np.asarray(ev["pz"]))
        ids = []
        for eta, phi in zip(etas, phis):
            dr = _delta_r(eta, phi, p_eta, p_phi)
            ids.append(int(ev["id"][int(np.argmin(dr))]) if len(dr) and dr.min() < radius else 0)
        out.append(ids)
    return out


def _cluster_batch(pythia, batch, settings: GeneratorSettings) -> dict[str, ak.Array]:
    """Cluster one batch of events and return the selected jets' columns."""
    import fastjet

    sel = settings.jets
    prt = batch.prt
    prt = ak.with_field(prt, ak.local_index(prt.id, axis=1), "idx")
    abs_id = abs(prt.id)
    visible = prt[(prt.status > 0) & (abs_id != 12) & (abs_id != 14) & (abs_id != 16)]
    particles = ak.zip(
        {"px": visible.p.px, "py": visible.p.py, "pz": visible.p.pz, "E": visible.p.e},
        with_name="Momentum4D",
    )
    algorithm = {"antikt": fastjet.antikt_algorithm, "kt": fastjet.kt_algorithm,
                 "cambridge": fastjet.cambridge_algorithm}[sel.algorithm]
    sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(algorithm, sel.radius))
    jets = sequence.inclusive_jets(min_pt=sel.pt_min)
    index = sequence.constituent_index(min_pt=sel.pt_min)
    jets = ak.zip({"px": jets.px, "py": jets.py, "pz": jets.pz, "E": jets.E},
                  with_name="Momentum4D")
    keep = (jets.pt >= sel.pt_min) & (jets.pt < sel.pt_max) & (abs(jets.eta) < sel.abs_eta_max)

    jets_eta, jets_phi = ak.to_list(jets.eta), ak.to_list(jets.phi)
    if settings.process == "top":
        is_cand = (abs_id == 6) | (abs_id == 24) | ((abs_id <= 5) & (abs(prt.status) == 23))
        cand = prt[is_cand]
        cand = ak.zip({"idx": cand.idx, "id": cand.id, "mother1": cand.mother1,
                       "daughter1": cand.daughter1, "px": cand.p.px, "py": cand.p.py,
                       "pz": cand.p.pz}, depth_limit=1)
        matched = ak.Array(_match_tops(jets_eta, jets_phi, ak.to_list(cand), sel.match_dr))
        keep = keep & matched
        parton_id = 6 * ak.values_astype(matched, np.int32)
    else:
        hard = prt[prt.status == -23]
        hard = ak.zip({"id": hard.id, "px": hard.p.px, "py": hard.p.py, "pz": hard.p.pz},
                      depth_limit=1)
        parton_id = ak.Array(_hard_parton_ids(jets_eta, jets_phi, ak.to_list(hard), sel.match_dr))

    event_index = ak.broadcast_arrays(np.arange(len(jets)), jets.pt)[0]
    jets_kept = ak.flatten(jets[keep])
    # constituent indices are per event: shift them into the flat particle list
    starts = np.cumsum(np.r_[0, ak.to_numpy(ak.num(visible))[:-1]])
    per_jet = ak.flatten(index[keep] + starts[:, np.newaxis, np.newaxis], axis=1)
    flat_index = ak.to_numpy(ak.flatten(per_jet)).astype(np.int64)
    constituents = ak.unflatten(ak.flatten(visible)[flat_index], ak.num(per_jet))
    order = ak.argsort(np.hypot(constituents.p.px, constituents.p.py), axis=1, ascending=False)
    constituents = constituents[order]
    return {
        "jets": jets_kept,
        "parton_id": ak.flatten(parton_id[keep]),
        "event": ak.flatten(event_index[keep]),
        "constituents": constituents,
    }


def generate_jets(
    settings: GeneratorSettings,
    *,
    n_events: int,
    seed: int,
    batch_size: int = 250,
    progress=None,
) -> dict[str, ak.Array | np.ndarray]:
    """Generate ``n_events`` Pythia events and return the selected jets in the JetClass layout.

    Args:
        settings: process, beam energy, pT-hat range and jet selection.
        n_events: events to generate (not jets: each event gives zero or more jets).
        seed: Pythia seed (see :func:`derive_seed`).
        batch_size: events generated and clustered at once.
        progress: called as ``progress(events_done, jets_kept, seconds)`` after each batch.

    Returns:
        Columns of :func:`jetimage.io.write_jets_root`: ``part_*`` ragged, ``jet_*`` flat.
    """
    pythia = make_pythia(settings, seed)
    chunks = []
    done, kept, start = 0, 0, time.perf_counter()
    while done < n_events:
        n = min(batch_size, n_events - done)
        batch = pythia.nextBatch(n, errorMode="skip")
        chunk = _cluster_batch(pythia, batch, settings)
        chunk["event"] = chunk["event"] + done
        chunks.append(chunk)
        done += n
        kept += len(chunk["jets"])
        if progress is not None:
            progress(done, kept, time.perf_counter() - start)

    jets = ak.concatenate([c["jets"] for c in chunks])
    const = ak.concatenate([c["constituents"] for c in chunks])
    pid = const.id
    flat_pid = ak.to_numpy(ak.flatten(pid))
    charge = ak.unflatten(_charges(pythia, flat_pid), ak.num(pid))
    return {
        "part_px": const.p.px,
        "part_py": const.p.py,
        "part_pz": const.p.pz,
        "part_energy": const.p.e,
        "part_charge": charge,
        "part_pid": ak.values_astype(pid, np.int32),
        "jet_pt": ak.to_numpy(jets.pt),
        "jet_eta": ak.to_numpy(jets.eta),
        "jet_phi": ak.to_numpy(jets.phi),
        "jet_energy": ak.to_numpy(jets.E),
        "jet_mass": ak.to_numpy(jets.mass),
        "jet_nparticles": ak.to_numpy(ak.num(const)).astype(np.int32),
        "jet_parton_pid": ak.to_numpy(
            ak.concatenate([c["parton_id"] for c in chunks])).astype(np.int32),
        "event_index": ak.to_numpy(ak.concatenate([c["event"] for c in chunks])).astype(np.int64),
    }
