# Config loading, validation and input functions. Rules live in the stage files.
import dataclasses
import re
from pathlib import Path

from snakemake.utils import validate

import jetimage.config as jc
from jetimage import parents, remote
from jetimage.lineage import code_digest
from jetimage.generate import derive_seed

# the schema (defaults filled in; an unknown key gets the closest valid name) and the cross-field
# checks, before any job runs; then Snakemake's own validation of the same schema
config.update(jc.validate(config))
validate(config, schema="../schemas/config.schema.yaml")

DATASET = config["dataset"]["name"]
# the one dataset store every model trains on and is evaluated on (rule dataset's output)
DATASET_STORE = f"results/datasets/{DATASET}.zarr"
# the figures of rule evaluate, each as .png (in the report) and .pdf
EVALUATION_PLOTS = [
    "roc",
    "history",
    "confusion",
    "examples",
    "sculpting",
    "auc_vs_pt",
    "pt_dependence",
    "learned",
]
# the report's own figures, each as .png and .pdf
REPORT_PLOTS = [
    "rejection_all_models",
    "pt_dependence_all_models",
    "sculpting_all_models",
    "mean_images",
    "learning_curves",
]
# predict.files: name -> (path or URL, reader settings of the entry that matched it)
PREDICT_READERS = jc.predict_file_readers(config)
PREDICT_FILES = {name: path for name, (path, _) in PREDICT_READERS.items()}
MODELS = sorted(config["models"])
# baselines (jetimage.baselines) are fitted by rule train_baseline, image models by rule train
BASELINE_MODELS = [m for m in MODELS if jc.is_baseline(config, m)]
IMAGE_MODELS = [m for m in MODELS if m not in BASELINE_MODELS]


def name_pattern(names):
    return "|".join(map(re.escape, names)) or "(?!)"


BASELINE_PATTERN = name_pattern(BASELINE_MODELS)
IMAGE_MODEL_PATTERN = name_pattern(IMAGE_MODELS)
SAMPLES = sorted(config["samples"])
# globs are expanded when the DAG is built; the parts of file samples are their files
FILES = {
    sample: jc.sample_files(config, sample)
    for sample in SAMPLES
    if config["samples"][sample]["source"] == "files"
}
PARTS = {
    sample: list(FILES[sample]) if sample in FILES else jc.sample_parts(config, sample)
    for sample in SAMPLES
}


wildcard_constraints:
    sample="|".join(map(re.escape, SAMPLES)),
    part=r"[^/]+",
    model="|".join(map(re.escape, MODELS)),
    dataset=re.escape(DATASET),
    bucket=r"\d+",
    group="|".join(map(re.escape, ["files", *SAMPLES])),


def image_stores(wildcards=None):
    return [
        f"results/images/{sample}/{part}.zarr"
        for sample in SAMPLES
        for part in PARTS[sample]
    ]


def bucket_stores(wildcards):
    return [
        f"results/datasets/{wildcards.dataset}.buckets/{k}.zarr"
        for k in range(config["dataset"]["buckets"])
    ]


def dataset_bucket_mem_mb(wildcards):
    return int(config["dataset"]["memory_mb"]) + 1000


def figures(wildcards=None):
    """Every figure a run draws, PNG and PDF: targets of rule all, so that a deleted figure is
    drawn again (with the report, which embeds it)."""
    names = [f"{model}/{plot}" for model in MODELS for plot in EVALUATION_PLOTS]
    names += REPORT_PLOTS
    return [f"results/evaluation/{n}.{ext}" for n in names for ext in ("png", "pdf")]


def prediction_reader(group, name):
    """Reader settings of a prediction's input: a sample's part, or a predict.files file."""
    if group == "files":
        return PREDICT_READERS[name][1]
    return jc.reader_settings(config, group)


def prediction_files(wildcards=None):
    models = config["predict"]["models"]
    inputs = [
        (sample, part)
        for sample in config["predict"]["samples"]
        for part in PARTS[sample]
    ] + [("files", name) for name in PREDICT_FILES]
    paths = [
        f"results/predictions/{model}/{group}/{name}.parquet"
        for model in models
        for group, name in inputs
    ]
    if config["predict"]["root_friend"]:
        paths += [
            f"results/predictions/{model}/{group}/{name}.friend.root"
            for model in models
            for group, name in inputs
            if prediction_reader(group, name)["format"] in ("root", "nanoaod")
        ]
    return paths


def prediction_source(group, name):
    """The input file (path or URL) of a prediction: a predict.files file or a sample's part."""
    return PREDICT_FILES[name] if group == "files" else jet_file(group, name)


def predict_file_input(wildcards):
    return local_input(PREDICT_FILES[wildcards.name])


def friend_jets_input(wildcards):
    return local_input(prediction_source(wildcards.group, wildcards.name))


def jet_file(sample, part):
    """The jet file of a sample's part: a generated shard, or the user's file."""
    if sample in FILES:
        return FILES[sample][part]
    return f"results/jets/{sample}/{part}.root"


def local_input(path):
    """A path as a job input; none for a root:// URL, which the job reads itself (its params
    hold the URL and the remote file's size and time, so that a changed file reruns it).
    """
    return [] if remote.is_remote(path) else path


def source_params(path):
    return {
        "source": path,
        **({"remote": remote.stat(path)} if remote.is_remote(path) else {}),
    }


def jets_input(wildcards):
    return local_input(jet_file(wildcards.sample, wildcards.part))


# Params hold exactly what each output depends on (Snakemake's params rerun trigger), with
# mapping keys sorted so that reordering a config does not rerun anything. "code" is a digest of
# the library code the rule's script runs: Snakemake's code trigger sees only the script itself.


def code(rule):
    return code_digest(Path(workflow.basedir) / "scripts" / f"{rule}.py")


def generate_params(wildcards):
    sample = config["samples"][wildcards.sample]
    settings = jc.generator_settings(config, wildcards.sample)
    return jc.canonical(
        {
            "settings": dataclasses.asdict(settings),
            "events": sample["events_per_shard"],
            "seed": derive_seed(config["seed"], wildcards.sample, wildcards.part),
            "batch_size": config["generation"]["batch_size"],
        }
    )


def image_params(wildcards):
    sample = wildcards.sample
    reader = jc.reader_settings(config, sample)
    pixelated = reader["format"] in jc.IMAGE_FORMATS
    spec = jc.image_spec(config).to_dict()
    return jc.canonical(
        {
            **source_params(jet_file(sample, wildcards.part)),
            # pre-pixelated images depend on the normalisation only, not on the image recipe
            "spec": {"normalize": spec["normalize"]} if pixelated else spec,
            # the particle view and the observables need constituents
            **(
                {}
                if pixelated
                else {
                    "particles": config["particles"],
                    "radius": jc.jet_radius(config, sample),
                    "observables": config["observables"],
                    "checks": {
                        key: config["samples"][sample][key]
                        for key in (
                            "max_constituent_distance",
                            "far_constituents",
                            "max_pt_outside_fraction",
                        )
                    },
                }
            ),
            "reader": reader,
            "sample": sample,
            "classes": config["classes"],
            "max_dropped_fraction": config["samples"][sample]["max_dropped_fraction"],
            "chunk_jets": config["dask"]["chunk_jets"],
            "batch_jets": config["dask"]["batch_jets"],
        }
    )


def predict_params(wildcards, group=None, name=None):
    return jc.canonical(
        {
            **source_params(
                prediction_source(group or wildcards.sample, name or wildcards.part)
            ),
            "reader": prediction_reader(group or wildcards.sample, name),
            "classes": config["classes"],
            "batch_jets": config["dask"]["batch_jets"],
        }
    )


def predict_file_params(wildcards):
    return predict_params(wildcards, "files", wildcards.name)


def friend_params(wildcards):
    return jc.canonical(
        {
            **source_params(prediction_source(wildcards.group, wildcards.name)),
            "reader": prediction_reader(wildcards.group, wildcards.name),
        }
    )


def dataset_params(wildcards):
    # labels are read from the image stores, which are the rules' inputs; the memory budget
    # changes no output, so it is not here
    return jc.canonical(
        {
            "classes": config["classes"],
            "split": config["dataset"]["split"],
            "seed": config["seed"],
            "chunk_jets": config["dask"]["chunk_jets"],
            "buckets": config["dataset"]["buckets"],
            "drop_duplicates": sorted(
                name
                for name, sample in config["samples"].items()
                if sample.get("duplicates") == "drop"
            ),
        }
    )


def train_params(wildcards):
    return jc.canonical(jc.train_config(config, wildcards.model))


def baseline_params(wildcards):
    settings = jc.train_config(config, wildcards.model)
    return jc.canonical(
        {
            "architecture": settings["architecture"],
            "options": settings["options"],
            "signal": jc.signal_class(config),
            "seed": config["seed"],
            "planing": settings["planing"],
            "planing_bins": settings["planing_bins"],
        }
    )


def train_parent(wildcards):
    """The model.pt a model starts from (init.from), if a file: retraining it retrains this."""
    parent = parents.parent_model(config, wildcards.model)
    return [] if parent in (None, "imagenet") else [parent]


def train_gpus(wildcards):
    return 1 if jc.wants_gpu(config, wildcards.model) else 0


def evaluate_params(wildcards):
    return jc.canonical(
        {
            "signal": jc.signal_class(config),
            "efficiencies": config["evaluation"]["efficiencies"],
            "working_point": config["evaluation"]["working_point"],
            "bootstrap": config["evaluation"]["bootstrap"],
            "seed": config["seed"],
        }
    )
