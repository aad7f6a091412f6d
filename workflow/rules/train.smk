rule train:
    """Train one named model of the config; resumes from its checkpoint after a kill."""
    input:
        f"results/datasets/{DATASET}.zarr",
    output:
        model="results/models/{model}/model.pt",
        exported="results/models/{model}/model.onnx",
        history="results/models/{model}/history.json",
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/rules/train/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=train_gpus,
    params:
        train_params,
    script:
        "../../scripts/train.py"
