rule images:
    """Preprocess and pixelate one file of jets into a chunked, compressed Zarr store (Dask)."""
    input:
        jets_input,
    output:
        directory("results/images/{sample}/{part}.zarr"),
    log:
        "results/logs/images/{sample}/{part}.log",
    benchmark:
        "results/benchmarks/rules/images/{sample}/{part}.tsv"
    conda:
        "../../envs/images.yaml"
    threads: 2
    resources:
        # the memory budget: files stream in dask.batch_jets batches, so peak RSS stays under it
        # whatever the file's size (scripts/bench/readers.py: 722 MB for 955k jets)
        mem_mb=2048,
        runtime=60,
    params:
        settings=image_params,
        code=code("images"),
    script:
        "../../scripts/images.py"
