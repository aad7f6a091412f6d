"""Peak memory of the images stage against the size of its input file, in one run.

Writes a JetClass-layout ROOT file of N jets and one of 10 N jets (the same generated jets,
repeated), then, each in a fresh process, runs the images stage's streaming path (reader in
batches → chunk-aligned Zarr store) and, for comparison, a whole-file read. Peak RSS is the
process's own high-water mark (``VmHWM``). Writes ``results/benchmarks/readers.json``.

    python scripts/bench/readers.py [--jets 40000] [--batch 8192]

With ``--xrootd-dir DIR --xrootd-url root://host:port//DIR`` (a running XRootD server that
serves DIR) the files are written there and the streaming path is also timed reading them
over XRootD (``remote`` mode), as a sample with root:// files is read.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

import jetimage

CHILD = """
import sys, time
from jetimage import ImageSpec, readers
from jetimage.images import write_image_store
mode, path, out, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
labels = readers.Labels(("qcd", "top"), mapping={"label_QCD": "qcd", "label_Tbqq": "top"})
tic = time.perf_counter()
if mode in ("stream", "remote"):
    batches = readers.read(path, format="root", labels=labels, step=batch)
    n = write_image_store(out, batches, ImageSpec(npix=40, width=1.6), attrs={},
                          num_workers=1)["n_jets"]
else:
    n = len(readers.read_jets(path, labels=labels))
seconds = time.perf_counter() - tic
# VmHWM: this process's own peak (ru_maxrss would carry the parent's over fork and exec)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(n, seconds, hwm)
"""


def write_file(path: Path, jets, repeat: int) -> None:
    from jetimage.files import write_jets_root

    cons = ak.concatenate([jets.constituents] * repeat)
    n = len(cons)
    top = np.tile(jets.table["label"] == 1, repeat)
    write_jets_root(
        path,
        {
            "part_px": cons.px,
            "part_py": cons.py,
            "part_pz": cons.pz,
            "part_energy": cons.E,
            "jet_pt": np.tile(jets.table["pt"], repeat),
            "label_QCD": ~top,
            "label_Tbqq": top,
            "jet_index": np.arange(n),
        },
    )


def source_jets(n: int):
    """Generated top and QCD jets (about n of them), labelled."""
    from jetimage.batches import Jets
    from jetimage.files import write_jets_root
    from jetimage.generate import GeneratorSettings, generate_jets
    from jetimage.readers import Labels, read_jets

    tmp = Path(tempfile.mkdtemp())
    parts = []
    for label, process in enumerate(("qcd", "top")):
        path = tmp / f"{process}.root"
        write_jets_root(
            path, generate_jets(GeneratorSettings(process), n_events=n // 3, seed=label + 1)
        )
        parts.append(
            read_jets(path, labels=Labels(("qcd", "top"), class_name=("qcd", "top")[label]))
        )
    table = {k: np.concatenate([p.table[k] for p in parts]) for k in ("pt", "label")}
    return Jets(ak.concatenate([p.constituents for p in parts]), table)


def run(mode: str, path, out: Path, batch: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(out), str(batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    n, seconds, rss_kb = result.stdout.split()
    return {
        "jets": int(n),
        "seconds": float(seconds),
        "jets_per_s": int(n) / float(seconds),
        "peak_rss_mb": int(rss_kb) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=40000, help="jets in the small file")
    parser.add_argument("--batch", type=int, default=8192, help="jets read at a time")
    parser.add_argument("--output", default="results/benchmarks/readers.json")
    parser.add_argument("--xrootd-dir", help="a folder a running XRootD server serves")
    parser.add_argument("--xrootd-url", help="that folder's root:// URL")
    args = parser.parse_args()

    jets = source_jets(args.jets // 4)
    repeat = max(1, round(args.jets / len(jets)))
    tmp = Path(tempfile.mkdtemp())
    where = Path(args.xrootd_dir) if args.xrootd_dir else tmp
    files = {"1x": where / "small.root", "10x": where / "large.root"}
    write_file(files["1x"], jets, repeat)
    write_file(files["10x"], jets, 10 * repeat)
    modes = ("stream", "whole") + (("remote",) if args.xrootd_url else ())
    results = {}
    for size, path in files.items():
        for mode in modes:
            source = f"{args.xrootd_url}/{path.name}" if mode == "remote" else path
            results[f"{mode}_{size}"] = run(mode, source, tmp / f"{size}-{mode}.zarr", args.batch)
            results[f"{mode}_{size}"]["file_mb"] = path.stat().st_size / 2**20
            print(size, mode, results[f"{mode}_{size}"], flush=True)
    report = {
        "benchmark": "images stage peak memory vs input size",
        "jetimage": jetimage.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "batch_jets": args.batch,
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
        "stream_rss_ratio_10x_over_1x": results["stream_10x"]["peak_rss_mb"]
        / results["stream_1x"]["peak_rss_mb"],
        "whole_rss_ratio_10x_over_1x": results["whole_10x"]["peak_rss_mb"]
        / results["whole_1x"]["peak_rss_mb"],
    }
    if args.xrootd_url:
        report["remote_rss_ratio_10x_over_1x"] = (
            results["remote_10x"]["peak_rss_mb"] / results["remote_1x"]["peak_rss_mb"]
        )
        report["remote_time_ratio_10x_over_1x"] = (
            results["remote_10x"]["seconds"] / results["remote_1x"]["seconds"]
        )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if "ratio" in k}, indent=2))


if __name__ == "__main__":
    main()
