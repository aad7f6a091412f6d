rule report:
    """One self-contained HTML page comparing every model."""
    input:
        metrics=expand("results/evaluation/{model}/metrics.json", model=MODELS),
        scores=expand("results/evaluation/{model}/scores.parquet", model=MODELS),
        roc=expand("results/evaluation/{model}/roc.png", model=MODELS),
        history=expand("results/evaluation/{model}/history.png", model=MODELS),
        confusion=expand("results/evaluation/{model}/confusion.png", model=MODELS),
        examples=expand("results/evaluation/{model}/examples.png", model=MODELS),
        sculpting=expand("results/evaluation/{model}/sculpting.png", model=MODELS),
        auc_vs_pt=expand("results/evaluation/{model}/auc_vs_pt.png", model=MODELS),
        pdfs=expand(
            "results/evaluation/{model}/{plot}.pdf",
            model=MODELS,
            plot=EVALUATION_PLOTS,
        ),
        dataset=f"results/datasets/{DATASET}.zarr",
    output:
        html="results/report.html",
        comparison=report(
            "results/evaluation/rejection_all_models.png",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        mean_images=report(
            "results/evaluation/mean_images.png",
            caption="../report/mean_images.rst",
            category="Dataset",
        ),
        pdfs=[
            "results/evaluation/rejection_all_models.pdf",
            "results/evaluation/mean_images.pdf",
        ],
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/rules/report.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=MODELS,
        signal=jc.signal_class(config),
        efficiencies=config["evaluation"]["efficiencies"],
        code=code("report"),
    script:
        "../../scripts/report.py"
