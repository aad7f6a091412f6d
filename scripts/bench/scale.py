"""Scale benchmark: the dataset stage, the streamed loader and evaluation at 100k, 1M and 10M jets.

Per-file stores of real 40×40 jet images (100,000 jets a file, as JetClass's files; each half
of a file one class, so that every chunk holds one class, as generated samples do), tiled from
top and QCD jets generated with the default recipe and image spec, are written once under
``--workdir`` and reused. (Synthetic images with 4% of pixels lit, tried first, encode 1.5× and
decode 2× faster than real ones, so they flattered every rate.) For each size, in a
fresh process each (peak RSS from the kernel):

- the dataset stage as the workflow runs it (``dataset.build_dataset``: every bucket, then the
  assembly), with as many buckets as ``--memory-mb`` asks for (``dataset.buckets_needed``);
- the evaluate stage on the test split (``evaluate.evaluate_model`` with an ``hsf-cnn``:
  scores, metrics, pT bins, score-pixel correlation and every figure).

At the middle size, the streamed training loader (``loader.ZarrStream``) against the loader of
session 6 (one reading thread; kept below as the reference) and against Zstandard alone
decoding the same chunk files on the same cores, all in this process. Writes
``results/benchmarks/scale.json``.

    python scripts/bench/scale.py [--sizes 100000 1000000 10000000] [--memory-mb 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

JETS_PER_FILE = 100_000
NPIX = 40
CLASSES = ["qcd", "top"]
FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def generated_images(workdir: Path, events: int) -> dict[str, np.ndarray]:
    """Real jet images to tile the files with: top and QCD jets generated with the default
    recipe (Pythia 8 + FastJet, ``events`` events per class) and pixelated with the default
    image spec (config/config.yaml), cached in ``workdir``."""
    cache = workdir / f"generated-{events}.npz"
    if cache.exists():
        return dict(np.load(cache))
    import yaml

    from jetimage import ImageSpec, make_images
    from jetimage.config import process_settings, validate
    from jetimage.files import write_jets_root
    from jetimage.generate import generate_jets
    from jetimage.readers import read_jets

    config = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "config" / "config.yaml").read_text()
    )
    gen, spec = validate(config)["generation"], ImageSpec.from_dict(config["images"])
    pools = {}
    for label, process in enumerate(CLASSES):
        settings = process_settings(gen, process)
        tic = time.perf_counter()
        path = workdir / f"generated-{process}.root"
        write_jets_root(path, generate_jets(settings, n_events=events, seed=500 + label))
        jets = read_jets(path)
        pools[f"images_{label}"] = make_images(jets.constituents, spec)
        for column in ("pt", "eta", "phi", "mass"):
            pools[f"{column}_{label}"] = jets.table[column]
        print(
            f"generated {len(jets)} {process} jets in {time.perf_counter() - tic:.0f} s", flush=True
        )
    workdir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **pools)
    return pools


def tiled_batch(pools: dict, rng: np.random.Generator, n: int, label: int, first: int):
    """``n`` jets of one class drawn at random from the generated ones, entries ``first``
    onward."""
    from jetimage.batches import ImageBatch

    pick = rng.integers(0, len(pools[f"pt_{label}"]), n)
    return ImageBatch(
        pools[f"images_{label}"][pick],
        {
            "label": np.full(n, label),
            "entry": np.arange(first, first + n),
            **{c: pools[f"{c}_{label}"][pick] for c in ("pt", "eta", "phi", "mass")},
        },
    )


def write_sources(workdir: Path, n_files: int, events: int) -> list[Path]:
    """The first ``n_files`` per-file stores (written if missing): each half of a file one
    class, so that every chunk holds one class, as generated samples do."""

    from jetimage.images import write_image_store

    paths, pools = [], None
    for f in range(n_files):
        path = workdir / "images" / f"file{f:03d}.zarr"
        if not (path / "zarr.json").exists():
            pools = pools or generated_images(workdir, events)
            rng = np.random.default_rng(f)
            half = JETS_PER_FILE // 2
            batches = (
                tiled_batch(pools, rng, min(8192, half - start), (f + h) % 2, h * half + start)
                for h in range(2)
                for start in range(0, half, 8192)
            )
            tic = time.perf_counter()
            write_image_store(
                path,
                batches,
                None,
                normalize="none",
                num_workers=2,
                attrs={
                    "image_spec": {"npix": [NPIX, NPIX], "normalize": "l1"},
                    "classes": CLASSES,
                    "sample": "tiled",
                    "source": f"tiled/file{f:03d}",
                    "source_sha256": f"tiled-{f}",
                },
            )
            print(f"wrote {path} in {time.perf_counter() - tic:.1f} s", flush=True)
        paths.append(path)
    return paths


def dataset_stage(workdir: Path, n: int, memory_mb: float) -> dict:
    """(In a child process.) Build the dataset of the first n jets' files; seconds, buckets."""
    from jetimage import dataset

    sources = write_sources(workdir, n // JETS_PER_FILE, 0)
    buckets = dataset.buckets_needed(n, NPIX * NPIX * 4, memory_mb)
    out = workdir / "datasets" / f"{n}.zarr"
    tic = time.perf_counter()
    dataset.build_dataset(
        out,
        sources,
        classes=CLASSES,
        fractions=FRACTIONS,
        seed=1,
        buckets=buckets,
        memory_mb=memory_mb,
        num_workers=2,
    )
    seconds = time.perf_counter() - tic
    return {
        "seconds": seconds,
        "buckets": buckets,
        "files": len(sources),
        "jets_per_s": n / seconds,
        "jets_per_s_per_core": n / seconds / 2,
    }


def evaluate_stage(workdir: Path, n: int) -> dict:
    """(In a child process.) The evaluate stage itself (``evaluate.evaluate_model``: scores,
    metrics, pT bins, score-pixel correlation, every figure) on the n-jet dataset's test
    split, with an untrained ``hsf-cnn`` saved as training saves one."""
    import logging
    from types import SimpleNamespace

    import torch

    from jetimage import evaluate, zarr_store
    from jetimage.models import build_model

    torch.set_num_threads(2)
    path = workdir / "datasets" / f"{n}.zarr"
    attrs = zarr_store.open_store(path).attrs
    torch.manual_seed(0)
    model = build_model("hsf-cnn", in_shape=(1, NPIX, NPIX), n_classes=2)
    out = workdir / "evaluation" / str(n)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "name": "hsf-cnn",
        "architecture": "hsf-cnn",
        "options": {},
        "in_shape": [1, NPIX, NPIX],
        "classes": CLASSES,
        "normalization": dict(attrs["normalization"]),
        "image_spec": attrs["image_spec"],
    }
    torch.save({"state_dict": model.state_dict(), "info": info}, out / "model.pt")
    (out / "history.json").write_text(
        json.dumps(
            {
                "epochs": [
                    {
                        "epoch": 1,
                        "train_loss": 0.7,
                        "val_loss": 0.7,
                        "train_accuracy": 0.5,
                        "val_accuracy": 0.5,
                    }
                ]
            }
        )
    )
    names = [
        "metrics",
        "scores",
        "roc",
        "history",
        "confusion",
        "examples",
        "sculpting",
        "auc_vs_pt",
        "pt_dependence",
        "learned",
    ]
    outputs = SimpleNamespace(
        **{
            k: out
            / (f"{k}.json" if k == "metrics" else f"{k}.parquet" if k == "scores" else f"{k}.png")
            for k in names
        }
    )
    tic = time.perf_counter()
    metrics = evaluate.evaluate_model(
        out / "model.pt",
        out / "history.json",
        path,
        outputs,
        name="hsf-cnn",
        signal="top",
        efficiencies=[0.3, 0.5],
        working_point=0.5,
        bootstrap=20,
        seed=0,
        log=logging.getLogger("bench"),
    )
    seconds = time.perf_counter() - tic
    return {
        "seconds": seconds,
        "test_jets": metrics["n_test"],
        "jets_per_s": metrics["n_test"] / seconds,
    }


def in_child(stage: str, workdir: Path, n: int, memory_mb: float) -> dict:
    """Run a stage in a fresh Python process; its result with its peak RSS (MB)."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        stage,
        "--workdir",
        str(workdir),
        "--sizes",
        str(n),
        "--memory-mb",
        str(memory_mb),
    ]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        msg = f"{stage} at {n} jets failed:\n{out}"
        raise SystemExit(msg)
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "peak_rss_mb": usage.ru_maxrss / 1024}


class SessionSixStream:
    """The streamed loader as it was before this benchmark (session 6): ``buffer_chunks``
    chunks read through Zarr by one background thread, concatenated, normalised and gathered
    into shuffled batches. The reference for the loader's speed-up."""

    def __init__(self, group, normalization: dict, *, buffer_chunks: int = 4):
        self.images, self.labels = group["images"], group["labels"]
        self.normalization = normalization
        self.chunk = self.images.chunks[0]
        self.buffer_chunks = buffer_chunks

    def _read(self, chunks):
        x = np.concatenate([self.images[c * self.chunk : (c + 1) * self.chunk] for c in chunks])
        y = np.concatenate([self.labels[c * self.chunk : (c + 1) * self.chunk] for c in chunks])
        return x, y

    def batches(self, batch_size, generator, n_chunks):
        import torch

        from jetimage.loader import InMemory

        chunks = torch.randperm(n_chunks, generator=generator).tolist()
        groups = [
            chunks[i : i + self.buffer_chunks] for i in range(0, n_chunks, self.buffer_chunks)
        ]
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._read, groups[0])
            for k in range(len(groups)):
                x, y = pending.result()
                if k + 1 < len(groups):
                    pending = pool.submit(self._read, groups[k + 1])
                yield from InMemory(x, y, self.normalization).batches(batch_size, generator)


def loader_rates(workdir: Path, n: int, *, batch_size: int = 128) -> dict:
    """Images/s of the streamed loader, the session-6 loader and Zstandard alone over the
    n-jet dataset's train split (whole chunks), two threads each."""
    import numcodecs
    import torch

    from jetimage import loader, zarr_store

    root = zarr_store.open_store(workdir / "datasets" / f"{n}.zarr")
    group, normalization = root["train"], dict(root.attrs["normalization"])
    images = group["images"]
    chunk = images.chunks[0]
    n_chunks = images.shape[0] // chunk
    files = [zarr_store.chunk_path(images, c) for c in range(n_chunks)]
    for path in files:  # warm the page cache: every reader then reads from memory
        path.read_bytes()
    jets = n_chunks * chunk

    def zstd_alone() -> float:
        codec = numcodecs.Zstd()
        outs = [np.empty((chunk, *images.shape[1:]), np.float32) for _ in range(2)]

        def decode(k):
            codec.decode(files[k].read_bytes(), out=outs[k % 2])

        with ThreadPoolExecutor(2) as pool:
            tic = time.perf_counter()
            for k in range(0, n_chunks, 2):
                list(pool.map(decode, range(k, min(k + 2, n_chunks))))
            return jets / (time.perf_counter() - tic)

    def zstd_alone_pooled() -> float:  # each thread decodes its share into its own buffer
        codec = numcodecs.Zstd()

        def share(t):
            out = np.empty((chunk, *images.shape[1:]), np.float32)
            for k in range(t, n_chunks, 2):
                codec.decode(files[k].read_bytes(), out=out)

        with ThreadPoolExecutor(2) as pool:
            tic = time.perf_counter()
            list(pool.map(share, range(2)))
            return jets / (time.perf_counter() - tic)

    def streamed() -> float:
        stream = loader.ZarrStream(group, normalization, workers=2)
        stream.labels = stream.labels[:jets]  # the whole chunks, as the others
        tic = time.perf_counter()
        seen = sum(len(y) for _, y in stream.batches(batch_size, torch.Generator().manual_seed(0)))
        assert seen == jets
        return jets / (time.perf_counter() - tic)

    def session_six() -> float:
        old = SessionSixStream(group, normalization)  # the whole chunks, as the others
        tic = time.perf_counter()
        seen = sum(
            len(y) for _, y in old.batches(batch_size, torch.Generator().manual_seed(0), n_chunks)
        )
        assert seen == jets
        return jets / (time.perf_counter() - tic)

    rounds = {"zstd_alone": [], "streamed": [], "session_six": []}
    for _ in range(3):
        rounds["zstd_alone"].append(max(zstd_alone(), zstd_alone_pooled()))
        rounds["streamed"].append(streamed())
        rounds["session_six"].append(session_six())
    best = {k: max(v) for k, v in rounds.items()}
    return {
        "images": jets,
        "threads": 2,
        "batch_size": batch_size,
        "images_per_s": best,
        "rounds": rounds,
        "streamed_over_session_six": best["streamed"] / best["session_six"],
        "streamed_over_zstd_alone": best["streamed"] / best["zstd_alone"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--memory-mb", type=float, default=4000.0)
    parser.add_argument(
        "--events", type=int, default=2500, help="Pythia events per class whose jets tile the files"
    )
    parser.add_argument("--workdir", default="results/bench-scale")
    parser.add_argument(
        "--evaluate-max",
        type=int,
        default=1_000_000,
        help="largest size whose evaluation is measured",
    )
    parser.add_argument("--out", default="results/benchmarks/scale.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    if args.child:
        stage = {
            "dataset": lambda n: dataset_stage(workdir, n, args.memory_mb),
            "evaluate": lambda n: evaluate_stage(workdir, n),
        }[args.child]
        print(json.dumps(stage(args.sizes[0])))
        return
    for n in args.sizes:
        if n % JETS_PER_FILE:
            msg = f"sizes must be multiples of {JETS_PER_FILE}"
            raise SystemExit(msg)
    write_sources(workdir, max(args.sizes) // JETS_PER_FILE, args.events)
    result = {
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "memory_mb": args.memory_mb,
        "jets_per_file": JETS_PER_FILE,
        "sizes": {},
    }
    for n in sorted(args.sizes):
        entry = {"dataset": in_child("dataset", workdir, n, args.memory_mb)}
        print(
            f"{n:>10,} jets: dataset {entry['dataset']['seconds']:.1f} s "
            f"({entry['dataset']['jets_per_s_per_core']:,.0f} jets/s per core, "
            f"{entry['dataset']['buckets']} buckets), peak RSS "
            f"{entry['dataset']['peak_rss_mb']:,.0f} MB",
            flush=True,
        )
        if n <= args.evaluate_max:
            entry["evaluate"] = in_child("evaluate", workdir, n, args.memory_mb)
            print(
                f"{n:>10,} jets: evaluate {entry['evaluate']['seconds']:.1f} s, peak RSS "
                f"{entry['evaluate']['peak_rss_mb']:,.0f} MB",
                flush=True,
            )
        result["sizes"][str(n)] = entry
    middle = sorted(args.sizes)[len(args.sizes) // 2]
    result["loader"] = {"size": middle, **loader_rates(workdir, middle)}
    rates = result["loader"]["images_per_s"]
    print(
        f"loader on {result['loader']['images']:,} images: streamed {rates['streamed']:,.0f}"
        f" img/s, session 6 {rates['session_six']:,.0f}, Zstandard alone "
        f"{rates['zstd_alone']:,.0f} ({result['loader']['streamed_over_session_six']:.2f}× "
        f"session 6, {result['loader']['streamed_over_zstd_alone']:.0%} of Zstandard)"
    )
    sizes = sorted(args.sizes)
    if len(sizes) >= 2:
        small, large = str(sizes[-2]), str(sizes[-1])
        result["ratios"] = {
            "dataset_time_largest_over_middle": result["sizes"][large]["dataset"]["seconds"]
            / result["sizes"][small]["dataset"]["seconds"],
            "dataset_rss_largest_over_middle": result["sizes"][large]["dataset"]["peak_rss_mb"]
            / result["sizes"][small]["dataset"]["peak_rss_mb"],
        }
        evaluated = [str(n) for n in sizes if "evaluate" in result["sizes"][str(n)]]
        if len(evaluated) >= 2:
            result["ratios"]["evaluate_rss_over_smallest"] = (
                result["sizes"][evaluated[-1]]["evaluate"]["peak_rss_mb"]
                / result["sizes"][evaluated[0]]["evaluate"]["peak_rss_mb"]
            )
        print(json.dumps(result["ratios"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(
        f"wrote {args.out}; peak RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
    )


if __name__ == "__main__":
    main()
