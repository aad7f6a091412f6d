"""Speed of the substructure observables: the compiled kernel against the FastJet contrib path.

On generated top and QCD jets (default recipe; ``results/jets`` of a default run, else generated
here and cached under ``--workdir``), in one process on one core, interleaved and repeated
(medians):

- ``observables`` (the kernel: every observable of ``substructure.NAMES``, the hls4ml features
  included) against the contrib path of the observables stage before the kernel (the 12
  observables: C/A, SoftDrop, Nsubjettiness, the four correlators, through scikit-hep
  ``fastjet``) and against ``contrib_observables`` (the same 22 observables through contrib);
  their values compared jet by jet;
- each part of the kernel (kinematics, the C/A clustering, soft drop and the groomed jet's
  correlators, the kT clustering, the one-pass axes and τ) and each contrib call;
- pixelation of the same jets (``make_images``), for scale.

The images stage, which computes the observables in its pass over a file, is measured at
scale by ``scripts/bench/views.py``. Writes ``results/benchmarks/substructure.json``.

    python scripts/bench/substructure.py [--jets 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import awkward as ak
import numba
import numpy as np

import jetimage
from jetimage import ImageSpec, make_images
from jetimage import substructure_kernel as kernel
from jetimage.readers import read_jets
from jetimage.substructure import NAMES, SOFT_DROP, kernel_input, observables
from jetimage.substructure_contrib import cluster_events, contrib_observables

RADIUS = 0.8
#: The correlators of the observables stage before the kernel (contrib function, β).
OLD_CORRELATORS = {"c2_b1": ("c2", 1), "d2_b1": ("d2", 1), "d2_b2": ("d2", 2), "n2_b1": ("n2", 1)}


def contrib_stage(constituents) -> None:
    """The observables stage's computation before the kernel (12 observables through contrib)."""
    sequence = cluster_events(constituents)
    groomed = sequence.exclusive_jets_softdrop_grooming(njets=1, R0=RADIUS, **SOFT_DROP)
    sequence.njettiness(njets=[1, 2, 3], beta=1.0, R0=RADIUS)
    groomed_sequence = cluster_events(groomed.constituents)
    for function, beta in OLD_CORRELATORS.values():
        groomed_sequence.exclusive_jets_energy_correlator(njets=1, beta=beta, func=function)


def medians(functions: dict, n: int, repeats: int) -> dict[str, float]:
    """Jets per second of each function (over ``n`` jets), median of ``repeats`` rounds that
    run every function once in turn."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            tic = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - tic)
    return {name: n / statistics.median(t) for name, t in times.items()}


@numba.njit(cache=True)
def kernel_upto(offsets, p, part):
    """The kernel run up to one part for every jet: 0 kinematics, 1 + C/A clustering, 2 + soft
    drop and the groomed jet's correlators, 3 kinematics + kT clustering, 4 + axes and τ."""
    out = np.zeros(kernel.N_COLUMNS)
    for j in range(len(offsets) - 1):
        q = p[offsets[j] : offsets[j + 1]]
        kt2, rap, phi, d2 = kernel.kinematics(q)
        if part in (1, 2):
            mom, nkt2, nrap, nphi, children = kernel.cluster(q, kt2, rap, phi, d2, False)
            if part == 2:
                groomed = kernel.soft_drop(nkt2, nrap, nphi, children, 0.1, 0.0, RADIUS)
                kernel.groomed_observables(np.sqrt(kt2), d2, mom, nkt2, children, groomed, out)
        elif part in (3, 4):
            mom, _, _, _, children = kernel.cluster(q, kt2, rap, phi, d2, True)
            if part == 4:
                kernel.n_subjettiness(q, np.sqrt(kt2), rap, phi, mom, children, RADIUS, out)
    return out


def kernel_parts(constituents, repeats: int) -> dict[str, float]:
    """Microseconds per jet of each part of the kernel (differences of cumulative runs)."""
    offsets, momenta = kernel_input(constituents)
    n = len(constituents)
    upto = {part: (lambda k=part: kernel_upto(offsets, momenta, k)) for part in range(5)}
    for run in upto.values():
        run()  # compile
    rates = medians(upto, n, repeats)
    us = {part: 1e6 / rate for part, rate in rates.items()}
    return {
        "kinematics": us[0],
        "cambridge_aachen": us[1] - us[0],
        "soft_drop_and_correlators": us[2] - us[1],
        "kt_clustering": us[3] - us[0],
        "axes_and_tau": us[4] - us[3],
    }


def contrib_parts(constituents, repeats: int) -> dict[str, float]:
    """Jets per second of each FastJet contrib call of the stage before the kernel."""
    n = len(constituents)
    sequence = cluster_events(constituents)
    groomed = sequence.exclusive_jets_softdrop_grooming(njets=1, R0=RADIUS, **SOFT_DROP)
    groomed_sequence = cluster_events(groomed.constituents)
    calls = {
        "cambridge_aachen": lambda: cluster_events(constituents),
        "soft_drop": lambda: sequence.exclusive_jets_softdrop_grooming(
            njets=1, R0=RADIUS, **SOFT_DROP
        ),
        "n_subjettiness": lambda: sequence.njettiness(njets=[1, 2, 3], beta=1.0, R0=RADIUS),
    }
    for name, (function, beta) in OLD_CORRELATORS.items():
        calls[name] = lambda f=function, b=beta: groomed_sequence.exclusive_jets_energy_correlator(
            njets=1, beta=b, func=f
        )
    return medians(calls, n, repeats)


def largest_difference(constituents) -> dict[str, float]:
    """Largest relative difference of the kernel from contrib per observable (NaN patterns
    must agree: -1 where they do not)."""
    ours = observables(constituents, radius=RADIUS)
    reference = contrib_observables(constituents, radius=RADIUS)
    out = {}
    for name in NAMES:
        a, b = ours[name].astype(float), reference[name].astype(float)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            out[name] = -1.0
            continue
        finite = ~np.isnan(b)
        scale = np.maximum(np.abs(b[finite]), np.finfo(float).tiny)
        out[name] = float(np.max(np.abs(a[finite] - b[finite]) / scale, initial=0.0))
    return out


def jet_pool(process: str, n: int, workdir: Path) -> Path:
    """A file of about ``n`` generated jets of ``process`` (default recipe): a default run's
    results/jets shard if large enough, else generated here (2.5 events a jet: top events
    give ~0.5 jets in the window) and cached in ``workdir``."""
    for path in sorted(Path("results/jets", process).glob("*.root")):
        if len(read_jets(path)) >= n:
            return path
    events = int(2.5 * n)
    path = workdir / f"{process}-{events}-events.root"
    if not path.exists():
        import yaml

        from jetimage.config import process_settings, validate
        from jetimage.files import write_jets_root
        from jetimage.generate import generate_jets

        config = yaml.safe_load(Path("config/config.yaml").read_text())
        settings = process_settings(validate(config)["generation"], process)
        workdir.mkdir(parents=True, exist_ok=True)
        tic = time.perf_counter()
        write_jets_root(path, generate_jets(settings, n_events=events, seed=900))
        print(f"generated {process} jets in {time.perf_counter() - tic:.0f} s", flush=True)
    return path


def process_rates(constituents, repeats: int) -> dict:
    """The kernel against the contrib paths and pixelation on the same jets, and its parts."""
    n = len(constituents)
    observables(constituents[:5], radius=RADIUS)  # compile
    rates = medians(
        {
            "kernel": lambda: observables(constituents, radius=RADIUS),
            "contrib_stage_12": lambda: contrib_stage(constituents),
            "contrib_all_22": lambda: contrib_observables(constituents, radius=RADIUS),
            "images": lambda: make_images(constituents, ImageSpec()),
        },
        n,
        repeats,
    )
    parts = kernel_parts(constituents, repeats)
    return {
        "jets": n,
        "mean_constituents": float(ak.mean(ak.num(constituents))),
        "jets_per_s": rates,
        "kernel_over_contrib_stage": rates["kernel"] / rates["contrib_stage_12"],
        "kernel_over_contrib_all": rates["kernel"] / rates["contrib_all_22"],
        "kernel_parts_us_per_jet": parts,
        "kernel_parts_share": {k: v / sum(parts.values()) for k, v in parts.items()},
        "contrib_calls_jets_per_s": contrib_parts(constituents, repeats),
        "largest_relative_difference": largest_difference(constituents),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=2000, help="jets per process")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("results/bench-substructure"))
    args = parser.parse_args()
    results: dict = {
        "machine": platform.processor() or platform.machine(),
        "jetimage": jetimage.__version__,
        "cores": 1,
        "repeats": args.repeats,
        "processes": {},
    }
    pools = {p: jet_pool(p, args.jets, args.workdir) for p in ("top", "qcd")}
    for process, path in pools.items():
        constituents = read_jets(path).constituents[: args.jets]
        results["processes"][process] = process_rates(constituents, args.repeats)
        print(process, json.dumps(results["processes"][process], indent=1), flush=True)
    out = Path("results/benchmarks/substructure.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
