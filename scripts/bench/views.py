"""The images stage's one pass over a file, by the views it writes, and the dataset stage with
the particle view, at two sizes or more.

Files of ``--sizes`` jets in the JetClass layout are tiled from the generated top and QCD jets
of a default run (``results/jets``; ``make run`` first) and cached under ``--workdir``. For each
size, each in a fresh process on one core (one Dask worker), the images stage
(``images.write_image_store`` reading the file in batches) writing:

- ``images``: the image only (what the stage wrote before the particle view);
- ``images+particles``: and the particle view (``particles.max`` 128);
- ``all``: and the observables (the default: every view in one read of the file);

with its time, peak RSS (VmHWM) and bytes stored per jet of each array. For the design
choice, the bytes per jet that a per-file constituent store (the ragged px, py, pz, E as
float32, charge int8 and PDG id int16, Zstandard level 1, as the stores are) would hold, and
the input file's. Then the dataset stage (``dataset.build_dataset``, buckets as
``--memory-mb`` asks) on the ``all`` stores of the smallest size, tiled to ``--dataset-sizes``
jets (hard-linked copies of the store): time and peak RSS. Writes
``results/benchmarks/views.json``.

    python scripts/bench/views.py [--sizes 100000 300000] [--dataset-sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

import jetimage
from jetimage.files import write_jets_root
from jetimage.images import Views, write_image_store
from jetimage.pixelate import ImageSpec
from jetimage.readers import Labels, read

VARIANTS = {
    "images": {},
    "images+particles": {"max_particles": 128},
    "all": {"max_particles": 128, "radius": 0.8},
}
CLASSES = ("qcd", "top")


def tiled_file(size: int, workdir: Path) -> Path:
    """A JetClass-layout file of ``size`` jets tiled from the default run's generated jets."""
    path = workdir / f"tiled-{size}.root"
    if path.exists():
        return path
    shards = sorted(Path("results/jets").glob("*/*.root"))
    if not shards:
        sys.exit("no results/jets/*/*.root: run `make run` first")
    whole = ak.concatenate([uproot.open(p)["tree"].arrays() for p in shards])
    columns = {f: whole[f] for f in whole.fields if f != "npart"}
    index = np.arange(size) % len(whole)
    workdir.mkdir(parents=True, exist_ok=True)
    write_jets_root(path, {k: v[index] for k, v in columns.items()})
    return path


def peak_rss_mb() -> float:
    """VmHWM of this process (starts afresh at exec), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stage(path: Path, variant: str, out: Path) -> dict:
    """One images-stage run (this process, one core): time, peak RSS, bytes per jet."""
    from jetimage.substructure import compile_kernel

    compile_kernel()  # load the compiled kernel from numba's cache (as the install step made it)
    shutil.rmtree(out, ignore_errors=True)
    labels = Labels(CLASSES, class_name="top")
    tic = time.perf_counter()
    attrs = write_image_store(
        out,
        read(path, format="root", labels=labels),
        Views(ImageSpec(), **VARIANTS[variant]),
        attrs={"source": str(path), "classes": list(CLASSES)},
    )
    seconds = time.perf_counter() - tic
    n = attrs["n_jets"]
    arrays = {
        "images": out / "images",
        "particles": out / "particles",
        "jets_table": out / "jets",
    }
    return {
        "jets": n,
        "seconds": seconds,
        "jets_per_s": n / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "bytes_per_jet": {k: tree_bytes(p) / n for k, p in arrays.items() if p.exists()},
    }


def constituent_store_bytes(path: Path, workdir: Path) -> dict:
    """Bytes per jet of the ragged constituents stored as a per-file constituent store would."""
    import zarr

    from jetimage.zarr_store import ColumnWriter

    arrays = uproot.open(path)["tree"].arrays(
        ["part_px", "part_py", "part_pz", "part_energy", "part_charge", "part_pid"]
    )
    out = workdir / "constituents.zarr"
    shutil.rmtree(out, ignore_errors=True)
    group = zarr.open_group(out, mode="w")
    writer = ColumnWriter(group, chunk_jets=65_536)
    flat = {
        "px": np.float32,
        "py": np.float32,
        "pz": np.float32,
        "energy": np.float32,
        "charge": np.int8,
        "pid": np.int16,
    }
    writer.append(
        {
            name: np.asarray(ak.flatten(arrays[f"part_{name}"]), dtype=dtype)
            for name, dtype in flat.items()
        }
    )
    writer.close()
    n = len(arrays)
    counts = np.asarray(ak.num(arrays["part_px"]))
    return {
        "jets": n,
        "mean_constituents": float(counts.mean()),
        "bytes_per_jet": tree_bytes(out) / n + 8,  # + the offsets, one int64 a jet
        "input_file_bytes_per_jet": path.stat().st_size / n,
    }


def dataset_run(store: Path, size: int, workdir: Path, memory_mb: float) -> dict:
    """The dataset stage on ``size`` jets: copies (hard links) of ``store`` (one process)."""
    from jetimage.dataset import buckets_needed, build_dataset
    from jetimage.zarr_store import open_store

    per_file = int(open_store(store).attrs["n_jets"])
    copies = max(1, round(size / per_file))
    stores = []
    for k in range(copies):
        copy = workdir / f"dataset-{size}" / f"{k}.zarr"
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(store, copy, copy_function=os.link)
        stores.append(copy)
    group = open_store(store)
    views = [group[v] for v in ("images", "particles/features", "particles/mask")]
    jet_bytes = sum(int(np.prod(v.shape[1:])) * v.dtype.itemsize for v in views)
    buckets = buckets_needed(per_file * copies, jet_bytes, memory_mb)
    out = workdir / f"dataset-{size}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    tic = time.perf_counter()
    attrs = build_dataset(
        out,
        stores,
        classes=list(CLASSES),
        fractions={"train": 0.7, "val": 0.15, "test": 0.15},
        seed=1,
        buckets=buckets,
        memory_mb=memory_mb,
        num_workers=1,
    )
    seconds = time.perf_counter() - tic
    n = sum(sum(c.values()) for c in attrs["splits"].values())
    result = {
        "jets": n,
        "files": copies,
        "buckets": buckets,
        "seconds": seconds,
        "jets_per_s": n / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "dataset_bytes_per_jet": tree_bytes(out) / n,
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


def child(*args: str) -> dict:
    """Run this script's ``args`` in a fresh process; its last line of output, parsed."""
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--dataset-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--memory-mb", type=float, default=4000)
    parser.add_argument("--workdir", type=Path, default=Path("results/bench-views"))
    parser.add_argument("--stage", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.stage:
        print(json.dumps(stage(Path(args.stage[0]), args.stage[1], Path(args.stage[2]))))
        return
    if args.dataset:
        store, size = Path(args.dataset[0]), int(args.dataset[1])
        print(json.dumps(dataset_run(store, size, args.workdir, args.memory_mb)))
        return
    results: dict = {
        "machine": platform.processor() or platform.machine(),
        "jetimage": jetimage.__version__,
        "cores": 1,
        "stage": {},
        "dataset": {},
    }
    for size in args.sizes:
        path = tiled_file(size, args.workdir)
        results["stage"][str(size)] = {}
        for variant in VARIANTS:
            out = args.workdir / f"{variant}-{size}.zarr"
            run = child("--stage", str(path), variant, str(out))
            results["stage"][str(size)][variant] = run
            print(size, variant, json.dumps(run), flush=True)
    smallest = min(args.sizes)
    results["constituent_store"] = constituent_store_bytes(
        tiled_file(smallest, args.workdir), args.workdir
    )
    print("constituent store", results["constituent_store"], flush=True)
    store = args.workdir / f"all-{smallest}.zarr"
    for size in args.dataset_sizes:
        run = child("--dataset", str(store), str(size), "--workdir", str(args.workdir))
        results["dataset"][str(size)] = run
        print("dataset", size, json.dumps(run), flush=True)
    out = Path("results/benchmarks/views.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
