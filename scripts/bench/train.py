"""Benchmark of training throughput: every registry model's training step on the view it takes
(images or the particle view), a few sizes beside the defaults (:data:`VARIANTS`: the paper's
PFN and ParticleNet, the default run's), and the loaders alone.

Runs on a dataset store (default: the default run's ``results/datasets/top_qcd.zarr``; run
``make run`` first) and writes ``results/benchmarks/train.json``. The loaders must outpace the
fastest model's training step, so that the input pipeline never starves training; the JSON gives
that ratio. Particle batches go through ``loader.cut_padding`` as in training (cut to the
batch's largest multiplicity).

    python scripts/bench/train.py [--dataset PATH] [--batch-size 128] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import jetimage
from jetimage import loader
from jetimage.models import INPUTS, MODELS, build_model, count_parameters

#: Sizes measured beside each architecture's defaults: name → (architecture, options).
VARIANTS = {
    "pfn (default run)": ("pfn", {"phi": (64, 64, 128), "f": (64, 64)}),
    "particlenet (default run: hardest 48)": ("particlenet", {"hardest": 48}),
    "particlenet (paper)": ("particlenet", {"k": 16, "channels": (64, 128, 256), "dense": (256,)}),
    "part (hardest 48)": ("part", {"hardest": 48}),
}


def loader_rate(data, batch_size: int) -> float:
    generator = torch.Generator().manual_seed(0)
    tic = time.perf_counter()
    n = sum(len(y) for _, y in data.batches(batch_size, generator))
    return n / (time.perf_counter() - tic)


def training_rate(model, data, batch_size: int, steps: int) -> float:
    """Jets per second of ``steps`` Adam steps on the in-memory split, after 3 of warm-up."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = list(data.batches(batch_size, torch.Generator().manual_seed(0)))
    batches = (batches * (steps // len(batches) + 2))[: steps + 3]

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(*loader.cut_padding(x)), y)
        loss.backward()
        optimizer.step()

    for x, y in batches[:3]:  # warm-up
        step(x, y)
    tic = time.perf_counter()
    for x, y in batches[3:]:
        step(x, y)
    return steps * batch_size / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="results/datasets/top_qcd.zarr")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", default="results/benchmarks/train.json")
    args = parser.parse_args()
    if not Path(args.dataset).exists():
        msg = f"{args.dataset} does not exist: run `make run` first, or pass --dataset"
        raise SystemExit(msg)
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)

    views = {
        view: loader.open_split(args.dataset, "train", memory_budget_mb=1e9, inputs=view)
        for view in sorted(set(INPUTS.values()))
    }
    streamed = loader.open_split(args.dataset, "train", memory_budget_mb=1e-9)
    in_memory = views["images"]
    n_classes = int(in_memory.labels.max()) + 1
    loaders = {
        "in_memory": loader_rate(in_memory, args.batch_size),
        "zarr_stream": loader_rate(streamed, args.batch_size),
    }
    print(
        f"loaders: in memory {loaders['in_memory']:,.0f} jets/s, "
        f"streamed from Zarr {loaders['zarr_stream']:,.0f} jets/s"
    )
    runs = {a: (a, {}) for a in sorted(MODELS)} | VARIANTS
    models = {}
    for name, (architecture, options) in runs.items():
        data = views[INPUTS[architecture]]
        in_shape = tuple(data.x[0].shape[1:])
        model = build_model(architecture, in_shape=in_shape, n_classes=n_classes, **options)
        rate = training_rate(model, data, args.batch_size, args.steps)
        parameters = count_parameters(model)
        models[name] = {
            "view": INPUTS[architecture],
            "train_jets_per_s": rate,
            "parameters": parameters,
        }
        print(f"{name:40s} {parameters:9,d} parameters: {rate:9,.0f} jets/s")
    fastest = max(m["train_jets_per_s"] for m in models.values())
    result = {
        "benchmark": "train",
        "dataset": args.dataset,
        "image_shape": list(in_memory.images.shape[1:]),
        "batch_size": args.batch_size,
        "torch_threads": threads,
        "loaders_jets_per_s": loaders,
        "models": models,
        "loader_over_fastest_model": {k: v / fastest for k, v in loaders.items()},
        "machine": {"cpus": threads, "platform": platform.platform()},
        "versions": {"jetimage": jetimage.__version__, "torch": torch.__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"loader / fastest model: {result['loader_over_fastest_model']}; wrote {args.out}")


if __name__ == "__main__":
    main()
