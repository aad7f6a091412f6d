"""Rule predict: scores of a trained (exported) model on one input file, as Parquet."""

from jetimage import io, readers
from jetimage.logs import setup
from jetimage.predict import load_exported, score_batches

log = setup(snakemake.log[0], "jetimage.predict")  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
params = snakemake.params[0] if snakemake.params else {}  # noqa: F821
reader = params.get("reader", {"format": "root", "options": {}})

session, info = load_exported(inp.model, inp.exported)
# a sample's files are read as for training (its labels map may name the datasets to read);
# files named by predict.files are JetClass-layout ROOT without labels
labels = readers.Labels(tuple(params["classes"]), **reader["labels"]) if "labels" in reader \
    else None
counts = readers.Counts()
batches = readers.read(inp.jets, format=reader["format"], labels=labels,
                       step=params.get("batch_jets", 16384), counts=counts, **reader["options"])
frame = score_batches(batches, session, info, source=str(inp.jets))
with io.atomic_path(out[0]) as tmp:
    frame.to_parquet(tmp, index=False)
log.info("scored %d jets of %s with %s -> %s (dropped %s)", len(frame), inp.jets, info["name"],
         out[0], counts.dropped)
