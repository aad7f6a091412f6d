"""Rule train: one named model, resumable from its checkpoint, exported to ONNX."""

from pathlib import Path

import torch

from jetimage.logs import setup
from jetimage.train import TrainConfig, train_model

log = setup(snakemake.log[0], "jetimage.train")  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
params = {k: v for k, v in snakemake.params[0].items() if k != "code"}  # noqa: F821
config = TrainConfig.from_dict(params)
name = snakemake.wildcards.model  # noqa: F821
history = train_model(
    snakemake.input[0],  # noqa: F821
    Path(snakemake.output.model).parent,  # noqa: F821
    config,
    name=name,
    progress=log.info,
)
log.info("trained %s for %d epochs", name, len(history))
