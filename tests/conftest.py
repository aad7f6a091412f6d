"""Shared fixtures: real generated jets, the shared real-data samples, a tiny workflow run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def shared_data_dir() -> Path:
    return Path(os.environ.get("JETIMAGE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public real-jet samples (../shared/data); tests skip when they are absent."""
    path = shared_data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real jet samples not found at {path} (set JETIMAGE_SHARED_DATA)")
    return path


def _generate(tmp_path_factory, process: str, events: int, seed: int) -> Path:
    from jetimage.files import write_jets_root
    from jetimage.generate import GeneratorSettings, generate_jets

    path = tmp_path_factory.mktemp(f"jets-{process}") / f"{process}.root"
    write_jets_root(path, generate_jets(GeneratorSettings(process), n_events=events, seed=seed))
    return path


def jetclass_columns(top_file, qcd_file) -> dict:
    """Generated top and QCD jets in the JetClass layout: one-hot label_*, no jet_mass (JetClass
    has jet_sdmass), no part_pid."""
    import awkward as ak
    import numpy as np

    from jetimage.readers import read_jets

    jets = [read_jets(top_file), read_jets(qcd_file)]
    cons = ak.concatenate([j.constituents for j in jets])
    n_top, n_qcd = len(jets[0]), len(jets[1])
    return {
        "part_px": cons.px,
        "part_py": cons.py,
        "part_pz": cons.pz,
        "part_energy": cons.E,
        "part_charge": cons.charge,
        "jet_pt": np.concatenate([j.table["pt"] for j in jets]),
        "jet_eta": np.concatenate([j.table["eta"] for j in jets]),
        "jet_phi": np.concatenate([j.table["phi"] for j in jets]),
        "jet_sdmass": np.concatenate([j.table["mass"] for j in jets]) * 0.9,
        "label_QCD": np.r_[np.zeros(n_top), np.ones(n_qcd)].astype(bool),
        "label_Tbqq": np.r_[np.ones(n_top), np.zeros(n_qcd)].astype(bool),
        "label_Hbb": np.zeros(n_top + n_qcd, dtype=bool),
    }


@pytest.fixture(scope="module")
def jets(top_file) -> dict:
    """60 real generated top jets (about 600 GeV, R = 0.8): (px, py, pz, E) ragged, label 1,
    for the tests that write them into files of every format (bad on purpose)."""
    import numpy as np

    from jetimage.readers import read_jets

    j = read_jets(top_file)[:60]
    c = j.constituents
    return {"px": c.px, "py": c.py, "pz": c.pz, "E": c.E, "label": np.ones(len(j), np.int64)}


@pytest.fixture(scope="session")
def top_file(tmp_path_factory) -> Path:
    """Real Pythia 8 hadronic tt̄ jets, 550 < pT < 650 GeV, R = 0.8, truth-matched."""
    return _generate(tmp_path_factory, "top", 600, seed=11)


@pytest.fixture(scope="session")
def qcd_file(tmp_path_factory) -> Path:
    """Real Pythia 8 QCD dijet jets in the same window."""
    return _generate(tmp_path_factory, "qcd", 400, seed=12)


@pytest.fixture(scope="session")
def boson_files(tmp_path_factory) -> dict[str, Path]:
    """Real hadronic W and Z jets (WW and ZZ pairs), truth-matched, in the same window."""
    return {p: _generate(tmp_path_factory, p, 300, seed=13) for p in ("w", "z")}


@pytest.fixture(scope="session")
def parton_files(tmp_path_factory) -> dict[str, Path]:
    """Real QCD jets matched to a gluon or to a light quark, in the same window."""
    return {p: _generate(tmp_path_factory, p, 400, seed=14) for p in ("gluon", "quark")}


def snakemake_command(
    workdir: Path, configfile: Path, *args: str, snakefile: Path = REPO / "Snakefile"
) -> list[str]:
    """The command line running the workflow in ``workdir`` with ``configfile``, then ``args``."""
    return [
        SNAKEMAKE,
        "-s",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def run_snakemake(workdir: Path, configfile: Path, *args: str, timeout: int = 900):
    """Run the workflow in ``workdir``; returns the completed process (check=True)."""
    cmd = snakemake_command(workdir, configfile, "--cores", "2", *args)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        msg = f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        raise AssertionError(msg)
    return result


def scheduled_jobs(workdir: Path, configfile: Path) -> dict[str, int]:
    """Rule → job count of a dry run (empty when nothing would run)."""
    return job_counts(run_snakemake(workdir, configfile, "--dry-run").stdout)


def job_counts(out: str) -> dict[str, int]:
    """Rule → job count from the "Job stats" table of a dry run's output (empty if none)."""
    jobs: dict[str, int] = {}
    lines = out.splitlines()
    if "Job stats:" not in lines:
        return jobs
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny config run end to end in a temporary directory; returns that directory."""
    workdir = tmp_path_factory.mktemp("tiny-run")
    config = workdir / "config.yaml"
    shutil.copy(REPO / "config" / "tiny.yaml", config)
    run_snakemake(workdir, config)
    return workdir


@pytest.fixture(scope="session")
def small_dataset(top_file, qcd_file, tmp_path_factory) -> Path:
    """A dataset store (20×20 pT images) of the generated top and QCD jets."""
    from jetimage import ImageSpec
    from jetimage.dataset import build_dataset
    from jetimage.images import write_image_store
    from jetimage.readers import Labels, read_jets

    out = tmp_path_factory.mktemp("dataset")
    sources = []
    for label, path in enumerate((qcd_file, top_file)):
        store = out / f"{label}.zarr"
        labels = Labels(("qcd", "top"), class_name=("qcd", "top")[label])
        write_image_store(
            store,
            read_jets(path, labels=labels),
            ImageSpec(npix=20, width=1.6),
            attrs={"source": str(path)},
            chunk_jets=128,
        )
        sources.append(store)
    build_dataset(
        out / "dataset.zarr",
        sources,
        classes=["qcd", "top"],
        fractions={"train": 0.6, "val": 0.2, "test": 0.2},
        seed=0,
        chunk_jets=128,
    )
    return out / "dataset.zarr"


@pytest.fixture(scope="session")
def observables_dataset(top_file, qcd_file, tmp_path_factory) -> Path:
    """A dataset (16×16 pT images) of the generated top and QCD jets with their substructure
    observables in the jet tables and their particle view (the 48 hardest particles), written
    in one pass over each file as the images stage does."""
    from jetimage import ImageSpec
    from jetimage.dataset import build_dataset
    from jetimage.images import Views, write_image_store
    from jetimage.readers import Labels, read

    classes = ["qcd", "top"]
    out = tmp_path_factory.mktemp("observables-dataset")
    stores = []
    views = Views(ImageSpec(npix=16, width=1.6), max_particles=48, radius=0.8)
    for name, path in (("qcd", qcd_file), ("top", top_file)):
        labels = Labels(tuple(classes), class_name=name)
        stores.append(out / f"{name}.zarr")
        write_image_store(
            stores[-1],
            read(path, format="root", labels=labels),
            views,
            attrs={"source": name, "classes": classes},
        )
    build_dataset(
        out / "ds.zarr",
        stores,
        classes=classes,
        seed=4,
        fractions={"train": 0.6, "val": 0.2, "test": 0.2},
    )
    return out / "ds.zarr"


def dry_run_with_library(
    tiny_run, tmp_path, edits: dict, config: str = "config.yaml"
) -> dict[str, int]:
    """Jobs a dry run of ``config`` schedules over a copy of the tiny run, with a copy of the
    workflow whose library files got ``edits`` (file under scripts/jetimage → function of its
    text)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("Snakefile", "workflow", "scripts", "config"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, repo / part)
    for name, edit in edits.items():
        path = repo / "scripts" / "jetimage" / name
        path.write_text(edit(path.read_text()))
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(repo / "scripts")}
    out = subprocess.run(
        snakemake_command(work, work / config, "--dry-run", snakefile=repo / "Snakefile"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout
    return job_counts(out)


def add_code(text: str) -> str:
    return text + "\n_CHANGED = True\n"


class XRootDServer:
    """A real XRootD server (Debian's xrootd) on 127.0.0.1, serving a folder of its own."""

    def __init__(self, root: Path):
        import socket

        self.root = root / "data"
        self.root.mkdir(parents=True)
        with socket.socket() as probe:  # a free port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"root://127.0.0.1:{self.port}/"
        config = root / "xrootd.cfg"
        config.write_text(
            f"all.export /\noss.localroot {self.root}\nxrd.port {self.port}\n"
            f"all.adminpath {root}/admin\nall.pidpath {root}/admin\n"
        )
        user = []
        if os.geteuid() == 0:  # xrootd refuses to run as root: it runs as its own user
            shutil.chown(root, "xrootd")
            user = ["-R", "xrootd"]
        self.process = subprocess.Popen(
            [shutil.which("xrootd"), "-c", str(config), "-l", str(root / "xrootd.log"), *user],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        msg = f"the XRootD server did not start; see {root / 'xrootd.log'}"
        raise RuntimeError(msg)

    def add(self, name: str, source: Path) -> str:
        """Copy a file into the served folder; returns its root:// URL."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        for path in (target, *target.parents):
            if path == self.root.parent:
                break
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        return self.url + "/" + name

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root.parent, ignore_errors=True)


def start_xrootd() -> XRootDServer:
    """An XRootD server in a world-readable temporary folder (skips without the server)."""
    import tempfile

    if shutil.which("xrootd") is None:
        pytest.skip(
            "no XRootD server here: tests/xrootd/install-xrootd.sh installs Debian's xrootd-server"
        )
    pytest.importorskip("XRootD", reason="the XRootD client (pip install xrootd)")
    return XRootDServer(Path(tempfile.mkdtemp(prefix="jetimage-xrootd-")))


@pytest.fixture(scope="session")
def xrootd():
    """A real XRootD server on 127.0.0.1 for the session."""
    server = start_xrootd()
    yield server
    server.remove()


def pytest_sessionfinish(session, exitstatus):
    """Keep the session's status for :func:`pytest_unconfigure`."""
    session.config.stash[_STATUS] = int(exitstatus)


_STATUS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Exit with the tests' status once pytest has reported everything, without the
    interpreter's teardown of the native libraries the tests load (torch, numba, FastJet,
    XRootD, zarr's I/O thread): on this VM that teardown segfaulted once in two full runs, after
    every test had passed and the summary was printed, which turned a green run red."""
    if _STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_STATUS])
