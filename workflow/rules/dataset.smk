rule dataset_bucket:
    """One bucket of the shuffle: every buckets-th chunk of each image store, split and shuffled."""
    input:
        stores=image_stores,
    output:
        directory("results/datasets/{dataset}.buckets/{bucket}.zarr"),
    log:
        "results/logs/dataset_bucket/{dataset}/{bucket}.log",
    benchmark:
        "results/benchmarks/rules/dataset_bucket/{dataset}/{bucket}.tsv"
    conda:
        "../../envs/dataset.yaml"
    threads: 2
    resources:
        mem_mb=dataset_bucket_mem_mb,
        runtime=60,
    params:
        settings=dataset_params,
        code=code("dataset_bucket"),
    script:
        "../../scripts/dataset_bucket.py"


rule dataset:
    """Join the buckets into one train/val/test Zarr store (hard links; normalisation from train)."""
    input:
        stores=image_stores,
        buckets=bucket_stores,
    output:
        directory("results/datasets/{dataset}.zarr"),
    log:
        "results/logs/dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/rules/dataset/{dataset}.tsv"
    conda:
        "../../envs/dataset.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=dataset_params,
        code=code("dataset"),
    script:
        "../../scripts/dataset.py"
