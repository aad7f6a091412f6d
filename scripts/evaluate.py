"""Rule evaluate: metrics, per-jet scores and plots of one model on the test split."""

from jetimage.evaluate import evaluate_model
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.evaluate")
params = snakemake.params.settings
evaluate_model(
    snakemake.input.model,
    snakemake.input.history,
    snakemake.input.dataset,
    snakemake.output,
    name=snakemake.wildcards.model,
    signal=params["signal"],
    efficiencies=params["efficiencies"],
    working_point=params["working_point"],
    bootstrap=params["bootstrap"],
    seed=params["seed"],
    log=log,
)
log.info("wrote %s, %s and plots", snakemake.output.metrics, snakemake.output.scores)
