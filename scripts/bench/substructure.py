"""Speed of the substructure observables against the images stage's pixelation, on one core.

Times :func:`jetimage.substructure.observables` on generated top and QCD jets, each FastJet
contrib call apart (C/A clustering, soft drop, N-subjettiness, the energy correlators), and
``make_images`` on the same jets in the same run; the ratio says whether the observables may
run inside the images stage (at most 1.5× slower) or need a stage of their own. Writes
``results/benchmarks/substructure.json``.

    python scripts/bench/substructure.py [--jets 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import awkward as ak

import jetimage
from jetimage import ImageSpec, make_images
from jetimage.readers import read_jets
from jetimage.substructure import CORRELATORS, SOFT_DROP, _sequence, observables


def best_rate(function, n: int, repeats: int) -> float:
    """Jets per second of ``function()`` over ``n`` jets, best of ``repeats``."""
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        function()
        times.append(time.perf_counter() - tic)
    return n / min(times)


def parts(constituents, radius: float, repeats: int) -> dict[str, float]:
    """Jets per second of each FastJet contrib call."""
    n = len(constituents)
    sequence = _sequence(constituents)
    groomed = sequence.exclusive_jets_softdrop_grooming(njets=1, R0=radius, **SOFT_DROP)
    groomed_sequence = _sequence(groomed.constituents)
    rates = {
        "cambridge_aachen": best_rate(lambda: _sequence(constituents), n, repeats),
        "soft_drop": best_rate(
            lambda: sequence.exclusive_jets_softdrop_grooming(njets=1, R0=radius, **SOFT_DROP),
            n,
            repeats,
        ),
        "n_subjettiness": best_rate(
            lambda: sequence.njettiness(njets=[1, 2, 3], beta=1.0, R0=radius), n, repeats
        ),
    }
    for name, (function, beta) in CORRELATORS.items():
        rates[name] = best_rate(
            lambda f=function, b=beta: groomed_sequence.exclusive_jets_energy_correlator(
                njets=1, beta=b, func=f
            ),
            n,
            repeats,
        )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=2000, help="jets per process")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {
        "machine": platform.processor() or platform.machine(),
        "jetimage": jetimage.__version__,
        "cores": 1,
        "processes": {},
    }
    for process in ("top", "qcd"):
        files = sorted(Path("results/jets", process).glob("*.root"))
        if not files:
            msg = (
                f"no generated {process} jets under results/jets/{process}: run "
                f"'make run' (or snakemake) first"
            )
            raise SystemExit(msg)
        jets = read_jets(files[0])
        for path in files[1:]:
            if len(jets) >= args.jets:
                break
            more = read_jets(path)
            jets = type(jets)(ak.concatenate([jets.constituents, more.constituents]), {})
        constituents = jets.constituents[: args.jets]
        n = len(constituents)
        observables_rate = best_rate(
            lambda c=constituents: observables(c, radius=0.8), n, args.repeats
        )
        images_rate = best_rate(lambda c=constituents: make_images(c, ImageSpec()), n, args.repeats)
        results["processes"][process] = {
            "jets": n,
            "mean_constituents": float(ak.mean(ak.num(constituents))),
            "observables_jets_per_s": observables_rate,
            "images_jets_per_s": images_rate,
            "images_over_observables": images_rate / observables_rate,
            "parts_jets_per_s": parts(constituents, 0.8, args.repeats),
        }
        print(process, json.dumps(results["processes"][process], indent=1))
    out = Path("results/benchmarks/substructure.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
