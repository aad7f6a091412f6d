"""No silent wrong answers: physically impossible input fails loudly, naming the file, field and
entry, before any output exists; every config value is checked before any job runs.

Each point about files runs on at least two formats, and each error leaves no store behind."""

from __future__ import annotations

import re

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
import yaml

from conftest import REPO, snakemake_command
from jetimage import ImageSpec, make_images
from jetimage.config import ConfigError, load, main, part_name, validate
from jetimage.dataset import build_dataset
from jetimage.files import InputError
from jetimage.images import write_image_store
from jetimage.readers import Counts, Labels, read, read_jets
from jetimage.zarr_store import open_store

CLASSES = ("qcd", "top")
LABELS = Labels(CLASSES, mapping={"0": "qcd", "1": "top"})
SPEC = ImageSpec(npix=(16, 16), width=(1.6, 1.6))
FILE_FORMATS = ("parquet", "root", "toptagging")


def ragged(values: np.ndarray, counts) -> ak.Array:
    return ak.unflatten(np.asarray(values, dtype=np.float64), np.asarray(counts))


def write(path, fmt: str, jets: dict, **replace) -> str:
    """Write jets in a format; ``replace`` swaps a quantity (px, py, pz, E) for other values
    (ragged, possibly with other per-jet counts)."""
    q = {**{k: jets[k] for k in ("px", "py", "pz", "E")}, **replace}
    path = str(path) + {"parquet": ".parquet", "root": ".root", "toptagging": ".h5"}[fmt]
    names = {"px": "part_px", "py": "part_py", "pz": "part_pz", "E": "part_energy"}
    if fmt == "parquet":
        ak.to_parquet(
            ak.zip({"label": jets["label"], **{names[k]: v for k, v in q.items()}}, depth_limit=1),
            path,
        )
    elif fmt == "root":  # a TTree whose ragged branches each have their own counter
        data = {names[k]: v for k, v in q.items()}
        with uproot.recreate(path) as file:
            tree = file.mktree("tree", {**{k: v.type for k, v in data.items()}, "label": np.int64})
            tree.extend({**data, "label": jets["label"]})
    else:  # the Top Tagging layout: zero-padded E_i, PX_i, PY_i, PZ_i and is_signal_new
        n_max = int(max(ak.max(ak.num(v)) for v in q.values()))
        frame = {}
        for key, prefix in (("E", "E"), ("px", "PX"), ("py", "PY"), ("pz", "PZ")):
            padded = ak.to_numpy(ak.fill_none(ak.pad_none(q[key], n_max, clip=True), 0.0))
            frame |= {f"{prefix}_{i}": padded[:, i] for i in range(n_max)}
        frame["is_signal_new"] = jets["label"]
        pd.DataFrame(frame).to_hdf(path, key="table", mode="w", format="fixed")
    return path


def options(fmt: str, **extra) -> dict:
    return {
        "labels": LABELS
        if fmt != "toptagging"
        else Labels(CLASSES, mapping={"0": "qcd", "1": "top"}),
        **extra,
    }


def pixelate(path, fmt: str, out, **reader_options) -> dict:
    """The images stage on one file (as the images rule runs it)."""
    counts = Counts()
    batches = read(path, format=fmt, counts=counts, **options(fmt), **reader_options)
    return write_image_store(
        out, batches, SPEC, attrs={"source": str(path), "classes": list(CLASSES)}, counts=counts
    )


def scaled(jets, key: str, factor: float, first: int) -> ak.Array:
    """``jets[key]`` with every constituent of jets ``first...`` multiplied by ``factor``."""
    n = ak.num(jets[key])
    flat = ak.to_numpy(ak.flatten(jets[key])).copy()
    flat[int(np.sum(n[:first])) :] *= factor
    return ragged(flat, n)


# --- 1. invalid constituents and empty images -------------------------------------------------


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_spacelike_constituents_fail_naming_field_and_first_entry(jets, tmp_path, fmt):
    """The energy at 0.1× (a wrong unit, or the mass column taken for it) from entry 5 on."""
    path = write(tmp_path / "tenth", fmt, jets, E=scaled(jets, "E", 0.1, first=5))
    field = re.escape({"parquet": "part_energy", "root": "part_energy", "toptagging": "E_*"}[fmt])
    store = tmp_path / "out.zarr"
    with pytest.raises(
        InputError,
        match=rf"tenth\.\w+: field '{field}': \d+ constituent\(s\) "
        rf"with E < \|p\| \(spacelike\) \(first in entry 5\)",
    ):
        pixelate(path, fmt, store)
    assert not store.exists()
    assert not list(tmp_path.glob(".out.zarr*"))


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_negative_energy_is_an_error(jets, tmp_path, fmt):
    flat = ak.to_numpy(ak.flatten(jets["E"])).copy()
    first = int(np.sum(ak.num(jets["E"])[:7]))
    flat[first] = -flat[first]
    path = write(tmp_path / "negative", fmt, jets, E=ragged(flat, ak.num(jets["E"])))
    with pytest.raises(
        InputError,
        match=r"constituent\(s\) with negative energy \(first in "
        r"entry 7\)",
    ):
        read_jets(path, format=fmt, **options(fmt))


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_invalid_constituents_drop_counts_and_bounds_the_loss(jets, tmp_path, fmt):
    """``invalid_constituents: drop`` drops the jets and counts them; more than the allowed
    fraction fails the file with the counts and leaves no store."""
    path = write(tmp_path / "two_bad", fmt, jets, E=scaled(jets, "E", 0.1, first=58))
    attrs = pixelate(path, fmt, tmp_path / "ok.zarr", invalid_constituents="drop")
    assert attrs["n_jets"] == 58
    assert attrs["dropped"]["invalid_constituents"] == 2
    np.testing.assert_array_equal(
        open_store(tmp_path / "ok.zarr")["jets/entry"][...], np.arange(58)
    )
    path = write(tmp_path / "many_bad", fmt, jets, E=scaled(jets, "E", 0.1, first=50))
    with pytest.raises(
        InputError,
        match=r"many_bad\.\w+: 10 of 60 jets \(16\.7%\) were "
        r"dropped, more than the sample's max_dropped_fraction "
        r"0\.05; by reason: \{'invalid_constituents': 10\}",
    ):
        pixelate(path, fmt, tmp_path / "bad.zarr", invalid_constituents="drop")
    assert not (tmp_path / "bad.zarr").exists()


def test_negative_mass_in_pt_eta_phi_mass_is_spacelike(jets, tmp_path):
    pt = np.hypot(jets["px"], jets["py"])
    vectors = ak.zip(
        {"px": jets["px"], "py": jets["py"], "pz": jets["pz"], "E": jets["E"]},
        with_name="Momentum4D",
    )
    mass = ak.to_numpy(ak.flatten(vectors.mass)).copy()
    first = int(np.sum(ak.num(pt)[:3]))
    mass[first] = -5.0  # GeV: far beyond float rounding
    path = tmp_path / "polar.root"
    data = {"c_pt": pt, "c_eta": vectors.eta, "c_phi": vectors.phi, "c_m": ragged(mass, ak.num(pt))}
    with uproot.recreate(path) as file:
        tree = file.mktree("jets", {k: v.type for k, v in data.items()})
        tree.extend(data)
    branches = {"pt": "c_pt", "eta": "c_eta", "phi": "c_phi", "mass": "c_m"}
    with pytest.raises(
        InputError,
        match=r"field 'c_m': 1 constituent\(s\) with negative mass "
        r"\(spacelike\) \(first in entry 3\)",
    ):
        read_jets(path, tree="jets", branches=branches, labels=Labels(CLASSES, class_name="top"))


@pytest.mark.parametrize("name", ["nano_tt_v15.root", "pfnano.root"])
def test_real_nanoaod_masses_within_float_rounding_pass(shared_data, name):
    """NanoAOD packs masses: PF candidates reach m = -0.0019 GeV, m²/2p² ≤ 1.3e-8."""
    jets = read_jets(shared_data / name, format="nanoaod", labels=Labels(CLASSES, class_name="top"))
    assert len(jets) > 20


def two_prong(n_jets: int, separated: np.ndarray) -> dict:
    """Jets of two equal constituents, ΔR = 0.4 apart, or 3.0 apart where ``separated``: the
    E-scheme axis then lies between them and both fall outside a ±0.8 window."""
    dphi = np.where(separated, 3.0, 0.4) / 2
    phi = np.stack([-dphi, dphi], axis=1).ravel()
    px, py = 100 * np.cos(phi), 100 * np.sin(phi)
    counts = np.full(n_jets, 2)
    return {
        "px": ragged(px, counts),
        "py": ragged(py, counts),
        "pz": ragged(np.zeros_like(px), counts),
        "E": ragged(np.full_like(px, 100.0), counts),
        "label": np.ones(n_jets, np.int64),
    }


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_empty_images_are_dropped_counted_and_bounded(tmp_path, fmt):
    separated = np.zeros(40, dtype=bool)
    separated[[4, 9]] = True
    path = write(tmp_path / "two_wide", fmt, two_prong(40, separated))
    attrs = pixelate(path, fmt, tmp_path / "ok.zarr")
    assert attrs["dropped"]["empty_image"] == 2
    assert attrs["n_jets"] == 38
    group = open_store(tmp_path / "ok.zarr")
    assert np.all(group["images"][...].sum(axis=(1, 2, 3)) > 0)
    assert 4 not in group["jets/entry"][...]
    assert 9 not in group["jets/entry"][...]
    separated[:10] = True
    path = write(tmp_path / "all_wide", fmt, two_prong(40, separated))
    with pytest.raises(
        InputError,
        match=r"all_wide\.\w+: 10 of 40 jets \(25\.0%\) were "
        r"dropped.*\{'empty_image': 10\}",
    ):
        pixelate(path, fmt, tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()


# --- 2. ragged columns ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_misaligned_ragged_columns_name_the_columns_and_entry(jets, tmp_path, fmt):
    """part_energy with one value moved from jet 10 to jet 11: same total, other lengths."""
    counts = ak.to_numpy(ak.num(jets["E"])).copy()
    counts[10] -= 1
    counts[11] += 1
    shifted = ragged(ak.to_numpy(ak.flatten(jets["E"])), counts)
    path = write(tmp_path / "shifted", fmt, jets, E=shifted)
    n = ak.num(jets["E"])
    with pytest.raises(
        InputError,
        match=rf"shifted\.\w+: ragged columns 'part_\w+' and "
        rf"'part_\w+' differ in length \(first in entry 10: "
        rf"({n[10]} against {n[10] - 1}|{n[10] - 1} against "
        rf"{n[10]})\)",
    ):
        read_jets(path, format=fmt, **options(fmt))


def test_top_tagging_padding_with_a_momentum_is_not_padding(jets, tmp_path):
    """A zero energy beside a non-zero momentum is a misaligned slot, not padding."""
    flat = ak.to_numpy(ak.flatten(jets["E"])).copy()
    flat[int(np.sum(ak.num(jets["E"])[:12]))] = 0.0
    path = write(tmp_path / "slot", "toptagging", jets, E=ragged(flat, ak.num(jets["E"])))
    with pytest.raises(
        InputError,
        match=r"field 'E_\*': 1 constituent\(s\) with E < \|p\| "
        r"\(spacelike\) \(first in entry 12\)",
    ):
        read_jets(path, format="toptagging", **options("toptagging"))


# --- 3. classes in every split ----------------------------------------------------------------


def test_a_class_missing_from_a_split_fails_at_the_dataset_stage(top_file, qcd_file, tmp_path):
    stores = []
    for name, path, n in (("qcd", qcd_file, None), ("top", top_file, 2)):
        piece = read_jets(path, labels=Labels(CLASSES, class_name=name))[:n]
        stores.append(tmp_path / f"{name}.zarr")
        write_image_store(stores[-1], piece, SPEC, attrs={"source": name, "classes": list(CLASSES)})
    dataset = tmp_path / "ds.zarr"
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    with pytest.raises(
        InputError,
        match=r"class 'top' has no jet in the \w+ split: each class "
        r"is split by the fractions jet by jet, and 'top' has "
        r"too few jets for every split \(jets per split and "
        r"class: train: \{'qcd': \d+, 'top': \d\}",
    ):
        build_dataset(dataset, stores, classes=list(CLASSES), fractions=fractions, seed=1)
    with pytest.raises(
        InputError,
        match=r"has jets of 1 class\(es\) \['qcd'\]: a classifier "
        r"needs two",
    ):
        build_dataset(dataset, stores[:1], classes=list(CLASSES), fractions=fractions, seed=1)
    assert not dataset.exists()


# --- 4, 5, 6 and the checks before any job: the config ----------------------------------------


def config(**changes) -> dict:
    base = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = base
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return base


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"images__width": [float("nan"), float("nan")]},
            r"config key images/width/0: nan is not a finite number",
        ),
        (
            {"training__learning_rate": float("inf")},
            r"config key training/learning_rate: inf is not a finite number",
        ),
        (
            {"dask__scheduler": "thread"},
            (
                r"config key dask/scheduler: dask scheduler must be threads, processes, "
                r"synchronous or an address, not 'thread'"
            ),
        ),
        (
            {"dataset__split": {"train": 0.0, "val": 0.5, "test": 0.5}},
            r"config key dataset/split/train: 0.0 is less than or equal to the minimum of 0",
        ),
        (
            {"models__hsf-cnn__options": {"filters": "abc"}},
            r"config key models/hsf-cnn/options/filters: must be 2 positive integers, not 'abc'",
        ),
        (
            {"models__hsf-cnn__options": {"dense": 0}},
            r"config key models/hsf-cnn/options/dense: must be a positive integer, not 0",
        ),
        (
            {"models__mlp": {"architecture": "mlp", "options": {"dropout": 1.5}}},
            r"config key models/mlp/options/dropout: must be a number in \[0, 1\), not 1.5",
        ),
        (
            {"models__pn": {"architecture": "particlenet", "options": {"hardest": -4}}},
            (
                r"config key models/pn/options/hardest: must be a non-negative integer "
                r"\(0: all\), not -4"
            ),
        ),
        (
            {"generation__pt_hat": [700.0, 500.0]},
            (
                r"config key generation/pt_hat: \[low, high\] in GeV with low below high, got "
                r"\[700.0, 500.0\]"
            ),
        ),
        (
            {"generation__pt_hat": [100.0, 200.0]},
            (
                r"config key generation/jets/pt_min: jets of pT above 550.0 GeV are out of "
                r"reach of generation/pt_hat \[100.0, 200.0\]"
            ),
        ),
    ],
)
def test_bad_config_values_fail_before_any_job(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(config(**changes))


def file_samples(tmp_path, first: dict, second: dict) -> dict:
    path = tmp_path / "jets.parquet"
    path.write_bytes(b"")
    base = config()
    base["samples"] = {
        "a": {"source": "files", "files": str(path), "format": "parquet", **first},
        "b": {"source": "files", "files": str(path), "format": "parquet", **second},
    }
    base["predict"] = {}
    return base


def test_contradictions_name_the_keys(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"jets\.parquet' is in samples 'a' and 'b': its jets "
        r"would be class 'qcd' in 'a' and class 'top' in 'b'",
    ):
        validate(file_samples(tmp_path, {"class": "qcd"}, {"class": "top"}))
    with pytest.raises(ConfigError, match=r"both map label value\(s\) \['1'\]"):
        validate(
            file_samples(
                tmp_path,
                {"labels": {0: "qcd", 1: "top"}, "unmapped_labels": "drop"},
                {"labels": {1: "top"}, "unmapped_labels": "drop"},
            )
        )
    # one file, two disjoint selections (as from a JetClass file): fine
    validate(
        file_samples(
            tmp_path,
            {"labels": {"label_QCD": "qcd"}, "unmapped_labels": "drop"},
            {"labels": {"label_Tbqq": "top"}, "unmapped_labels": "drop"},
        )
    )
    base = file_samples(tmp_path, {"labels": {0: "qcd", "0": "top"}}, {"class": "top"})
    with pytest.raises(
        ConfigError,
        match=r"samples/a/labels: keys \[0, '0'\] are the same label "
        r"value '0'",
    ):
        validate(base)
    with pytest.raises(ValueError, match=r"labels map keys \[0, '0'\] are the same label value"):
        Labels(CLASSES, mapping={0: "qcd", "0": "top"})


def test_reader_option_values_are_checked_with_the_config(tmp_path):
    base = file_samples(
        tmp_path,
        {"class": "qcd", "format": "toptagging", "reader": {"max_constituents": -5}},
        {"class": "top", "files": str(tmp_path / "other.parquet")},
    )
    (tmp_path / "other.parquet").write_bytes(b"")
    with pytest.raises(
        ConfigError,
        match=r"samples/a/reader: format 'toptagging': reader option "
        r"'max_constituents' must be a positive integer, not "
        r"-5",
    ):
        validate(base)


def test_a_pixelated_model_cannot_predict_constituent_files(shared_data, tmp_path):
    base = config()
    base["samples"] = {
        "cms": {
            "source": "files",
            "files": str(shared_data / "cms2011_jet_images.h5"),
            "format": "images-h5",
            "labels": {"QCD": "qcd", "TT": "top"},
        }
    }
    base["predict"] = {"models": ["hsf-cnn"], "files": [str(shared_data / "pfnano.root")]}
    with pytest.raises(
        ConfigError,
        match=r"predict/files: the models are trained on already-"
        r"pixelated images",
    ):
        validate(base)


def test_an_images_h5_grid_too_small_for_a_model_fails_when_the_dag_is_built(tmp_path):
    """A 3×3 grid and hsf-cnn (two 2×2 poolings): the error came at the train job."""
    import h5py

    path = tmp_path / "tiny_grid.h5"
    with h5py.File(path, "w") as file:
        file["images"] = np.random.default_rng(0).random((40, 3, 3)).astype(np.float32)
        file["labels"] = np.arange(40) % 2
    base = config()
    base["samples"] = {
        "cms": {
            "source": "files",
            "files": str(path),
            "format": "images-h5",
            "labels": {0: "qcd", 1: "top"},
        }
    }
    base["models"] = {"hsf-cnn": {"architecture": "hsf-cnn"}}
    base["predict"] = {}
    with pytest.raises(
        ConfigError,
        match=rf"models/hsf-cnn: hsf-cnn needs images of at least 4×4 pixels, and "
        rf"{re.escape(str(path))} \(sample cms\) holds 3×3 images",
    ):
        validate(base)


def test_relative_files_that_match_nothing_say_relative_to_what(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = config()
    base["samples"]["qcd"] = {
        "source": "files",
        "files": "data/*.parquet",
        "format": "parquet",
        "class": "qcd",
    }
    with pytest.raises(
        ConfigError,
        match=rf"'data/\*\.parquet' matches no file \(relative paths "
        rf"are relative to the working directory {tmp_path}\)",
    ):
        validate(base)


def test_parts_are_named_by_the_whole_file_name(tmp_path):
    from jetimage.config import sample_files

    for year in (2024, 2025):
        (tmp_path / f"run.{year}.parquet").write_bytes(b"")
    base = config()
    base["samples"]["qcd"] = {
        "source": "files",
        "files": str(tmp_path / "run.*.parquet"),
        "format": "parquet",
        "class": "qcd",
    }
    assert list(sample_files(validate(base), "qcd")) == ["run.2024", "run.2025"]
    assert part_name("a/b.tar.gz") == "b.tar"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty\.yaml: the config file is empty"),
        ("- a\n- b\n", r"empty\.yaml, line 1: the config must be a mapping of keys .*not a list"),
        ("classes: [a, b\nsamples: {}\n", r"empty\.yaml, line 2 column 8: not valid YAML"),
    ],
)
def test_config_files_that_are_not_a_mapping_name_file_and_line(tmp_path, capsys, text, message):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path)
    assert main([str(path)]) == 1
    assert "empty.yaml" in capsys.readouterr().err


def test_cuda_without_cuda_fails_before_the_dataset_is_read(tmp_path):
    import torch

    from jetimage.train import TrainConfig, train_model

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "model"
    with pytest.raises(
        RuntimeError,
        match=r"the device setting 'cuda' \(training/device, or the "
        r"model's own device\): torch .* sees no CUDA device",
    ):
        train_model(
            tmp_path / "no-such-dataset.zarr",
            out,
            TrainConfig(architecture="logistic", device="cuda"),
            name="logistic",
        )
    assert not out.exists()


# --- the library --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": float("nan")}, r"width must be finite"),
        ({"width": (1.6, float("inf"))}, r"width must be finite"),
        ({"npix": 40.5}, r"npix must be whole numbers of pixels"),
        ({"reflect": "x"}, r"reflect must be one of \('both', 'eta', 'phi', 'none'\), not 'x'"),
        ({"phi_ref": "leading"}, r"phi_ref must be one of \('hardest', 'axis'\)"),
        ({"coordinate": "eta"}, r"coordinate must be one of \('rapidity', 'pseudorapidity'\)"),
    ],
)
def test_image_spec_rejects_impossible_values(changes, message):
    with pytest.raises(ValueError, match=message):
        ImageSpec(**changes)


def test_settings_classes_reject_non_finite_numbers_and_reversed_windows():
    from jetimage.generate import Detector, GeneratorSettings, JetSelection
    from jetimage.train import TrainConfig

    with pytest.raises(ValueError, match=r"JetSelection.pt_min must be finite, got nan"):
        JetSelection(pt_min=float("nan"))
    with pytest.raises(ValueError, match=r"Detector.photon_resolution must be finite"):
        Detector(photon_resolution=(float("inf"), 0.0))
    with pytest.raises(
        ValueError,
        match=r"pT-hat range needs 0 <= pt_hat_min < pt_hat_max, got "
        r"\[700.0, 500.0\]",
    ):
        GeneratorSettings("top", pt_hat_min=700.0, pt_hat_max=500.0)
    with pytest.raises(ValueError, match=r"TrainConfig.learning_rate must be finite"):
        TrainConfig(architecture="logistic", learning_rate=float("nan"))


def test_make_images_on_zero_jets_and_on_nan_momenta():
    one = {"px": 100.0, "py": 0.0, "pz": 0.0, "E": 100.0}
    none = ak.Array([[one]], with_name="Momentum4D")[:0]
    assert make_images(none, SPEC).shape == (0, 1, 16, 16)
    nan = ak.Array([[one], [one, {**one, "pz": np.nan}]], with_name="Momentum4D")
    with pytest.raises(
        ValueError,
        match=r"pz of 1 constituent\(s\) is NaN or infinite \(first "
        r"in jet 1\)",
    ):
        make_images(nan, SPEC)


# --- the workflow -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_workflow_stops_at_the_images_job_of_a_spacelike_file(jets, tmp_path):
    """The issue's run: energies at 0.1× ended with AUC 0.5 and exit code 0."""
    import subprocess

    good = write(
        tmp_path / "good",
        "parquet",
        {**jets, "label": np.r_[np.zeros(30), np.ones(30)].astype(int)},
    )
    bad = write(tmp_path / "tenth", "parquet", jets, E=scaled(jets, "E", 0.1, first=0))
    base = config()
    base["samples"] = {
        "good": {
            "source": "files",
            "files": good,
            "format": "parquet",
            "labels": {0: "qcd", 1: "top"},
        },
        "bad": {"source": "files", "files": bad, "format": "parquet", "class": "top"},
    }
    base["predict"] = {}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(base))
    result = subprocess.run(
        snakemake_command(tmp_path, configfile, "--cores", "2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "images" / "bad" / "tenth.log").read_text()
    assert re.search(
        r"tenth\.parquet: field 'part_energy': \d+ constituent\(s\) with "
        r"E < \|p\| \(spacelike\) \(first in entry 0\)",
        log,
    )
    assert not (tmp_path / "results" / "images" / "bad").exists() or not list(
        (tmp_path / "results" / "images" / "bad").glob("*.zarr")
    )
    assert not (tmp_path / "results" / "models").exists()
    assert not (tmp_path / "results" / "report.html").exists()


@pytest.mark.slow
def test_a_generate_job_that_keeps_no_jet_fails_and_writes_no_shard(tmp_path):
    """A window Pythia can reach but that these few events miss: no 0-jet shard."""
    import subprocess

    base = config(generation__jets={"pt_min": 1000.0, "pt_max": 1001.0})
    base["samples"]["top"]["events_per_shard"] = 5
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(base))
    result = subprocess.run(
        snakemake_command(tmp_path, configfile, "--cores", "1", "results/jets/top/000.root"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "generate" / "top" / "000.log").read_text()
    assert "5 events of process 'top' gave no jet in the window 1000.0 < pT < 1001.0 GeV" in log
    assert not (tmp_path / "results" / "jets" / "top" / "000.root").exists()


@pytest.mark.parametrize("resamplings", [0, 20])
def test_the_report_speaks_of_bootstrap_uncertainties_only_when_there_are_some(
    tmp_path, resamplings
):
    from jetimage.metrics import classification_metrics
    from jetimage.report import build_report

    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(200), np.ones(200)].astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
    metrics = classification_metrics(
        labels,
        np.stack([1 - scores, scores], axis=1),
        list(CLASSES),
        signal="top",
        bootstrap=resamplings,
    )
    metrics["model"] = "m"
    dataset = {
        "classes": list(CLASSES),
        "splits": {s: {"qcd": 200, "top": 200} for s in ("train", "val", "test")},
        "image_spec": SPEC.to_dict(),
        "sources": [],
    }
    path = tmp_path / "report.html"
    build_report(
        path,
        metrics={"m": metrics},
        plots={},
        comparison={},
        learned={},
        mean_images=None,
        dataset=dataset,
        config={"evaluation": {"bootstrap": resamplings}},
        versions={},
    )
    text = path.read_text()
    page = text[: text.index("<h3>Config</h3>")]
    if resamplings:
        assert f"Uncertainties from {resamplings} bootstrap resamplings" in page
        assert "±" in page
    else:
        assert "resampl" not in page
        assert "uncertainties from" not in page.lower()
        assert "±" not in page
        assert "<sup>+" not in page
        assert "No uncertainties: evaluation/bootstrap is 0." in page


def test_the_report_warns_of_a_class_with_too_few_test_jets_and_of_dropped_copies(tmp_path):
    from jetimage.report import build_report

    def page(test_counts: dict, **extra) -> str:
        dataset = {
            "classes": list(CLASSES),
            "splits": {
                **{s: {"qcd": 200, "top": 200} for s in ("train", "val")},
                "test": test_counts,
            },
            "image_spec": SPEC.to_dict(),
            "sources": [],
            **extra,
        }
        path = tmp_path / "report.html"
        build_report(
            path,
            metrics={},
            plots={},
            comparison={},
            learned={},
            mean_images=None,
            dataset=dataset,
            config={"evaluation": {"min_test_jets": 50}},
            versions={},
        )
        return path.read_text()

    warned = page({"qcd": 200, "top": 2})
    assert (
        "class &#39;top&#39; has 2 test jet(s), fewer than evaluation/min_test_jets = 50: its "
        "rates, ROC and figures rest on too few jets to trust" in warned
    )
    assert "class &#39;qcd&#39;" not in warned
    assert 'class="warning"' not in page({"qcd": 200, "top": 50})
    copies = {"copies": 7, "dropped": 7, "dropped_per_sample": {"top": 7}}
    assert "7 jet(s) read more than once were left out" in page(
        {"qcd": 200, "top": 50}, duplicates=copies
    )


def test_make_run_names_the_file_and_line_of_a_bad_config(tmp_path):
    """The README's entry point checks the config before Snakemake parses it."""
    import subprocess

    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [a, b\nsamples: {}\n")
    result = subprocess.run(
        ["make", "-C", str(REPO), "run", f"CONFIG={bad}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert f"{bad}, line 2 column 8: not valid YAML" in result.stderr
    # make echoes each command before it runs it: Snakemake never started
    assert "jetimage.config" in result.stdout
    assert "bin/snakemake" not in result.stdout


# --- predict.files: what the config and the file's first jets show, before any job ------------


def predicting(*entries) -> dict:
    base = config()
    base["predict"] = {"models": ["hsf-cnn"], "files": list(entries)}
    return base


def test_predict_files_are_read_up_to_their_first_jets_when_the_dag_is_built(
    jets, shared_data, tmp_path
):
    """A Parquet file listed without its format (read as ROOT), a tree the file lacks, label
    branches it lacks, charged image channels on a file without charge, and one file that two
    entries match: each a ConfigError naming the file, when the DAG is built."""
    parquet = write(tmp_path / "jets", "parquet", jets)
    root = write(tmp_path / "jets", "root", jets)
    cases = [
        (
            {"files": parquet},
            rf"predict/files: {re.escape(parquet)} \(format root\): .*not a ROOT file",
        ),
        (
            {"files": root, "format": "root", "reader": {"tree": "Events"}},
            rf"predict/files: {re.escape(root)} \(format root\): .*no tree 'Events'",
        ),
        (
            {"files": root, "format": "root", "labels": {"label_QCD": "qcd", "label_Tbqq": "top"}},
            r"lacks \['label_QCD', 'label_Tbqq'\]",
        ),
        (
            {"files": str(shared_data / "pfnano.root"), "reader": {"tree": "Events"}},
            (
                r"pfnano\.root \(format root\): .*tree 'Events' lacks \['part_px'.*; "
                r"it has \[('[^']*', ){29}'[^']*'\] and \d+ more"
            ),
        ),
    ]
    for entry, message in cases:
        with pytest.raises(ConfigError, match=message):
            validate(predicting(entry))
    charged = predicting({"files": parquet, "format": "parquet"})
    charged["images"] = {"channels": ["pt", "charged_pt"]}
    with pytest.raises(
        ConfigError,
        match=r"\(format parquet\): the image channels \['pt', 'charged_pt'\] need the "
        r"constituents' charge, and this file's constituents have \['E', 'px', 'py', 'pz'\]",
    ):
        validate(charged)
    twice = predicting(
        {"files": parquet, "format": "parquet"},
        {"files": str(tmp_path / "*.parquet"), "format": "parquet"},
    )
    with pytest.raises(
        ConfigError,
        match=rf"predict/files: {re.escape(repr(parquet))} is matched by entries 0 and 1",
    ):
        validate(twice)
    validate(predicting({"files": parquet, "format": "parquet"}))  # read as it is, it passes


# --- per-jet values read from files reach the metrics: finite, or the file fails -------------


@pytest.mark.parametrize("fmt", ["parquet", "root"])
@pytest.mark.parametrize(
    ("branch", "bad", "entry"), [("jet_pt", np.nan, 7), ("jet_mass", np.inf, 3)]
)
def test_a_nan_or_inf_jet_value_from_the_file_fails_naming_field_and_entry(
    jets, tmp_path, fmt, branch, bad, entry
):
    """NaN in jet_pt gave a wrong diagnosis later, inf in jet_mass a crash in evaluate or inf
    in scores.parquet; now the file fails as it is read."""
    n = len(jets["label"])
    table = {"jet_pt": np.full(n, 600.0), "jet_mass": np.full(n, 170.0)}
    table[branch][entry] = bad
    names = {"px": "part_px", "py": "part_py", "pz": "part_pz", "E": "part_energy"}
    ragged_columns = {names[k]: jets[k] for k in names}
    path = tmp_path / f"bad.{fmt}"
    if fmt == "parquet":
        ak.to_parquet(
            ak.zip({"label": jets["label"], **table, **ragged_columns}, depth_limit=1), path
        )
    else:
        with uproot.recreate(path) as file:
            types = {k: v.type for k, v in ragged_columns.items()}
            tree = file.mktree(
                "tree", {**types, "label": np.int64, **dict.fromkeys(table, np.float64)}
            )
            tree.extend({**ragged_columns, "label": jets["label"], **table})
    store = tmp_path / "out.zarr"
    with pytest.raises(
        InputError,
        match=rf"bad\.{fmt}: field '{branch}' holds 1 NaN/inf value\(s\) "
        rf"\(first in entry {entry}\)",
    ):
        pixelate(path, fmt, store)
    assert not store.exists()
