"""Jet generation with Pythia 8 and FastJet.

Events come from Pythia in batches (``Pythia.nextBatch``, an awkward array), are clustered
all at once with FastJet's vectorised interface, and the jets inside the requested kinematic
window are kept, with their constituents, in the JetClass layout
(:func:`jetimage.files.write_jets_root`).

Processes are named recipes of Pythia settings and truth matching (:data:`PROCESSES`):

- resonance jets (``top``, ``w``, ``z``) are kept only when the top/W/Z and all its decay quarks
  lie within ``match_dr`` of the jet axis (the Top Quark Tagging reference recipe);
- parton jets are matched to the nearest outgoing hard-process parton within ``match_dr``;
  ``gluon`` and ``quark`` keep only jets matched to a gluon or a light (u, d, s) quark, ``qcd``
  keeps every jet.

The matched object's PDG id and four-momentum are stored per jet (``jet_parton_*``; id 0 when a
QCD jet has no parton within ``match_dr``). An optional detector model (:class:`Detector`) merges
neutral particles into calorimeter cells with a smeared energy before clustering.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import vector

from jetimage.defaults import default

log = logging.getLogger(__name__)

vector.register_awkward()


@dataclass(frozen=True)
class Process:
    """A named recipe: Pythia settings and how its jets are truth-matched.

    Args:
        settings: Pythia ``readString`` lines on top of beams and pT-hat.
        resonance: |PDG id| of the top/W/Z a jet must contain, or 0 for parton matching.
        n_quarks: decay quarks of the resonance that must lie in the jet.
        via: |PDG ids| of intermediate resonances between it and its quarks (top → W → q q').
        flavours: |PDG ids| of the hard partons whose jets are kept (parton matching); empty:
            every jet in the window.
    """

    settings: tuple[str, ...]
    resonance: int = 0
    n_quarks: int = 0
    via: tuple[int, ...] = ()
    flavours: tuple[int, ...] = ()


_HADRONIC_W = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_LIGHT_QUARKS = (1, 2, 3)

#: The processes of ``samples.<name>.process``.
PROCESSES: dict[str, Process] = {
    # QCD dijets: every 2 -> 2 QCD process; any jet in the window, its nearest parton recorded.
    "qcd": Process(("HardQCD:all = on",)),
    # gluon jets: the 2 -> 2 processes with an outgoing gluon; jets matched to a gluon.
    "gluon": Process(
        ("HardQCD:gg2gg = on", "HardQCD:qg2qg = on", "HardQCD:qqbar2gg = on"), flavours=(21,)
    ),
    # light-quark jets: the 2 -> 2 processes with an outgoing quark (new pairs u, d, s only);
    # jets matched to a u, d or s quark (c and b from the sea are dropped).
    "quark": Process(
        (
            "HardQCD:qg2qg = on",
            "HardQCD:qq2qq = on",
            "HardQCD:qqbar2qqbarNew = on",
            "HardQCD:gg2qqbar = on",
        ),
        flavours=_LIGHT_QUARKS,
    ),
    # hadronic ttbar: both W bosons forced to decay to quarks (d u s c b).
    "top": Process(
        ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_HADRONIC_W),
        resonance=6,
        n_quarks=3,
        via=(24,),
    ),
    # WW pairs, both W -> q q'; a jet must hold a W and its two quarks.
    "w": Process(("WeakDoubleBoson:ffbar2WW = on", *_HADRONIC_W), resonance=24, n_quarks=2),
    # ZZ pairs (pure Z, no photon), both Z -> q qbar; a jet must hold a Z and its two quarks.
    "z": Process(
        (
            "WeakDoubleBoson:ffbar2gmZgmZ = on",
            "WeakZ0:gmZmode = 2",
            "23:onMode = off",
            "23:onIfAny = 1 2 3 4 5",
        ),
        resonance=23,
        n_quarks=2,
    ),
}

#: Settings that keep Pythia quiet: the per-shard log says what happened instead.
_QUIET = [
    "Print:quiet = on",
    "Next:numberCount = 0",
]

PYTHIA_MAX_SEED = 900_000_000


def check_finite(settings) -> None:
    """Raise naming the field if a number of a settings dataclass is NaN or infinite."""
    for f in dataclasses.fields(settings):
        values = np.ravel(getattr(settings, f.name))
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            msg = (
                f"{type(settings).__name__}.{f.name} must be finite, got "
                f"{getattr(settings, f.name)}"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class JetSelection:
    """Jet definition and kinematic window."""

    radius: float = default("generation", "jets", "radius")
    algorithm: str = default("generation", "jets", "algorithm")
    pt_min: float = default("generation", "jets", "pt_min")
    pt_max: float = default("generation", "jets", "pt_max")
    abs_eta_max: float = default("generation", "jets", "abs_eta_max")
    match_dr: float = default("generation", "jets", "match_dr")

    def __post_init__(self) -> None:
        check_finite(self)
        if not 0 <= self.pt_min < self.pt_max:
            msg = (
                f"the jet pT window needs 0 <= pt_min < pt_max, got [{self.pt_min}, {self.pt_max}]"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class Detector:
    """A simple calorimeter for neutral particles (charged ones are taken as perfect tracks).

    Each neutral particle's energy is smeared with a Gaussian of relative width
    ``a/sqrt(E/GeV) ⊕ b`` (photons and neutral hadrons separately); the neutrals of an event are
    then summed in cells of ``cell_eta`` × ``cell_phi`` and each cell becomes one massless
    constituent at the cell centre (PDG id 0, charge 0).
    """

    cell_eta: float = default("generation", "detector", "cell_eta")
    cell_phi: float = default("generation", "detector", "cell_phi")
    photon_resolution: tuple[float, float] = default("generation", "detector", "photon_resolution")
    hadron_resolution: tuple[float, float] = default("generation", "detector", "hadron_resolution")

    def __post_init__(self) -> None:
        check_finite(self)

    @classmethod
    def from_dict(cls, data: dict) -> Detector:
        """From config (``enabled`` is the caller's business) or ``dataclasses.asdict``."""
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "enabled"
        }
        return cls(**values)

    def apply(
        self, particles: dict[str, np.ndarray], event: np.ndarray, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Flat particle columns (px, py, pz, E, pid, charge) and their event index → the same
        with neutrals replaced by cells; rows are ordered by event."""
        neutral = particles["charge"] == 0
        n = {k: v[neutral] for k, v in particles.items()}
        photon = n["pid"] == 22
        a = np.where(photon, self.photon_resolution[0], self.hadron_resolution[0])
        b = np.where(photon, self.photon_resolution[1], self.hadron_resolution[1])
        energy = n["E"] * (1 + np.hypot(a / np.sqrt(n["E"]), b) * rng.standard_normal(len(a)))
        eta, phi = _eta_phi(n["px"], n["py"], n["pz"])
        n_phi = max(1, round(2 * np.pi / self.cell_phi))
        i_eta = np.floor(eta / self.cell_eta).astype(np.int64)
        i_phi = np.floor((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64) % n_phi
        offset = i_eta.min(initial=0)
        span = i_eta.max(initial=0) - offset + 1
        key = (event[neutral] * span + (i_eta - offset)) * n_phi + i_phi
        keys, inverse = np.unique(key, return_inverse=True)
        cell_energy = np.bincount(inverse, weights=np.clip(energy, 0, None), minlength=len(keys))
        cell_phi_index = keys % n_phi
        cell_eta = ((keys // n_phi) % span + offset + 0.5) * self.cell_eta
        cell_phi = (cell_phi_index + 0.5) * (2 * np.pi / n_phi) - np.pi
        cell_pt = cell_energy / np.cosh(cell_eta)
        cells = {
            "px": cell_pt * np.cos(cell_phi),
            "py": cell_pt * np.sin(cell_phi),
            "pz": cell_pt * np.sinh(cell_eta),
            "E": cell_energy,
            "pid": np.zeros(len(keys), np.int64),
            "charge": np.zeros(len(keys)),
        }
        cell_event = keys // (n_phi * span)
        keep = cell_energy > 0
        merged = {k: np.concatenate([v[~neutral], cells[k][keep]]) for k, v in particles.items()}
        merged_event = np.concatenate([event[~neutral], cell_event[keep]])
        order = np.argsort(merged_event, kind="stable")
        return {k: v[order] for k, v in merged.items()}, merged_event[order]


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that determines a shard's content (with the seed)."""

    process: str
    sqrt_s: float = 14000.0
    pt_hat_min: float = 500.0
    pt_hat_max: float = 700.0
    jets: JetSelection = field(default_factory=JetSelection)
    extra: tuple[str, ...] = ()
    detector: Detector | None = None

    def __post_init__(self) -> None:
        check_finite(self)
        if not 0 <= self.pt_hat_min < self.pt_hat_max:
            msg = (
                f"the pT-hat range needs 0 <= pt_hat_min < pt_hat_max, got "
                f"[{self.pt_hat_min}, {self.pt_hat_max}]"
            )
            raise ValueError(msg)

    @classmethod
    def from_dict(cls, data: dict) -> GeneratorSettings:
        """From the ``generate`` rule's params (``dataclasses.asdict`` of the settings)."""
        detector = data.get("detector")
        if detector is not None:
            detector = Detector.from_dict(detector)
        return cls(
            **{
                **data,
                "jets": JetSelection(**data["jets"]),
                "extra": tuple(data.get("extra", ())),
                "detector": detector,
            }
        )


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
        msg = f"unknown process {settings.process!r}; known: {sorted(PROCESSES)}"
        raise PythiaSettingError(msg)
    pythia = pythia8mc.Pythia("", False)
    lines = [
        f"Beams:eCM = {settings.sqrt_s}",
        f"PhaseSpace:pTHatMin = {settings.pt_hat_min}",
        f"PhaseSpace:pTHatMax = {settings.pt_hat_max}",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        *PROCESSES[settings.process].settings,
        *settings.extra,
        *_QUIET,
    ]
    if not pythia.settings.isParm("Beams:eCM"):
        msg = (
            "Pythia found no settings database (its xmldoc folder): point PYTHIA8DATA at "
            "share/Pythia8/xmldoc of the pythia8mc installation"
        )
        raise PythiaSettingError(msg)
    for line in lines:
        if not pythia.readString(line):
            msg = f"Pythia rejected the setting {line!r}"
            raise PythiaSettingError(msg)
    if not pythia.init():
        msg = f"Pythia failed to initialise for process {settings.process!r} with settings {lines}"
        raise PythiaSettingError(msg)
    return pythia


def _charges(pythia, pids: np.ndarray) -> np.ndarray:
    """Electric charge of each PDG id, looked up once per distinct id."""
    unique, inverse = np.unique(pids, return_inverse=True)
    table = np.array([pythia.particleData.charge(int(p)) for p in unique], dtype=np.float64)
    return table[inverse]


def _delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    return np.arcsinh(pz / pt), np.arctan2(py, px)


_NO_MATCH = (0, 0.0, 0.0, 0.0, 0.0)


def _resonance_decays(event: dict, process: Process) -> list[tuple[tuple, tuple, list]]:
    """Each resonance (its last copy) of one event: ((id, px, py, pz, E), its (eta, phi),
    [(eta, phi) of its decay quarks]).

    ``event`` holds the columns of the candidate particles (resonances, intermediate
    resonances, outgoing quarks) with their index in the full record.
    """
    rows = {
        i: (pid, m1, d1, (pid, px, py, pz, e))
        for i, pid, m1, d1, px, py, pz, e in zip(
            event["idx"],
            event["id"],
            event["mother1"],
            event["daughter1"],
            event["px"],
            event["py"],
            event["pz"],
            event["e"],
        )
    }
    found: dict[int, tuple[tuple, tuple, list]] = {}
    for i, (pid, _m1, d1, p4) in rows.items():
        if abs(pid) == process.resonance and (d1 not in rows or rows[d1][0] != pid):
            found[i] = (p4, _eta_phi(*p4[1:4]), [])
    for pid, m1, _d1, p4 in rows.values():
        if abs(pid) > 5 or m1 not in rows:
            continue
        mother = m1
        while mother in rows and abs(rows[mother][0]) in process.via:  # walk up W copies
            mother = rows[mother][1]
        if mother in found:
            found[mother][2].append(_eta_phi(*p4[1:4]))
    return list(found.values())


def _match_resonances(
    jets_eta, jets_phi, candidates, process: Process, radius: float
) -> list[list[tuple]]:
    """Per event and jet: the (id, px, py, pz, E) of the resonance that lies, with all its
    decay quarks, within ``radius`` of the jet axis; :data:`_NO_MATCH` if none."""
    out = []
    for etas, phis, event in zip(jets_eta, jets_phi, candidates):
        decays = [d for d in _resonance_decays(event, process) if len(d[2]) == process.n_quarks]
        matches = []
        for eta, phi in zip(etas, phis):
            match = _NO_MATCH
            for p4, (r_eta, r_phi), quarks in decays:
                if _delta_r(eta, phi, r_eta, r_phi) < radius and all(
                    _delta_r(eta, phi, qe, qp) < radius for qe, qp in quarks
                ):
                    match = p4
                    break
            matches.append(match)
        out.append(matches)
    return out


def _match_partons(jets_eta, jets_phi, partons, radius: float) -> list[list[tuple]]:
    """Per event and jet: (id, px, py, pz, E) of the nearest outgoing hard-process parton
    within ``radius``; :data:`_NO_MATCH` if none."""
    out = []
    for etas, phis, ev in zip(jets_eta, jets_phi, partons):
        px, py, pz = (np.asarray(ev[k]) for k in ("px", "py", "pz"))
        p_eta, p_phi = _eta_phi(px, py, pz)
        matches = []
        for eta, phi in zip(etas, phis):
            dr = _delta_r(eta, phi, p_eta, p_phi)
            if len(dr) and dr.min() < radius:
                j = int(np.argmin(dr))
                matches.append((int(ev["id"][j]), px[j], py[j], pz[j], ev["e"][j]))
            else:
                matches.append(_NO_MATCH)
        out.append(matches)
    return out


def _columns(records, *names):
    """The named fields of Pythia's particle records, momentum components from ``p``."""
    return ak.zip(
        {k: records[k] if k in records.fields else records.p[k] for k in names}, depth_limit=1
    )


def _cluster_batch(
    pythia, batch, settings: GeneratorSettings, rng: np.random.Generator | None
) -> dict[str, ak.Array]:
    """Cluster one batch of events and return the selected, truth-matched jets' columns."""
    import fastjet

    sel = settings.jets
    process = PROCESSES[settings.process]
    prt = batch.prt
    prt = ak.with_field(prt, ak.local_index(prt.id, axis=1), "idx")
    abs_id = abs(prt.id)
    visible = prt[(prt.status > 0) & (abs_id != 12) & (abs_id != 14) & (abs_id != 16)]
    counts = ak.to_numpy(ak.num(visible))
    flat = {
        "px": visible.p.px,
        "py": visible.p.py,
        "pz": visible.p.pz,
        "E": visible.p.e,
        "pid": visible.id,
    }
    flat = {k: ak.to_numpy(ak.flatten(v)) for k, v in flat.items()}
    flat["charge"] = _charges(pythia, flat["pid"])
    if settings.detector is not None and rng is not None:
        event = np.repeat(np.arange(len(counts)), counts)
        flat, event = settings.detector.apply(flat, event, rng)
        counts = np.bincount(event, minlength=len(counts))
    particles = ak.unflatten(ak.zip(flat, with_name="Momentum4D"), counts)
    algorithm = {
        "antikt": fastjet.antikt_algorithm,
        "kt": fastjet.kt_algorithm,
        "cambridge": fastjet.cambridge_algorithm,
    }[sel.algorithm]
    sequence = fastjet.ClusterSequence(
        particles[["px", "py", "pz", "E"]], fastjet.JetDefinition(algorithm, sel.radius)
    )
    jets = sequence.inclusive_jets(min_pt=sel.pt_min)
    index = sequence.constituent_index(min_pt=sel.pt_min)
    jets = ak.zip(
        {"px": jets.px, "py": jets.py, "pz": jets.pz, "E": jets.E}, with_name="Momentum4D"
    )
    keep = (jets.pt >= sel.pt_min) & (jets.pt < sel.pt_max) & (abs(jets.eta) < sel.abs_eta_max)

    jets_eta, jets_phi = ak.to_list(jets.eta), ak.to_list(jets.phi)
    p4 = ("id", "px", "py", "pz", "e")
    if process.resonance:
        is_cand = (abs_id == process.resonance) | ((abs_id <= 5) & (abs(prt.status) == 23))
        for pid in process.via:
            is_cand = is_cand | (abs_id == pid)
        cand = _columns(prt[is_cand], "idx", "mother1", "daughter1", *p4)
        match = _match_resonances(jets_eta, jets_phi, ak.to_list(cand), process, sel.match_dr)
    else:
        hard = _columns(prt[prt.status == -23], *p4)
        match = _match_partons(jets_eta, jets_phi, ak.to_list(hard), sel.match_dr)
    flat_match = np.array([m for event in match for m in event], dtype=np.float64).reshape(-1, 5)
    ids = flat_match[:, 0].astype(np.int64)
    match = ak.unflatten(
        ak.zip(
            {"id": ids, **{k: flat_match[:, i + 1] for i, k in enumerate(("px", "py", "pz", "E"))}}
        ),
        ak.num(jets),
    )
    if process.resonance or process.flavours:
        matched = ids != 0 if process.resonance else np.isin(np.abs(ids), process.flavours)
        keep = keep & ak.unflatten(matched, ak.num(jets))

    event_index = ak.broadcast_arrays(np.arange(len(jets)), jets.pt)[0]
    jets_kept = ak.flatten(jets[keep])
    # constituent indices are per event: shift them into the flat particle list
    starts = np.cumsum(np.r_[0, counts[:-1]])
    per_jet = ak.flatten(index[keep] + starts[:, np.newaxis, np.newaxis], axis=1)
    flat_index = ak.to_numpy(ak.flatten(per_jet)).astype(np.int64)
    constituents = ak.unflatten(ak.flatten(particles)[flat_index], ak.num(per_jet))
    order = ak.argsort(constituents.pt, axis=1, ascending=False)
    return {
        "jets": jets_kept,
        "parton": ak.flatten(match[keep]),
        "event": ak.flatten(event_index[keep]),
        "constituents": constituents[order],
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
        settings: process, beam energy, pT-hat range, jet selection, detector model.
        n_events: events to generate (not jets: each event gives zero or more jets).
        seed: Pythia seed (see :func:`derive_seed`); it also seeds the detector smearing.
        batch_size: events generated and clustered at once.
        progress: called as ``progress(events_done, jets_kept, seconds)`` after each batch.

    Returns:
        Columns of :func:`jetimage.files.write_jets_root`: ``part_*`` ragged, ``jet_*`` flat.
    """
    pythia = make_pythia(settings, seed)
    rng = np.random.default_rng(seed) if settings.detector is not None else None
    chunks = []
    done, kept, start = 0, 0, time.perf_counter()
    while done < n_events:
        n = min(batch_size, n_events - done)
        batch = pythia.nextBatch(n, errorMode="skip")
        chunk = _cluster_batch(pythia, batch, settings, rng)
        chunk["event"] = chunk["event"] + done
        chunks.append(chunk)
        done += n
        kept += len(chunk["jets"])
        if progress is not None:
            progress(done, kept, time.perf_counter() - start)

    jets = ak.concatenate([c["jets"] for c in chunks])
    const = ak.concatenate([c["constituents"] for c in chunks])
    parton = ak.concatenate([c["parton"] for c in chunks])
    return {
        "part_px": const.px,
        "part_py": const.py,
        "part_pz": const.pz,
        "part_energy": const.E,
        "part_charge": ak.values_astype(const.charge, np.float32),
        "part_pid": ak.values_astype(const.pid, np.int32),
        "jet_pt": ak.to_numpy(jets.pt),
        "jet_eta": ak.to_numpy(jets.eta),
        "jet_phi": ak.to_numpy(jets.phi),
        "jet_energy": ak.to_numpy(jets.E),
        "jet_mass": ak.to_numpy(jets.mass),
        "jet_nparticles": ak.to_numpy(ak.num(const)).astype(np.int32),
        "jet_parton_pid": ak.to_numpy(parton.id).astype(np.int32),
        "jet_parton_px": ak.to_numpy(parton.px),
        "jet_parton_py": ak.to_numpy(parton.py),
        "jet_parton_pz": ak.to_numpy(parton.pz),
        "jet_parton_energy": ak.to_numpy(parton.E),
        "event_index": ak.to_numpy(ak.concatenate([c["event"] for c in chunks])).astype(np.int64),
    }


def write_shard(
    path,
    settings: GeneratorSettings,
    *,
    events: int,
    seed: int,
    batch_size: int,
    log: logging.Logger = log,
) -> int:
    """The generate stage for one shard: ``events`` Pythia events of ``settings`` clustered into
    jets (:func:`generate_jets`), written to ``path`` in the JetClass layout with progress in
    ``log``. Returns the jets written.

    Raises:
        RuntimeError: no jet fell into the jet window (nothing is written).
    """
    from jetimage.files import write_jets_root

    def progress(done: int, jets: int, seconds: float) -> None:
        log.info(
            "%d/%d events, %d jets kept, %.0f events/s, %.0f jets/s",
            done,
            events,
            jets,
            done / seconds,
            jets / seconds,
        )

    columns = generate_jets(
        settings, n_events=events, seed=seed, batch_size=batch_size, progress=progress
    )
    if len(columns["jet_pt"]) == 0:
        jets = settings.jets
        msg = (
            f"{events} events of process {settings.process!r} gave no jet in the window "
            f"{jets.pt_min} < pT < {jets.pt_max} GeV, |eta| < {jets.abs_eta_max} "
            f"(generation/jets) from pT-hat {settings.pt_hat_min}-{settings.pt_hat_max} GeV "
            f"(generation/pt_hat); no shard written"
        )
        raise RuntimeError(msg)
    write_jets_root(path, columns)
    return len(columns["jet_pt"])
