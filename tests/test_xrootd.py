"""Files on XRootD storage: a workflow reading root:// URLs (a glob the server lists) equals
the same run on local paths; a server that goes away mid-file is a clear error naming the URL
after bounded retries, and leaves no store. Against a real XRootD server on 127.0.0.1."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import uproot
import yaml
import zarr

from conftest import REPO, run_snakemake, start_xrootd
from jetimage import ImageSpec
from jetimage.config import ConfigError, sample_files, validate
from jetimage.files import InputError, sha256sum, write_jets_root
from jetimage.images import write_image_store
from jetimage.readers import Labels, read, read_jets

SHARDS = [("top", "000"), ("top", "001"), ("qcd", "000"), ("qcd", "001")]


def files_config(files: dict[str, str]) -> dict:
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config["samples"] = {
        name: {"source": "files", "files": pattern, "format": "root", "class": name}
        for name, pattern in files.items()
    }
    config["predict"] = {}
    return config


@pytest.mark.slow
def test_a_workflow_reading_root_urls_equals_the_same_run_on_local_paths(
    tiny_run, xrootd, tmp_path
):
    """Samples and predict.files on root:// URLs: the same images, checksums, metrics and
    predictions as on local paths."""
    for sample, part in SHARDS:
        xrootd.add(
            f"store/{sample}/{part}.root", tiny_run / "results" / "jets" / sample / f"{part}.root"
        )
    runs = {
        "local": {s: str(xrootd.root / "store" / s / "*.root") for s in ("top", "qcd")},
        "remote": {s: f"{xrootd.url}/store/{s}/*.root" for s in ("top", "qcd")},
    }
    for name, files in runs.items():
        (tmp_path / name).mkdir()
        config = files_config(files)
        # predict.files takes root:// URLs too: one shard scored again, with a friend tree
        shard = files["top"].replace("*", "000")
        config["predict"] = {
            "models": ["hsf-cnn"],
            "root_friend": True,
            "files": [{"files": shard, "format": "root", "class": "top"}],
        }
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
        run_snakemake(tmp_path / name, tmp_path / name / "config.yaml")
    for sample, part in SHARDS:
        stores = [
            zarr.open_group(
                tmp_path / name / "results" / "images" / sample / f"{part}.zarr", mode="r"
            )
            for name in runs
        ]
        np.testing.assert_array_equal(stores[0]["images"][...], stores[1]["images"][...])
        assert stores[0].attrs["source_sha256"] == stores[1].attrs["source_sha256"]
        assert stores[1].attrs["source"] == f"{xrootd.url}/store/{sample}/{part}.root"
    predictions = [
        pd.read_parquet(
            tmp_path / name / "results" / "predictions" / "hsf-cnn" / "files" / "000.parquet"
        )
        for name in runs
    ]
    assert len(predictions[0]) > 0
    assert (predictions[1]["class_name"] == "top").all()
    np.testing.assert_array_equal(predictions[0]["score_top"], predictions[1]["score_top"])
    assert predictions[1]["source_file"].iloc[0] == f"{xrootd.url}/store/top/000.root"
    friend = (
        tmp_path / "remote" / "results" / "predictions" / "hsf-cnn" / "files" / "000.friend.root"
    )
    assert uproot.open(friend)["tree"].num_entries == len(predictions[1])
    for model in ("logistic", "hsf-cnn"):
        metrics = [
            json.loads(
                (tmp_path / name / "results" / "evaluation" / model / "metrics.json").read_text()
            )
            for name in runs
        ]
        assert metrics[0]["auc"] == metrics[1]["auc"]
        assert metrics[0]["n_test"] > 0


def test_root_url_globs_are_listed_by_the_server(xrootd, top_file):
    for name in ("a.root", "b.root", "c.txt"):
        xrootd.add(f"listing/{name}", top_file)
    config = files_config({"top": f"{xrootd.url}/listing/*.root", "qcd": str(top_file)})
    config = validate(config)
    assert sample_files(config, "top") == {
        "a": f"{xrootd.url}/listing/a.root",
        "b": f"{xrootd.url}/listing/b.root",
    }
    missing = files_config({"top": f"{xrootd.url}/listing/none_*.root", "qcd": str(top_file)})
    with pytest.raises(
        ConfigError,
        match=r"samples/top/files: .*none_\*\.root' matches no "
        r"file",
    ):
        validate(missing)
    parquet = files_config({"top": f"{xrootd.url}/listing/a.root", "qcd": str(top_file)})
    parquet["samples"]["top"]["format"] = "parquet"
    with pytest.raises(ConfigError, match="root:// files are read as ROOT"):
        validate(parquet)
    # a name that exists is that file, though it reads as a glob too (it would match 'a1.root')
    xrootd.add("listing/a[1].root", top_file)
    xrootd.add("listing/a1.root", top_file)
    literal = validate(
        files_config({"top": f"{xrootd.url}/listing/a[1].root", "qcd": str(top_file)})
    )
    assert sample_files(literal, "top") == {"a[1]": f"{xrootd.url}/listing/a[1].root"}
    # the same digest as the local file's, streamed from the server
    from jetimage.remote import checksum

    assert checksum(f"{xrootd.url}/listing/a.root") == sha256sum(top_file)


def test_a_server_that_goes_away_mid_file_fails_clearly_and_leaves_no_store(
    top_file, tmp_path, monkeypatch
):
    for name, value in (
        ("XRD_CONNECTIONWINDOW", "1"),
        ("XRD_CONNECTIONRETRY", "1"),
        ("XRD_REQUESTTIMEOUT", "5"),
        ("XRD_STREAMTIMEOUT", "5"),
    ):
        monkeypatch.setenv(name, value)
    server = start_xrootd()
    try:
        jets = read_jets(top_file)
        columns = {
            "part_px": jets.constituents.px,
            "part_py": jets.constituents.py,
            "part_pz": jets.constituents.pz,
            "part_energy": jets.constituents.E,
            "jet_pt": jets.table["pt"],
        }
        write_jets_root(tmp_path / "many.root", columns, basket_jets=100)  # many baskets
        url = server.add("many.root", tmp_path / "many.root")
        labels = Labels(("qcd", "top"), class_name="top")

        def batches():
            for i, batch in enumerate(read(url, format="root", labels=labels, step=100)):
                yield batch
                if i == 0:
                    server.stop()  # the server goes away after the first batch

        store = tmp_path / "many.zarr"
        with pytest.raises(
            InputError,
            match=rf"{url}: reading entries 100-200 of 'tree' "
            rf"failed after 3 attempts",
        ):
            write_image_store(
                store, batches(), ImageSpec(npix=16, width=1.6), attrs={"source": url}
            )
        assert not store.exists()
        assert not list(tmp_path.glob(".many.zarr*"))
    finally:
        server.remove()
    assert os.environ["XRD_CONNECTIONWINDOW"] == "1"
