# Config loading, validation and input functions. Rules live in the stage files.
import dataclasses

from snakemake.utils import validate

import jetimage
import jetimage.config as jc


validate(config, schema="../schemas/config.schema.yaml")
jc.check(config)

DATASET = config["dataset"]["name"]
MODELS = list(config["models"])
SAMPLES = list(config["samples"])


wildcard_constraints:
    sample="|".join(SAMPLES),
    part=r"[^/]+",
    model="|".join(MODELS),
    dataset=DATASET,


def sample_jet_files(sample):
    return expand("results/jets/{sample}/{part}.root", sample=sample, part=jc.sample_parts(config, sample))


def image_stores(wildcards=None):
    return [
        f"results/images/{sample}/{part}.zarr"
        for sample in SAMPLES
        for part in jc.sample_parts(config, sample)
    ]


def jets_input(wildcards):
    return f"results/jets/{wildcards.sample}/{wildcards.part}.root"


def generate_params(wildcards):
    settings = jc.generator_settings(config, wildcards.sample)
    sample = config["samples"][wildcards.sample]
    return {
        "settings": dataclasses.asdict(settings),
        "events": sample["events_per_shard"],
        "seed": jetimage.generate.derive_seed(config["seed"], wildcards.sample, wildcards.part),
        "batch_size": config["generation"]["batch_size"],
    }


def image_params(wildcards):
    sample = config["samples"][wildcards.sample]
    return {
        "spec": jc.image_spec(config).to_dict(),
        "sample": wildcards.sample,
        "class_name": sample["class"],
        "classes": config["classes"],
        "chunk_jets": config["dask"]["chunk_jets"],
    }


def dataset_params(wildcards):
    return {
        "classes": config["classes"],
        "labels": [
            config["classes"].index(config["samples"][s]["class"])
            for s in SAMPLES
            for _ in jc.sample_parts(config, s)
        ],
        "split": config["dataset"]["split"],
        "seed": config["seed"],
        "chunk_jets": config["dask"]["chunk_jets"],
    }


def train_params(wildcards):
    return jc.train_config(config, wildcards.model)


def train_gpus(wildcards):
    return 1 if jc.wants_gpu(config, wildcards.model) else 0


def evaluate_params(wildcards):
    return {
        "signal": jc.signal_class(config),
        "efficiencies": config["evaluation"]["efficiencies"],
        "bootstrap": config["evaluation"]["bootstrap"],
        "seed": config["seed"],
    }
