"""Rule dataset_bucket: one bucket of the shuffle, split and shuffled, into its own store."""

import time

from jetimage.dataset import write_bucket
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.dataset")
params = snakemake.params.settings

tic = time.perf_counter()
inp = snakemake.input
attrs = write_bucket(
    snakemake.output[0],
    list(inp.stores),
    bucket=int(snakemake.wildcards.bucket),
    buckets=params["buckets"],
    classes=params["classes"],
    fractions=params["split"],
    seed=params["seed"],
    chunk_jets=params["chunk_jets"],
    memory_mb=snakemake.config["dataset"]["memory_mb"],
    scheduler=snakemake.config["dask"]["scheduler"],
    num_workers=snakemake.threads,
    progress=log.info,
    drop_duplicates=params["drop_duplicates"],
)
n = sum(s["n"] for s in attrs["splits"].values())
seconds = time.perf_counter() - tic
log.info("bucket %s: %d jets in %.1f s (%.0f jets/s)", attrs["bucket"], n, seconds, n / seconds)
