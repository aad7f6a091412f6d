rule observables:
    """Substructure observables (soft drop, N-subjettiness, energy correlators; FastJet contrib's
    definitions, compiled) of one image store's jets, row for row, from its jet file."""
    input:
        jets=jets_input,
        store=rules.images.output[0],
    output:
        directory("results/observables/{sample}/{part}.zarr"),
    log:
        "results/logs/observables/{sample}/{part}.log",
    benchmark:
        "results/benchmarks/rules/observables/{sample}/{part}.tsv"
    conda:
        "../../envs/observables.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=120,
    params:
        settings=observables_params,
        code=code("observables"),
    script:
        "../../scripts/observables.py"
