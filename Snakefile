# jetimage: jets -> jet images -> trained classifiers -> report.
# Run:  snakemake --cores all            (config/config.yaml)
#       snakemake --cores all --configfile config/other.yaml
from snakemake.utils import min_version

min_version("9.0")


# The default config applies only when no --configfile is given: Snakemake would otherwise
# merge the two, and a config's samples and models would gain the default's.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"


rule all:
    input:
        "results/report.html",
        figures,
        prediction_files,
