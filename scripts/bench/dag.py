"""How long Snakemake takes to build the DAG and dry-run as the number of input files grows.

Creates N empty files matched by one sample's glob (a dry run never opens them), and times
`snakemake --dry-run` for N = 10 (the reference: start-up and parsing) and the requested counts,
each in a fresh directory. With ``--finished DIR`` (a finished run's directory and its
config.yaml) it also times a no-op rerun there. Writes ``results/benchmarks/dag.json``.

    python scripts/bench/dag.py [--files 10 100 1000] [--finished DIR]
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

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def dry_run(workdir: Path, config: Path) -> tuple[float, str]:
    tic = time.perf_counter()
    result = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - tic
    if result.returncode != 0:
        msg = f"dry run failed:\n{result.stderr[-4000:]}"
        raise SystemExit(msg)
    return seconds, result.stdout


def files_config(workdir: Path, n: int) -> Path:
    inputs = workdir / "inputs"
    inputs.mkdir(parents=True)
    for i in range(n):
        (inputs / f"JetClass_{i:05d}.root").touch()
    config = {
        "classes": ["qcd", "top"],
        "samples": {
            "jetclass": {
                "source": "files",
                "files": str(inputs / "*.root"),
                "format": "root",
                "labels": {"label_QCD": "qcd", "label_Tbqq": "top"},
            }
        },
        "models": {
            "hsf-cnn": {"architecture": "hsf-cnn"},
            "logistic": {"architecture": "logistic"},
        },
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--finished", help="directory of a finished run (with config.yaml)")
    parser.add_argument("--output", default="results/benchmarks/dag.json")
    args = parser.parse_args()

    results = {}
    for n in args.files:
        workdir = Path(tempfile.mkdtemp(prefix=f"jetimage-dag-{n}-"))
        seconds, out = dry_run(workdir, files_config(workdir, n))
        jobs = next(
            int(line.split()[1])
            for line in out.splitlines()  # the first job table
            if line.split()[:1] == ["images"] and len(line.split()) == 2
        )
        results[str(n)] = {"dry_run_s": seconds, "images_jobs": jobs}
        print(n, results[str(n)], flush=True)
    report = {
        "benchmark": "DAG build and dry run vs input files",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }
    if args.finished:
        finished = Path(args.finished)
        seconds, out = dry_run(finished, finished / "config.yaml")
        report["noop_rerun_s"] = seconds
        report["noop_rerun_scheduled_nothing"] = "Job stats" not in out
        print("no-op rerun", seconds, flush=True)
    smallest = str(min(args.files))
    for n in results:
        results[n]["ratio_to_smallest"] = results[n]["dry_run_s"] / results[smallest]["dry_run_s"]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
