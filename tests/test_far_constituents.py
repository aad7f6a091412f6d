"""Constituents belong to their jet: one far from the jet's axis fails the file, naming it and
the entry, or drops its jet (counted) with ``far_constituents: drop``; a file whose images lose
more than ``max_pt_outside_fraction`` of the jets' pT outside the window fails as a generated
sample with too narrow an image does in the config. Through the images rule's entry point, on
Parquet and ROOT; no store is left behind."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from test_bad_input import CLASSES, write

from jetimage import ImageSpec
from jetimage.files import InputError
from jetimage.images import image_file
from jetimage.pixelate import flatten_constituents
from jetimage.preprocess import farthest_constituent

FORMATS = ("parquet", "root")


def with_forward_constituent(jets: dict, which) -> dict:
    """The jets, those in ``which`` with one more constituent: 2 GeV at η = 7."""
    counts = np.zeros(len(jets["label"]), dtype=np.int64)
    counts[which] = 1
    pt, eta = 2.0, 7.0
    add = {"px": pt, "py": 0.0, "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)}
    extra = {k: ak.unflatten(np.full(counts.sum(), v), counts) for k, v in add.items()}
    return {**jets, **{k: ak.concatenate([jets[k], extra[k]], axis=1) for k in add}}


def images_job(path, fmt: str, out, *, width=(1.6, 1.6), **checks) -> dict:
    """The images rule on one file, as the workflow calls it (R = 0.8 jets)."""
    spec = ImageSpec(npix=(16, 16), width=width).to_dict()
    return image_file(
        path,
        out,
        reader={"format": fmt, "options": {}, "labels": {"mapping": {"0": "qcd", "1": "top"}}},
        spec=spec,
        sample="top",
        classes=list(CLASSES),
        batch_jets=1000,
        chunk_jets=16,
        max_dropped_fraction=0.25,
        radius=0.8,
        checks={"max_constituent_distance": 2.0, "far_constituents": "error", **checks},
    )


def test_the_farthest_constituent_is_its_distance_from_the_jet_axis(jets):
    import vector

    c = ak.zip({k: jets[k] for k in ("px", "py", "pz", "E")}, with_name="Momentum4D")
    farthest = farthest_constituent(flatten_constituents(c))
    axis = ak.zip(
        {k: ak.sum(c[k], axis=1) for k in ("px", "py", "pz", "E")}, with_name="Momentum4D"
    )
    vector.register_awkward()
    expected = ak.max(c.deltaRapidityPhi(axis), axis=1)
    np.testing.assert_allclose(farthest, ak.to_numpy(expected), rtol=1e-9)
    assert farthest.max() < 0.8  # anti-kT jets of R = 0.8


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_constituent_far_from_its_jet_fails_or_drops_the_jet(jets, tmp_path, fmt):
    path = write(tmp_path / "forward", fmt, with_forward_constituent(jets, [4, 9, 30]))
    store = tmp_path / "out.zarr"
    with pytest.raises(
        InputError,
        match=r"forward\.\w+: 3 jet\(s\) of a batch have a constituent farther than "
        r"max_constituent_distance \(1\.6 in y-φ\) from their axis \(first in entry 4: "
        r"ΔR = \d\.\d+\); .*Set the sample's far_constituents: drop",
    ):
        images_job(path, fmt, store)
    assert not store.exists()
    attrs = images_job(path, fmt, store, far_constituents="drop")
    assert {k: v for k, v in attrs["dropped"].items() if v} == {"far_constituent": 3}
    assert attrs["n_jets"] == 57
    assert attrs["pt_fraction_outside_window"] < 1e-3


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_window_narrower_than_the_jets_fails_the_file(jets, tmp_path, fmt):
    """R = 0.8 jets in a 0.6-wide image: the same width with generated R = 0.8 jets is a
    config error."""
    path = write(tmp_path / "wide", fmt, jets)
    store = tmp_path / "out.zarr"
    with pytest.raises(
        InputError,
        match=r"wide\.\w+: \d+\.\d% of the jets' pT \(their constituents' scalar sum\) falls "
        r"outside the image window \(images.width \[0\.6, 0\.6\]\), more than the sample's "
        r"max_pt_outside_fraction 0\.05: widen the image",
    ):
        images_job(path, fmt, store, width=(0.6, 0.6))
    assert not store.exists()
    attrs = images_job(path, fmt, store, width=(0.6, 0.6), max_pt_outside_fraction=0.9)
    assert 0.05 < attrs["pt_fraction_outside_window"] < 0.9
