"""Rule predict: scores of a trained (exported) model on one input file, as Parquet."""

from jetimage import io
from jetimage.logs import setup
from jetimage.predict import load_exported, score_jets

log = setup(snakemake.log[0], "jetimage.predict")  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821

session, info = load_exported(inp.model, inp.exported)
frame = score_jets(io.read_jets_root(inp.jets), session, info, source=str(inp.jets))
with io.atomic_path(out[0]) as tmp:
    frame.to_parquet(tmp, index=False)
log.info("scored %d jets of %s with %s -> %s", len(frame), inp.jets, info["name"], out[0])
