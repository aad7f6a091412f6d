"""Zarr stores: round trips of images and jet tables, the Dask runner, atomic writes."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import zarr
from dask.callbacks import Callback

from jetimage import ImageSpec, make_images, zarr_store
from jetimage.files import InputError, atomic_path
from jetimage.images import write_image_store
from jetimage.parallel import TASKS_PER_WORKER, dask_runner
from jetimage.readers import Labels, read_jets
from jetimage.zarr_store import open_store, read_table

SPEC = ImageSpec(npix=(20, 20), width=(1.6, 1.6))


@pytest.fixture(scope="module")
def stores(top_file, qcd_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores")
    paths = []
    for name, path in (("qcd", qcd_file), ("top", top_file)):
        jets = read_jets(path, labels=Labels(("qcd", "top"), class_name=name))
        store = out / f"{name}.zarr"
        write_image_store(
            store,
            jets,
            SPEC,
            attrs={"sample": name, "source": str(path), "classes": ["qcd", "top"]},
            chunk_jets=100,
            num_workers=2,
        )
        paths.append(store)
    return paths


def test_image_store_round_trip(stores, top_file):
    jets = read_jets(top_file)
    group = open_store(stores[1])
    np.testing.assert_array_equal(group["images"][...], make_images(jets.constituents, SPEC))
    assert group["images"].chunks == (100, 1, 20, 20)
    table = read_table(group)
    np.testing.assert_array_equal(table["pt"], jets.table["pt"])
    assert group.attrs["image_spec"] == SPEC.to_dict()
    assert group.attrs["n_jets"] == len(jets)
    assert group.attrs["sample"] == "top"
    assert group.attrs["n_constituents_outside_window"] == table["n_outside_window"].sum()
    assert np.all(group["labels"][...] == 1)
    assert group.attrs["label_counts"] == {"qcd": 0, "top": len(jets)}


@pytest.mark.parametrize("table_chunk", [zarr_store.TABLE_CHUNK_JETS, 50])
def test_streamed_batches_write_the_same_store_as_one_batch(
    top_file, tmp_path, monkeypatch, table_chunk
):
    """Batches that do not align with the chunks (and a remainder) give the same store, also
    when the per-jet table is written in whole chunks while the batches stream."""
    monkeypatch.setattr(zarr_store, "TABLE_CHUNK_JETS", table_chunk)
    jets = read_jets(top_file)
    whole, streamed = tmp_path / "whole.zarr", tmp_path / "streamed.zarr"
    write_image_store(whole, jets, SPEC, attrs={}, chunk_jets=64)
    edges = [0, 37, 38, 200, 333, len(jets)]
    write_image_store(
        streamed,
        (jets[a:b] for a, b in zip(edges, edges[1:])),
        SPEC,
        attrs={},
        chunk_jets=64,
        num_workers=2,
    )
    a, b = open_store(whole), open_store(streamed)
    np.testing.assert_array_equal(a["images"][...], b["images"][...])
    assert b["images"].chunks == (64, 1, 20, 20)
    assert b["images"].shape[0] == len(jets)
    for name, values in read_table(a).items():
        np.testing.assert_array_equal(read_table(b)[name], values)
    assert b["labels"].chunks == (table_chunk,)
    assert b["labels"].shape == (len(jets),)


def test_a_store_with_no_jet_left_is_not_written(top_file, tmp_path):
    jets = read_jets(top_file)
    with pytest.raises(InputError, match=r"src\.root: no jet left to write"):
        write_image_store(tmp_path / "none.zarr", [jets[:0]], SPEC, attrs={"source": "src.root"})
    assert list(tmp_path.iterdir()) == []


def test_every_dask_scheduler_writes_the_same_store(top_file, tmp_path):
    jets = read_jets(top_file)
    stores = {}
    for scheduler in ("synchronous", "threads", "processes"):
        path = tmp_path / f"{scheduler}.zarr"
        write_image_store(
            path, jets, SPEC, attrs={}, chunk_jets=64, scheduler=scheduler, num_workers=2
        )
        stores[scheduler] = open_store(path)
    reference = stores["synchronous"]["images"][...]
    for group in stores.values():
        np.testing.assert_array_equal(group["images"][...], reference)
        np.testing.assert_array_equal(
            group["jets/n_outside_window"][...], stores["synchronous"]["jets/n_outside_window"][...]
        )
    with pytest.raises(ValueError, match="dask scheduler"):
        write_image_store(tmp_path / "x.zarr", jets, SPEC, attrs={}, scheduler="gpu")
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
def test_the_dask_runner_returns_every_result_in_order_from_few_tasks(scheduler):
    """Threads run one task per worker, processes at most TASKS_PER_WORKER per worker; results
    keep the order of the calls, and a call's error reaches the caller as itself."""
    tasks = []
    with (
        Callback(pretask=lambda key, dsk, state: tasks.append(key)),
        dask_runner(scheduler, 2) as run,
    ):
        assert run(math.sqrt, [(i,) for i in range(37)]) == [math.sqrt(i) for i in range(37)]
        assert run(math.sqrt, []) == []
        with pytest.raises(ValueError, match="math domain error"):
            run(math.sqrt, [(4.0,), (-1.0,), (9.0,)])
    most = {"synchronous": 1 + 1, "threads": 2 + 2, "processes": TASKS_PER_WORKER * 2 + 3}
    assert 0 < len(tasks) <= most[scheduler]


def test_dask_threads_take_calls_from_a_shared_queue():
    """A thread held up by a slow call takes no further call while the other threads do all the
    rest (fixed shares of calls would have left some of them waiting behind the slow one)."""
    last_done = threading.Event()
    threads = {}

    def call(i):
        threads[i] = threading.get_ident()
        if i == 0:
            assert last_done.wait(timeout=60), "the other thread never ran the last call"
        if i == 40:
            last_done.set()
        return i

    with dask_runner("threads", 2) as run:
        assert run(call, [(i,) for i in range(41)]) == list(range(41))
    assert threads[0] not in {threads[i] for i in range(1, 41)}


def test_a_failed_call_stops_the_dask_threads_from_taking_more():
    """The first error reaches the caller without the other threads working through the rest
    of the queue (each call here takes 10 ms; the failing one fails at once)."""
    started = []

    def call(i):
        started.append(i)
        if i == 0:
            msg = "bad chunk"
            raise RuntimeError(msg)
        time.sleep(0.01)

    with dask_runner("threads", 2) as run, pytest.raises(RuntimeError, match="bad chunk"):
        run(call, [(i,) for i in range(200)])
    assert len(started) < 100


def test_a_distributed_scheduler_address_writes_the_same_store(top_file, tmp_path):
    """A real dask.distributed scheduler with two worker processes, reached by its address as
    a cluster's would be, gives the same images as the threaded scheduler."""
    distributed = pytest.importorskip("distributed")
    jets = read_jets(top_file)
    threads = tmp_path / "threads.zarr"
    write_image_store(threads, jets, SPEC, attrs={}, chunk_jets=64, num_workers=2)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        remote = tmp_path / "remote.zarr"
        write_image_store(
            remote, jets, SPEC, attrs={}, chunk_jets=64, scheduler=cluster.scheduler_address
        )
    np.testing.assert_array_equal(
        open_store(remote)["images"][...], open_store(threads)["images"][...]
    )
    np.testing.assert_array_equal(
        open_store(remote)["jets/n_outside_window"][...],
        open_store(threads)["jets/n_outside_window"][...],
    )


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.zarr"

    def write_then_fail():
        with atomic_path(target) as tmp:
            zarr.open_group(tmp, mode="w").create_array("x", shape=(3,), dtype="f4")
            msg = "killed"
            raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="killed"):
        write_then_fail()
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_a_killed_attempt_are_removed_by_the_next(tmp_path):
    target = tmp_path / "out.zarr"
    stale = tmp_path / ".out.zarr.tmp-12345"  # as left by a SIGKILLed job
    zarr.open_group(stale, mode="w").create_array("x", shape=(3,), dtype="f4")
    (tmp_path / ".other.zarr.tmp-1").mkdir()  # another output's: not touched
    with atomic_path(target) as tmp:
        zarr.open_group(tmp, mode="w")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.zarr.tmp-1", "out.zarr"]
