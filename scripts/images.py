"""Rule images: stream one jet file through its reader once, writing its views (image, particle
cloud, observables) into a Zarr store (Dask)."""

import time

from jetimage.images import image_file
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.images")
settings = snakemake.params.settings
tic = time.perf_counter()
# the source is a path or a root:// URL, which the readers stream as they do a local file
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
log.info("read %d jets from %s; dropped %s", attrs["n_read"], settings["source"], attrs["dropped"])
log.info(
    "wrote %d images %s to %s in %.1f s (%.0f jets/s); %d constituents outside the window",
    attrs["n_jets"],
    attrs["image_spec"]["npix"],
    snakemake.output[0],
    seconds,
    attrs["n_jets"] / seconds,
    attrs["n_constituents_outside_window"],
)
capped = attrs.get("observables", {}).get("capped")
if capped:
    log.info(
        "%d jets have more than %d constituents: their observables come from their hardest %d",
        capped,
        attrs["observables"]["max_constituents"],
        attrs["observables"]["max_constituents"],
    )
