"""Predictions on any input format: the same scores as evaluate for the same jets, the truth
kept, and ROOT friend trees with one entry per input entry."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot
import yaml

from conftest import REPO, add_code, dry_run_with_library, run_snakemake, scheduled_jobs
from jetimage.readers import Labels, read, read_jets

pytestmark = pytest.mark.slow


def toptagging_file(path, jets_file) -> None:
    """The jets of a file in the Top Quark Tagging layout (pT-ordered, zero-padded to 200)."""
    c = read_jets(jets_file).constituents
    c = c[ak.argsort(c.pt, axis=1, ascending=False)]
    columns = {}
    for q, f in (("E", "E"), ("PX", "px"), ("PY", "py"), ("PZ", "pz")):
        padded = ak.to_numpy(ak.fill_none(ak.pad_none(getattr(c, f), 200, clip=True), 0.0))
        columns.update({f"{q}_{i}": padded[:, i] for i in range(200)})
    frame = pd.DataFrame(columns)
    frame["is_signal_new"] = 1
    frame.to_hdf(path, key="table", mode="w", format="fixed")


@pytest.fixture(scope="module")
def predict_any(tiny_run):
    """The tiny run's models scoring one of its shards rewritten as an RNTuple and as a Top
    Tagging HDF5 file, with friend trees; returns the config's path."""
    shard = tiny_run / "results" / "jets" / "top" / "000.root"
    inputs = tiny_run / "inputs"
    inputs.mkdir(exist_ok=True)
    arrays = uproot.open(shard)["tree"].arrays()
    with uproot.recreate(inputs / "top_rntuple.root") as file:
        file["tree"] = {name: arrays[name] for name in arrays.fields}
    toptagging_file(inputs / "top_tagging.h5", shard)
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config["predict"].update(
        models=["hsf-cnn", "hsf-cnn-tuned", "pfn"],  # the fine-tuned CNN scores files too
        root_friend=True,
        files=[
            {"files": str(inputs / "top_rntuple.root"), "format": "root", "class": "top"},
            {
                "files": str(inputs / "top_tagging.h5"),
                "format": "toptagging",
                "labels": {0: "qcd", 1: "top"},
            },
        ],
    )
    path = tiny_run / "predict-any.yaml"
    path.write_text(yaml.safe_dump(config))
    # the friend tree only for the ROOT input; the sample's predictions are already there but
    # for the fine-tuned CNN's
    assert scheduled_jobs(tiny_run, path) == {
        "predict": 2,
        "predict_file": 6,
        "predict_friend": 9,
        "all": 1,
    }
    run_snakemake(tiny_run, path)
    return path


@pytest.mark.parametrize("model", ["hsf-cnn", "hsf-cnn-tuned", "pfn"])
def test_predict_reads_any_format_and_equals_evaluate(tiny_run, predict_any, model):
    """The image model pixelates each file, the particle model builds its particle view: both
    give evaluate's scores for the same jets from a ROOT RNTuple and a Top Tagging HDF5 file."""
    results = tiny_run / "results"
    shard = results / "jets" / "top" / "000.root"
    evaluated = pd.read_parquet(results / "evaluation" / model / "scores.parquet")
    evaluated = evaluated[evaluated["source_file"] == "results/jets/top/000.root"]
    assert len(evaluated) > 5
    n_jets = uproot.open(shard)["tree"].num_entries
    for name in ("top_rntuple", "top_tagging"):
        predicted = pd.read_parquet(results / "predictions" / model / "files" / f"{name}.parquet")
        assert len(predicted) == n_jets
        assert (predicted["class_name"] == "top").all()
        joined = evaluated.merge(predicted, on="entry", suffixes=("", "_pred"))
        assert len(joined) == len(evaluated)
        for cls in ("qcd", "top"):
            assert (joined[f"score_{cls}"] - joined[f"score_{cls}_pred"]).abs().max() < 1e-5
    friend = uproot.open(results / "predictions" / model / "files" / "top_rntuple.friend.root")[
        "tree"
    ]
    assert friend.num_entries == n_jets
    predicted = pd.read_parquet(results / "predictions" / model / "files" / "top_rntuple.parquet")
    np.testing.assert_allclose(
        friend["score_top"].array(library="np")[predicted["entry"]],
        predicted["score_top"],
        rtol=1e-6,
    )
    assert set(friend["label"].array(library="np")) == {1}
    sample_friend = uproot.open(results / "predictions" / model / "top" / "000.friend.root")["tree"]
    assert sample_friend.num_entries == n_jets


def test_a_change_of_the_prediction_code_reruns_every_prediction(tiny_run, predict_any, tmp_path):
    """predict_file has the code digest in its params as every rule: a library change reruns
    the files' predictions too, and their friend trees; evaluate, which shares the inference
    module and not the predict stage's, stays."""
    assert dry_run_with_library(
        tiny_run, tmp_path, {"predict.py": add_code}, config="predict-any.yaml"
    ) == {"predict": 6, "predict_file": 6, "predict_friend": 9, "all": 1}


def test_a_nanoaod_friend_tree_holds_a_score_per_fat_jet(tiny_run, shared_data, tmp_path):
    from jetimage.friends import write_friend_tree
    from jetimage.inference import load_exported
    from jetimage.predict import score_batches

    model = tiny_run / "results" / "models" / "hsf-cnn"
    session, info = load_exported(model / "model.pt", model / "model.onnx")
    nano = shared_data / "nano_tt_v15.root"
    labels = Labels(("qcd", "top"), class_name="top")
    frame = score_batches(
        read(nano, format="nanoaod", labels=labels, step=50), session, info, source=str(nano)
    )
    n = write_friend_tree(frame, nano, tmp_path / "nano.friend.root", format="nanoaod", options={})
    events = uproot.open(nano)["Events"]
    friend = uproot.open(tmp_path / "nano.friend.root")["Events"]
    assert n == friend.num_entries == events.num_entries
    scores = friend["FatJet_score_top"].array()
    assert ak.all(ak.num(scores) == ak.num(events["FatJet_pt"].array()))
    for entry, subentry, score in frame[["entry", "jet_subentry", "score_top"]].itertuples(
        index=False
    ):
        assert scores[entry][subentry] == pytest.approx(score, rel=1e-6)
    # the fat jets without linked constituents were not scored
    assert int(ak.sum(np.isnan(ak.flatten(scores)))) == ak.sum(ak.num(scores)) - len(frame) > 0


def _far_apart(n: int) -> dict[str, ak.Array]:
    """``n`` jets of two 100 GeV constituents at η = ±2: their axis lies between them, 2 away
    from each, so their image (1.6 wide in the tiny run) is empty."""
    eta = np.tile([2.0, -2.0], n)
    pt = np.full(2 * n, 100.0)
    q = {"px": pt, "py": np.zeros(2 * n), "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)}
    return {k: ak.unflatten(v, np.full(n, 2)) for k, v in q.items()}


@pytest.mark.parametrize("model", ["hsf-cnn", "pfn"])
def test_predict_claims_no_truth_without_labels_and_skips_jets_the_images_stage_drops(
    tiny_run, shared_data, tmp_path, model
):
    """A file read without labels gets no label or class_name (in Parquet and friend tree),
    on a JetClass-layout Parquet file and a PFNano file; jets whose image is empty are not
    scored but counted, exactly the jets the images stage drops."""
    from jetimage.batches import Counts
    from jetimage.friends import write_friend_tree
    from jetimage.images import write_image_store
    from jetimage.inference import load_exported
    from jetimage.pixelate import ImageSpec
    from jetimage.predict import score_batches

    folder = tiny_run / "results" / "models" / model
    session, info = load_exported(folder / "model.pt", folder / "model.onnx")
    c = read_jets(tiny_run / "results" / "jets" / "top" / "000.root").constituents[:10]
    far = _far_apart(3)
    columns = {  # entries 0, 4 and 8 are far apart
        name: ak.concatenate([c[q][:4], far[q][:1], c[q][4:7], far[q][1:2], c[q][7:], far[q][2:]])
        for q, name in (
            ("px", "part_px"),
            ("py", "part_py"),
            ("pz", "part_pz"),
            ("E", "part_energy"),
        )
    }
    path = tmp_path / "unlabelled.parquet"
    ak.to_parquet(ak.zip(columns, depth_limit=1), path)
    counts = Counts()
    frame = score_batches(
        read(path, format="parquet"), session, info, source=str(path), labelled=False, counts=counts
    )
    assert "label" not in frame
    assert "class_name" not in frame
    assert counts.dropped == {"empty_image": 3}
    assert list(frame["entry"]) == [e for e in range(13) if e not in (4, 8, 12)]
    stage = Counts()
    write_image_store(
        tmp_path / "stage.zarr",
        read(path, format="parquet", counts=stage),
        ImageSpec.from_dict(info["image_spec"]),
        attrs={},
        counts=stage,
        max_dropped_fraction=0.5,
    )
    assert stage.dropped["empty_image"] == 3
    pfnano = shared_data / "pfnano.root"
    frame = score_batches(
        read(pfnano, format="nanoaod"), session, info, source=str(pfnano), labelled=False
    )
    assert not {"label", "class_name"} & set(frame.columns)
    write_friend_tree(frame, pfnano, tmp_path / "f.root", format="nanoaod", options={})
    branches = set(uproot.open(tmp_path / "f.root")["Events"].keys())
    assert {"FatJet_score_qcd", "FatJet_score_top"} <= branches
    assert not any("label" in b for b in branches)
