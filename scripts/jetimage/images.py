"""The images stage: jets of one file pixelated into a per-file Zarr store, in parallel by Dask.

A store is written in phases (as pangeo-forge does): the group and its arrays are laid down
first, then, batch by batch as a reader streams the file, Dask tasks each compute and write one
region aligned to the Zarr chunks along the jet axis, so no two tasks touch the same chunk and no
locks are needed; attributes come last. The whole store is built under a temporary name and
renamed when complete.

Layout of a per-file store (``results/images/{sample}/{part}.zarr``)::

    images   float32 (jets, channels, η pixels, φ pixels), chunked along jets, Zstandard
    labels   int64 class index of each jet (into attrs ``classes``)
    jets/    one 1-d array per jet feature: pt, eta, phi, mass, n_constituents, entry, digest
             (a 64-bit digest of the jet's content: :mod:`jetimage.duplicates`), ...
    attrs    image_spec, sample, classes, source, source_sha256, jets_sha256 (a digest of the
             jets' table as read, and of pre-pixelated images: the same jets give the same
             digest even where a regenerated file's bytes differ), format, n_read, dropped,
             label_counts, versions, ...
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np
import zarr

from jetimage.batches import Counts, ImageBatch, Jets
from jetimage.defaults import default
from jetimage.duplicates import constituent_digests, image_digests
from jetimage.files import InputError, atomic_path
from jetimage.parallel import check_scheduler, dask_runner
from jetimage.particles import FEATURES, identity_fields, particle_view
from jetimage.pixelate import ImageSpec, flatten_constituents, images_from_flat, normalize_images
from jetimage.preprocess import farthest_constituent
from jetimage.zarr_store import (
    DEFAULT_CHUNK_JETS,
    WRITE_CONFIG,
    ColumnWriter,
    create_array,
    versions,
)

#: Largest fraction of a file's jets the images stage may drop (no constituents, empty image,
#: invalid constituents) before it fails the file.
DEFAULT_MAX_DROPPED_FRACTION = default("samples", "*", "max_dropped_fraction")

#: Largest fraction of a file's jets' pT that may fall outside the image window.
DEFAULT_MAX_PT_OUTSIDE_FRACTION = default("samples", "*", "max_pt_outside_fraction")


#: The store's arrays of more than one value per jet (the views), written chunk by chunk by
#: Dask tasks; everything else per jet (``labels``, ``jets/*``) is a column.
VIEWS = ("images", "particles/features", "particles/mask")


@dataclass(frozen=True)
class Views:
    """What the images stage computes from each jet's constituents, in one pass: the image
    (``spec``), the particle view (``max_particles`` kept per jet; ``None``: none) and the
    substructure observables (jets of radius ``radius``; ``None``: none)."""

    spec: ImageSpec
    max_particles: int | None = None
    radius: float | None = None
    #: Constituents per jet the observables are computed from (the hardest; None: all).
    max_observable_constituents: int | None = None
    #: A constituent farther than this (ΔR in y-φ) from its jet's axis is bad input (None:
    #: not checked); ``far_constituents`` says what then: ``error`` or ``drop`` its jet.
    max_distance: float | None = None
    far_constituents: str = "error"


def _views_task(views: Views, flat) -> dict[str, np.ndarray]:
    """Every view of a chunk of flat jets, by store name (``jets/n_outside_window``: the
    constituents outside the image's window). Each task gets its own chunk as argument, so
    that a process or a cluster worker receives only it."""
    lost = np.empty(flat.n_jets)
    images, outside = images_from_flat(flat, views.spec, outside_pt=lost)
    digests = constituent_digests(flat.px, flat.py, flat.pz, flat.E, flat.offsets)
    out = {"images": images, "jets/n_outside_window": outside, "jets/digest": digests}
    # for the writer's checks, not written: pT outside the window and in all, the farthest
    out |= {"_pt_outside": lost, "_pt_sum": flat.jet_sum(np.hypot(flat.px, flat.py))}
    if views.max_distance is not None:
        out["_farthest"] = farthest_constituent(flat)
    if views.max_particles is not None:
        features, mask = particle_view(flat, views.max_particles)
        out |= {"particles/features": features, "particles/mask": mask}
    if views.radius is not None:
        from jetimage.substructure import flat_observables

        values = flat_observables(
            flat, radius=views.radius, max_constituents=views.max_observable_constituents
        )
        out |= {f"jets/{k}": v for k, v in values.items()}
    return out


def _write_task(target: zarr.Array, values: np.ndarray, row: int) -> None:
    """Write ``values`` as rows ``row...`` of ``target`` (one of the store's views, opened
    once per batch rather than per chunk)."""
    target[row : row + len(values)] = values


def _rows(rows: dict[str, np.ndarray], where) -> dict[str, np.ndarray]:
    """Some jets of a batch's arrays (a copy: a slice would keep the whole batch alive)."""
    return {k: np.array(v[where]) for k, v in rows.items()}


def _concat(a: dict | None, b: dict) -> dict:
    """Two batches' arrays as one."""
    return b if a is None else {k: np.concatenate([a[k], b[k]]) for k in a}


class _StoreWriter:
    """Computes each batch's views (Dask tasks over chunks of jets), drops the jets whose image
    is empty (counted as ``empty_image``), and appends the views in whole Zarr chunks (Dask
    tasks over chunks), keeping the remainder (< one chunk) for the next batch, so every write
    is chunk-aligned and memory holds one batch at a time. The per-jet columns are likewise
    written in whole chunks (``zarr_store.ColumnWriter``): appending each batch's rows instead
    rewrote the column's last chunk every time (read, decompress, merge, compress), 30% of the
    images stage."""

    def __init__(
        self,
        path: str,
        views: Views | None,
        *,
        normalize: str,
        chunk_jets: int,
        run: Callable,
        counts: Counts,
        source: str = "",
    ):
        self.source = source or path
        self.pt_outside = self.pt_sum = 0.0  # constituents' pT outside the window, and in all
        self.group = zarr.open_group(path, mode="w")
        self.group.require_group("jets")
        self.views, self.normalize = views, normalize
        self.chunk_jets, self.run, self.counts = chunk_jets, run, counts
        self.pending: dict | None = None
        self.n = 0  # jets written
        self.n_given = 0  # jets given to add()
        self.n_outside = 0
        self.n_capped = 0  # jets whose observables come from their hardest constituents
        self.columns = ColumnWriter(self.group)  # labels and jets/*, in whole chunks
        self.digest = hashlib.sha256()
        self.identities: list[str] = []  # which of charge and pid the constituents have

    def add(self, batch: Jets | ImageBatch) -> None:
        """Compute one batch's views, drop its empty images and write every whole chunk."""
        for name in sorted(batch.table):  # the jets' content, for their identity (jets_sha256)
            self.digest.update(name.encode())
            self.digest.update(np.ascontiguousarray(batch.table[name]).tobytes())
        if isinstance(batch, ImageBatch):
            self.digest.update(np.ascontiguousarray(batch.images).tobytes())
        if "label" not in batch.table:
            msg = (
                "each batch's table needs 'label' (class index per jet), as "
                "jetimage.readers gives it"
            )
            raise ValueError(msg)
        self.n_given += len(batch)
        if not len(batch):
            return
        rows = self._views(batch)
        if "_farthest" in rows:
            rows = self._far(rows)
        images = rows["images"]
        empty = ~np.any(images, axis=tuple(range(1, images.ndim)))
        self.counts.drop("empty_image", np.sum(empty))
        if np.any(empty):
            rows = _rows(rows, ~empty)
        self.n_outside += int(rows["jets/n_outside_window"].sum())
        if "_pt_sum" in rows:
            self.pt_outside += float(rows.pop("_pt_outside").sum())
            self.pt_sum += float(rows.pop("_pt_sum").sum())
        cap = self.views.max_observable_constituents if self.views else None
        if cap is not None and "jets/multiplicity" in rows:
            self.n_capped += int(np.sum(rows["jets/multiplicity"] > cap))
        self.pending = _concat(self.pending, rows)
        whole = len(self.pending["images"]) // self.chunk_jets * self.chunk_jets
        if whole:
            self._write({k: v[:whole] for k, v in self.pending.items()})
            self.pending = _rows(self.pending, slice(whole, None))

    @property
    def pt_fraction_outside(self) -> float:
        """The share of the written jets' pT (their constituents' scalar sum) outside the
        window."""
        return self.pt_outside / self.pt_sum if self.pt_sum > 0 else 0.0

    def _far(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch's rows without its jets with a constituent farther from their axis than
        ``views.max_distance`` (counted as ``far_constituent``), or an InputError naming the
        first such jet's entry (``far_constituents: error``)."""
        views = self.views
        assert views is not None
        assert views.max_distance is not None
        farthest = rows.pop("_farthest")
        far = farthest > views.max_distance
        if not np.any(far):
            return rows
        if views.far_constituents == "error":
            first = np.flatnonzero(far)[0]
            msg = (
                f"{self.source}: {int(far.sum())} jet(s) of a batch have a constituent farther "
                f"than max_constituent_distance ({views.max_distance:g} in y-φ) from their "
                f"axis (first in entry {int(rows['jets/entry'][first])}: "
                f"ΔR = {farthest[first]:.3g}); such a constituent drags the axis and leaves "
                f"the jet's pT outside its image. Set the sample's far_constituents: drop to "
                f"drop such jets (counted)"
            )
            raise InputError(msg)
        self.counts.drop("far_constituent", int(far.sum()))
        return _rows(rows, ~far)

    def _views(self, batch: Jets | ImageBatch) -> dict[str, np.ndarray]:
        """The batch's arrays by store name: its views (pixelated, or pre-pixelated and
        normalised), ``labels`` and its table as ``jets/*``."""
        rows = {"labels": np.asarray(batch.table["label"], dtype=np.int64)}
        rows |= {f"jets/{k}": np.asarray(v) for k, v in batch.table.items() if k != "label"}
        if isinstance(batch, ImageBatch):
            rows["jets/n_outside_window"] = np.zeros(len(batch), dtype=np.int64)
            rows["jets/digest"] = image_digests(batch.images)
            return rows | {"images": normalize_images(batch.images, self.normalize)}
        if self.views is None:
            msg = "jets with constituents need an image spec to be pixelated"
            raise ValueError(msg)
        n = len(batch)
        flat = flatten_constituents(
            batch.constituents,
            need_charge=self.views.spec.needs_charge,
            identities=self.views.max_particles is not None,
        )
        done = self.run(
            partial(_views_task, self.views),
            [
                (flat.chunk(start, min(start + self.chunk_jets, n)),)
                for start in range(0, n, self.chunk_jets)
            ],
        )
        self.identities = identity_fields(flat)
        return rows | {k: np.concatenate([d[k] for d in done]) for k in done[0]}

    def finish(self) -> int:
        """Write the remaining jets and table rows; returns the jets written."""
        if self.pending is not None and len(self.pending["images"]):
            self._write(self.pending)
        self.columns.close()
        if "images" not in self.group:
            spec = self.views.spec if self.views else None
            shape = (0, len(spec.channels), *spec.npix) if spec else (0, 1, 1, 1)
            create_array(
                self.group, "images", shape=shape, dtype="float32", chunk_jets=self.chunk_jets
            )
        return self.n

    def _write(self, rows: dict[str, np.ndarray]) -> None:
        n = len(rows["labels"])
        for name in VIEWS:
            if name in rows:
                self._write_view(name, rows[name])
        self.columns.append({k: v for k, v in rows.items() if k not in VIEWS})
        self.n += n

    def _write_view(self, name: str, values: np.ndarray) -> None:
        """Append one view's rows, chunk by chunk (Dask tasks)."""
        if name not in self.group:
            create_array(
                self.group,
                name,
                shape=(0, *values.shape[1:]),
                dtype=values.dtype,
                chunk_jets=self.chunk_jets,
            )
        array = self.group[name]
        array.resize((self.n + len(values), *values.shape[1:]))
        target = array.with_config(WRITE_CONFIG)
        self.run(
            partial(_write_task, target),
            [
                (values[start : start + self.chunk_jets], self.n + start)
                for start in range(0, len(values), self.chunk_jets)
            ],
        )


def write_image_store(
    path: str | os.PathLike,
    batches: Iterable[Jets | ImageBatch] | Jets,
    spec: Views | ImageSpec | None,
    *,
    attrs: dict,
    normalize: str = "l1",
    chunk_jets: int = DEFAULT_CHUNK_JETS,
    scheduler: str = "threads",
    num_workers: int = 1,
    progress: Callable[[str], None] | None = None,
    counts: Counts | None = None,
    max_dropped_fraction: float = DEFAULT_MAX_DROPPED_FRACTION,
    max_pt_outside_fraction: float = DEFAULT_MAX_PT_OUTSIDE_FRACTION,
) -> dict:
    """Pixelate batches of jets (or copy pre-pixelated images) into a per-file store, atomically,
    with the particle view and the observables of each jet where ``spec`` asks for them.

    Batches stream through in whole chunks, so memory holds one batch whatever the file's size.
    Each batch's table must hold ``label`` (class index), which becomes the ``labels`` array.
    A jet whose image is empty (no constituent inside the window) is dropped and counted
    (``empty_image``), like a jet without constituents.

    Args:
        spec: the views to compute (:class:`Views`), or only the image (an ``ImageSpec``);
            ``None`` for pre-pixelated batches (:class:`ImageBatch`).
        normalize: ``"l1"`` or ``"none"``, for pre-pixelated images (``spec`` rules otherwise).
        counts: the reader's counts; recorded in the attributes (``n_read``, ``dropped``)
            once the file has been read.
        max_dropped_fraction: the largest fraction of the jets read that may be dropped for
            any reason but a label the sample's map leaves out (a selection the user made).
        max_pt_outside_fraction: the largest fraction of the kept jets' pT (the constituents'
            scalar sum) that may fall outside the image window.

    Raises:
        InputError: no jet is left, more than either fraction is exceeded, or a constituent
            lies farther than ``spec.max_distance`` from its jet's axis with
            ``far_constituents: error`` (the store is not created).

    Returns:
        The store's attributes, including jets written and constituents outside the window.
    """
    if isinstance(batches, Jets | ImageBatch):
        batches = [batches]
    views = Views(spec) if isinstance(spec, ImageSpec) else spec
    check_scheduler(scheduler)
    counts = counts if counts is not None else Counts()
    with atomic_path(path) as tmp, dask_runner(scheduler, num_workers) as run:
        writer = _StoreWriter(
            str(tmp),
            views,
            normalize=normalize,
            chunk_jets=chunk_jets,
            run=run,
            counts=counts,
            source=str(attrs.get("source", path)),
        )
        if progress:
            progress(
                f"pixelating in chunks of {chunk_jets} jets ({scheduler}, {num_workers} worker(s))"
            )
        for batch in batches:
            writer.add(batch)
            if progress:
                progress(f"{writer.n} jets written")
        n = writer.finish()
        counts.read = counts.read or writer.n_given  # batches given without a reader's counts
        source = attrs.get("source", path)
        if n == 0:
            msg = f"{source}: no jet left to write (dropped: {counts.dropped})"
            raise InputError(msg)
        _check_dropped(source, counts, max_dropped_fraction)
        _check_pt_outside(source, writer, max_pt_outside_fraction)
        attrs = _store_attrs(attrs, writer, counts)
        writer.group.attrs.update(attrs)
    if progress and attrs.get("observables", {}).get("capped"):
        progress(f"observables of the jets over the constituent cap: {attrs['observables']}")
    return attrs


def _check_pt_outside(source, writer: _StoreWriter, max_fraction: float) -> None:
    """Raise if more than ``max_fraction`` of the written jets' pT (their constituents' scalar
    sum) fell outside the image window."""
    lost = writer.pt_fraction_outside
    if lost > max_fraction:
        spec = writer.views.spec if writer.views else None
        msg = (
            f"{source}: {lost:.1%} of the jets' pT (their constituents' scalar sum) falls "
            f"outside the image window (images.width {list(spec.width) if spec else '?'}), "
            f"more than the sample's max_pt_outside_fraction {max_fraction:g}: widen the "
            f"image to at least twice the jets' radius (jet_radius), or check that the "
            f"constituents belong to their jets"
        )
        raise InputError(msg)


def _store_attrs(attrs: dict, writer: _StoreWriter, counts: Counts) -> dict:
    """The store's attributes once every jet is written: the caller's, what was read and
    dropped, the labels per class, the views and the digests."""
    group, views = writer.group, writer.views
    attrs = {**attrs, "n_read": counts.read, "dropped": counts.dropped}
    if "pt" in group["jets"]:  # the energy scale, compared across files by the dataset
        attrs["median_jet_pt"] = float(np.median(group["jets/pt"][...]))
    classes = attrs.get("classes")
    if classes:
        labels = group["labels"][...]
        attrs["label_counts"] = {c: int(np.sum(labels == i)) for i, c in enumerate(classes)}
    return {
        **attrs,
        "image_spec": views.spec.to_dict() if views else attrs.get("image_spec"),
        **_view_attrs(views, writer),
        "jets_sha256": writer.digest.hexdigest(),
        "n_jets": writer.n,
        "n_constituents_outside_window": writer.n_outside,
        "pt_fraction_outside_window": writer.pt_fraction_outside,
        "versions": versions(),
    }


def _view_attrs(views: Views | None, writer: _StoreWriter) -> dict:
    """The attributes that say which views beside the images the store holds."""
    attrs = {}
    if views is not None and views.max_particles is not None and "particles" in writer.group:
        attrs["particles"] = {
            "max": views.max_particles,
            "features": list(FEATURES),
            "identities": writer.identities,  # which of charge and pid the input has
        }
    if views is not None and views.radius is not None:
        attrs["observables"] = {
            "radius": views.radius,
            "max_constituents": views.max_observable_constituents,
            "capped": writer.n_capped,
        }
    return attrs


def _check_dropped(source, counts: Counts, max_fraction: float) -> None:
    """Raise if more than ``max_fraction`` of the jets read were lost (any reason but a label
    the sample's map leaves out)."""
    lost = {k: v for k, v in counts.dropped.items() if v and k != "unmapped_label"}
    n_lost = sum(lost.values())
    if counts.read and n_lost > max_fraction * counts.read:
        msg = (
            f"{source}: {n_lost} of {counts.read} jets "
            f"({n_lost / counts.read:.1%}) were dropped, more than the sample's "
            f"max_dropped_fraction {max_fraction:g}; by reason: {lost}"
        )
        raise InputError(msg)


def image_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    reader: dict,
    spec: dict,
    sample: str,
    classes: list[str],
    batch_jets: int,
    chunk_jets: int,
    max_dropped_fraction: float,
    particles: dict | None = None,
    radius: float | None = None,
    observables: dict | None = None,
    checks: dict | None = None,
    scheduler: str = "threads",
    num_workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The images stage for one input file (a path or a ``root://`` URL), which reads it once
    for every view: read it with its reader settings (``format``, ``labels``, ``options``, as
    :func:`jetimage.config.reader_settings` gives them), pixelate with ``spec`` (an
    :meth:`ImageSpec.to_dict`; for pre-pixelated formats only its ``normalize`` counts), add
    the particle view (``particles``: the config's ``particles:``, e.g. ``{"max": 128}``) and
    the observables of jets of radius ``radius`` (both need constituents; ``observables``:
    the config's ``observables:``, e.g. ``{"max_constituents": 512}``) and write the
    per-file store ``output`` (:func:`write_image_store`), with the sample's ``checks``
    (``max_constituent_distance`` in units of ``radius``, ``far_constituents``,
    ``max_pt_outside_fraction``). Returns its attributes."""
    from jetimage import readers, remote

    labels = readers.Labels(tuple(classes), **reader["labels"])
    pixelated = reader["format"] in readers.IMAGE_FORMATS
    attrs = {
        "sample": sample,
        "classes": classes,
        "source": str(source),
        "source_sha256": remote.checksum(source),
        "format": reader["format"],
    }
    if pixelated:
        attrs["image_spec"] = {
            **readers.image_grid(source, labels=labels, **reader["options"]),
            "normalize": spec["normalize"],
        }
    counts = Counts()
    batches = readers.read(
        source,
        format=reader["format"],
        labels=labels,
        step=batch_jets,
        counts=counts,
        **reader["options"],
    )
    checks = checks or {}
    factor = checks.get("max_constituent_distance")
    views = Views(
        ImageSpec.from_dict(spec),
        max_particles=particles["max"] if particles else None,
        radius=radius,
        max_observable_constituents=(observables or {}).get("max_constituents"),
        max_distance=factor * radius if factor is not None and radius is not None else None,
        far_constituents=checks.get("far_constituents", "error"),
    )
    return write_image_store(
        output,
        batches,
        None if pixelated else views,
        attrs=attrs,
        normalize=spec["normalize"],
        chunk_jets=chunk_jets,
        scheduler=scheduler,
        num_workers=num_workers,
        progress=progress,
        counts=counts,
        max_dropped_fraction=max_dropped_fraction,
        max_pt_outside_fraction=checks.get(
            "max_pt_outside_fraction", DEFAULT_MAX_PT_OUTSIDE_FRACTION
        ),
    )
