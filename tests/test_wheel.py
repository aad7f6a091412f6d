"""A wheel built from the project works alone: installed into a fresh environment, outside the
repository, it validates configs (its schema ships inside it) and runs the library API."""

from __future__ import annotations

import os
import site
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import jetimage
from jetimage import ImageSpec, make_images
from jetimage.readers import Labels, read_jets

assert "site-packages" in jetimage.__file__ and {repo!r} not in jetimage.__file__, jetimage.__file__
jets = read_jets({jets!r}, labels=Labels(("qcd", "top"), class_name="top"))
images = make_images(jets.constituents, ImageSpec(npix=16, width=1.6))
assert images.shape == (len(jets), 1, 16, 16)
np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), 1.0, rtol=1e-5)
print("library ok", len(jets))
"""


def test_a_built_wheel_works_alone_outside_the_repository(tmp_path, top_file):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        cwd=tmp_path,
        timeout=600,
    )
    wheel = next((tmp_path / "dist").glob("jetimage-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=600,
    )
    # the dependencies from this environment's site-packages (a .pth line adds the folder but
    # runs none of its .pth files, so this checkout's editable jetimage stays out of reach)
    target = next((tmp_path / "venv" / "lib").glob("python*/site-packages"))
    (target / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def run_outside(*args: str) -> subprocess.CompletedProcess:
        """The wheel's python run outside the repository, with no path into it."""
        return subprocess.run(
            [python, *args], cwd=outside, env=env, capture_output=True, text=True, timeout=300
        )

    config = outside / "run.yaml"
    config.write_text((REPO / "config" / "tiny.yaml").read_text())
    checked = run_outside("-m", "jetimage.config", str(config))
    assert checked.returncode == 0, checked.stderr
    config.write_text(config.read_text().replace("epochs: 2", "epocs: 2"))
    bad = run_outside("-m", "jetimage.config", str(config))
    assert bad.returncode != 0
    assert "did you mean 'epochs'?" in bad.stdout + bad.stderr
    used = run_outside("-c", SCRIPT.format(repo=str(REPO), jets=str(top_file)))
    assert used.returncode == 0, used.stderr
    assert "library ok" in used.stdout
