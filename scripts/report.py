"""Rule report: the HTML page comparing every model, and the cross-model figures."""

from jetimage.logs import setup
from jetimage.report import write_report

log = setup(snakemake.log[0], "jetimage.report")  # noqa: F821
params = snakemake.params  # noqa: F821
write_report(
    snakemake.input,  # noqa: F821
    snakemake.output,  # noqa: F821
    models=params.models,
    plot_names=params.plots,
    signal=params.signal,
    efficiencies=params.efficiencies,
    working_point=params.working_point,
    reference_model=params.reference_model,
    origins=params.origins,
    kinds=params.kinds,
    config=snakemake.config,  # noqa: F821
)
log.info("wrote %s (%d models)", snakemake.output.html, len(params.models))  # noqa: F821
