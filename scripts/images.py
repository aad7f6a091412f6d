"""Rule images: stream one jet file through its reader once, writing its views (image, particle
cloud, observables) into a Zarr store (Dask)."""

import time

from jetimage.images import image_file
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.images")
settings = snakemake.params.settings
tic = time.perf_counter()
attrs = image_file(
    settings["source"],
    snakemake.output[0],
    reader=settings["reader"],
    spec=settings["spec"],
    sample=settings["sample"],
    classes=settings["classes"],
    batch_jets=settings["batch_jets"],
    chunk_jets=settings["chunk_jets"],
    max_dropped_fraction=settings["max_dropped_fraction"],
    particles=settings.get("particles"),
    radius=settings.get("radius"),
    observables=settings.get("observables"),
    checks=settings.get("checks"),
    scheduler=snakemake.config["dask"]["scheduler"],
    num_workers=snakemake.threads,
    progress=log.info,
)
seconds = time.perf_counter() - tic
lost = 100 * attrs.get("pt_fraction_outside_window", 0.0)
log.info(
    "read %(n_read)d jets from %(source)s (dropped %(dropped)s); wrote %(n_jets)d images in "
    "%(seconds).1f s (%(rate).0f jets/s); %(n_constituents_outside_window)d constituents, "
    "%(lost).2f%% of the pT, outside the window",
    {**attrs, "seconds": seconds, "rate": attrs["n_jets"] / seconds, "lost": lost},
)
