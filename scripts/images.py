"""Rule images: stream one jet file through its reader, pixelate it into a Zarr store (Dask)."""

import time

from jetimage import readers, remote
from jetimage.images import write_image_store
from jetimage.logs import setup
from jetimage.pixelate import ImageSpec

log = setup(snakemake.log[0], "jetimage.images")  # noqa: F821
params = snakemake.params[0]  # noqa: F821
# the source is a path or a root:// URL, which the readers stream as they do a local file
source, output = params["source"], snakemake.output[0]  # noqa: F821
reader = params["reader"]
labels = readers.Labels(tuple(params["classes"]), **reader["labels"])
pixelated = reader["format"] in readers.IMAGE_FORMATS
spec = None if pixelated else ImageSpec.from_dict(params["spec"])
attrs = {
    "sample": params["sample"],
    "classes": params["classes"],
    "source": str(source),
    "source_sha256": remote.checksum(source),
    "format": reader["format"],
}
if pixelated:
    attrs["image_spec"] = {
        **readers.image_grid(source, labels=labels, **reader["options"]),
        "normalize": params["spec"]["normalize"],
    }

tic = time.perf_counter()
counts = readers.Counts()
batches = readers.read(source, format=reader["format"], labels=labels,
                       step=params["batch_jets"], counts=counts, **reader["options"])
attrs = write_image_store(
    output,
    batches,
    spec,
    attrs=attrs,
    normalize=params["spec"]["normalize"],
    chunk_jets=params["chunk_jets"],
    scheduler=snakemake.config["dask"]["scheduler"],  # noqa: F821
    num_workers=snakemake.threads,  # noqa: F821
    progress=log.info,
    counts=counts,
    max_dropped_fraction=params["max_dropped_fraction"],
)
seconds = time.perf_counter() - tic
log.info("read %d jets from %s; dropped %s", counts.read, source, counts.dropped)
log.info("wrote %d images %s to %s in %.1f s (%.0f jets/s); %d constituents outside the window",
         attrs["n_jets"], attrs["image_spec"]["npix"], output, seconds,
         attrs["n_jets"] / seconds, attrs["n_constituents_outside_window"])
