"""Benchmark: what the images stage's checks on bad input cost per jet, against the work they
guard, measured in the same run on one core.

Times, on the same flat jets: the content digest (duplicates across the run), the farthest
constituent from the axis (constituents that are not the jet's), the image with and without
the pT it loses outside the window, and the whole per-chunk task of the images stage (image,
particle view, observables, the checks). Rounds are interleaved and medians quoted, as ratios
to the whole task. Writes ``results/benchmarks/checks.json``.

    python scripts/bench/checks.py                # jets of results/jets/top/*.root
    python scripts/bench/checks.py --jets a.root   # any JetClass-layout files
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import time
from pathlib import Path

import awkward as ak
import numpy as np

from jetimage.duplicates import constituent_digests
from jetimage.images import Views, _views_task
from jetimage.pixelate import ImageSpec, flatten_constituents, images_from_flat
from jetimage.preprocess import farthest_constituent
from jetimage.readers import read_jets


def timed(function, rounds: int) -> list[float]:
    """Seconds of each of ``rounds`` calls."""
    out = []
    for _ in range(rounds):
        tic = time.perf_counter()
        function()
        out.append(time.perf_counter() - tic)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", nargs="*", default=sorted(glob.glob("results/jets/top/*.root")))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    jets = ak.concatenate([read_jets(path).constituents for path in args.jets])[: args.n]
    flat = flatten_constituents(jets, identities=True)
    spec = ImageSpec()
    lost = np.empty(flat.n_jets)
    views = Views(spec, max_particles=128, radius=0.8, max_distance=1.6)
    cases = {
        "whole task (image, particles, observables, checks)": lambda: _views_task(views, flat),
        "image": lambda: images_from_flat(flat, spec),
        "image with the pT outside the window": lambda: images_from_flat(
            flat, spec, outside_pt=lost
        ),
        "content digest": lambda: constituent_digests(
            flat.px, flat.py, flat.pz, flat.E, flat.offsets
        ),
        "farthest constituent": lambda: farthest_constituent(flat),
    }
    for case in cases.values():  # compile and warm
        case()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):  # interleaved
        for name, case in cases.items():
            times[name] += timed(case, 1)
    whole = float(np.median(times[next(iter(cases))]))
    result = {
        "jets": flat.n_jets,
        "constituents_per_jet": len(flat.px) / flat.n_jets,
        "rounds": args.rounds,
        "machine": platform.platform(),
        "per_jet_us": {n: float(np.median(t)) / flat.n_jets * 1e6 for n, t in times.items()},
        "fraction_of_whole_task": {n: float(np.median(t)) / whole for n, t in times.items()},
    }
    out = Path("results/benchmarks/checks.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
