"""Rule train: one named model, resumable from its checkpoint, exported to ONNX."""

from pathlib import Path

import torch

from jetimage.logs import setup
from jetimage.train import TrainConfig, train_model

log = setup(snakemake.log[0], "jetimage.train")
torch.set_num_threads(snakemake.threads)
params = snakemake.params.settings
config = TrainConfig.from_dict(params)
name = snakemake.wildcards.model
history = train_model(
    snakemake.input[0],
    Path(snakemake.output.model).parent,
    config,
    name=name,
    progress=log.info,
    parent=snakemake.input[1] if len(snakemake.input) > 1 else None,  # init.from's model.pt
)
log.info("trained %s for %d epochs", name, len(history))
