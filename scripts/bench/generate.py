"""Benchmark of the generate stage against Pythia alone, for the same settings, in one run.

For each process of :data:`jetimage.generate.PROCESSES` (default recipe: 14 TeV, pT-hat
500-700 GeV, jets 550-650 GeV): Pythia's own event loop (``Pythia.next``), Pythia's awkward batches
(``Pythia.nextBatch``), and the whole stage (batches + FastJet clustering + selection + truth
matching + ROOT writing). Writes ``results/benchmarks/generate.json`` with the stage's rate as a
fraction of Pythia's own.

    python scripts/bench/generate.py [--events 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import jetimage
from jetimage.files import write_jets_root
from jetimage.generate import (
    PROCESSES,
    GeneratorSettings,
    derive_seed,
    generate_jets,
    make_pythia,
)


def timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def measure(process: str, n: int) -> dict:
    """Rates of Pythia alone and of the whole stage (same settings and seed, so the same
    events); every timing includes Pythia's initialisation, as the stage's does."""
    settings = GeneratorSettings(process)
    seed = derive_seed(1, process, "bench")

    def pythia_next():
        pythia = make_pythia(settings, seed)
        for _ in range(n):
            pythia.next()

    columns = {}

    def stage():
        columns.update(generate_jets(settings, n_events=n, seed=seed))
        write_jets_root(Path(tempfile.mkdtemp()) / "jets.root", columns)

    t_batch = timed(lambda: make_pythia(settings, seed).nextBatch(n, errorMode="skip"))
    # interleaved, best of two: the machine's speed drifts between timings
    t_next, t_stage = math.inf, math.inf
    for _ in range(2):
        t_next = min(t_next, timed(pythia_next))
        t_stage = min(t_stage, timed(stage))
    jets = len(columns["jet_pt"])
    return {
        "pythia_next_events_per_s": n / t_next,
        "pythia_next_batch_events_per_s": n / t_batch,
        "stage_events_per_s": n / t_stage,
        "stage_jets_per_s": jets / t_stage,
        "jets_per_event": jets / n,
        "stage_over_pythia": t_next / t_stage,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--processes", nargs="+", default=list(PROCESSES))
    parser.add_argument("--out", default="results/benchmarks/generate.json")
    args = parser.parse_args()
    result = {
        "benchmark": "generate",
        "events": args.events,
        "processes": {},
        "machine": {"platform": platform.platform()},
        "versions": {"jetimage": jetimage.__version__},
    }
    for process in args.processes:
        row = measure(process, args.events)
        result["processes"][process] = row
        print(
            f"{process}: Pythia next {row['pythia_next_events_per_s']:.0f} ev/s, nextBatch "
            f"{row['pythia_next_batch_events_per_s']:.0f} ev/s, stage "
            f"{row['stage_events_per_s']:.0f} ev/s ({row['stage_jets_per_s']:.0f} jets/s) = "
            f"{row['stage_over_pythia']:.2f} of Pythia alone"
        )
    ratios = [row["stage_over_pythia"] for row in result["processes"].values()]
    result["min_stage_over_pythia"] = min(ratios)
    print(f"lowest ratio {min(ratios):.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
