# Results: the paper's tables and figures, each wrapped in report() for `snakemake --report`.


def _all_metrics(wildcards=None):
    return [path for ds in DATASETS for path in run_targets("metrics", ds)]


def _table_output(name, path):
    if name.endswith("_csv") and name.startswith("table"):
        return report(path, caption="../report/table.rst", category="Tables", labels={"table": name[:-4]})
    if name == "pooled":
        return report(path, caption="../report/pooled.rst", category="Tables", labels={"table": "pooled counts"})
    return path


localrules: tables, detection_figure, paired_figure, training_curves  # cheap jobs: never a cluster job of their own


rule tables:
    """Table 1 (and at the best checkpoint), Table 2 per ablated dataset, pooled counts, per-case table."""
    input:
        metrics=_all_metrics(),
        code=job_code("tables.py"),
    output:
        **{name: _table_output(name, path) for name, path in table_outputs().items()},
    params:
        out_dir=PATHS["tables"],
        table1={ds: DATASETS[ds]["evaluation"]["table1"] for ds in DATASETS},
        table2={ds: DATASETS[ds]["evaluation"]["table2"] for ds in DATASETS},
        paper={ds: DATASETS[ds]["evaluation"]["paper_dataset"] for ds in DATASETS},
        best=best_datasets(),
    log:
        LOGS + "/results/tables.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/tables.py"


def _pair_files(key):
    """Per test case, the files of the dataset's compared pair (first seed, last checkpoint)."""

    def files(wildcards):
        a, b = comparison_pair(wildcards.dataset)
        seed = DATASETS[wildcards.dataset]["training"]["seeds"][0]
        cases = split_cases(wildcards.dataset, "test")
        if key in ("image", "label"):
            return [PATHS[key].format(dataset=wildcards.dataset, case=c) for c in cases]
        setting = a if key.startswith("pred_a") else b
        run = dict(dataset=wildcards.dataset, setting=setting, seed=seed, checkpoint="last")
        if key.endswith("_dir"):
            return PATHS["predictions"].format(**run)
        return [PATHS["pred"].format(**run, case=c) for c in cases]

    return files


def _pair_metrics(wildcards):
    seed = DATASETS[wildcards.dataset]["training"]["seeds"][0]
    return [
        PATHS["metrics"].format(dataset=wildcards.dataset, setting=s, seed=seed, checkpoint="last")
        for s in comparison_pair(wildcards.dataset)
    ]


rule detection_figure:
    """Fig. 5/6: MIPs with detections (green TP, blue FP, red FN), dice beside blob dice, on the test case
    with the largest F1 difference."""
    input:
        metrics=_pair_metrics,
        images=_pair_files("image"),
        labels=_pair_files("label"),
        preds_a=_pair_files("pred_a_dir"),
        preds_b=_pair_files("pred_b_dir"),
        code=job_code("detection_figure.py"),
    output:
        report(PATHS["detection_figure"], caption="../report/detection.rst", category="Figures",
               labels={"dataset": "{dataset}", "figure": "detections"}),
    params:
        pair=lambda wc: comparison_pair(wc.dataset),
        cases=lambda wc: split_cases(wc.dataset, "test"),
        preds_a=_pair_files("pred_a"),
        preds_b=_pair_files("pred_b"),
        connectivity=lambda wc: DATASETS[wc.dataset]["connectivity"],
    log:
        LOGS + "/results/{dataset}_detection.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/detection_figure.py"


rule paired_figure:
    """Per-case F1 and DSC of dice against blob dice."""
    input:
        metrics=_pair_metrics,
        code=job_code("paired_figure.py"),
    output:
        report(PATHS["paired_figure"], caption="../report/paired.rst", category="Figures",
               labels={"dataset": "{dataset}", "figure": "paired per-case F1 and DSC"}),
    params:
        pair=lambda wc: comparison_pair(wc.dataset),
    log:
        LOGS + "/results/{dataset}_paired.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/paired_figure.py"


rule training_curves:
    """The training curves of every run of a dataset in one figure."""
    input:
        logs=lambda wc: [PATHS["train_log"].format(dataset=wc.dataset, setting=s, seed=k) for s, k in runs(wc.dataset)],
        code=job_code("training_curves.py"),
    output:
        report(PATHS["curves_figure"], caption="../report/curves.rst", category="Figures",
               labels={"dataset": "{dataset}", "figure": "training curves"}),
    params:
        names=lambda wc: [f"{s} seed {k}" for s, k in runs(wc.dataset)],
    log:
        LOGS + "/results/{dataset}_training.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/training_curves.py"
