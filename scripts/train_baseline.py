"""Rule train_baseline: one baseline tagger fitted on the train split's high-level features."""

from pathlib import Path

from jetimage.baselines import train_baseline
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.train")
settings = snakemake.params.settings
info = train_baseline(
    snakemake.input[0],
    Path(snakemake.output.model).parent,
    architecture=settings["architecture"],
    options=settings["options"],
    signal=settings["signal"],
    seed=settings["seed"],
    planing=tuple(settings["planing"]),
    planing_bins=settings["planing_bins"],
    progress=log.info,
)
log.info("fitted %s on %s", snakemake.wildcards.model, info["features"])
