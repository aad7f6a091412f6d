"""Fault injection: SIGKILL the workflow at random moments, rerun, and compare with a clean run.

Runs the workflow on a config in a fresh directory; each round waits until a job of the target
stage (generate, images, dataset_bucket, train, dataset, in turn) is running,
sleeps a random fraction of a second, and kills Snakemake and every job it started with SIGKILL
(no cleanup runs). The next round reruns Snakemake as a user would (`--unlock`, then the same
command: no `--rerun-incomplete`, no manual cleanup). After the last kill the run goes to the
end, and its outputs must equal those of an uninterrupted run: the same images and dataset, the
same metrics.

    python tests/faults/kill_and_rerun.py --config config/tiny.yaml --reference DIR [--kills 4]

Without ``--reference`` an uninterrupted run is made first. Exit status 0 when every kill was
survived and the outputs match; a JSON summary goes to stdout.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
STAGES = ("generate", "images", "dataset_bucket", "train", "dataset")


def command(workdir: Path, config: Path, *extra: str) -> list[str]:
    return [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
        *extra,
    ]


def running_outputs(workdir: Path) -> list[str]:
    """Outputs Snakemake has marked incomplete: the jobs running when it was killed."""
    marks = workdir / ".snakemake" / "incomplete"
    found = []
    for mark in marks.rglob("*") if marks.exists() else []:
        if mark.is_file():
            try:
                found.append(base64.b64decode(mark.name.encode()).decode())
            except ValueError:
                found.append(mark.name)
    return sorted(found)


def stage_started(workdir: Path, stage: str, since: float) -> bool:
    logs = workdir / "results" / "logs" / stage
    return logs.exists() and any(p.stat().st_mtime >= since for p in logs.rglob("*.log"))


def kill_during(
    workdir: Path, config: Path, stage: str, rng: random.Random, timeout: float
) -> dict:
    """Run until ``stage`` has a job running, then SIGKILL everything after a random delay."""
    subprocess.run(command(workdir, config, "--unlock"), capture_output=True, check=True)
    start = time.time()
    proc = subprocess.Popen(
        command(workdir, config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while proc.poll() is None and not stage_started(workdir, stage, start):
        if time.time() - start > timeout:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        return {"stage": stage, "killed": False, "reason": "the run ended first"}
    time.sleep(rng.uniform(0.0, 1.5))
    running = running_outputs(workdir)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return {
        "stage": stage,
        "killed": True,
        "after_s": round(time.time() - start, 2),
        "running": running,
    }


def complete(workdir: Path, config: Path) -> None:
    subprocess.run(command(workdir, config, "--unlock"), capture_output=True, check=True)
    result = subprocess.run(command(workdir, config), capture_output=True, text=True)
    if result.returncode != 0:
        msg = f"the rerun after the kills failed:\n{result.stderr[-6000:]}"
        raise SystemExit(msg)


def compare(run: Path, reference: Path) -> list[str]:
    """Differences between two finished runs' images, dataset and metrics (empty if none)."""
    problems = []
    stores = sorted(
        p.relative_to(reference) for p in (reference / "results").glob("images/*/*.zarr")
    )
    stores += sorted(
        p.relative_to(reference) for p in (reference / "results").glob("datasets/*.zarr")
    )
    for rel in stores:
        a, b = zarr.open_group(reference / rel, mode="r"), zarr.open_group(run / rel, mode="r")
        arrays = (
            ["images"]
            if "images" in a
            else [f"{s}/{n}" for s in ("train", "val", "test") for n in ("images", "labels")]
        )
        for name in arrays:
            if not np.array_equal(a[name][...], b[name][...]):
                problems.append(f"{rel}/{name} differs")
    for metrics in sorted((reference / "results" / "evaluation").glob("*/metrics.json")):
        rel = metrics.relative_to(reference)
        ref, got = json.loads(metrics.read_text()), json.loads((run / rel).read_text())
        for key in [
            "auc",
            "accuracy",
            "confusion_matrix",
            *(k for k in ref if k.startswith("rejection_at_")),
        ]:
            if ref.get(key) != got.get(key):
                problems.append(f"{rel}: {key} {got.get(key)} != {ref.get(key)}")
    leftovers = [str(p.relative_to(run)) for p in (run / "results").rglob(".*.tmp-*")]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config" / "tiny.yaml"))
    parser.add_argument("--reference", help="a finished run of the same config (its directory)")
    parser.add_argument("--kills", type=int, default=len(STAGES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to run (default: a new temporary directory)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait per round")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="jetimage-faults-"))
    config = workdir / "config.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.config, config)
    if args.reference:
        reference = Path(args.reference)
    else:
        reference = workdir / "reference"
        reference.mkdir()
        shutil.copy(args.config, reference / "config.yaml")
        complete(reference, reference / "config.yaml")
    run = workdir / "run"
    run.mkdir(exist_ok=True)
    kills = [
        kill_during(run, config, STAGES[i % len(STAGES)], rng, args.timeout)
        for i in range(args.kills)
    ]
    complete(run, config)
    problems = compare(run, reference)
    summary = {
        "kills": kills,
        "survived": sum(k["killed"] for k in kills) if not problems else 0,
        "attempted": args.kills,
        "outputs_equal": not problems,
        "problems": problems,
        "workdir": str(workdir),
    }
    print(json.dumps(summary, indent=2))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
