rule train:
    """Train one named model of the config; resumes from its checkpoint after a kill."""
    input:
        DATASET_STORE,
        parent=train_parent,
    output:
        model="results/models/{model}/model.pt",
        exported="results/models/{model}/model.onnx",
        history="results/models/{model}/history.json",
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/rules/train/{model}.tsv"
    wildcard_constraints:
        model=IMAGE_MODEL_PATTERN,
    conda:
        "../../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=train_gpus,
    params:
        settings=train_params,
        code=code("train"),
    script:
        "../../scripts/train.py"


rule train_baseline:
    """Fit one baseline tagger (BDT, cuts) on the train split's high-level features."""
    input:
        DATASET_STORE,
    output:
        model="results/models/{model}/model.pt",
        history="results/models/{model}/history.json",
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/rules/train/{model}.tsv"
    wildcard_constraints:
        model=BASELINE_PATTERN,
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=baseline_params,
        code=code("train_baseline"),
    script:
        "../../scripts/train_baseline.py"


rule lr_find:
    """The learning-rate finder of one model (fastai's lr_find), asked for by its output:
    snakemake results/models/NAME/lr_find.json; not part of a run."""
    input:
        DATASET_STORE,
        parent=train_parent,
    output:
        found="results/models/{model}/lr_find.json",
        figure="results/models/{model}/lr_find.png",
    log:
        "results/logs/lr_find/{model}.log",
    wildcard_constraints:
        model=IMAGE_MODEL_PATTERN,
    conda:
        "../../envs/evaluate.yaml"  # torch and the plotting stack
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=train_gpus,
    params:
        settings=train_params,
        code=code("lr_find"),
    script:
        "../../scripts/lr_find.py"
