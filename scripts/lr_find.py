"""Rule lr_find: the learning-rate finder of one configured model (asked for by name)."""

import torch

from jetimage.logs import setup
from jetimage.lr_find import find_learning_rate
from jetimage.train import TrainConfig

log = setup(snakemake.log[0], "jetimage.lr_find")
torch.set_num_threads(snakemake.threads)
find_learning_rate(
    snakemake.input[0],
    snakemake.output.found,
    TrainConfig.from_dict(snakemake.params.settings),
    name=snakemake.wildcards.model,
    parent=snakemake.input[1] if len(snakemake.input) > 1 else None,  # init.from's model.pt
    progress=log.info,
)
