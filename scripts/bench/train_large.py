"""Do bigger CNNs beat the hsf-cnn with more data? One run, on all cores and the GPU if any.

Generates a top-vs-QCD dataset with the default run's recipe (config/config.yaml: Pythia 8 +
FastJet, 550-650 GeV, truth-matched tops) but many more events, on every core; pixelates it with
the default image spec; trains the registry models on it with ``jetimage.train.train_model``
(CUDA, mixed precision and channels-last when a GPU is there); scores the common test split and
writes ``results/benchmarks/train-large.json``: per model AUC and 1/εB with bootstrap
uncertainties, and the paired-bootstrap AUC difference of each model to ``hsf-cnn``.

    python scripts/bench/train_large.py --events 60000 --workers 16 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "config" / "config.yaml"
MODELS = ("logistic", "hsf-cnn", "deeptop-cnn", "resnet")


def generate_shard(args: tuple) -> tuple[str, str, int]:
    """One shard of the default recipe → JetClass-layout ROOT file."""
    from jetimage.config import process_settings, validate
    from jetimage.files import write_jets_root
    from jetimage.generate import derive_seed, generate_jets

    config, process, shard, events, out = args
    gen = validate(config)["generation"]
    settings = process_settings(gen, process)
    columns = generate_jets(
        settings, n_events=events, seed=derive_seed(config["seed"], f"large-{process}", shard)
    )
    write_jets_root(out, columns)
    return process, out, len(columns["jet_pt"])


def paired_auc_difference(labels, a, b, *, n: int = 200, seed: int = 0) -> dict:
    """AUC(a) − AUC(b) on the same jets, with the std of its paired bootstrap."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    value = roc_auc_score(labels, a) - roc_auc_score(labels, b)
    draws = []
    for _ in range(n):
        i = rng.integers(0, len(labels), len(labels))
        draws.append(roc_auc_score(labels[i], a[i]) - roc_auc_score(labels[i], b[i]))
    return {"value": float(value), "std": float(np.std(draws))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60000, help="Pythia events per class")
    parser.add_argument("--shards", type=int, default=32, help="shards per class")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--work", default="results/large")
    parser.add_argument("--out", default="results/benchmarks/train-large.json")
    args = parser.parse_args()

    import torch

    from jetimage import dataset, readers
    from jetimage.images import write_image_store
    from jetimage.inference import load_model, predict_scores
    from jetimage.metrics import classification_metrics
    from jetimage.pixelate import ImageSpec
    from jetimage.train import TrainConfig, choose_device, train_model

    config = yaml.safe_load(CONFIG.read_text())
    classes = tuple(config["classes"])
    work = Path(args.work)
    (work / "jets").mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "train-large",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "events_per_class": args.events,
        "timings_s": {},
    }

    tic = time.perf_counter()
    jobs = [
        (
            config,
            process,
            shard,
            args.events // args.shards,
            str(work / "jets" / f"{process}_{shard:03d}.root"),
        )
        for process in classes
        for shard in range(args.shards)
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        shards = list(pool.map(generate_shard, jobs))
    result["timings_s"]["generate"] = time.perf_counter() - tic
    result["jets"] = {c: sum(n for process, _, n in shards if process == c) for c in classes}
    print(f"generated {result['jets']} in {result['timings_s']['generate']:.0f} s", flush=True)

    tic = time.perf_counter()
    spec = ImageSpec.from_dict(config["images"])
    stores = []
    for name, path, _ in shards:
        labels = readers.Labels(classes, class_name=name)
        out = str(work / "images" / (Path(path).stem + ".zarr"))
        write_image_store(
            out,
            readers.read(path, format="root", labels=labels, step=16384),
            spec,
            attrs={"sample": name, "classes": list(classes), "source": path},
            num_workers=args.workers,
        )
        stores.append(out)
    data = str(work / "dataset.zarr")
    dataset.build_dataset(
        data,
        stores,
        classes=classes,
        fractions=config["dataset"]["split"],
        seed=config["seed"],
        num_workers=args.workers,
    )
    result["timings_s"]["images_and_dataset"] = time.perf_counter() - tic

    device = choose_device("auto")
    images, labels, _ = dataset.load_split(data, "test")
    signal = classes.index(config["signal"])
    binary = (labels == signal).astype(int)
    scores, result["models"] = {}, {}
    for name in args.models:
        settings = {
            **config["training"],
            "architecture": name,
            "epochs": args.epochs,
            "seed": config["seed"],
            "patience": 6,
        }
        tic = time.perf_counter()
        history = train_model(
            data,
            work / "models" / name,
            TrainConfig.from_dict(settings),
            name=name,
            progress=lambda line: print(line, flush=True),
        )
        seconds = time.perf_counter() - tic
        model, info = load_model(work / "models" / name / "model.pt")
        probabilities = predict_scores(model, images, info["normalization"], device=str(device))
        scores[name] = probabilities[:, signal]
        metrics = classification_metrics(
            labels,
            probabilities,
            list(classes),
            signal=config["signal"],
            efficiencies=(0.3, 0.5),
            bootstrap=100,
            seed=0,
        )
        result["models"][name] = {
            "auc": metrics["auc"],
            "rejection_at_0.3": metrics["rejection_at_0.3"],
            "rejection_at_0.5": metrics["rejection_at_0.5"],
            "epochs": len(history),
            "best_epoch": info["best_epoch"],
            "train_seconds": seconds,
            "train_jets_per_second": float(np.median([h["jets_per_second"] for h in history])),
        }
        print(
            f"{name}: AUC {metrics['auc']['value']:.4f} ± {metrics['auc']['std']:.4f}, "
            f"1/eB(0.3) {metrics['rejection_at_0.3']['value']:.0f}, {len(history)} epochs "
            f"in {seconds:.0f} s",
            flush=True,
        )
    if "hsf-cnn" in scores:
        result["auc_minus_hsf_cnn"] = {
            name: paired_auc_difference(binary, s, scores["hsf-cnn"])
            for name, s in scores.items()
            if name != "hsf-cnn"
        }
    result.update(
        device=str(device),
        train_jets=int(len(dataset.load_split(data, "train")[1])),
        test_jets=int(len(labels)),
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("jets", "timings_s")}), flush=True)
    print(json.dumps(result.get("auc_minus_hsf_cnn"), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
