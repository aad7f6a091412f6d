"""The jet-image kernel: :class:`ImageSpec` and :func:`make_images`.

Images have shape (jets, channels, η pixels, φ pixels). All jets of a chunk are preprocessed and
binned at once: each constituent gets a flat pixel index and ``np.bincount`` scatters its
weight, one call per channel.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import awkward as ak
import numpy as np

from jetimage import preprocess
from jetimage.defaults import default

#: Image channels; a channel's position is its code in :mod:`jetimage.kernel`.
CHANNELS = ("pt", "charged_pt", "neutral_pt", "counts", "charged_counts", "energy")
_NEEDS_CHARGE = {"charged_pt", "neutral_pt", "charged_counts"}
_PT_LIKE = {"pt", "charged_pt", "neutral_pt"}
#: The values each choice of :class:`ImageSpec` takes.
_CHOICES = {
    "coordinate": ("rapidity", "pseudorapidity"),
    "phi_ref": ("hardest", "axis"),
    "center": ("escheme", "ptcentroid", "leading", "none"),
    "reflect": ("both", "eta", "phi", "none"),
    "normalize": ("l1", "none"),
}


@dataclass(frozen=True)
class ImageSpec:
    """How jets become images.

    Args:
        npix: pixels along (η, φ).
        width: full extent of the image along (η, φ), in units of ΔR.
        coordinate: ``"rapidity"`` or ``"pseudorapidity"``.
        phi_ref: φ unwrapped around the ``"hardest"`` constituent or the jet ``"axis"``.
        center: ``"escheme"``, ``"ptcentroid"``, ``"leading"`` or ``"none"``.
        rotate: principal-axis rotation (principal axis along φ).
        reflect: ``"both"``, ``"eta"``, ``"phi"`` or ``"none"``.
        centroid_pixel_shift: energyflow's grid: the pixel holding the pT centroid becomes the
            central pixel (index ``npix // 2``). Otherwise the grid spans ±width/2 around the axis.
        channels: any of :data:`CHANNELS`.
        normalize: ``"l1"`` divides pT-like channels by the in-window pT (energy by the
            in-window energy), or ``"none"``.

    Examples:
        >>> spec = ImageSpec.energyflow(npix=33, width=0.8)
        >>> ImageSpec.from_dict(spec.to_dict()) == spec
        True
    """

    npix: tuple[int, int] = default("images", "npix")
    width: tuple[float, float] = default("images", "width")
    coordinate: str = default("images", "coordinate")
    phi_ref: str = default("images", "phi_ref")
    center: str = default("images", "center")
    rotate: bool = default("images", "rotate")
    reflect: str = default("images", "reflect")
    centroid_pixel_shift: bool = default("images", "centroid_pixel_shift")
    channels: tuple[str, ...] = default("images", "channels")
    normalize: str = default("images", "normalize")

    def __post_init__(self) -> None:
        for name in ("npix", "width"):
            value = getattr(self, name)
            if np.ndim(value) == 0:
                value = (value, value)
            if len(value) != 2:
                msg = f"{name} must be one number or a pair (η, φ), got {value!r}"
                raise ValueError(msg)
            object.__setattr__(self, name, tuple(value))
        if not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in self.npix):
            msg = f"npix must be whole numbers of pixels, got {self.npix}"
            raise ValueError(msg)
        object.__setattr__(self, "npix", tuple(int(n) for n in self.npix))
        object.__setattr__(self, "width", tuple(float(w) for w in self.width))
        object.__setattr__(self, "channels", tuple(self.channels))
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown or not self.channels:
            msg = f"unknown image channel(s) {unknown}; choose from {CHANNELS}"
            raise ValueError(msg)
        if not all(np.isfinite(self.width)):
            msg = f"width must be finite, got {self.width}"
            raise ValueError(msg)
        if min(self.npix) < 1 or min(self.width) <= 0:
            msg = f"npix and width must be positive, got {self.npix}, {self.width}"
            raise ValueError(msg)
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                msg = f"{name} must be one of {allowed}, not {getattr(self, name)!r}"
                raise ValueError(msg)
        for name in ("rotate", "centroid_pixel_shift"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                msg = f"{name} must be true or false, not {getattr(self, name)!r}"
                raise ValueError(msg)

    @classmethod
    def energyflow(cls, *, npix: int = 33, width: float = 0.8, **changes) -> ImageSpec:
        """energyflow 1.4's recipe: ``ptyphims_from_p4s(phi_ref="hardest")``, E-scheme
        ``center_ptyphims``, ``rotate_ptyphims``, ``reflect_ptyphims`` and
        ``pixelate(npix, img_width, nb_chan=1, norm=True)``."""
        base = {
            "npix": npix,
            "width": width,
            "coordinate": "rapidity",
            "phi_ref": "hardest",
            "center": "escheme",
            "rotate": True,
            "reflect": "both",
            "centroid_pixel_shift": True,
            "channels": ("pt",),
            "normalize": "l1",
        }
        return cls(**{**base, **changes})

    @property
    def needs_charge(self) -> bool:
        """Whether a channel needs the constituents' charge."""
        return bool(_NEEDS_CHARGE & set(self.channels))

    def to_dict(self) -> dict:
        """The spec as plain data (lists for pairs), as stores and params record it."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> ImageSpec:
        """From :meth:`to_dict` or the config's ``images:`` section."""
        return cls(**data)


_ENERGY_FIELDS = ("E", "e", "energy", "t")


def normalize_images(images: np.ndarray, how: str) -> np.ndarray:
    """Already-pixelated images (jets, channels, η, φ) divided by the sum of their first
    channel (``"l1"``), or unchanged (``"none"``); float32."""
    images = np.asarray(images, dtype=np.float32)
    if how == "none":
        return images
    if how != "l1":
        msg = f"normalize must be 'l1' or 'none', not {how!r}"
        raise ValueError(msg)
    total = images[:, 0].sum(axis=(1, 2), dtype=np.float64)
    scale = 1.0 / np.where(total > 0, total, 1.0)
    return (images * scale[:, None, None, None]).astype(np.float32)


def flatten_constituents(
    constituents: ak.Array, *, need_charge: bool = False, identities: bool = False
) -> preprocess.FlatJets:
    """Flat numpy arrays of an awkward array of per-jet ``Momentum4D`` records.

    Cartesian fields are read directly (vector's properties cost far more per call); other
    coordinate systems (pt, eta, phi, mass, ...) go through vector. Each awkward call has a
    fixed cost whatever its size, so the records are flattened once and the offsets read off
    the layout where it allows. ``charge`` is read only with ``need_charge`` (charged channels,
    which need it) or ``identities`` (the particle view: ``charge`` and ``pid`` where the
    records have them, ``None`` where not).
    """
    layout = ak.to_layout(constituents)
    if isinstance(layout, ak.contents.ListOffsetArray):
        offsets = np.asarray(layout.offsets, dtype=np.int64)
        flat = ak.Array(layout.content[offsets[0] : offsets[-1]], behavior=constituents.behavior)
        offsets = offsets - offsets[0]
    else:
        flat = ak.flatten(constituents, axis=1)
        offsets = np.r_[0, np.cumsum(ak.to_numpy(ak.num(constituents, axis=1)))]
    fields = set(flat.fields)
    energy = next((f for f in _ENERGY_FIELDS if f in fields), None)

    def column(name):
        if name in fields:
            values = flat[name]
        elif name == "E" and energy is not None:
            values = flat[energy]
        else:  # vector computes it from the record's own coordinates
            values = getattr(flat, name)
        return np.asarray(ak.to_numpy(values), dtype=np.float64)

    charge = None  # read only when asked: converting it to float64 cost more than the rest
    if need_charge:
        if "charge" not in fields:
            msg = "these image channels need a 'charge' field on the constituents"
            raise ValueError(msg)
        charge = column("charge")
    elif identities and "charge" in fields:
        charge = column("charge")
    pid = None
    if identities and "pid" in fields:
        pid = np.asarray(ak.to_numpy(flat["pid"]), dtype=np.int64)
    return preprocess.FlatJets(
        px=column("px"),
        py=column("py"),
        pz=column("pz"),
        E=column("E"),
        charge=charge,
        offsets=offsets,
        pid=pid,
    )


def make_images(
    constituents: ak.Array, spec: ImageSpec, *, return_outside: bool = False, engine: str = "numba"
):
    """Jet images of shape (jets, channels, η pixels, φ pixels), float32.

    Args:
        constituents: awkward array of per-jet records with ``px, py, pz, E`` (vector
            ``Momentum4D`` behaviour; an optional ``charge`` for the charged channels).
        spec: the image definition.
        return_outside: also return, per jet, how many constituents fell outside the window.
        engine: ``"numba"`` (the compiled kernel, fast) or ``"numpy"`` (the readable reference).

    Examples:
        >>> import awkward as ak, vector
        >>> jets = ak.Array([[{"px": 100.0, "py": 0.0, "pz": 0.0, "E": 100.0}]],
        ...                 with_name="Momentum4D")
        >>> make_images(jets, ImageSpec(npix=(4, 4), width=(0.8, 0.8))).sum()
        1.0
    """
    flat = flatten_constituents(constituents, need_charge=spec.needs_charge)
    for name in ("px", "py", "pz", "E"):
        bad = ~np.isfinite(getattr(flat, name))
        if np.any(bad):
            jet = int(np.searchsorted(flat.offsets, np.flatnonzero(bad)[0], side="right")) - 1
            msg = (
                f"{name} of {int(bad.sum())} constituent(s) is NaN or infinite (first in jet {jet})"
            )
            raise ValueError(msg)
    images, outside = images_from_flat(flat, spec, engine=engine)
    return (images, outside) if return_outside else images


def images_from_flat(
    jets: preprocess.FlatJets,
    spec: ImageSpec,
    *,
    engine: str = "numba",
    out: np.ndarray | None = None,
    outside_pt: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`make_images` on :class:`~jetimage.preprocess.FlatJets`: (images, outside).

    ``out``, a float32 array of the images' shape, is filled instead of a new array (numba
    engine): reusing memory saves the page faults of fresh memory, a large share of the cost.
    ``outside_pt``, a float64 array (jets), gets the summed pT of each jet's constituents
    outside the window.
    """
    if engine == "numba":
        return _numba_images(jets, spec, out, outside_pt)
    if engine != "numpy":
        msg = f"engine must be 'numba' or 'numpy', not {engine!r}"
        raise ValueError(msg)
    return _numpy_images(jets, spec, outside_pt)


def _numba_images(
    jets: preprocess.FlatJets,
    spec: ImageSpec,
    out: np.ndarray | None = None,
    outside_pt: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    from jetimage import kernel

    shape = (jets.n_jets, len(spec.channels), *spec.npix)
    if out is None:
        images = np.empty(shape, dtype=np.float32)  # the kernel zeroes each image itself
    else:
        if out.shape != shape or out.dtype != np.float32:
            msg = f"out must be float32 of shape {shape}, not {out.dtype} {out.shape}"
            raise ValueError(msg)
        images = out
    outside = np.zeros(jets.n_jets, dtype=np.int64)
    if outside_pt is None:
        outside_pt = np.empty(jets.n_jets, dtype=np.float64)
    charge = jets.charge if jets.charge is not None else np.zeros(0)
    y = preprocess.longitudinal(jets, coordinate=spec.coordinate)
    phi = np.arctan2(jets.py, jets.px)
    kernel.images_kernel(
        y,
        phi,
        jets.px,
        jets.py,
        jets.pz,
        jets.E,
        charge,
        np.asarray(jets.offsets, dtype=np.int64),
        spec.npix[0],
        spec.npix[1],
        spec.width[0],
        spec.width[1],
        kernel.COORDINATES[spec.coordinate],
        kernel.PHI_REFS[spec.phi_ref],
        kernel.CENTERS[spec.center],
        spec.rotate,
        spec.reflect in ("both", "eta"),
        spec.reflect in ("both", "phi"),
        spec.centroid_pixel_shift,
        np.array([kernel.CHANNELS[c] for c in spec.channels], dtype=np.int64),
        spec.normalize == "l1",
        images,
        outside,
        outside_pt,
    )
    return images, outside


def _numpy_images(
    jets: preprocess.FlatJets, spec: ImageSpec, outside_pt: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The numpy reference of the kernel (bincount scatter, no Python loop over jets)."""
    pt, y, phi = preprocess.hadronic_coordinates(
        jets, coordinate=spec.coordinate, phi_ref=spec.phi_ref
    )
    if spec.center != "none":
        axis_y, axis_phi = preprocess.jet_axis(
            jets, pt, y, phi, center=spec.center, coordinate=spec.coordinate
        )
        y, phi = y - axis_y[jets.jet], phi - axis_phi[jets.jet]
    if spec.rotate:
        y, phi = preprocess.rotate(jets, pt, y, phi)
    y, phi = preprocess.reflect(jets, pt, y, phi, which=spec.reflect)

    (n_y, n_phi), (w_y, w_phi) = spec.npix, spec.width
    pix_y, pix_phi = w_y / n_y, w_phi / n_phi
    if spec.centroid_pixel_shift:
        total = jets.jet_sum(pt)
        with np.errstate(divide="ignore", invalid="ignore"):
            cy = np.nan_to_num(jets.jet_sum(pt * y) / total)
            cphi = np.nan_to_num(jets.jet_sum(pt * phi) / total)
        shift_y = np.ceil(cy / pix_y - 0.5) - np.floor(n_y / 2)
        shift_phi = np.ceil(cphi / pix_phi - 0.5) - np.floor(n_phi / 2)
        iy = np.ceil(y / pix_y - 0.5) - shift_y[jets.jet]
        iphi = np.ceil(phi / pix_phi - 0.5) - shift_phi[jets.jet]
    else:
        iy = np.floor((y + w_y / 2) / pix_y)
        iphi = np.floor((phi + w_phi / 2) / pix_phi)

    positive = pt > 0
    inside = positive & (iy >= 0) & (iy < n_y) & (iphi >= 0) & (iphi < n_phi)
    outside = np.bincount(jets.jet[positive & ~inside], minlength=jets.n_jets)
    if outside_pt is not None:
        lost = positive & ~inside
        outside_pt[...] = np.bincount(jets.jet[lost], weights=pt[lost], minlength=jets.n_jets)
    pixel = (jets.jet[inside] * n_y + iy[inside].astype(np.int64)) * n_phi + iphi[inside].astype(
        np.int64
    )
    size = jets.n_jets * n_y * n_phi

    charge = jets.charge[inside] if jets.charge is not None else None
    weights = {
        "pt": lambda: pt[inside],
        "energy": lambda: jets.E[inside],
        "counts": lambda: None,
        "charged_pt": lambda: np.where(charge != 0, pt[inside], 0.0),
        "neutral_pt": lambda: np.where(charge == 0, pt[inside], 0.0),
        "charged_counts": lambda: np.asarray(charge != 0, dtype=np.float64),
    }
    images = np.empty((jets.n_jets, len(spec.channels), n_y, n_phi), dtype=np.float32)
    if spec.normalize == "l1":
        in_window = {
            "pt": jets.jet_sum(np.where(inside, pt, 0.0)),
            "energy": jets.jet_sum(np.where(inside, jets.E, 0.0)),
        }
    for c, channel in enumerate(spec.channels):
        image = np.bincount(pixel, weights=weights[channel](), minlength=size)
        image = image.reshape(jets.n_jets, n_y, n_phi)
        if spec.normalize == "l1" and channel in _PT_LIKE | {"energy"}:
            norm = in_window["energy" if channel == "energy" else "pt"]
            with np.errstate(divide="ignore", invalid="ignore"):
                image = np.where(norm[:, None, None] > 0, image / norm[:, None, None], 0.0)
        images[:, c] = image
    return images, outside
