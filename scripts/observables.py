"""Rule observables: the substructure observables of one image store's jets, row for row."""

import time

from jetimage import readers
from jetimage.logs import setup
from jetimage.substructure import write_observables_store

log = setup(snakemake.log[0], "jetimage.observables")
params = snakemake.params.settings
inp = snakemake.input
reader = params["reader"]
labels = readers.Labels(tuple(params["classes"]), **reader["labels"])

tic = time.perf_counter()
batches = readers.read(
    params["source"],
    format=reader["format"],
    labels=labels,
    step=params["batch_jets"],
    **reader["options"],
)
attrs = write_observables_store(
    snakemake.output[0], batches, inp.store, radius=params["radius"], progress=log.info
)
seconds = time.perf_counter() - tic
log.info(
    "observables of %d jets (R = %g) in %.1f s (%.0f jets/s)",
    attrs["n_jets"],
    params["radius"],
    seconds,
    attrs["n_jets"] / seconds,
)
