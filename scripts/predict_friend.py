"""Rule predict_friend: the predictions of one ROOT input as a ROOT friend tree."""

import pandas as pd

from jetimage.friends import write_friend_tree
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.predict")
inp, out, params = snakemake.input, snakemake.output, snakemake.params.settings
n = write_friend_tree(
    pd.read_parquet(inp.scores),
    params["source"],
    out[0],
    format=params["reader"]["format"],
    options=params["reader"]["options"],
)
log.info("wrote %s: %d entries, as %s has", out[0], n, params["source"])
