"""Rule generate: Pythia 8 + FastJet jets of one shard, written as JetClass-layout ROOT."""

from jetimage.generate import GeneratorSettings, write_shard
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.generate")
params = snakemake.params.settings
settings = GeneratorSettings.from_dict(params["settings"])
log.info(
    "process %s, %d events, seed %d, settings %s",
    settings.process,
    params["events"],
    params["seed"],
    settings,
)
n = write_shard(
    snakemake.output[0],
    settings,
    events=params["events"],
    seed=params["seed"],
    batch_size=params["batch_size"],
    log=log,
)
log.info("wrote %d jets to %s", n, snakemake.output[0])
