rule generate:
    """Pythia 8 events clustered with FastJet into one shard of jets (JetClass-layout ROOT)."""
    output:
        "results/jets/{sample}/{part}.root",
    log:
        "results/logs/generate/{sample}/{part}.log",
    benchmark:
        "results/benchmarks/rules/generate/{sample}/{part}.tsv"
    conda:
        "../../envs/generate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=generate_params,
        code=code("generate"),
    script:
        "../../scripts/generate.py"
