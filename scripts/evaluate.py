"""Rule evaluate: metrics, per-jet scores and plots of one model on the test split."""

from jetimage.evaluate import evaluate_model
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.evaluate")  # noqa: F821
params = snakemake.params[0]  # noqa: F821
evaluate_model(
    snakemake.input.model,  # noqa: F821
    snakemake.input.history,  # noqa: F821
    snakemake.input.dataset,  # noqa: F821
    snakemake.output,  # noqa: F821
    name=snakemake.wildcards.model,  # noqa: F821
    signal=params["signal"],
    efficiencies=params["efficiencies"],
    working_point=params["working_point"],
    bootstrap=params["bootstrap"],
    seed=params["seed"],
    log=log,
)
log.info("wrote %s, %s and plots", snakemake.output.metrics, snakemake.output.scores)  # noqa: F821
