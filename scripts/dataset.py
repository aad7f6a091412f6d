"""Rule dataset: every image store → one shuffled train/val/test Zarr store."""

import time

from jetimage.dataset import build_dataset
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.dataset")  # noqa: F821
params = snakemake.params[0]  # noqa: F821

tic = time.perf_counter()
attrs = build_dataset(
    snakemake.output[0],  # noqa: F821
    list(snakemake.input),  # noqa: F821
    classes=params["classes"],
    fractions=params["split"],
    seed=params["seed"],
    chunk_jets=params["chunk_jets"],
    scheduler=snakemake.config["dask"]["scheduler"],  # noqa: F821
    num_workers=snakemake.threads,  # noqa: F821
    progress=log.info,
)
for split, counts in attrs["splits"].items():
    log.info("%s: %s", split, counts)
log.info("normalization %s; done in %.1f s", attrs["normalization"], time.perf_counter() - tic)
