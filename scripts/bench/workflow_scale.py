"""The workflow end to end at 100k and 1M jets read from files: each stage's wall time and peak RSS.

Input: JetClass-layout ROOT files of 100,000 jets each, made by repeating real generated jets
(Pythia 8 + FastJet, the default recipe, ``--events`` events per class, top and QCD mixed in
each file; repeated jets make the scores meaningless as physics, only the scale counts here).
Then, for each size, a fresh run of the workflow on those files (images → dataset_bucket →
dataset → train one epoch of ``logistic`` and ``hsf-cnn`` → evaluate → report) with the
buckets its size needs, and each rule's wall time (longest job, and all jobs summed) and peak RSS
(largest job) from Snakemake's own benchmark files. Writes
``results/benchmarks/workflow-scale.json``.

    python scripts/bench/workflow_scale.py [--sizes 100000 1000000] [--events 3000]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
JETS_PER_FILE = 100_000


def make_inputs(folder: Path, n_files: int, events: int) -> list[Path]:
    """``n_files`` JetClass-layout files of repeated generated top and QCD jets."""
    from jetimage.config import process_settings, validate
    from jetimage.files import write_jets_root
    from jetimage.generate import generate_jets

    paths = [folder / f"jets_{f:03d}.root" for f in range(n_files)]
    if all(p.exists() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    gen = validate(config)["generation"]
    columns = []
    for label, process in enumerate(("qcd", "top")):
        settings = process_settings(gen, process)
        tic = time.perf_counter()
        jets = generate_jets(settings, n_events=events, seed=100 + label)
        print(
            f"generated {len(jets['jet_pt'])} {process} jets in {time.perf_counter() - tic:.0f} s",
            flush=True,
        )
        jets["label_QCD"] = np.full(len(jets["jet_pt"]), label == 0)
        jets["label_Tbqq"] = np.full(len(jets["jet_pt"]), label == 1)
        columns.append(jets)
    import awkward as ak

    both = {
        k: ak.concatenate([c[k] for c in columns])
        if isinstance(columns[0][k], ak.Array)
        else np.concatenate([c[k] for c in columns])
        for k in columns[0]
    }
    n = len(both["jet_pt"])
    for f, path in enumerate(paths):
        index = np.random.default_rng(f).integers(0, n, JETS_PER_FILE)
        write_jets_root(path, {k: v[index] for k, v in both.items()})
        print(f"wrote {path}", flush=True)
    return paths


def stage_figures(workdir: Path) -> dict:
    """Per rule: jobs, longest and summed wall seconds, largest peak RSS (MB)."""
    figures: dict = {}
    for tsv in sorted((workdir / "results" / "benchmarks" / "rules").rglob("*.tsv")):
        rule = tsv.relative_to(workdir / "results" / "benchmarks" / "rules").parts[0]
        if rule.endswith(".tsv"):
            rule = rule[:-4]
        with tsv.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        entry = figures.setdefault(
            rule, {"jobs": 0, "longest_s": 0.0, "summed_s": 0.0, "peak_rss_mb": 0.0}
        )
        seconds, rss = float(row["s"]), float(row["max_rss"] or 0)
        entry["jobs"] += 1
        entry["longest_s"] = max(entry["longest_s"], seconds)
        entry["summed_s"] += seconds
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], rss)
    return figures


def run_size(base: Path, inputs: list[Path], n: int, memory_mb: float) -> dict:
    workdir = base / f"run-{n}"
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "inputs").mkdir(parents=True)
    for path in inputs[: n // JETS_PER_FILE]:
        (workdir / "inputs" / path.name).symlink_to(path.resolve())
    from jetimage.dataset import buckets_needed

    buckets = buckets_needed(n, 40 * 40 * 4, memory_mb)
    config = {
        "seed": 1,
        "classes": ["qcd", "top"],
        "signal": "top",
        "samples": {
            "jets": {
                "source": "files",
                "files": "inputs/*.root",
                "format": "root",
                "labels": {"label_QCD": "qcd", "label_Tbqq": "top"},
            }
        },
        "images": {"npix": [40, 40], "width": [1.6, 1.6]},
        "dataset": {"name": "scale", "buckets": buckets, "memory_mb": memory_mb},
        "training": {"epochs": 1, "batch_size": 128},
        "models": {
            "logistic": {"architecture": "logistic"},
            "hsf-cnn": {"architecture": "hsf-cnn"},
        },
        "evaluation": {"bootstrap": 20},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    tic = time.perf_counter()
    subprocess.run(
        [
            snakemake,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--cores",
            "2",
            "--quiet",
        ],
        check=True,
    )
    wall = time.perf_counter() - tic
    metrics = {
        m: json.loads((workdir / "results" / "evaluation" / m / "metrics.json").read_text())["auc"][
            "value"
        ]
        for m in config["models"]
    }
    return {
        "jets": n,
        "files": n // JETS_PER_FILE,
        "buckets": buckets,
        "wall_s": wall,
        "stages": stage_figures(workdir),
        "auc": metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--memory-mb", type=float, default=4000.0)
    parser.add_argument("--workdir", default="results/bench-workflow-scale")
    parser.add_argument("--out", default="results/benchmarks/workflow-scale.json")
    args = parser.parse_args()
    base = Path(args.workdir).resolve()
    inputs = make_inputs(base / "inputs", max(args.sizes) // JETS_PER_FILE, args.events)
    result = {"sizes": {}}
    for n in sorted(args.sizes):
        result["sizes"][str(n)] = entry = run_size(base, inputs, n, args.memory_mb)
        print(json.dumps(entry, indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
