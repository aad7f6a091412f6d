"""Rule dataset: the buckets joined into one shuffled train/val/test Zarr store."""

import time

from jetimage.dataset import assemble_dataset
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.dataset")
params = snakemake.params.settings
inp = snakemake.input

tic = time.perf_counter()
attrs = assemble_dataset(
    snakemake.output[0],
    list(inp.buckets),
    list(inp.stores),
    classes=params["classes"],
    fractions=params["split"],
    seed=params["seed"],
    chunk_jets=params["chunk_jets"],
    progress=log.info,
)
if attrs["duplicates"].get("copies"):
    log.info("jets read more than once: %s", attrs["duplicates"])
for split, counts in attrs["splits"].items():
    log.info("%s: %s", split, counts)
log.info("normalization %s; done in %.1f s", attrs["normalization"], time.perf_counter() - tic)
