"""Rule images: read one jet file, preprocess and pixelate it into a Zarr store with Dask."""

import time

from jetimage import io
from jetimage.logs import setup
from jetimage.pixelate import ImageSpec
from jetimage.store import write_image_store

log = setup(snakemake.log[0], "jetimage.images")  # noqa: F821
params = snakemake.params[0]  # noqa: F821
source, output = snakemake.input[0], snakemake.output[0]  # noqa: F821
spec = ImageSpec.from_dict(params["spec"])

tic = time.perf_counter()
jets, dropped = io.drop_jets_without_constituents(io.read_jets_root(source))
log.info("read %d jets from %s (%d without constituents dropped)", len(jets), source,
         dropped["no_constituents"])
if len(jets) == 0:
    raise io.InputError(f"{source}: no jet with constituents")
attrs = write_image_store(
    output,
    jets,
    spec,
    attrs={
        "sample": params["sample"],
        "class_name": params["class_name"],
        "classes": params["classes"],
        "source": str(source),
        "source_sha256": io.sha256sum(source),
        "dropped": dropped,
    },
    chunk_jets=params["chunk_jets"],
    scheduler=snakemake.config["dask"]["scheduler"],  # noqa: F821
    num_workers=snakemake.threads,  # noqa: F821
    progress=log.info,
)
seconds = time.perf_counter() - tic
log.info("wrote %d images %s to %s in %.1f s (%.0f jets/s); %d constituents outside the window",
         len(jets), spec.npix, output, seconds, len(jets) / seconds,
         attrs["n_constituents_outside_window"])
