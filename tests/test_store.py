"""Zarr stores: round trips of images and jet tables, dataset splits, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from jetimage import ImageSpec, make_images
from jetimage.dataset import Source, build_dataset, split_indices
from jetimage.io import atomic_path, read_jets_root
from jetimage.store import open_store, read_table, write_image_store

SPEC = ImageSpec(npix=(20, 20), width=(1.6, 1.6))


@pytest.fixture(scope="module")
def stores(top_file, qcd_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores")
    paths = []
    for name, path in (("qcd", qcd_file), ("top", top_file)):
        jets = read_jets_root(path)
        store = out / f"{name}.zarr"
        write_image_store(store, jets, SPEC, attrs={"sample": name, "source": str(path)},
                          chunk_jets=100, num_workers=2)
        paths.append(store)
    return paths


def test_image_store_round_trip(stores, top_file):
    jets = read_jets_root(top_file)
    group = open_store(stores[1])
    np.testing.assert_array_equal(group["images"][...], make_images(jets.constituents, SPEC))
    assert group["images"].chunks == (100, 1, 20, 20)
    table = read_table(group)
    np.testing.assert_array_equal(table["pt"], jets.table["pt"])
    assert group.attrs["image_spec"] == SPEC.to_dict()
    assert group.attrs["n_jets"] == len(jets) and group.attrs["sample"] == "top"
    assert group.attrs["n_constituents_outside_window"] == table["n_outside_window"].sum()


def test_every_dask_scheduler_writes_the_same_store(top_file, tmp_path):
    jets = read_jets_root(top_file)
    stores = {}
    for scheduler in ("synchronous", "threads", "processes"):
        path = tmp_path / f"{scheduler}.zarr"
        write_image_store(path, jets, SPEC, attrs={}, chunk_jets=64, scheduler=scheduler,
                          num_workers=2)
        stores[scheduler] = open_store(path)
    reference = stores["synchronous"]["images"][...]
    for group in stores.values():
        np.testing.assert_array_equal(group["images"][...], reference)
        np.testing.assert_array_equal(group["jets/n_outside_window"][...],
                                      stores["synchronous"]["jets/n_outside_window"][...])
    with pytest.raises(ValueError, match="dask scheduler"):
        write_image_store(tmp_path / "x.zarr", jets, SPEC, attrs={}, scheduler="gpu")
    assert not (tmp_path / "x.zarr").exists()


def test_splits_are_disjoint_deterministic_and_complete():
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    a, b = split_indices(1000, fractions, seed=3), split_indices(1000, fractions, seed=3)
    joined = np.concatenate([a["train"], a["val"], a["test"]])
    assert sorted(joined) == list(range(1000))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], split_indices(1000, fractions, seed=4)["train"])
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, {"train": 0.5, "val": 0.1, "test": 0.1}, seed=0)


def test_dataset_gathers_every_jet_with_its_label(stores, tmp_path):
    path = tmp_path / "ds.zarr"
    attrs = build_dataset(path, [Source(str(stores[0]), 0), Source(str(stores[1]), 1)],
                          classes=["qcd", "top"], fractions={"train": 0.6, "val": 0.2,
                                                             "test": 0.2},
                          seed=1, chunk_jets=64, num_workers=2)
    root = zarr.open_group(path, mode="r")
    sources = [zarr.open_group(s, mode="r")["images"][...] for s in stores]
    total = 0
    for split in ("train", "val", "test"):
        group = root[split]
        images, labels = group["images"][...], group["labels"][...]
        src, row = group["jets/source"][...], group["jets/source_row"][...]
        for i in range(len(labels)):  # every image is its source's row, with its label
            np.testing.assert_array_equal(images[i], sources[src[i]][row[i]])
        assert np.array_equal(labels, src)  # source 0 is qcd (0), source 1 top (1)
        total += len(labels)
        assert sum(attrs["splits"][split].values()) == len(labels)
    assert total == sum(len(s) for s in sources)
    train = root["train/images"][...]
    np.testing.assert_allclose(attrs["normalization"]["mean"], [train.mean()], rtol=1e-5)
    np.testing.assert_allclose(attrs["normalization"]["std"], [train.std()], rtol=1e-4)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        zarr.open_group(tmp, mode="w").create_array("x", shape=(3,), dtype="f4")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
