"""Pixelation: physics invariants, and equivalence with energyflow's reference recipe."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from jetimage import ImageSpec, make_images
from jetimage.pixelate import flatten_constituents, images_from_flat
from jetimage.readers import read_jets

vector.register_awkward()


@pytest.fixture(scope="module")
def top_jets(top_file):
    return read_jets(top_file).constituents


def total_pt(constituents) -> np.ndarray:
    return ak.to_numpy(ak.sum(constituents.pt, axis=1))


def test_image_pt_equals_in_window_constituent_pt(top_jets):
    wide = ImageSpec(npix=(50, 50), width=(20.0, 20.0), normalize="none")
    images, outside = make_images(top_jets, wide, return_outside=True)
    assert outside.sum() == 0
    np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), total_pt(top_jets), rtol=1e-5)

    narrow = ImageSpec(npix=(20, 20), width=(0.6, 0.6), normalize="none")
    images, outside = make_images(top_jets, narrow, return_outside=True)
    assert outside.sum() > 0
    # in-window pT: drop, jet by jet, the constituents that leave the window
    y, phi = _preprocessed(top_jets, narrow)
    inside = (np.abs(y) < 0.3) & (np.abs(phi) < 0.3)
    counts = ak.to_numpy(ak.num(top_jets))
    pt = np.asarray(ak.flatten(top_jets.pt))
    expected = np.bincount(np.repeat(np.arange(len(counts)), counts), weights=pt * inside)
    np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), expected, rtol=1e-5)
    assert np.array_equal(
        outside, np.bincount(np.repeat(np.arange(len(counts)), counts), weights=~inside).astype(int)
    )


def _preprocessed(constituents, spec):
    from jetimage import preprocess
    from jetimage.pixelate import flatten_constituents

    flat = flatten_constituents(constituents)
    pt, y, phi = preprocess.hadronic_coordinates(flat)
    ay, aphi = preprocess.jet_axis(flat, pt, y, phi, center="escheme")
    y, phi = y - ay[flat.jet], phi - aphi[flat.jet]
    y, phi = preprocess.rotate(flat, pt, y, phi)
    return preprocess.reflect(flat, pt, y, phi, which="both")


def test_l1_normalised_images_sum_to_one(top_jets):
    images = make_images(top_jets, ImageSpec())
    np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    assert images.dtype == np.float32
    assert images.shape == (len(top_jets), 1, 40, 40)


def _transform(constituents, transform):
    p4 = vector.array(
        {
            "px": ak.to_numpy(ak.flatten(constituents.px)),
            "py": ak.to_numpy(ak.flatten(constituents.py)),
            "pz": ak.to_numpy(ak.flatten(constituents.pz)),
            "E": ak.to_numpy(ak.flatten(constituents.E)),
        }
    )
    moved = transform(p4)
    record = ak.zip(
        {"px": moved.px, "py": moved.py, "pz": moved.pz, "E": moved.E}, with_name="Momentum4D"
    )
    return ak.unflatten(record, ak.num(constituents))


def test_images_are_invariant_under_azimuthal_rotation_and_longitudinal_boost(top_jets):
    spec = ImageSpec()
    reference = make_images(top_jets, spec)
    rotated = make_images(_transform(top_jets, lambda p: p.rotateZ(2.1)), spec)
    boosted = make_images(_transform(top_jets, lambda p: p.boostZ(beta=0.6)), spec)
    for images in (rotated, boosted):
        assert np.abs(images - reference).max() < 1e-5


def test_reflection_puts_most_pt_in_the_positive_quadrant(top_jets):
    # a window wide enough to hold every constituent, so the halves hold all the pT
    images = make_images(top_jets, ImageSpec(width=(20.0, 20.0), normalize="none"))[:, 0]
    upper_eta, lower_eta = images[:, 20:, :].sum(axis=(1, 2)), images[:, :20, :].sum(axis=(1, 2))
    upper_phi, lower_phi = images[:, :, 20:].sum(axis=(1, 2)), images[:, :, :20].sum(axis=(1, 2))
    assert np.all(upper_eta >= lower_eta - 1e-3)
    assert np.all(upper_phi >= lower_phi - 1e-3)
    mean = make_images(top_jets, ImageSpec())[:, 0].mean(axis=0)
    assert mean[20:, 20:].sum() > max(
        mean[:20, :20].sum(), mean[20:, :20].sum(), mean[:20, 20:].sum()
    )


def test_charge_channels_split_the_pt(qcd_file):
    jets = read_jets(qcd_file).constituents
    spec = ImageSpec(
        channels=("pt", "charged_pt", "neutral_pt", "counts", "charged_counts"), normalize="none"
    )
    images, outside = make_images(jets, spec, return_outside=True)
    np.testing.assert_allclose(images[:, 1] + images[:, 2], images[:, 0], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(images[:, 3].sum(axis=(1, 2)) + outside, ak.num(jets))
    assert np.all(images[:, 4] <= images[:, 3])


def test_spec_round_trips_and_rejects_bad_values():
    spec = ImageSpec(npix=33, width=0.8, channels=["pt", "counts"])
    assert spec.npix == (33, 33)
    assert ImageSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown image channel"):
        ImageSpec(channels=("colour",))
    with pytest.raises(ValueError, match="need a 'charge' field"):
        make_images(
            ak.Array([[{"px": 1.0, "py": 0.0, "pz": 0.0, "E": 1.0}]], with_name="Momentum4D"),
            ImageSpec(channels=("charged_pt",)),
        )


def energyflow_images(constituents, npix: int, width: float) -> np.ndarray:
    """energyflow 1.4's per-jet recipe, transposed to jetimage's (η, φ) indexing."""
    ef = pytest.importorskip("energyflow")
    p4s_all = np.stack(
        [ak.to_numpy(ak.flatten(constituents[f])) for f in ("E", "px", "py", "pz")], axis=1
    )
    offsets = np.r_[0, np.cumsum(ak.to_numpy(ak.num(constituents)))]
    out = []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        p4s = p4s_all[start:stop]
        ptyphims = ef.ptyphims_from_p4s(p4s, phi_ref="hardest")
        ptyphims = ef.center_ptyphims(ptyphims)
        ptyphims = ef.rotate_ptyphims(ptyphims)
        ptyphims = ef.reflect_ptyphims(ptyphims)
        out.append(
            ef.utils.pixelate(ptyphims, npix=npix, img_width=width, nb_chan=1, norm=True)[..., 0].T
        )
    return np.asarray(out)


@pytest.mark.filterwarnings("ignore")
def test_energyflow_preset_matches_energyflow_on_generated_jets(top_file, qcd_file):
    jets = ak.concatenate([read_jets(top_file).constituents, read_jets(qcd_file).constituents])
    for npix, width in ((33, 1.6), (40, 1.2)):
        ours = make_images(jets, ImageSpec.energyflow(npix=npix, width=width))[:, 0]
        np.testing.assert_allclose(ours, energyflow_images(jets, npix, width), rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_energyflow_preset_matches_energyflow_on_real_quark_gluon_jets(shared_data):
    """All 2000 jets of the public quark/gluon sample (R = 0.4)."""
    table = ak.from_parquet(shared_data / "quark_gluon_2000.parquet")
    jets = ak.zip(
        {"px": table.part_px, "py": table.part_py, "pz": table.part_pz, "E": table.part_energy},
        with_name="Momentum4D",
    )
    ours = make_images(jets, ImageSpec.energyflow(npix=33, width=0.8))[:, 0]
    np.testing.assert_allclose(ours, energyflow_images(jets, 33, 0.8), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"coordinate": "pseudorapidity", "phi_ref": "axis"},
        {"center": "ptcentroid", "reflect": "eta"},
        {"center": "leading", "rotate": False, "reflect": "phi", "normalize": "none"},
        {"center": "none", "rotate": False, "reflect": "none", "width": (8.0, 8.0)},
        {"centroid_pixel_shift": True, "npix": (33, 25), "width": (1.2, 1.0)},
        {"channels": ("pt", "charged_pt", "neutral_pt", "counts", "charged_counts", "energy")},
    ],
)
def test_compiled_kernel_matches_the_numpy_reference(qcd_file, options):
    jets = read_jets(qcd_file).constituents
    spec = ImageSpec(**options)
    fast, fast_out = make_images(jets, spec, return_outside=True)
    slow, slow_out = make_images(jets, spec, return_outside=True, engine="numpy")
    scale = 1.0 if spec.normalize == "l1" else float(ak.max(ak.sum(jets.pt, axis=1)))
    assert np.abs(fast - slow).max() <= 1e-6 * scale
    np.testing.assert_array_equal(fast_out, slow_out)
    flat = flatten_constituents(jets, need_charge=spec.needs_charge)
    lost = {e: np.empty(flat.n_jets) for e in ("numba", "numpy")}
    for engine, out in lost.items():
        images_from_flat(flat, spec, engine=engine, outside_pt=out)
    np.testing.assert_allclose(lost["numba"], lost["numpy"], rtol=1e-9, atol=1e-9)
    assert np.all((lost["numba"] > 0) == (fast_out > 0))


def test_the_pt_outside_the_window_and_the_image_add_up_to_the_jet(qcd_file):
    """With the unnormalised pT channel, the image's sum is the pT inside the window: with
    the pT outside it, every constituent's pT."""
    jets = read_jets(qcd_file).constituents
    flat = flatten_constituents(jets)
    spec = ImageSpec(npix=(16, 16), width=(1.0, 1.0), normalize="none")
    lost = np.empty(flat.n_jets)
    images, outside = images_from_flat(flat, spec, outside_pt=lost)
    assert np.sum(outside > 0) > len(outside) / 4  # a window narrower than the jets
    np.testing.assert_allclose(
        images.sum(axis=(1, 2, 3)) + lost, ak.to_numpy(ak.sum(jets.pt, axis=1)), rtol=1e-5
    )


def test_jets_without_constituents_give_empty_images():
    jets = ak.Array(
        [[], [{"px": 50.0, "py": 5.0, "pz": 1.0, "E": 51.0}], []], with_name="Momentum4D"
    )
    images, outside = make_images(jets, ImageSpec(npix=(8, 8)), return_outside=True)
    assert images[0].sum() == 0
    assert images[2].sum() == 0
    assert images[1].sum() == pytest.approx(1.0)
    assert outside.sum() == 0
