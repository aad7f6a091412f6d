rule dataset:
    """Gather every image store into one shuffled train/val/test Zarr store."""
    input:
        image_stores,
    output:
        directory("results/datasets/{dataset}.zarr"),
    params:
        dataset_params,
    log:
        "results/logs/dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/rules/dataset/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/dataset.yaml"
    script:
        "../../scripts/dataset.py"
