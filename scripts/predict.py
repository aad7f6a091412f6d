"""Rules predict and predict_file: scores of a trained (exported) model on one input file."""

from jetimage import readers
from jetimage.files import atomic_path
from jetimage.inference import load_exported
from jetimage.logs import setup
from jetimage.predict import score_batches

log = setup(snakemake.log[0], "jetimage.predict")
inp, out, params = snakemake.input, snakemake.output, snakemake.params.settings
reader = params["reader"]

session, info = load_exported(inp.model, inp.exported)
# read as for training; with labels when the sample or predict.files entry has them
labels = readers.Labels(tuple(params["classes"]), **reader["labels"]) if reader["labels"] else None
counts = readers.Counts()
batches = readers.read(
    params["source"],
    format=reader["format"],
    labels=labels,
    step=params["batch_jets"],
    counts=counts,
    **reader["options"],
)
frame = score_batches(
    batches, session, info, source=str(params["source"]), labelled=labels is not None, counts=counts
)
with atomic_path(out[0]) as tmp:
    frame.to_parquet(tmp, index=False)
log.info(
    "scored %d jets of %s with %s -> %s (dropped %s)",
    len(frame),
    params["source"],
    info["name"],
    out[0],
    counts.dropped,
)
