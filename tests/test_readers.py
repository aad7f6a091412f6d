"""Readers of every input format: real shared samples, files written in the published layouts,
streaming that does not depend on the batch size, and bad input reported by file and field."""

from __future__ import annotations

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
import vector

from conftest import jetclass_columns
from jetimage.files import InputError, write_jets_root
from jetimage.readers import Counts, ImageBatch, Labels, pdg_charge, read, read_jets

QG = Labels(("gluon", "quark"), mapping={"0": "gluon", "1": "quark"})
TOP = Labels(("qcd", "top"), mapping={"0": "qcd", "1": "top"})


def concat(batches):
    return {k: np.concatenate([b.table[k] for b in batches]) for k in batches[0].table}


def summed_pt(constituents) -> np.ndarray:
    return np.hypot(
        ak.to_numpy(ak.sum(constituents.px, axis=1)), ak.to_numpy(ak.sum(constituents.py, axis=1))
    )


# --- real samples ------------------------------------------------------------------------------


def test_quark_gluon_parquet(shared_data):
    path = shared_data / "quark_gluon_2000.parquet"
    jets = read_jets(path, format="parquet", labels=QG)
    table = jets.table
    assert np.bincount(table["label"]).tolist() == [1010, 990]  # gluon 0, quark 1
    # quark jets have fewer constituents than gluon jets
    assert (
        table["n_constituents"][table["label"] == 1].mean()
        < table["n_constituents"][table["label"] == 0].mean() - 10
    )
    raw = ak.from_parquet(path)
    np.testing.assert_array_equal(table["pt"], ak.to_numpy(raw.jet_pt))
    np.testing.assert_array_equal(
        ak.to_numpy(ak.flatten(jets.constituents.px)), ak.to_numpy(ak.flatten(raw.part_px))
    )
    np.testing.assert_allclose(summed_pt(jets.constituents), table["pt"], rtol=1e-3)


def test_streaming_does_not_depend_on_the_batch_size(shared_data):
    path = shared_data / "quark_gluon_2000.parquet"
    small = list(read(path, format="parquet", labels=QG, step=300))
    whole = list(read(path, format="parquet", labels=QG, step=100_000))
    assert [len(b) for b in small] == [300] * 6 + [200]
    assert len(whole) == 1
    for name, values in concat(whole).items():
        np.testing.assert_array_equal(concat(small)[name], values)
    assert ak.all(ak.concatenate([b.constituents.E for b in small]) == whole[0].constituents.E)


@pytest.mark.parametrize(
    ("name", "links", "complete_min"),
    [("nano_tt_v15.root", "FatJetPFCand", 60), ("pfnano.root", "FatJetPFCands", 24)],
)
def test_nanoaod_constituents_add_up_to_the_raw_jet_pt(shared_data, name, links, complete_min):
    """Index-linked constituents (PUPPI-weighted in PFNano) rebuild the uncorrected jet pT,
    FatJet_pt * (1 - rawFactor), within 1% for jets whose constituent list is complete."""
    counts = Counts()
    labels = Labels(("qcd", "top"), class_name="top")
    jets = read_jets(shared_data / name, format="nanoaod", labels=labels, counts=counts)
    table = jets.table
    complete = table["n_constituents"] == table.get("n_constituents_nano", table["n_constituents"])
    assert complete.sum() >= complete_min
    ratio = summed_pt(jets.constituents)[complete] / table["raw_pt"][complete]
    np.testing.assert_allclose(ratio, 1.0, atol=0.01)
    assert counts.read == len(jets) + counts.dropped["no_constituents"]
    assert set(ak.to_numpy(ak.flatten(jets.constituents.charge))) <= {-1.0, 0.0, 1.0}
    # entry and subentry lead back to the event and the fat jet in it
    events = uproot.open(shared_data / name)["Events"]
    fat_pt = events["FatJet_pt"].array()
    for i in range(0, len(jets), 7):
        assert fat_pt[table["entry"][i]][table["subentry"][i]] == pytest.approx(table["pt"][i])


def test_nanoaod_per_jet_labels_from_a_branch(shared_data):
    labels = Labels(
        ("light", "b"), mapping={"0": "light", "4": "light", "5": "b"}, field="FatJet_hadronFlavour"
    )
    jets = read_jets(shared_data / "nano_tt_v15.root", format="nanoaod", labels=labels)
    flavour = jets.table["hadron_flavour"]
    assert np.array_equal(jets.table["label"], (flavour == 5).astype(int))
    assert 0 < jets.table["label"].sum() < len(jets)


@pytest.mark.parametrize(
    ("field", "what"),
    [
        ("run", "one value per event"),
        ("FatJetPFCands_jetIdx", r"another collection's values \(first differing in entry \d+\)"),
    ],
)
def test_a_nanoaod_label_field_that_is_not_per_fat_jet_names_itself(shared_data, field, what):
    """An event-level branch or one of another collection gave a broadcast error."""
    labels = Labels(("light", "b"), mapping={"0": "light", "5": "b"}, field=field)
    with pytest.raises(
        InputError,
        match=rf"pfnano\.root: label_field '{field}' holds {what}, not one value per FatJet; "
        r"name a FatJet_\* branch",
    ):
        read_jets(shared_data / "pfnano.root", format="nanoaod", labels=labels)


def test_cms_image_file_one_dataset_per_class(shared_data):
    path = shared_data / "cms2011_jet_images.h5"
    counts = Counts()
    batches = list(
        read(
            path,
            format="images-h5",
            step=1000,
            counts=counts,
            labels=Labels(("qcd", "top"), mapping={"QCD": "qcd", "TT": "top"}),
        )
    )
    assert all(isinstance(b, ImageBatch) for b in batches)
    images = np.concatenate([b.images for b in batches])
    table = concat(batches)
    assert images.shape == (3305 + 1722, 1, 30, 30)
    assert counts.read == 5027
    assert np.bincount(table["label"]).tolist() == [3305, 1722]
    with h5py.File(path) as file:  # channels-last on disk, (jets, 1, η, φ) here
        np.testing.assert_array_equal(images[:3305, 0], file["QCD"][..., 0].astype(np.float32))
        np.testing.assert_array_equal(images[3305:, 0], file["TT"][..., 0].astype(np.float32))
    # jets are centred near pixel (15, 15); the pT column is the image sum
    mean = images[:, 0].mean(axis=0)
    centroid = [np.sum(mean.sum(axis=1 - a) * np.arange(30)) / mean.sum() for a in (0, 1)]
    np.testing.assert_allclose(centroid, [15, 15], atol=2.0)
    np.testing.assert_allclose(table["pt"], images[:, 0].sum(axis=(1, 2)), rtol=1e-5)
    # two-prong TT (W → qq) jets spread their pT wider than QCD jets
    grid = np.indices((30, 30))
    p = images[:, 0] / images[:, 0].sum(axis=(1, 2), keepdims=True)
    centre = [(p * g).sum(axis=(1, 2)) for g in grid]
    spread = sum((p * (g - c[:, None, None]) ** 2).sum(axis=(1, 2)) for g, c in zip(grid, centre))
    assert np.median(spread[3305:]) > 1.5 * np.median(spread[:3305])


# --- files written in the published layouts ----------------------------------------------------


def test_jetclass_root_one_hot_labels_and_mass_from_constituents(top_file, qcd_file, tmp_path):
    path = tmp_path / "TTBar_QCD_000.root"
    columns = jetclass_columns(top_file, qcd_file)
    write_jets_root(path, columns)
    labels = Labels(("qcd", "top"), mapping={"label_QCD": "qcd", "label_Tbqq": "top"})
    jets = read_jets(path, labels=labels)
    np.testing.assert_array_equal(jets.table["label"], columns["label_Tbqq"].astype(int))
    top = read_jets(top_file)
    np.testing.assert_allclose(jets.table["mass"][: len(top)], top.table["mass"], rtol=1e-6)
    np.testing.assert_array_equal(jets.table["sdmass"], columns["jet_sdmass"])
    # a one-hot label the map does not name is an error, or dropped when asked
    hbb = dict(
        columns, label_Hbb=columns["label_QCD"], label_QCD=np.zeros_like(columns["label_QCD"])
    )
    write_jets_root(path, hbb)
    with pytest.raises(
        InputError,
        match=r"TTBar_QCD_000\.root: field 'label_QCD/label_Tbqq' "
        r"holds label value\(s\) that map to no class",
    ):
        read_jets(path, labels=labels)
    counts = Counts()
    dropping = Labels(labels.classes, mapping=labels.mapping, unmapped="drop")
    assert len(read_jets(path, labels=dropping, counts=counts)) == len(top)
    assert counts.dropped["unmapped_label"] == len(columns["jet_pt"]) - len(top)


def test_generic_root_with_a_branch_map_in_pt_eta_phi_mass(top_file, tmp_path):
    reference = read_jets(top_file)
    c = reference.constituents
    path = tmp_path / "user.root"
    data = {
        "pfc": ak.zip({"pt": c.pt, "eta": c.eta, "phi": c.phi, "m": c.mass}),
        "fj_pt": reference.table["pt"],
        "fj_m": reference.table["mass"],
    }
    with uproot.recreate(path) as file:
        tree = file.mktree(
            "Jets",
            {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in data.items()},
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        tree.extend(data)
    jets = read_jets(
        path,
        tree="Jets",
        branches={"pt": "pfc_pt", "eta": "pfc_eta", "phi": "pfc_phi", "mass": "pfc_m"},
        jet_branches={"pt": "fj_pt", "mass": "fj_m"},
    )
    for q in ("px", "py", "pz", "E"):
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(getattr(jets.constituents, q))),
            ak.to_numpy(ak.flatten(getattr(c, q))),
            rtol=1e-6,
            atol=1e-6,
        )
    np.testing.assert_array_equal(jets.table["pt"], reference.table["pt"])
    np.testing.assert_allclose(jets.table["eta"], reference.table["eta"], atol=1e-6)


def toptagging_frame(top_file, qcd_file, n_max=200) -> pd.DataFrame:
    """Generated jets in the Top Quark Tagging reference layout: E_i, PX_i, PY_i, PZ_i for
    i < 200 (pT-ordered, zero-padded), truth*, ttv, is_signal_new."""
    rows, labels = [], []
    for label, path in ((1, top_file), (0, qcd_file)):
        c = read_jets(path).constituents
        c = c[ak.argsort(c.pt, axis=1, ascending=False)][:, :n_max]
        padded = {
            q: ak.to_numpy(ak.fill_none(ak.pad_none(getattr(c, f), n_max, clip=True), 0.0))
            for q, f in (("E", "E"), ("PX", "px"), ("PY", "py"), ("PZ", "pz"))
        }
        rows.append(np.stack([padded[q] for q in ("E", "PX", "PY", "PZ")], axis=2))
        labels.append(np.full(len(c), label))
    values = np.concatenate(rows).reshape(-1, 4 * n_max)
    columns = [f"{q}_{i}" for i in range(n_max) for q in ("E", "PX", "PY", "PZ")]
    frame = pd.DataFrame(values, columns=columns)
    for q in ("truthE", "truthPX", "truthPY", "truthPZ"):
        frame[q] = 0.0
    frame["ttv"] = 0
    frame["is_signal_new"] = np.concatenate(labels)
    return frame


@pytest.mark.parametrize("pandas_format", ["fixed", "table"])
def test_top_tagging_hdf5(top_file, qcd_file, tmp_path, pandas_format):
    frame = toptagging_frame(top_file, qcd_file)
    path = tmp_path / "train.h5"
    frame.to_hdf(path, key="table", mode="w", format=pandas_format)
    batches = list(read(path, format="toptagging", labels=TOP, step=250))
    assert max(len(b) for b in batches) == 250  # streamed, not read whole
    table = concat(batches)
    np.testing.assert_array_equal(table["label"], frame["is_signal_new"])
    cons = ak.concatenate([b.constituents for b in batches])
    np.testing.assert_allclose(
        ak.to_numpy(ak.sum(cons.E, axis=1)),
        frame[[f"E_{i}" for i in range(200)]].sum(axis=1),
        rtol=1e-12,
    )
    top = read_jets(top_file)
    n_top = len(top)
    np.testing.assert_allclose(table["mass"][:n_top], top.table["mass"], rtol=1e-6)


def test_hsf_image_file_with_images_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.exponential(size=(50, 40, 40)) * (rng.random((50, 40, 40)) < 0.05)
    labels = rng.integers(0, 2, size=50)
    path = tmp_path / "jet-images.h5"
    with h5py.File(path, "w") as file:
        file["images"], file["labels"] = images, labels
    batches = list(read(path, format="images-h5", labels=TOP, step=16))
    got = np.concatenate([b.images for b in batches])
    np.testing.assert_allclose(got[:, 0], images, rtol=1e-6)
    np.testing.assert_array_equal(concat(batches)["label"], labels)


def test_pdg_charge_agrees_with_pythia(qcd_file):
    c = read_jets(qcd_file).constituents
    pid = ak.to_numpy(ak.flatten(c.pid))
    charge = ak.to_numpy(ak.flatten(c.charge))
    known = np.isin(np.abs(pid), [11, 13, 22, 130, 211, 321, 2212])
    assert known.mean() > 0.9
    np.testing.assert_array_equal(pdg_charge(pid)[known], charge[known])


# --- bad input ---------------------------------------------------------------------------------


def write_parquet(path, **changes):
    counts = [2, 3]
    part = {f"part_{q}": ak.unflatten(np.arange(1.0, 6.0), counts) for q in ("px", "py", "pz")}
    part["part_energy"] = ak.unflatten(np.full(5, 10.0), counts)
    record = {"label": np.array([0, 1]), "jet_pt": np.array([1.0, 2.0]), **part, **changes}
    ak.to_parquet(ak.zip(record, depth_limit=1), path)


def test_parquet_missing_column_lists_the_columns(tmp_path):
    path = tmp_path / "bad.parquet"
    write_parquet(path)
    with pytest.raises(
        InputError,
        match=r"bad\.parquet: the Parquet schema lacks \['part_qq'\] \(closest: \['part_px', "
        r"'part_py', 'part_pz'\]\); it has \[.*'part_px'",
    ):
        read_jets(
            path,
            format="parquet",
            labels=QG,
            branches={"px": "part_qq", "py": "part_py", "pz": "part_pz", "energy": "part_energy"},
        )


def test_parquet_nan_names_field_and_entry(tmp_path):
    path = tmp_path / "nan.parquet"
    write_parquet(path, part_py=ak.unflatten(np.array([1, 2, 3, np.nan, 5.0]), [2, 3]))
    with pytest.raises(
        InputError,
        match=r"nan\.parquet: field 'part_py' holds 1 NaN/inf "
        r"value\(s\) \(first in entry 1\)",
    ):
        read_jets(path, format="parquet", labels=QG)


def test_parquet_unmapped_label_names_the_values(tmp_path):
    path = tmp_path / "three.parquet"
    write_parquet(path, label=np.array([0, 2]))
    with pytest.raises(
        InputError,
        match=r"three\.parquet: field 'label' holds label value\(s\) "
        r"that map to no class: \{'2': 1\}",
    ):
        read_jets(path, format="parquet", labels=QG)


def test_parquet_missing_label_column(tmp_path):
    path = tmp_path / "nolabel.parquet"
    write_parquet(path)
    labels = Labels(QG.classes, mapping=QG.mapping, field="is_quark")
    with pytest.raises(
        InputError,
        match=r"nolabel\.parquet: the Parquet schema lacks "
        r"\['is_quark'\]",
    ):
        read_jets(path, format="parquet", labels=labels)


def test_empty_and_corrupt_parquet(tmp_path):
    empty = tmp_path / "empty.parquet"
    pq.write_table(
        pa.table(
            {
                "label": pa.array([], pa.int64()),
                **{
                    f"part_{q}": pa.array([], pa.list_(pa.float32()))
                    for q in ("px", "py", "pz", "energy")
                },
            }
        ),
        empty,
    )
    with pytest.raises(InputError, match=r"empty\.parquet: the Parquet file has no jets"):
        read_jets(empty, format="parquet", labels=QG)
    corrupt = tmp_path / "cut.parquet"
    write_parquet(corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    with pytest.raises(InputError, match=r"cut\.parquet: not a readable Parquet file"):
        read_jets(corrupt, format="parquet", labels=QG)


def test_hdf5_errors_name_file_and_dataset(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match=r"notes\.h5: not a readable HDF5 file"):
        read_jets(text, format="toptagging", labels=TOP)
    path = tmp_path / "images.h5"
    with h5py.File(path, "w") as file:
        file["QCD"] = np.zeros((3, 30, 30, 1))
    labels = Labels(("qcd", "top"), mapping={"QCD": "qcd", "TT": "top"})
    with pytest.raises(
        InputError,
        match=r"images\.h5: the HDF5 file \(one dataset per class\) "
        r"lacks \['TT'\]; it has \['QCD'\]",
    ):
        list(read(path, format="images-h5", labels=labels))
    with h5py.File(path, "w") as file:
        file["images"] = np.full((3, 30, 30), np.nan)
        file["labels"] = np.zeros(3, dtype=int)
    with pytest.raises(
        InputError,
        match=r"images\.h5: dataset 'images' holds 2700 NaN/inf "
        r"pixel\(s\) \(first in image 0\)",
    ):
        list(read(path, format="images-h5", labels=TOP))
    with pytest.raises(InputError, match=r"images\.h5: no key 'table'; the file has "):
        read_jets(path, format="toptagging", labels=TOP)


def test_nanoaod_without_links(tmp_path):
    path = tmp_path / "plain_nano.root"
    with uproot.recreate(path) as file:
        file["Events"] = {
            "FatJet": ak.zip(
                {
                    "pt": ak.Array([[300.0]]),
                    "eta": ak.Array([[0.1]]),
                    "phi": ak.Array([[0.2]]),
                    "mass": ak.Array([[80.0]]),
                }
            )
        }
    with pytest.raises(InputError, match=r"plain_nano\.root: no FatJet constituent links"):
        read_jets(path, format="nanoaod", labels=Labels(("a", "b"), class_name="a"))


def test_unknown_reader_option_suggests_the_closest():
    with pytest.raises(
        ValueError,
        match=r"format 'root' has no reader option 'branch'.*did you "
        r"mean 'branches'\?",
    ):
        read_jets("x.root", branch={})


def test_cartesian_conversion_matches_vector():
    rng = np.random.default_rng(0)
    pt, eta, phi, m = (
        rng.uniform(1, 100, 50),
        rng.normal(0, 2, 50),
        rng.uniform(-3, 3, 50),
        rng.uniform(0, 1, 50),
    )
    from jetimage.readers import _cartesian

    out = _cartesian(pt, eta, phi, m)
    v = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": m})
    for q in ("px", "py", "pz"):
        np.testing.assert_allclose(out[q], getattr(v, q), rtol=1e-12)
    np.testing.assert_allclose(out["E"], v.E, rtol=1e-12)
