rule predict:
    """Scores of a trained model on one input file (one job per model and file)."""
    input:
        model=rules.train.output.model,
        exported=rules.train.output.exported,
        jets=jets_input,
    output:
        "results/predictions/{model}/{sample}/{part}.parquet",
    log:
        "results/logs/predict/{model}/{sample}/{part}.log",
    benchmark:
        "results/benchmarks/rules/predict/{model}/{sample}/{part}.tsv"
    conda:
        "../../envs/predict.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=predict_params,
        code=code("predict"),
    script:
        "../../scripts/predict.py"


rule predict_file:
    """Scores of a trained model on one file named by the config's predict.files."""
    input:
        model=rules.train.output.model,
        exported=rules.train.output.exported,
        jets=predict_file_input,
    output:
        "results/predictions/{model}/files/{name}.parquet",
    log:
        "results/logs/predict/{model}/files/{name}.log",
    benchmark:
        "results/benchmarks/rules/predict/{model}/files/{name}.tsv"
    conda:
        "../../envs/predict.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=predict_file_params,
        code=code("predict"),
    script:
        "../../scripts/predict.py"


rule predict_friend:
    """The predictions of one ROOT input as a ROOT friend tree (predict.root_friend)."""
    input:
        scores="results/predictions/{model}/{group}/{name}.parquet",
        jets=friend_jets_input,
    output:
        "results/predictions/{model}/{group}/{name}.friend.root",
    log:
        "results/logs/predict/{model}/{group}/{name}.friend.log",
    benchmark:
        "results/benchmarks/rules/predict/{model}/{group}/{name}.friend.tsv"
    conda:
        "../../envs/predict.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=friend_params,
        code=code("predict_friend"),
    script:
        "../../scripts/predict_friend.py"
