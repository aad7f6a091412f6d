"""Fault injection in CI: the tiny workflow SIGKILLed during generate, images,
dataset and train, rerun as a user would, ends with the outputs of an uninterrupted run
(tests/faults/)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_killed_runs_rerun_to_the_outputs_of_an_uninterrupted_run(tiny_run, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "faults" / "kill_and_rerun.py"),
            "--config",
            str(tiny_run / "config.yaml"),
            "--reference",
            str(tiny_run),
            "--kills",
            "5",
            "--seed",
            "1",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads(result.stdout)
    assert summary["outputs_equal"]
    assert summary["problems"] == []
    killed = [k for k in summary["kills"] if k["killed"]]
    assert summary["survived"] == len(killed) >= 3  # a stage may end before its kill lands
    assert {k["stage"] for k in killed} >= {"generate", "images", "train"}
