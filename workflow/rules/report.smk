rule report:
    """One self-contained HTML page comparing every model."""
    input:
        metrics=expand(rules.evaluate.output.metrics, model=MODELS),
        scores=expand(rules.evaluate.output.scores, model=MODELS),
        figures=expand(
            "results/evaluation/{model}/{plot}.{ext}",
            model=MODELS,
            plot=EVALUATION_PLOTS,
            ext=["png", "pdf"],
        ),
        dataset=DATASET_STORE,
    output:
        html="results/report.html",
        comparison=report(
            "results/evaluation/rejection_all_models.png",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        pt_dependence=report(
            "results/evaluation/pt_dependence_all_models.png",
            caption="../report/pt_dependence_all_models.rst",
            category="Comparison",
        ),
        sculpting=report(
            "results/evaluation/sculpting_all_models.png",
            caption="../report/sculpting_all_models.rst",
            category="Comparison",
        ),
        mean_images=report(
            "results/evaluation/mean_images.png",
            caption="../report/mean_images.rst",
            category="Dataset",
        ),
        learning_curves=report(
            "results/evaluation/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Comparison",
        ),
        pdfs=expand("results/evaluation/{plot}.pdf", plot=REPORT_PLOTS),
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
        plots=EVALUATION_PLOTS,
        signal=jc.signal_class(config),
        efficiencies=config["evaluation"]["efficiencies"],
        working_point=config["evaluation"]["working_point"],
        reference_model=config["evaluation"]["reference_model"],
        origins=jc.sample_origins(config, FILES),
        kinds=jc.canonical(jc.model_kinds(config)),
        sizes=jc.canonical(jc.training_sizes(config)),
        code=code("report"),
    script:
        "../../scripts/report.py"
