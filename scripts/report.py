"""Rule report: the HTML page comparing every model, and the cross-model figures."""

from jetimage.logs import setup
from jetimage.report import write_report

log = setup(snakemake.log[0], "jetimage.report")
params = snakemake.params
write_report(
    snakemake.input,
    snakemake.output,
    models=params.models,
    plot_names=params.plots,
    signal=params.signal,
    efficiencies=params.efficiencies,
    working_point=params.working_point,
    reference_model=params.reference_model,
    origins=params.origins,
    kinds=params.kinds,
    sizes=params.sizes,
    config=snakemake.config,
)
log.info("wrote %s (%d models)", snakemake.output.html, len(params.models))
