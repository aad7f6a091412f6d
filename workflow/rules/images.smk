rule images:
    """Preprocess and pixelate one file of jets into a chunked, compressed Zarr store (Dask)."""
    input:
        jets_input,
    output:
        directory("results/images/{sample}/{part}.zarr"),
    params:
        image_params,
    log:
        "results/logs/images/{sample}/{part}.log",
    benchmark:
        "results/benchmarks/rules/images/{sample}/{part}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/images.yaml"
    script:
        "../../scripts/images.py"
