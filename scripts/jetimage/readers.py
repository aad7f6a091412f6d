"""Readers of the jet files physicists already have, in bounded batches.

Every reader streams a file in batches of at most ``step`` jets, so memory does not grow with the
file, and checks what it can before any pixelation: the file opens, the tree/dataset and every
branch exist (the error lists what does), the file is not empty. Each batch is then checked for
ragged columns of one jet that differ in length, NaN/inf momenta, unphysical constituents
(E < 0, E < |p|, pT < 0, m < 0: an error, or the jet dropped and counted with
``invalid_constituents: drop``) and labels that map to no class; jets without constituents are
dropped and counted. Errors are :class:`jetimage.files.InputError` and name the file, the field and
the first entry.

Formats (``format:`` of a sample in the config):

``root``
    ROOT in the JetClass layout (tree ``tree``, ragged ``part_px/py/pz/energy``, optional
    ``part_charge``/``part_pid``, per-jet ``jet_*``, one-hot ``label_*``), or any tree whose
    branches a ``branches`` map names (``px, py, pz, energy`` or ``pt, eta, phi, mass``).
``parquet``
    particle_transformer's Parquet layout (``label``, ``jet_*``, ragged ``part_*``); the same
    ``branches`` map applies.
``toptagging``
    The Top Quark Tagging reference HDF5: a pandas store (key ``table``) with zero-padded
    columns ``E_i, PX_i, PY_i, PZ_i`` and the label ``is_signal_new``.
``nanoaod``
    CMS NanoAOD/PFNano: fat jets whose constituents are linked by index
    (``FatJetPFCand(s)_jetIdx`` and ``..._pfCandIdx``/``_pFCandsIdx`` into ``PFCand(s)_*``).
``images-h5``
    Already-pixelated images: ``images`` + ``labels`` datasets, or one dataset per class.
    Yields :class:`ImageBatch` and skips pixelation.

Constituent batches are :class:`jetimage.batches.Jets` whose table holds ``pt, eta, phi, mass,
n_constituents, entry`` (row in the file), ``label`` (class index) and any other per-jet feature.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import awkward as ak
import numpy as np
import vector

from jetimage import preprocess, remote
from jetimage.batches import Counts, ImageBatch, Jets
from jetimage.defaults import default
from jetimage.files import InputError
from jetimage.suggest import did_you_mean

vector.register_awkward()

FORMATS = ("root", "parquet", "toptagging", "nanoaod", "images-h5")
IMAGE_FORMATS = ("images-h5",)
#: Formats of jets with constituents (what the predict stage's files may be).
CONSTITUENT_FORMATS = tuple(f for f in FORMATS if f not in IMAGE_FORMATS)

#: Reader options each format accepts (the ``reader:`` mapping of a sample).
OPTIONS = {
    "root": {"tree", "branches", "jet_branches", "invalid_constituents", "unit"},
    "parquet": {"branches", "jet_branches", "invalid_constituents", "unit"},
    "toptagging": {"key", "max_constituents", "invalid_constituents", "unit"},
    "nanoaod": {
        "tree",
        "jets",
        "links",
        "candidates",
        "puppi_weight",
        "invalid_constituents",
        "unit",
    },
    "images-h5": {"images", "image_axes", "width", "channels"},
}

#: The energy unit of a file's momenta (reader option ``unit``) in GeV, jetimage's unit.
UNITS = {"GeV": 1.0, "MeV": 1e-3}

#: The per-jet table columns in energy units, converted with the constituents' momenta.
ENERGY_FEATURES = ("pt", "mass", "energy", "raw_pt", "sdmass", "msd", "msoftdrop")

#: The median jet pT (GeV) of a file's first batch must lie in this range: a collider's jets
#: (a file in MeV read as GeV gives 1000 times the pT, one in GeV read as MeV a thousandth).
PLAUSIBLE_JET_PT = (1.0, 14_000.0)

#: No particle of the LHC's beams can have more energy (GeV): a median constituent energy
#: above it is a file in MeV.
MAX_CONSTITUENT_ENERGY = 7_000.0

#: |η| of a constituent given as (pT, η, φ, m) beyond any detector's reach.
MAX_ABS_ETA = 6.0

#: Label of a jet dropped for an invalid constituent (``invalid_constituents: drop``); -1 is a
#: label the map leaves out.
INVALID = -2

#: A constituent is spacelike when E < |p| (1 - SPACELIKE_TOLERANCE): float32 rounding of
#: massless particles gives E/|p| - 1 down to -3e-7 in the quark/gluon Parquet file, NanoAOD's
#: packed masses m^2/2p^2 up to 1.3e-8; a wrong unit or a mass taken for the energy gives ~-0.9.
SPACELIKE_TOLERANCE = 1e-4

#: The JetClass / particle_transformer constituent branches.
JETCLASS_BRANCHES = {
    "px": "part_px",
    "py": "part_py",
    "pz": "part_pz",
    "energy": "part_energy",
    "charge": "part_charge",
    "pid": "part_pid",
}
_OPTIONAL = ("charge", "pid")
_STANDARD = ("pt", "eta", "phi", "mass")

#: Charge of the PDG ids that CMS particle flow uses.
_PDG_CHARGE = {11: -1, 13: -1, 211: 1, 321: 1, 2212: 1}


def clashing_keys(mapping) -> list | None:
    """The first keys of a labels map that are one label value as text (``0`` and ``"0"``),
    or ``None``: file label values are compared as text."""
    as_text: dict[str, list] = {}
    for key in mapping:
        as_text.setdefault(str(key), []).append(key)
    return next((keys for keys in as_text.values() if len(keys) > 1), None)


@dataclass(frozen=True)
class Labels:
    """How a file's jets get their class.

    Args:
        classes: the run's classes, in label order.
        class_name: every jet of the file is this class; or
        mapping: raw label (as text: an integer, a one-hot branch or a dataset name) → class.
        field: where the raw label is read (a branch, column or dataset); format default if None.
        unmapped: ``"error"`` (default) or ``"drop"`` for jets whose label maps to no class.
    """

    classes: tuple[str, ...]
    class_name: str | None = None
    mapping: dict[str, str] | None = None
    field: str | None = None
    unmapped: str = "error"

    def __post_init__(self) -> None:
        if (self.class_name is None) == (self.mapping is None):
            msg = "give exactly one of class_name and mapping"
            raise ValueError(msg)
        targets = [str(self.class_name)] if self.mapping is None else list(self.mapping.values())
        unknown = sorted({c for c in targets if c not in self.classes})
        if unknown:
            msg = f"label target(s) {unknown} are not classes {list(self.classes)}"
            raise ValueError(msg)
        if self.mapping is not None:
            clash = clashing_keys(self.mapping)
            if clash:
                msg = (
                    f"labels map keys {clash} are the same label value "
                    f"{str(clash[0])!r} (keys are compared as text)"
                )
                raise ValueError(msg)
            object.__setattr__(self, "mapping", {str(k): v for k, v in self.mapping.items()})

    @property
    def one_hot(self) -> bool:
        """Labels are one-hot branches (JetClass ``label_*``): the mapping's keys name them."""
        return (
            self.mapping is not None
            and self.field is None
            and all(k.startswith("label_") for k in self.mapping)
        )

    def assign(self, raw: np.ndarray | None, n: int, *, path, field: str) -> np.ndarray:
        """Class index per jet, -1 where ``unmapped: drop`` drops it."""
        if self.mapping is None:
            return np.full(n, self.classes.index(self.class_name), dtype=np.int64)
        raw = np.asarray(raw)
        values, inverse = np.unique(raw.astype(str), return_inverse=True)
        index = np.array(
            [self.classes.index(self.mapping[v]) if v in self.mapping else -1 for v in values],
            dtype=np.int64,
        )
        out = index[inverse.reshape(-1)]
        if self.unmapped == "error" and np.any(out < 0):
            bad = {str(v): int(np.sum(inverse == i)) for i, v in enumerate(values) if index[i] < 0}
            msg = (
                f"{path}: field {field!r} holds label value(s) that map to no "
                f"class: {bad} (jets per value); the labels map has "
                f"{sorted(self.mapping)}. Map them or set unmapped_labels: drop"
            )
            raise InputError(msg)
        return out


def read(
    path: str | os.PathLike,
    *,
    format: str,
    labels: Labels | None = None,
    step: int = default("dask", "batch_jets"),
    counts: Counts | None = None,
    **options,
) -> Iterator[Jets | ImageBatch]:
    """Stream a file as batches of at most ``step`` jets (see the module docstring).

    Args:
        path: the file.
        format: one of :data:`FORMATS`.
        labels: how jets get their class (``None``: no labels, every jet gets label 0).
        step: jets (or events, for NanoAOD) read at a time.
        counts: filled with jets read and dropped, if given.
        options: the format's reader options (:data:`OPTIONS`). ``unit``: ``"GeV"``
            (default) or ``"MeV"``, the energy unit of the file's momenta and energy-like jet
            features (:data:`ENERGY_FEATURES`), converted to GeV; the first jets' median pT
            and their constituents' sum are checked to make sense in it (before any batch is
            given). ``invalid_constituents``:
            ``"error"`` (default) for a constituent with E < 0 or E < |p| (or pT < 0, m < 0
            given as pT, η, φ, m) raises naming the field and the entry; ``"drop"`` drops
            its jet and counts it (``invalid_constituents``).

    Examples:
        >>> labels = Labels(("gluon", "quark"), mapping={"0": "gluon", "1": "quark"})
        >>> batches = read("quark_gluon_2000.parquet", format="parquet",
        ...                labels=labels)  # doctest: +SKIP
    """
    if format not in FORMATS:
        msg = f"unknown format {format!r}; choose from {FORMATS}"
        raise ValueError(msg)
    check_options(format, options)
    check_option_values(format, options)
    labels = labels if labels is not None else Labels(("jets",), class_name="jets")
    if remote.is_remote(path):  # streamed over XRootD by uproot
        if format not in ("root", "nanoaod"):
            msg = f"{path}: root:// files are read as ROOT (format root or nanoaod), not {format}"
            raise InputError(msg)
        path = str(path)
    else:
        path = Path(path)
        if not path.exists():
            msg = f"{path}: file does not exist"
            raise InputError(msg)
    counts = counts if counts is not None else Counts()
    unit = options.pop("unit", "GeV")
    checked = False  # the energy scale, on the first batch with jets
    for batch in _READERS[format](path, labels=labels, step=step, **options):
        if isinstance(batch, Jets):
            batch = _in_gev(batch, UNITS[unit])
        counts.read += len(batch)
        keep = batch.table["label"] >= 0
        counts.drop("unmapped_label", np.sum(batch.table["label"] == -1))
        if isinstance(batch, Jets):
            counts.drop("invalid_constituents", np.sum(batch.table["label"] == INVALID))
            empty = batch.table["n_constituents"] == 0
            counts.drop("no_constituents", np.sum(keep & empty))
            keep &= ~empty
            if not checked and np.any(keep):
                _check_energy_scale(path, batch[keep], unit)
                checked = True
        else:
            empty = ~np.any(batch.images, axis=(1, 2, 3))
            counts.drop("empty_image", np.sum(keep & empty))
            keep &= ~empty
        if np.all(keep):
            yield batch
        elif np.any(keep):
            yield batch[keep]


def read_jets(
    path: str | os.PathLike,
    *,
    format: str = "root",
    labels: Labels | None = None,
    counts: Counts | None = None,
    **options,
) -> Jets:
    """A whole file of constituents at once (a notebook's entry point; the workflow streams).

    Examples:
        >>> jets = read_jets("results/jets/top/000.root")  # doctest: +SKIP
        >>> jets.constituents.px, jets.table["mass"]  # doctest: +SKIP
    """
    if format in IMAGE_FORMATS:
        msg = f"{path}: format {format!r} holds images, not constituents"
        raise ValueError(msg)
    # a constituent format yields Jets (checked above)
    batches = cast(
        list[Jets], list(read(path, format=format, labels=labels, counts=counts, **options))
    )
    if not batches:
        return Jets(
            ak.zip(
                {k: ak.Array([[]])[:0] for k in ("px", "py", "pz", "E")}, with_name="Momentum4D"
            ),
            {},
        )
    table = {k: np.concatenate([b.table[k] for b in batches]) for k in batches[0].table}
    return Jets(ak.concatenate([b.constituents for b in batches]), table)


def check_options(format: str, options: dict) -> None:
    """Reject reader options the format does not know, suggesting the closest one."""
    known = OPTIONS[format]
    for name in options:
        if name not in known:
            msg = (
                f"format {format!r} has no reader option {name!r} (it has "
                f"{sorted(known)}){did_you_mean(name, known)}"
            )
            raise ValueError(msg)


#: Reader options whose values are checked before any file is read: name → (test, what).
_OPTION_VALUES = {
    "invalid_constituents": (lambda v: v in ("error", "drop"), "'error' or 'drop'"),
    "unit": (lambda v: v in UNITS, "'GeV' or 'MeV'"),
    "max_constituents": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
        "a positive integer",
    ),
    "puppi_weight": (lambda v: v is None or isinstance(v, bool), "true or false"),
    "image_axes": (lambda v: v in ("auto", "NHW", "NHWC", "NCHW"), "auto, NHW, NHWC or NCHW"),
    "branches": (
        lambda v: (
            v is None or (isinstance(v, dict) and all(isinstance(b, str) for b in v.values()))
        ),
        "a map of field to branch name",
    ),
    "jet_branches": (
        lambda v: (
            v is None or (isinstance(v, dict) and all(isinstance(b, str) for b in v.values()))
        ),
        "a map of feature to branch name",
    ),
    "width": (
        lambda v: (
            v is None
            or (
                isinstance(v, list | tuple)
                and len(v) == 2
                and all(isinstance(w, int | float) and np.isfinite(w) and w > 0 for w in v)
            )
        ),
        "two positive numbers",
    ),
}
for _name in ("tree", "key", "jets", "links", "candidates", "images"):
    _OPTION_VALUES[_name] = (lambda v: v is None or isinstance(v, str), "a name (text)")


def check_option_values(format: str, options: dict) -> None:
    """Reject reader option values of the wrong type or range, naming the option."""
    for name, value in options.items():
        test, what = _OPTION_VALUES.get(name, (lambda v: True, ""))
        if not test(value):
            msg = f"format {format!r}: reader option {name!r} must be {what}, not {value!r}"
            raise ValueError(msg)


# --- shared helpers ---------------------------------------------------------------------------


def _check_finite(
    path, named: dict[str, np.ndarray], entry: np.ndarray, counts: np.ndarray
) -> None:
    """Raise naming the field and the first entry (``entry``: the file entry of each jet) if a
    value is NaN/inf (``counts``: the values of each jet, its constituents; ones for per-jet
    values)."""
    for name, values in named.items():
        bad = ~np.isfinite(values)
        if np.any(bad):
            jet = np.searchsorted(np.cumsum(counts), np.flatnonzero(bad)[0], side="right")
            msg = (
                f"{path}: field {name!r} holds {int(bad.sum())} NaN/inf value(s) "
                f"(first in entry {int(entry[jet])})"
            )
            raise InputError(msg)


def _in_gev(batch: Jets, scale: float) -> Jets:
    """A batch with its momenta and energy-like table columns (:data:`ENERGY_FEATURES`)
    multiplied by ``scale`` (1e-3 for a file in MeV)."""
    if scale == 1.0:
        return batch
    c = batch.constituents
    record = {f: c[f] * scale if f in ("px", "py", "pz", "E") else c[f] for f in c.fields}
    table = {
        k: np.asarray(v) * scale if k in ENERGY_FEATURES else v for k, v in batch.table.items()
    }
    return Jets(ak.zip(record, with_name="Momentum4D"), table)


def _check_energy_scale(path, batch: Jets, unit: str) -> None:
    """Raise naming the file, the quantity and its median if the first jets' energies make
    sense only in another unit (before any image is written)."""
    pt = float(np.median(batch.table["pt"]))
    energy = float(np.median(ak.to_numpy(ak.flatten(batch.constituents.E))))
    read_as = f"read as {unit}" + (" (reader option unit)" if unit != "GeV" else "")
    other = "MeV" if unit == "GeV" else "GeV"
    low, high = PLAUSIBLE_JET_PT
    if not low <= pt <= high:
        msg = (
            f"{path}: the median jet pT of the first {len(batch)} jets is {pt:.6g} GeV "
            f"({read_as}; the file's jet pT, else the sum of its constituents' momenta), "
            f"where a collider's jets have {low:g} GeV to {high:g} GeV: are the momenta in "
            f"{other}? Set the reader option unit: {other}"
        )
        raise InputError(msg)
    c = batch.constituents
    summed = np.hypot(np.asarray(ak.sum(c.px, axis=1)), np.asarray(ak.sum(c.py, axis=1)))
    ratio = float(np.median(summed / np.where(batch.table["pt"] > 0, batch.table["pt"], np.nan)))
    if energy > MAX_CONSTITUENT_ENERGY or not 1 / 30 < ratio < 30:
        msg = (
            f"{path}: the constituents of the first {len(batch)} jets sum to {ratio:.4g} times "
            f"the file's jet pT (median; median constituent energy {energy:.6g} GeV, median "
            f"jet pT {pt:.6g} GeV, {read_as}): are the constituents and the jet table in "
            f"different units (MeV and GeV)?"
        )
        raise InputError(msg)


def _constituents(counts: np.ndarray, columns: dict[str, np.ndarray]) -> ak.Array:
    """Per-jet ``Momentum4D`` records from flat columns (px, py, pz, E, charge, pid)."""
    record = {
        name: ak.unflatten(np.ascontiguousarray(values), counts) for name, values in columns.items()
    }
    return ak.zip(record, with_name="Momentum4D")


def _cartesian(pt, eta, phi, mass) -> dict[str, np.ndarray]:
    pt, eta, phi, mass = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, mass))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return {"px": px, "py": py, "pz": pz, "E": np.sqrt(px**2 + py**2 + pz**2 + mass**2)}


def _jet_kinematics(counts: np.ndarray, px, py, pz, E) -> dict[str, np.ndarray]:
    """pt, eta, phi, mass of each jet from the sum of its constituents."""
    flat = preprocess.FlatJets(px, py, pz, E, None, np.concatenate([[0], np.cumsum(counts)]))
    s: Any = vector.array(
        {q: flat.jet_sum(v) for q, v in zip(("px", "py", "pz", "E"), (px, py, pz, E))}
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "pt": s.pt,
            "eta": np.where(s.pt > 0, s.eta, 0.0),
            "phi": s.phi,
            "mass": np.nan_to_num(s.mass),
        }


def _jets(
    path,
    *,
    counts,
    columns: dict[str, np.ndarray],
    names: dict[str, str],
    features: dict[str, np.ndarray],
    entry: np.ndarray,
    label: np.ndarray,
    invalid: str = "error",
    checks: tuple = (),
    feature_fields: dict[str, str] | None = None,
) -> Jets:
    """A checked batch: finite, physical momenta (``checks``: more (field, what, bad mask)
    of the caller), finite per-jet features (``feature_fields``: the file's field of each,
    for the message; ``jet_<name>`` if not given), standard table (the file's kinematics
    where it has them, else the sum of the constituents). A jet with an invalid constituent
    raises (``invalid="error"``) or gets the label :data:`INVALID` (``"drop"``)."""
    momenta = [columns[k] for k in ("px", "py", "pz", "E")]
    _check_finite(path, {names[k]: columns[k] for k in ("px", "py", "pz", "E")}, entry, counts)
    fields = feature_fields or {}
    per_jet = {  # per-jet values reach the metrics: pT bins, mass sculpting, planing
        fields.get(name, f"jet_{name}"): values
        for name, values in features.items()
        if np.asarray(values).dtype.kind == "f"
    }
    _check_finite(path, per_jet, entry, np.ones(len(entry), dtype=np.int64))
    px, py, pz, E = momenta
    p = np.sqrt(px**2 + py**2 + pz**2)
    negative = E < 0
    checks = (
        *checks,
        (names["E"], "negative energy", negative),
        (names["E"], "E < |p| (spacelike)", ~negative & (p * (1 - SPACELIKE_TOLERANCE) > E)),
    )
    bad_jets = _invalid_jets(path, checks, counts, entry, invalid)
    if np.any(bad_jets):
        label = np.where(bad_jets, INVALID, label)
    table = {} if all(k in features for k in _STANDARD) else _jet_kinematics(counts, *momenta)
    table.update({k: np.asarray(v) for k, v in features.items()})
    table.update(
        {"n_constituents": np.asarray(counts, dtype=np.int64), "entry": entry, "label": label}
    )
    return Jets(_constituents(counts, columns), table)


def _invalid_jets(path, checks, counts: np.ndarray, entry: np.ndarray, invalid: str) -> np.ndarray:
    """Per jet: holds a constituent that a check flags. Raises naming the field, what is wrong
    and the first entry, unless ``invalid`` is ``"drop"``."""
    bad_jets = np.zeros(len(counts), dtype=bool)
    jet_of = None
    for field_name, what, bad in checks:
        if not np.any(bad):
            continue
        jet_of = np.repeat(np.arange(len(counts)), counts) if jet_of is None else jet_of
        if invalid != "drop":
            first = int(entry[jet_of[np.flatnonzero(bad)[0]]])
            msg = (
                f"{path}: field {field_name!r}: {int(bad.sum())} constituent(s) "
                f"with {what} (first in entry {first}); a wrong unit or column? "
                f"Set the reader option invalid_constituents: drop to drop "
                f"their jets"
            )
            raise InputError(msg)
        bad_jets[jet_of[bad]] = True
    return bad_jets


def _check_aligned(path, arrays, branches, entry0: int) -> np.ndarray:
    """Constituents per jet of ragged ``branches`` of a batch, which must all agree: the
    error names the branches and the first entry where they differ."""
    branches = list(branches)
    first = ak.to_numpy(ak.num(arrays[branches[0]], axis=1))
    for other in branches[1:]:
        n = ak.to_numpy(ak.num(arrays[other], axis=1))
        if not np.array_equal(n, first):
            entry = entry0 + int(np.flatnonzero(n != first)[0])
            msg = (
                f"{path}: ragged columns {branches[0]!r} and {other!r} differ in "
                f"length (first in entry {entry}: {first[entry - entry0]} against "
                f"{n[entry - entry0]}); every constituent column of a jet must "
                f"have one value per constituent"
            )
            raise InputError(msg)
    return first.astype(np.int64)


def _missing(path, where: str, wanted, available, *, shown: int = 30) -> None:
    """An InputError naming what ``where`` lacks, the names closest to each, and the first
    ``shown`` of what it has (a NanoAOD file has thousands of branches)."""
    missing = [w for w in wanted if w not in available]
    if missing:
        available = sorted(available)
        close = sorted({c for w in missing for c in difflib.get_close_matches(w, available, n=3)})
        hint = f" (closest: {close})" if close else ""
        more = f" and {len(available) - shown} more" if len(available) > shown else ""
        msg = f"{path}: {where} lacks {missing}{hint}; it has {available[:shown]}{more}"
        raise InputError(msg)


def _flat(array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array, axis=None))


def _branch_map(branches: dict | None) -> tuple[dict[str, str], list[str]]:
    """(field → branch, required fields) of a ``branches`` option (JetClass by default)."""
    if branches is None:
        return dict(JETCLASS_BRANCHES), ["px", "py", "pz", "energy"]
    if not any(
        all(f in branches for f in kind) for kind in (("px", "py", "pz", "energy"), _STANDARD)
    ):
        msg = (
            f"reader option branches must name px, py, pz, energy or pt, eta, phi, "
            f"mass; got {sorted(branches)}"
        )
        raise ValueError(msg)
    return dict(branches), list(branches)


def _columns_from_record(path, arrays, fields: dict[str, str], entry0: int):
    """(counts, flat columns px/py/pz/E/charge/pid, column → source name, source values to
    check before conversion, physics checks of (pt, eta, phi, mass) sources) of a batch."""
    counts = _check_aligned(path, arrays, fields.values(), entry0)
    raw = {name: _flat(arrays[branch]) for name, branch in fields.items()}
    checks = ()
    if "px" in raw:
        columns = {"px": raw["px"], "py": raw["py"], "pz": raw["pz"], "E": raw["energy"]}
        names = {"px": fields["px"], "py": fields["py"], "pz": fields["pz"], "E": fields["energy"]}
        source = {}
    else:
        source = {fields[k]: raw[k] for k in _STANDARD}
        columns = _cartesian(*(raw[k] for k in _STANDARD))
        names = {"px": fields["pt"], "py": fields["phi"], "pz": fields["eta"], "E": fields["mass"]}
        checks = _polar_checks(fields, raw["pt"], raw["eta"], raw["phi"], raw["mass"])
    for name in _OPTIONAL:
        if name in raw:
            columns[name] = raw[name]
    return counts, columns, names, source, checks


def _polar_checks(names: dict[str, str], pt, eta, phi, mass) -> tuple:
    """Physics checks of constituents given as (pT, η, φ, m) (``names``: the field of each):
    pT < 0, a negative mass beyond :data:`SPACELIKE_TOLERANCE` (m² > 2 tol p², i.e.
    E < |p| (1 - tol)), |φ| > 2π (beyond wrapping once: degrees), |η| beyond any detector
    (:data:`MAX_ABS_ETA`)."""
    pt, eta, phi, mass = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, mass))
    with np.errstate(over="ignore"):
        p = np.abs(pt) * np.cosh(eta)
    return (
        (names["pt"], "negative pT", pt < 0),
        (
            names["mass"],
            "negative mass (spacelike)",
            (mass < 0) & (mass**2 > 2 * SPACELIKE_TOLERANCE * p**2),
        ),
        (names["phi"], "|φ| > 2π (an angle in degrees?)", np.abs(phi) > 2 * np.pi),
        (names["eta"], f"|η| > {MAX_ABS_ETA:g} (beyond any detector)", np.abs(eta) > MAX_ABS_ETA),
    )


def _raw_labels(arrays, labels: Labels) -> tuple[np.ndarray | None, str]:
    """Raw label per jet of a batch: the one-hot branch that is set, or a label field."""
    if labels.mapping is None:
        return None, ""
    if labels.one_hot:
        names = sorted(labels.mapping)
        hot = np.stack([ak.to_numpy(arrays[n]) for n in names], axis=1) > 0
        raw = np.where(hot.sum(axis=1) == 1, np.asarray(names)[hot.argmax(axis=1)], "")
        return raw, "/".join(names)
    field_name = labels.field or "label"
    values = ak.to_numpy(arrays[field_name])
    return (values.argmax(axis=1) if values.ndim == 2 else values), field_name


def _label_fields(labels: Labels) -> list[str]:
    if labels.mapping is None:
        return []
    return sorted(labels.mapping) if labels.one_hot else [labels.field or "label"]


def _features(arrays, jet_branches: dict | None, available) -> dict[str, np.ndarray]:
    """Per-jet features: ``jet_*`` (prefix dropped) or the ``jet_branches`` map."""
    if jet_branches is not None:
        return {name: ak.to_numpy(arrays[branch]) for name, branch in jet_branches.items()}
    return {b.removeprefix("jet_"): ak.to_numpy(arrays[b]) for b in available}


def _batch_from_arrays(
    path, arrays, entry0, *, fields, labels, jet_branches, jet_available, invalid
):
    counts, columns, names, source, checks = _columns_from_record(path, arrays, fields, entry0)
    _check_finite(path, source, np.arange(entry0, entry0 + len(counts)), counts)
    raw, label_field = _raw_labels(arrays, labels)
    n = len(counts)
    label = labels.assign(raw, n, path=path, field=label_field)
    features = _features(arrays, jet_branches, jet_available)
    features.pop("nparticles", None)  # the table's n_constituents counts them
    return _jets(
        path,
        counts=counts,
        columns=columns,
        names=names,
        features=features,
        entry=np.arange(entry0, entry0 + n),
        label=label,
        invalid=invalid,
        checks=checks,
        feature_fields=dict(jet_branches) if jet_branches is not None else None,
    )


def _is_jet_feature(name: str) -> bool:
    return name.startswith("jet_") or name == "event_index"


# --- ROOT (JetClass layout or a branch map) ---------------------------------------------------


@contextlib.contextmanager
def open_root(path):
    """An open ROOT file (local, or ``root://`` through XRootD with bounded retries), closed
    on exit; a remote server that went away cannot be told, and is not asked twice."""
    import uproot

    if remote.is_remote(path):
        remote.client()
        file = remote.retry(
            f"{path}: opening it over XRootD",  # the XRootD client itself
            lambda: uproot.open(str(path), timeout=60, handler=uproot.source.xrootd.XRootDSource),
        )
    else:
        try:
            file = uproot.open(path)
        except Exception as err:  # uproot raises many kinds for a corrupt file
            msg = f"{path}: not a readable ROOT file ({err})"
            raise InputError(msg) from err
    try:
        yield file
    finally:
        try:
            file.close()
        except OSError:
            if not remote.is_remote(path):
                raise


def _keys(file) -> list[str]:
    return sorted({k.split(";")[0] for k in file.keys()})


def root_tree(path, file, tree: str):
    """The TTree or RNTuple ``tree`` of an open file (both read the same way); anything else,
    or nothing by that name, is an InputError naming the file, the key and what it found."""
    import uproot

    if tree not in file:
        msg = f"{path}: no tree {tree!r}; the file has {_keys(file)}"
        raise InputError(msg)
    found = file[tree]
    if not isinstance(found, uproot.behaviors.TTree.TTree | uproot.behaviors.RNTuple.RNTuple):
        msg = (
            f"{path}: key {tree!r} is a {getattr(found, 'classname', type(found))}, "
            f"not a TTree or an RNTuple"
        )
        raise InputError(msg)
    return found


#: C++ type names of one number per entry, as uproot gives them for TTree and RNTuple fields.
_SCALAR_TYPE = re.compile(
    r"^(std::)?(bool|char|short|int|long|float|double|u?int(8|16|32|64)_t"
    r"|unsigned (char|short|int|long))$"
)


def _scalar_fields(ttree) -> list[str]:
    """Branches (TTree) or fields (RNTuple) holding one number per entry."""
    return [
        name for name, typename in ttree.typenames().items() if _SCALAR_TYPE.match(typename.strip())
    ]


def _iterate(path, ttree, branches: list[str], step: int):
    """``ttree.iterate`` in steps, a truncated or corrupt basket reported as InputError; a
    remote file is read range by range, each range tried a few times (a server that went
    away is an InputError naming the URL)."""
    if remote.is_remote(path):
        yield from _iterate_remote(path, ttree, branches, step)
        return
    iterator = ttree.iterate(branches, step_size=step, library="ak", report=True)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except Exception as err:  # uproot raises many kinds for a damaged basket
            msg = f"{path}: tree {ttree.name!r} could not be read ({err})"
            raise InputError(msg) from err


def _iterate_remote(path, ttree, branches: list[str], step: int):
    """(arrays, report) of each range of ``step`` entries of a remote tree, with retries."""
    from types import SimpleNamespace

    for start in range(0, int(ttree.num_entries), step):
        stop = min(start + step, int(ttree.num_entries))
        arrays = remote.retry(
            f"{path}: reading entries {start}-{stop} of {ttree.name!r}",
            partial(ttree.arrays, branches, entry_start=start, entry_stop=stop, library="ak"),
        )
        yield arrays, SimpleNamespace(tree_entry_start=start)


def _read_root(
    path,
    *,
    labels: Labels,
    step: int,
    tree: str = "tree",
    branches=None,
    jet_branches=None,
    invalid_constituents: str = "error",
) -> Iterator[Jets]:
    fields, required = _branch_map(branches)
    with open_root(path) as file:
        ttree = root_tree(path, file, tree)
        available = set(ttree.keys())
        _missing(path, f"tree {tree!r}", [fields[f] for f in required], available)
        fields = {k: v for k, v in fields.items() if k in required or v in available}
        _missing(path, f"tree {tree!r}", _label_fields(labels), available)
        if jet_branches is not None:
            _missing(path, f"tree {tree!r}", list(jet_branches.values()), available)
            jet_available = []
        else:
            jet_available = [b for b in sorted(_scalar_fields(ttree)) if _is_jet_feature(b)]
        if ttree.num_entries == 0:
            msg = f"{path}: tree {tree!r} has no jets"
            raise InputError(msg)
        wanted = sorted(
            {
                *fields.values(),
                *_label_fields(labels),
                *jet_available,
                *(jet_branches or {}).values(),
            }
        )
        for arrays, report in _iterate(path, ttree, wanted, step):
            yield _batch_from_arrays(
                path,
                arrays,
                report.tree_entry_start,
                fields=fields,
                labels=labels,
                jet_branches=jet_branches,
                jet_available=jet_available,
                invalid=invalid_constituents,
            )


# --- Parquet (particle_transformer layout) ----------------------------------------------------


def _read_parquet(
    path,
    *,
    labels: Labels,
    step: int,
    branches=None,
    jet_branches=None,
    invalid_constituents: str = "error",
) -> Iterator[Jets]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        msg = f"{path}: not a readable Parquet file ({err})"
        raise InputError(msg) from err
    schema = parquet.schema_arrow
    available = set(schema.names)
    fields, required = _branch_map(branches)
    _missing(path, "the Parquet schema", [fields[f] for f in required], available)
    fields = {k: v for k, v in fields.items() if k in required or v in available}
    _missing(path, "the Parquet schema", _label_fields(labels), available)
    if jet_branches is not None:
        _missing(path, "the Parquet schema", list(jet_branches.values()), available)
        jet_available = []
    else:
        jet_available = [
            n
            for n in schema.names
            if _is_jet_feature(n) and not pa.types.is_nested(schema.field(n).type)
        ]
    if parquet.metadata.num_rows == 0:
        msg = f"{path}: the Parquet file has no jets"
        raise InputError(msg)
    wanted = sorted(
        {*fields.values(), *_label_fields(labels), *jet_available, *(jet_branches or {}).values()}
    )
    entry0 = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=step, columns=wanted):
            arrays = ak.from_arrow(record_batch)
            yield _batch_from_arrays(
                path,
                arrays,
                entry0,
                fields=fields,
                labels=labels,
                jet_branches=jet_branches,
                jet_available=jet_available,
                invalid=invalid_constituents,
            )
            entry0 += len(arrays)
    except (pa.ArrowException, OSError) as err:
        msg = f"{path}: Parquet rows from {entry0} could not be read ({err})"
        raise InputError(msg) from err


# --- Top Quark Tagging reference HDF5 ---------------------------------------------------------


def _open_h5(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        msg = f"{path}: not a readable HDF5 file ({err})"
        raise InputError(msg) from err


def _pandas_fixed_columns(path, group) -> tuple[dict[str, tuple[str, int]], int]:
    """Column → (block dataset, column index) of a pandas fixed-format frame, and its rows."""
    columns = {}
    for name in sorted(group):
        if name.startswith("block") and name.endswith("_items"):
            values = name.replace("_items", "_values")
            for i, item in enumerate(group[name][...]):
                columns[item.decode() if isinstance(item, bytes) else str(item)] = (values, i)
    if not columns:
        msg = f"{path}: group {group.name!r} is not a pandas frame (no block*_items)"
        raise InputError(msg)
    return columns, int(group["axis1"].shape[0])


def _read_toptagging(
    path,
    *,
    labels: Labels,
    step: int,
    key: str = "table",
    max_constituents: int | None = None,
    invalid_constituents: str = "error",
) -> Iterator[Jets]:
    label_field = labels.field or "is_signal_new"
    with _open_h5(path) as file:
        if key not in file:
            msg = f"{path}: no key {key!r}; the file has {sorted(file.keys())}"
            raise InputError(msg)
        frame = _PandasFrame.open(path, file[key], key)
        n_max = sum(1 for c in frame.columns if c.startswith("E_") and c[2:].isdigit())
        n_max = min(n_max, max_constituents or n_max)
        if n_max == 0:
            msg = (
                f"{path}: frame {key!r} has no constituent columns E_0, E_1, ...; "
                f"it has {frame.columns[:10]}..."
            )
            raise InputError(msg)
        wanted = [f"{q}_{i}" for q in ("E", "PX", "PY", "PZ") for i in range(n_max)]
        if labels.mapping is not None:
            wanted.append(label_field)
        _missing(path, f"frame {key!r}", wanted, frame.columns)
        if frame.n_rows == 0:
            msg = f"{path}: frame {key!r} has no jets"
            raise InputError(msg)
        for start in range(0, frame.n_rows, step):
            stop = min(start + step, frame.n_rows)
            rows = frame.read(wanted, start, stop)
            four = {
                q: np.stack([rows[f"{q}_{i}"] for i in range(n_max)], axis=1)
                for q in ("E", "PX", "PY", "PZ")
            }
            _check_finite(
                path,
                {f"{q}_*": v.ravel() for q, v in four.items()},
                np.arange(start, stop),
                np.full(stop - start, n_max),
            )
            # zero padding is all four zero; any other slot is a constituent (so that E <= 0
            # with a momentum is reported, not taken for padding)
            present = np.any([four[q] != 0 for q in ("E", "PX", "PY", "PZ")], axis=0)
            columns = {
                "px": four["PX"][present],
                "py": four["PY"][present],
                "pz": four["PZ"][present],
                "E": four["E"][present],
            }
            raw = rows[label_field].astype(np.int64) if labels.mapping is not None else None
            label = labels.assign(raw, stop - start, path=path, field=label_field)
            yield _jets(
                path,
                counts=present.sum(axis=1),
                columns=columns,
                names={"px": "PX_*", "py": "PY_*", "pz": "PZ_*", "E": "E_*"},
                features={},
                entry=np.arange(start, stop),
                label=label,
                invalid=invalid_constituents,
            )


@dataclass
class _PandasFrame:
    """Row ranges of a pandas HDF5 frame: fixed format straight from its ``block*_values``
    datasets with h5py, table format through pandas (which needs PyTables)."""

    path: Path
    key: str
    columns: list[str]
    n_rows: int
    group: Any = None
    blocks: dict[str, tuple[str, int]] | None = None

    @classmethod
    def open(cls, path, group, key) -> _PandasFrame:
        """The frame ``key`` of an open HDF5 file, read as pandas' table format or by blocks."""
        if "table" in group:
            import pandas as pd

            try:
                with pd.HDFStore(path, mode="r") as store:
                    n_rows = int(store.get_storer(key).nrows)
                    columns = list(store.select(key, start=0, stop=1).columns)
            except ImportError as err:
                msg = "a pandas table-format store needs 'pip install tables'"
                raise ImportError(msg) from err
            return cls(path, key, columns, n_rows)
        blocks, n_rows = _pandas_fixed_columns(path, group)
        return cls(path, key, list(blocks), n_rows, group, blocks)

    def read(self, columns: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
        """Columns ``columns`` of rows ``start`` to ``stop``."""
        if self.blocks is None:
            import pandas as pd

            frame = pd.read_hdf(self.path, self.key, start=start, stop=stop)
            return {c: frame[c].to_numpy() for c in columns}
        values = {
            name: self.group[name][start:stop] for name in {self.blocks[c][0] for c in columns}
        }
        return {c: values[self.blocks[c][0]][:, self.blocks[c][1]] for c in columns}


# --- CMS NanoAOD / PFNano ---------------------------------------------------------------------


def pdg_charge(pdg: np.ndarray) -> np.ndarray:
    """Electric charge of the particle-flow PDG ids (e, μ, π, K, p; 0 otherwise)."""
    pdg = np.asarray(pdg, dtype=np.int64)
    charge = np.zeros(len(pdg))
    for code, sign in _PDG_CHARGE.items():
        charge[np.abs(pdg) == code] = sign
    return charge * np.sign(pdg)


def _nano_collections(path, available, jets: str, links: str | None, candidates: str | None):
    """(links, link → candidate index branch, candidates) of a NanoAOD file."""
    if links is None:
        found = sorted(
            {
                b[: -len("_jetIdx")]
                for b in available
                if b.endswith("_jetIdx") and b.startswith(jets + "PFCand")
            }
        )
        if not found:
            msg = (
                f"{path}: no {jets} constituent links ({jets}PFCand(s)_jetIdx); "
                f"branches with _jetIdx: "
                f"{sorted(b for b in available if b.endswith('_jetIdx'))}"
            )
            raise InputError(msg)
        links = found[0]
    idx = [
        b
        for b in available
        if b.startswith(links + "_") and b.endswith("Idx") and b != f"{links}_jetIdx"
    ]
    _missing(path, "tree", [f"{links}_jetIdx"], available)
    if not idx:
        msg = f"{path}: no candidate index branch {links}_*Idx beside {links}_jetIdx"
        raise InputError(msg)
    index_branch = idx[0]
    if candidates is None:
        target = index_branch[len(links) + 1 : -len("Idx")].lower()
        found = sorted(
            {
                b.split("_")[0]
                for b in available
                if b.split("_")[0].lower() == target and b.endswith("_pt")
            }
        )
        if not found:
            msg = f"{path}: no candidate collection for {index_branch}"
            raise InputError(msg)
        candidates = found[0]
    return links, index_branch, candidates


def _read_nanoaod(
    path,
    *,
    labels: Labels,
    step: int,
    tree: str = "Events",
    jets: str = "FatJet",
    links: str | None = None,
    candidates: str | None = None,
    puppi_weight: bool | None = None,
    invalid_constituents: str = "error",
) -> Iterator[Jets]:
    with open_root(path) as file:
        ttree = root_tree(path, file, tree)
        available = set(ttree.keys())
        links, index_branch, candidates = _nano_collections(
            path, available, jets, links, candidates
        )
        kin = [f"{candidates}_{q}" for q in ("pt", "eta", "phi", "mass")]
        jet_kin = [f"{jets}_{q}" for q in ("pt", "eta", "phi", "mass")]
        _missing(path, f"tree {tree!r}", [*kin, *jet_kin, *_label_fields(labels)], available)
        weight = f"{candidates}_puppiWeight"
        use_weight = weight in available if puppi_weight is None else puppi_weight
        if use_weight:
            _missing(path, f"tree {tree!r}", [weight], available)
        extras = [b for b in (f"{candidates}_charge", f"{candidates}_pdgId") if b in available]
        jet_extra = [
            b
            for b in (
                f"{jets}_rawFactor",
                f"{jets}_msoftdrop",
                f"{jets}_nConstituents",
                f"{jets}_hadronFlavour",
            )
            if b in available
        ]
        if ttree.num_entries == 0:
            msg = f"{path}: tree {tree!r} has no events"
            raise InputError(msg)
        wanted = sorted(
            {
                f"{links}_jetIdx",
                index_branch,
                *kin,
                *jet_kin,
                *extras,
                *jet_extra,
                *_label_fields(labels),
                *([weight] if use_weight else []),
            }
        )
        for arrays, report in _iterate(path, ttree, wanted, step):
            yield _nano_batch(
                path,
                arrays,
                report.tree_entry_start,
                jets=jets,
                links=links,
                index_branch=index_branch,
                candidates=candidates,
                weight=weight if use_weight else None,
                labels=labels,
                invalid=invalid_constituents,
            )


#: NanoAOD branches (after the collection's prefix) whose per-event counts must agree.
_NANO_JET_FIELDS = {
    "pt",
    "eta",
    "phi",
    "mass",
    "rawFactor",
    "msoftdrop",
    "nConstituents",
    "hadronFlavour",
}
_NANO_CANDIDATE_FIELDS = {"pt", "eta", "phi", "mass", "charge", "pdgId", "puppiWeight"}
#: Jet-table names of optional NanoAOD fat-jet branches.
_NANO_JET_EXTRAS = {
    "msoftdrop": "msoftdrop",
    "nConstituents": "n_constituents_nano",
    "hadronFlavour": "hadron_flavour",
}


def _nano_counts(path, a, entry0, *, jets, links, index_branch, candidates):
    """Per event: (fat jets, candidates, links), each collection's branches checked to agree."""
    wanted = (
        (jets, _NANO_JET_FIELDS),
        (candidates, _NANO_CANDIDATE_FIELDS),
        (links, {"jetIdx", index_branch.removeprefix(links + "_")}),
    )
    return tuple(
        _check_aligned(
            path,
            a,
            sorted(
                f
                for f in a.fields
                if f.startswith(prefix + "_") and f.removeprefix(prefix + "_") in names
            ),
            entry0,
        )
        for prefix, names in wanted
    )


def _nano_links(path, a, entry0, n_jet, n_cand, n_link, *, jets, links, index_branch, candidates):
    """(flat candidate index of each constituent in jet order, constituents per jet) from the
    links (jet index, candidate index within the event); a link outside its event is an
    error naming the first entry with one."""
    event = np.repeat(np.arange(len(n_jet)), n_link)
    jet_local = _flat(a[f"{links}_jetIdx"]).astype(np.int64)
    cand_local = _flat(a[index_branch]).astype(np.int64)
    bad = (
        (jet_local < 0)
        | (jet_local >= n_jet[event])
        | (cand_local < 0)
        | (cand_local >= n_cand[event])
    )
    if np.any(bad):
        first = entry0 + int(event[np.flatnonzero(bad)[0]])
        msg = (
            f"{path}: {int(bad.sum())} link(s) in {links}_jetIdx/{index_branch} point "
            f"outside their event's {jets} or {candidates} (first in entry {first})"
        )
        raise InputError(msg)
    jet_global = np.concatenate([[0], np.cumsum(n_jet)[:-1]])[event] + jet_local
    cand_global = np.concatenate([[0], np.cumsum(n_cand)[:-1]])[event] + cand_local
    order = np.argsort(jet_global, kind="stable")
    return cand_global[order], np.bincount(jet_global, minlength=int(n_jet.sum()))


def _nano_features(a, n_jet, *, jets) -> dict[str, np.ndarray]:
    """The fat jets' table: kinematics, raw pT, the optional branches, and ``subentry`` (the
    jet's index within its event)."""
    features = {q: _flat(a[f"{jets}_{q}"]).astype(np.float64) for q in _STANDARD}
    if f"{jets}_rawFactor" in a.fields:
        features["raw_pt"] = features["pt"] * (1 - _flat(a[f"{jets}_rawFactor"]))
    for q, name in _NANO_JET_EXTRAS.items():
        if f"{jets}_{q}" in a.fields:
            features[name] = _flat(a[f"{jets}_{q}"])
    features["subentry"] = (
        np.concatenate([np.arange(n) for n in n_jet]) if len(n_jet) else np.zeros(0, np.int64)
    )
    return features


def _nano_labels(path, a, field: str, n_jet: np.ndarray, entry0: int, jets: str) -> np.ndarray:
    """The raw label of each fat jet from ``field``, which must hold one value per fat jet
    (a ``{jets}_*`` branch): an event-level branch or one of another collection is an error
    naming it and the first event where the counts differ."""
    values = a[field]
    per_event = ak.num(values, axis=1) if values.ndim > 1 else None
    if per_event is None or not np.array_equal(ak.to_numpy(per_event), n_jet):
        where = (
            "one value per event"
            if per_event is None
            else "another collection's values (first differing in entry "
            f"{entry0 + int(np.flatnonzero(ak.to_numpy(per_event) != n_jet)[0])})"
        )
        msg = (
            f"{path}: label_field {field!r} holds {where}, not one value per {jets}; "
            f"name a {jets}_* branch (e.g. {jets}_hadronFlavour)"
        )
        raise InputError(msg)
    return _flat(values)


def _nano_batch(path, a, entry0, *, jets, links, index_branch, candidates, weight, labels, invalid):
    """One batch of NanoAOD events as jets: each link (jet index, candidate index within the
    event) puts a candidate into a jet; candidates are gathered in jet order, PUPPI-weighted
    if asked, and checked like any constituents."""
    names = {"jets": jets, "links": links, "index_branch": index_branch, "candidates": candidates}
    n_jet, n_cand, n_link = _nano_counts(path, a, entry0, **names)
    take, counts = _nano_links(path, a, entry0, n_jet, n_cand, n_link, **names)

    def cand(q):
        return _flat(a[f"{candidates}_{q}"])[take]

    kinematics = ("pt", "eta", "phi", "mass")
    pt, eta, phi, mass = (cand(q).astype(np.float64) for q in kinematics)
    raw_names = {f"{candidates}_{q}": v for q, v in zip(kinematics, (pt, eta, phi, mass))}
    jet_entry = entry0 + np.repeat(np.arange(len(n_jet)), n_jet)
    _check_finite(path, raw_names, jet_entry, counts)
    checks = _polar_checks({q: f"{candidates}_{q}" for q in kinematics}, pt, eta, phi, mass)
    if weight is not None:  # PUPPI: each candidate enters the jet scaled by its weight
        w = cand("puppiWeight").astype(np.float64)
        pt, mass = pt * w, mass * w
    columns = _cartesian(pt, eta, phi, mass)
    if f"{candidates}_charge" in a.fields:
        columns["charge"] = cand("charge").astype(np.float64)
    elif f"{candidates}_pdgId" in a.fields:
        columns["charge"] = pdg_charge(cand("pdgId"))
    if f"{candidates}_pdgId" in a.fields:
        columns["pid"] = cand("pdgId").astype(np.int64)
    label_field = labels.field or "" if labels.mapping is not None else ""
    raw = (
        _nano_labels(path, a, label_field, n_jet, entry0, jets)
        if labels.mapping is not None
        else None
    )
    label = labels.assign(raw, len(counts), path=path, field=label_field)
    # the raw quantity each Cartesian component was computed from, for error messages
    sources = {
        "px": f"{candidates}_pt",
        "py": f"{candidates}_phi",
        "pz": f"{candidates}_eta",
        "E": f"{candidates}_mass",
    }
    return _jets(
        path,
        counts=counts,
        columns=columns,
        names=sources,
        features=_nano_features(a, n_jet, jets=jets),
        entry=jet_entry,
        label=label,
        invalid=invalid,
        checks=checks,
        feature_fields={
            **{q: f"{jets}_{q}" for q in _STANDARD},
            **{name: f"{jets}_{q}" for q, name in _NANO_JET_EXTRAS.items()},
            "raw_pt": f"{jets}_rawFactor",
        },
    )


# --- already-pixelated images (HDF5) ----------------------------------------------------------


def axes_order(shape: tuple[int, ...], axes: str = "auto") -> str:
    """Axis order of an image dataset: ``NHW``, ``NHWC`` or ``NCHW`` (guessed if ``auto``:
    a last axis of at most 4 is channels, else a second axis of at most 4 is)."""
    if axes != "auto":
        if len(axes) != len(shape) or axes not in ("NHW", "NHWC", "NCHW"):
            msg = f"image_axes {axes!r} does not fit a dataset of shape {shape}"
            raise ValueError(msg)
        return axes
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4:
        return "NHWC" if shape[3] <= 4 else "NCHW"
    msg = f"an image dataset needs 3 or 4 axes, got shape {shape}"
    raise ValueError(msg)


def _to_nchw(block: np.ndarray, axes: str) -> np.ndarray:
    if axes == "NHW":
        block = block[:, None]
    elif axes == "NHWC":
        block = np.moveaxis(block, 3, 1)
    return np.ascontiguousarray(block, dtype=np.float32)


def _read_images_h5(
    path,
    *,
    labels: Labels,
    step: int,
    images: str = "images",
    image_axes: str = "auto",
    width=None,
    channels=None,
) -> Iterator[ImageBatch]:
    """``images`` + a label dataset (one file, labels per jet), or one dataset per class."""
    with _open_h5(path) as file:
        keys = sorted(file.keys())
        parts: list[tuple[str, str | None]]
        if images in file:
            parts = [(images, None)]
            if labels.mapping is not None:
                _missing(path, "the HDF5 file", [labels.field or "labels"], keys)
        elif labels.mapping is not None and labels.field is None:
            parts = [(name, name) for name in sorted(labels.mapping)]
            _missing(path, "the HDF5 file (one dataset per class)", [p for p, _ in parts], keys)
        else:
            msg = (
                f"{path}: no dataset {images!r}, and no labels map naming one "
                f"dataset per class; the file has {keys}"
            )
            raise InputError(msg)
        shapes = {name: file[name].shape for name, _ in parts}
        grids = {image_axes_grid(s, image_axes) for s in shapes.values()}
        if len(grids) > 1:
            msg = f"{path}: image datasets disagree on the grid: {shapes}"
            raise InputError(msg)
        if all(s[0] == 0 for s in shapes.values()):
            msg = f"{path}: the image datasets are empty: {shapes}"
            raise InputError(msg)
        entry0 = 0
        for name, class_key in parts:
            data = file[name]
            axes = axes_order(data.shape, image_axes)
            for start in range(0, data.shape[0], step):
                block = _to_nchw(data[start : start + step], axes)
                n = len(block)
                bad = ~np.isfinite(block)
                if np.any(bad):
                    msg = (
                        f"{path}: dataset {name!r} holds {int(bad.sum())} NaN/inf "
                        f"pixel(s) (first in image "
                        f"{start + int(np.argwhere(bad)[0, 0])})"
                    )
                    raise InputError(msg)
                if class_key is not None:
                    label = labels.assign(np.full(n, class_key), n, path=path, field=name)
                else:
                    field_name = labels.field or "labels"
                    raw = None
                    if labels.mapping is not None:
                        raw = file[field_name][start : start + n]
                        raw = raw.argmax(axis=1) if raw.ndim == 2 else raw
                    label = labels.assign(raw, n, path=path, field=field_name)
                pt = block[:, 0].sum(axis=(1, 2), dtype=np.float64)
                nan = np.full(n, np.nan)
                table = {
                    "pt": pt,
                    "eta": nan,
                    "phi": nan,
                    "mass": nan,
                    "n_pixels": np.count_nonzero(block[:, 0], axis=(1, 2)),
                    "entry": np.arange(start, start + n) + (entry0 if class_key else 0),
                    "label": label,
                }
                yield ImageBatch(block, table)
            entry0 += data.shape[0] if class_key else 0


def image_axes_grid(shape, axes: str = "auto") -> tuple[int, int, int]:
    """(channels, η pixels, φ pixels) of an image dataset of ``shape``."""
    order = axes_order(shape, axes)
    dims = dict(zip(order, shape))
    return dims.get("C", 1), dims["H"], dims["W"]


def image_grid(
    path: str | os.PathLike,
    *,
    labels: Labels,
    images: str = "images",
    image_axes: str = "auto",
    width=None,
    channels=None,
) -> dict:
    """The grid of a pre-pixelated file, as recorded in its store's ``image_spec``."""
    with _open_h5(path) as file:
        name = images if images in file else sorted(labels.mapping or [images])[0]
        if name not in file:
            msg = f"{path}: no dataset {name!r}; the file has {sorted(file.keys())}"
            raise InputError(msg)
        n_channels, height, width_px = image_axes_grid(file[name].shape, image_axes)
    channels = (
        list(channels)
        if channels
        else (["pt"] if n_channels == 1 else [f"channel_{i}" for i in range(n_channels)])
    )
    if len(channels) != n_channels:
        msg = (
            f"{path}: dataset {name!r} has {n_channels} channel(s), the reader "
            f"option channels names {len(channels)}"
        )
        raise InputError(msg)
    return {
        "pixelated": True,
        "npix": [height, width_px],
        "width": list(width) if width else None,
        "channels": channels,
    }


#: The reader of each format (:func:`read` dispatches to them).
_READERS: dict[str, Callable[..., Iterator[Jets | ImageBatch]]] = {
    "root": _read_root,
    "parquet": _read_parquet,
    "toptagging": _read_toptagging,
    "nanoaod": _read_nanoaod,
    "images-h5": _read_images_h5,
}


def option_default(format: str, option: str):
    """The default of a reader option of a format (``option_default("nanoaod", "tree")`` is
    ``"Events"``), from its reader's signature."""
    import inspect

    return inspect.signature(_READERS[format]).parameters[option].default
