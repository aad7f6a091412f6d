"""Planing: weights that make each class flat in the planed variables, through the loaders and
the taggers, and a planed tagger sculpts the background's soft-drop mass less."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from jetimage import zarr_store
from jetimage.baselines import train_baseline
from jetimage.dataset import load_split
from jetimage.files import InputError
from jetimage.inference import score_saved_model
from jetimage.loader import InMemory, ZarrStream, normalize
from jetimage.metrics import mass_sculpting
from jetimage.planing import MAX_WEIGHT, Planing
from jetimage.train import TrainConfig, train_model


def _jets(n: int, seed: int = 0):
    """Two classes: background falling in mass, signal peaked; pT uniform but for a slope."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    mass = np.where(labels == 1, rng.normal(170, 15, n), rng.exponential(60, n))
    pt = rng.uniform(550, 650, n) + 20 * labels * rng.random(n)
    return {"mass": mass, "pt": pt}, labels


def test_planed_classes_are_flat_in_the_planed_variables():
    table, labels = _jets(400_000)
    planing = Planing.fit(table, labels, ["pt", "mass"], n_classes=2, bins=8)
    weights = planing.weights(table, labels)
    for c in (0, 1):
        mine = labels == c
        assert weights[mine].mean() == pytest.approx(1.0, rel=1e-6)
        cells = planing._cells(np.stack([table["pt"], table["mass"]], axis=1))[mine]
        raw = np.zeros((8, 8))
        weighted = np.zeros((8, 8))
        np.add.at(raw, tuple(cells.T), 1.0)
        np.add.at(weighted, tuple(cells.T), weights[mine])
        # every bin whose weight is not capped holds the same weighted number of jets
        uncapped = weighted / np.maximum(raw, 1) < MAX_WEIGHT * 0.99
        filled = weighted[(raw > 0) & uncapped]
        assert filled.std() / filled.mean() < 1e-6
        assert weights[mine].max() <= MAX_WEIGHT * 1.05
    # the unweighted background is far from flat in mass
    counts = np.histogram(table["mass"][labels == 0], planing.edges[1])[0]
    assert counts.max() > 5 * counts.min()


def test_a_jet_in_a_bin_its_class_never_filled_gets_its_largest_weight():
    table = {"msd": np.array([10.0, 10.0, 20.0, 90.0, 95.0, 100.0])}
    labels = np.array([0, 0, 0, 1, 1, 1])
    planing = Planing.fit(table, labels, ["msd"], n_classes=2, bins=3)
    w = planing.weights({"msd": np.array([10.0, 20.0, 95.0])}, np.array([1, 0, 0]))
    assert np.all(np.isfinite(w))
    assert w[0] > 0


def test_a_missing_planing_variable_is_an_error_naming_it():
    with pytest.raises(InputError, match=r"jets lack planing variable\(s\) \['msd'\]"):
        Planing.fit({"pt": np.ones(4)}, np.array([0, 1, 0, 1]), ["pt", "msd"], n_classes=2)


def test_planing_in_a_variable_without_spread_is_refused():
    """A constant variable, or one that is NaN for every jet (τ32 of two-constituent jets),
    would weight every jet 1 and still say "planed"."""
    labels = np.array([0, 1] * 50)
    pt = np.linspace(400, 600, 100)
    with pytest.raises(
        InputError,
        match=r"planing variable 'msd' has no spread: 99% of the 100 jets have 80, so planing "
        r"would weight every jet alike",
    ):
        Planing.fit({"pt": pt, "msd": np.full(100, 80.0)}, labels, ["pt", "msd"], n_classes=2)
    with pytest.raises(
        InputError, match=r"planing variable 'tau32' is NaN or infinite for every one of the 100"
    ):
        Planing.fit({"tau32": np.full(100, np.nan)}, labels, ["tau32"], n_classes=2)


@pytest.mark.parametrize("architecture", ["hsf-cnn", "bdt"])
def test_training_on_a_dataset_without_the_planing_variable_names_the_dataset(
    small_dataset, tmp_path, architecture
):
    """The dataset of images alone has no soft-drop mass (no observables stage): planing in it
    fails before any fit, naming the dataset, the variable and what the jets have."""
    pattern = rf"{small_dataset}: the dataset's jets lack planing variable\(s\) \['msd'\]"
    planing = ("pt", "msd")
    if architecture == "bdt":
        train = partial(
            train_baseline, architecture="bdt", options={}, signal="top", seed=0, planing=planing
        )
    else:
        train = partial(
            train_model, config=TrainConfig(architecture, planing=planing), name="planed"
        )
    with pytest.raises(InputError, match=pattern):
        train(small_dataset, tmp_path)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("streamed", [False, True])
def test_loaders_carry_each_jets_weight_with_its_image(small_dataset, streamed):
    """Weights are the row numbers: every batch's weights must name its own images' rows."""
    root = zarr_store.open_store(small_dataset)
    normalization = dict(root.attrs["normalization"])
    images, labels, _ = load_split(small_dataset, "train")
    rows = np.arange(len(labels), dtype=np.float32)
    data = (
        ZarrStream(root["train"], normalization, buffer_chunks=2, weights=rows)
        if streamed
        else InMemory(images.copy(), labels, normalization, weights=rows)
    )
    expected = normalize(images, normalization)
    seen = []
    for x, y, w in data.batches(50, torch.Generator().manual_seed(3)):
        index = w.numpy().astype(np.int64)
        torch.testing.assert_close(x, expected[index])
        assert np.array_equal(y.numpy(), labels[index])
        seen.append(index)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(len(labels)))


def test_planed_training_weighs_the_loss(observables_dataset, tmp_path):
    lines = []
    plain = train_model(
        observables_dataset,
        tmp_path / "plain",
        TrainConfig("logistic", epochs=2, seed=1),
        name="plain",
    )
    planed = train_model(
        observables_dataset,
        tmp_path / "planed",
        TrainConfig("logistic", epochs=2, seed=1, planing=("pt", "msd")),
        name="planed",
        progress=lines.append,
    )
    assert any("planing in ['pt', 'msd']" in line for line in lines)
    assert planed[0]["train_loss"] != pytest.approx(plain[0]["train_loss"], rel=1e-4)
    saved = torch.load(tmp_path / "planed" / "model.pt", weights_only=False)["info"]
    assert saved["config"]["planing"] == ("pt", "msd")


def test_a_planed_bdt_sculpts_the_background_soft_drop_mass_less(observables_dataset, tmp_path):
    """Trained flat in the soft-drop mass, the BDT cannot select QCD jets by their mass, so the
    background surviving its cut keeps the mass spectrum closer to the original (measured on
    every split: the test split alone holds too few QCD jets; planed in the soft-drop mass
    alone, as 265 QCD jets fill 2-d bins too sparsely)."""
    jsd = {}
    for name, planing in (("plain", ()), ("planed", ("msd",))):
        train_baseline(
            observables_dataset,
            tmp_path / name,
            architecture="bdt",
            options={},
            signal="top",
            seed=1,
            planing=planing,
            planing_bins=6,
        )
        scored = [
            score_saved_model(tmp_path / name / "model.pt", observables_dataset, split)
            for split in ("train", "val", "test")
        ]
        probabilities, labels = (np.concatenate([s[i] for s in scored]) for i in (0, 1))
        msd = np.concatenate([s[2]["msd"] for s in scored])
        jsd[name] = mass_sculpting(labels == 1, probabilities[:, 1], msd, signal_efficiency=0.8)[
            "jensen_shannon_bits"
        ]
    assert jsd["planed"] < 0.7 * jsd["plain"], jsd  # measured: 0.50 against 0.90
