"""The tiny workflow on a real SLURM (tests/slurm/start-local-slurm.sh starts one here): every
job goes through sbatch, training asks for a GPU, and the outputs equal those of a local run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
import zarr

from conftest import REPO, snakemake_command

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def slurm_reachable() -> str | None:
    """Why SLURM cannot be used here, or None if it can."""
    if not shutil.which("sbatch"):
        return "no sbatch on PATH (start one with tests/slurm/start-local-slurm.sh)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 10 s"
    if out.returncode != 0 or not re.search(r"idle|mixed|allocated", out.stdout):
        return f"no SLURM node up (sinfo: {out.stdout.strip() or out.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    reason = slurm_reachable()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("slurm-run")
    config = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    config["training"]["gpu"] = True  # train jobs carry gpu=1 → sbatch --gpus=1
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        *snakemake_command(workdir, workdir / "config.yaml"),
        "--workflow-profile",
        str(REPO / "workflow" / "profiles" / "slurm"),
        # this one-node cluster: 2 CPUs, no accounting (squeue for status), no accounts
        "--set-threads",
        "images=2",
        "dataset_bucket=2",
        "train=2",
        "--set-resources",
        "train:slurm_partition=gpu",
        "train:mem_mb=4000",
        "images:mem_mb=4000",
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--jobs",
        "4",
        "--verbose",
    ]
    # an outer kill guards against a plugin waiting forever on a job state it cannot see
    result = subprocess.run(["timeout", "-s", "KILL", "900", *cmd], capture_output=True, text=True)
    log = result.stdout + result.stderr
    # kept where CI can show it: the sbatch calls, the train jobs' --gpus=1
    (workdir / "snakemake-slurm.log").write_text(log)
    keep = REPO / "results" / "logs" / "test-slurm.log"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(log)
    if result.returncode != 0:
        msg = f"snakemake on SLURM failed ({result.returncode}):\n{log[-8000:]}"
        raise AssertionError(msg)
    return workdir, log


def test_every_job_is_submitted_with_sbatch_and_training_asks_for_a_gpu(slurm_run):
    _, log = slurm_run
    calls = re.findall(r"sbatch call: (.*)", log)
    assert len(calls) == 25 - 1  # every job of the tiny run but the local `all`
    train_calls = [c for c in calls if "train" in c and "--gpus=1" in c]
    assert len(train_calls) == 4
    assert all(
        "-p gpu" in c or "--partition gpu" in c or "--partition=gpu" in c for c in train_calls
    )
    assert all("--gpus" not in c for c in calls if c not in train_calls)


def test_outputs_equal_a_local_run(slurm_run, tiny_run):
    workdir, _ = slurm_run
    for store in sorted((tiny_run / "results" / "images").rglob("*.zarr")):
        other = workdir / store.relative_to(tiny_run)
        np.testing.assert_array_equal(
            zarr.open_group(other, mode="r")["images"][...],
            zarr.open_group(store, mode="r")["images"][...],
        )
    for metrics in sorted((tiny_run / "results" / "evaluation").glob("*/metrics.json")):
        local = json.loads(metrics.read_text())
        remote = json.loads((workdir / metrics.relative_to(tiny_run)).read_text())
        assert remote["auc"] == local["auc"]
        assert remote["confusion_matrix"] == local["confusion_matrix"]
    assert (workdir / "results" / "report.html").is_file()
