"""Which gradient-boosted-tree library the ``bdt`` baseline uses, by measurement.

Fits scikit-learn's ``HistGradientBoostingClassifier`` (the baseline's), XGBoost (``hist``)
and LightGBM with the same settings (at most 300 trees, learning rate 0.1, 31 leaves, early
stopping after 20 rounds without improvement on the val split, every core) on the default
run's high-level features (the dataset of ``make run``: its train split, early stopping on
val), and scores the same test jets: AUC and 1/εB at εS = 0.3 and 0.5 with bootstrap
uncertainties, fit and predict seconds (best of ``--repeats``). Then the fit time on ``--rows``
jets drawn from the train split with 1% noise, for a JetClass-sized sample. Writes
``results/benchmarks/bdt.json``.

    python scripts/bench/bdt.py [--dataset results/datasets/top_qcd.zarr] [--rows 1000000]

XGBoost and LightGBM are not dependencies of jetimage: install them to compare
(``pip install xgboost-cpu lightgbm``); a library that is missing is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jetimage import zarr_store
from jetimage.baselines import FEATURES, feature_matrix
from jetimage.metrics import binary_metrics

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"trees": 300, "learning_rate": 0.1, "leaves": 31, "patience": 20}


def sklearn_fit(x, y, x_val, y_val, threads):
    from sklearn.ensemble import HistGradientBoostingClassifier

    # scikit-learn holds out its own share for early stopping: give it train + val
    model = HistGradientBoostingClassifier(
        max_iter=SETTINGS["trees"],
        learning_rate=SETTINGS["learning_rate"],
        max_leaf_nodes=SETTINGS["leaves"],
        early_stopping=True,
        validation_fraction=len(y_val) / (len(y) + len(y_val)),
        n_iter_no_change=SETTINGS["patience"],
        random_state=0,
    )
    model.fit(np.concatenate([x, x_val]), np.concatenate([y, y_val]))
    return lambda data: model.predict_proba(data)[:, 1]


def xgboost_fit(x, y, x_val, y_val, threads):
    import xgboost

    model = xgboost.XGBClassifier(
        n_estimators=SETTINGS["trees"],
        learning_rate=SETTINGS["learning_rate"],
        max_leaves=SETTINGS["leaves"],
        max_depth=0,
        grow_policy="lossguide",
        tree_method="hist",
        early_stopping_rounds=SETTINGS["patience"],
        n_jobs=threads,
        random_state=0,
    )
    model.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
    return lambda data: model.predict_proba(data)[:, 1]


def lightgbm_fit(x, y, x_val, y_val, threads):
    import lightgbm

    model = lightgbm.LGBMClassifier(
        n_estimators=SETTINGS["trees"],
        learning_rate=SETTINGS["learning_rate"],
        num_leaves=SETTINGS["leaves"],
        n_jobs=threads,
        random_state=0,
        verbose=-1,
    )
    model.fit(
        x,
        y,
        eval_X=(x_val,),
        eval_y=(y_val,),
        callbacks=[lightgbm.early_stopping(SETTINGS["patience"], verbose=False)],
    )
    return lambda data: model.predict_proba(data)[:, 1]


LIBRARIES = {
    "scikit-learn HistGradientBoosting": sklearn_fit,
    "XGBoost": xgboost_fit,
    "LightGBM": lightgbm_fit,
}


def split(root, name: str, signal: int):
    table = zarr_store.read_table(root[name])
    return feature_matrix(table, FEATURES), (root[name]["labels"][...] == signal).astype(int)


def best_time(function, repeats: int):
    """(smallest seconds, last result) of ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        tic = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - tic)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT / "results/datasets/top_qcd.zarr"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not Path(args.dataset).exists():  # the default run's dataset, made as `make run` does
        subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--cores",
                "all",
                "--configfile",
                "config/config.yaml",
                args.dataset,
            ],
            cwd=ROOT,
            check=True,
        )
    root = zarr_store.open_store(args.dataset)
    signal = list(root.attrs["classes"]).index("top")
    (x, y), (x_val, y_val), (x_test, y_test) = (
        split(root, s, signal) for s in ("train", "val", "test")
    )
    threads = len(os.sched_getaffinity(0))
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(y), args.rows)
    x_big = x[pick] * rng.normal(1.0, 0.01, (args.rows, x.shape[1]))
    results = {}
    for name, fit in LIBRARIES.items():
        try:
            seconds, predict = best_time(lambda f=fit: f(x, y, x_val, y_val, threads), args.repeats)
        except ImportError as err:
            results[name] = {"missing": str(err)}
            print(f"{name}: not installed ({err})")
            continue
        predict_seconds, scores = best_time(lambda p=predict: p(x_test), args.repeats)
        big_seconds, _ = best_time(lambda f=fit: f(x_big, y[pick], x_val, y_val, threads), 1)
        results[name] = {
            "fit_seconds": seconds,
            "predict_seconds": predict_seconds,
            f"fit_seconds_{args.rows}_rows": big_seconds,
            **binary_metrics(y_test, scores, efficiencies=(0.3, 0.5), bootstrap=100),
        }
        print(
            f"{name}: AUC {results[name]['auc']['value']:.4f} ± "
            f"{results[name]['auc']['std']:.4f}, 1/eB(0.5) "
            f"{results[name]['rejection_at_0.5']['value']:.0f}, fit {seconds:.2f} s on "
            f"{len(y)} jets, {big_seconds:.1f} s on {args.rows}"
        )
    out = ROOT / "results/benchmarks/bdt.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "threads": threads,
                "features": list(FEATURES),
                "settings": SETTINGS,
                "jets": {"train": len(y), "val": len(y_val), "test": len(y_test)},
                "results": results,
            },
            indent=2,
            default=float,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
