rule dataset:
    """Gather every image store into one shuffled train/val/test Zarr store."""
    input:
        image_stores,
    output:
        directory("results/datasets/{dataset}.zarr"),
    log:
        "results/logs/dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/rules/dataset/{dataset}.tsv"
    conda:
        "../../envs/dataset.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset_params,
    script:
        "../../scripts/dataset.py"
