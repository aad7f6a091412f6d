rule train:
    """Train one named model of the config; resumes from its checkpoint after a kill."""
    input:
        f"results/datasets/{DATASET}.zarr",
    output:
        model="results/models/{model}/model.pt",
        exported="results/models/{model}/model.pt2",
        history="results/models/{model}/history.json",
    params:
        train_params,
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/rules/train/{model}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=train_gpus,
    conda:
        "../../envs/train.yaml"
    script:
        "../../scripts/train.py"
