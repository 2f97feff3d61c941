# Results: study statistics, the paper's tables and figures, each wrapped in report() for `snakemake --report`.
#
# The report lists its result categories in alphabetical order, so the numeric prefixes set the order:
# the comparison first, then detection by size, the paired per-case plots, the tables and the other
# figures (the unnumbered "Blob statistics" and "Training" categories of other rule files follow).
# Tables enter the report as their formatted .html page; the .csv/.md/.tex files stay in results/tables.
REPORT_CATEGORIES = {
    "comparison": "1 Comparison",
    "detection": "2 Detection by size",
    "paired": "3 Paired per-case values",
    "tables": "4 Tables",
    "figures": "5 Figures",
}


def _all_metrics(wildcards=None):
    return [path for ds in DATASETS for path in run_targets("metrics", ds)]


def _all_blobs(wildcards=None):
    return [path for ds in DATASETS for path in run_targets("blobs", ds)]


def _table_output(name, path):
    if name.endswith("_html") and name.startswith("table"):
        return report(path, caption="../report/table.rst", category=REPORT_CATEGORIES["tables"],
                      labels={"table": name[: -len("_html")]})
    if name == "pooled_html":
        return report(path, caption="../report/pooled.rst", category=REPORT_CATEGORIES["tables"],
                      labels={"table": "pooled counts"})
    return path


localrules: tables, detection_figure, paired_figure, training_curves, training_curve  # cheap jobs: never a cluster job of their own


rule tables:
    """Table 1 (and at the best checkpoint), Table 2 per ablated dataset, pooled counts, per-case table:
    seed means with the seed-to-seed spread."""
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
    message:
        "tables: Table 1/2 and the pooled counts of every dataset"
    log:
        LOGS + "/results/tables.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/tables.py"


def _detection_output(name, path):
    if name == "html":
        return report(path, caption="../report/detection_by_size.rst", category=REPORT_CATEGORIES["detection"],
                      labels={"dataset": "all", "figure": "table"})
    return path


rule detection_by_size:
    """Recall per ground-truth size bin and false positives per case per predicted-size bin, per run, with
    the seed mean and spread; each case's small-instance recall."""
    input:
        metrics=_all_metrics(),
        blobs=_all_blobs(),
        code=job_code("detection_by_size.py"),
    output:
        **{name: _detection_output(name, path) for name, path in detection_outputs().items()},
    params:
        stem=PATHS["detection_by_size"][: -len(".csv")],
        size_bins={ds: DATASETS[ds]["evaluation"]["size_bins"] for ds in DATASETS},
    message:
        "detection by blob size of every run"
    log:
        LOGS + "/results/detection_by_size.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/detection_by_size.py"


def _comparison_output(name, path):
    if name == "html":
        return report(path, caption="../report/comparison.rst", category=REPORT_CATEGORIES["comparison"],
                      labels={"table": "paired comparison"})
    return path


rule comparison:
    """Paired comparison of each setting with its baseline: mean difference, bootstrap interval, Wilcoxon
    p-value (Holm-adjusted), better/worse/tied cases."""
    input:
        metrics=_all_metrics(),
        small_recall=PATHS["small_recall"],
        code=job_code("comparison.py"),
    output:
        **{name: _comparison_output(name, path) for name, path in comparison_outputs().items()},
    params:
        stem=PATHS["comparison"][: -len(".csv")],
        comparisons={ds: [list(p) for p in COMPARISONS[ds]] for ds in DATASETS},
    message:
        "comparison of each setting with its baseline (paired bootstrap intervals, Holm)"
    log:
        LOGS + "/results/comparison.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/comparison.py"


rule recall_by_size_figure:
    """Recall by ground-truth blob size beside false positives by predicted blob size, one line per setting."""
    input:
        table=PATHS["detection_by_size"],
        checks=PATHS["checks"],  # the number of spatial axes, for the size unit (mm² or mm³)
        code=job_code("recall_figure.py"),
    output:
        report(PATHS["recall_figure"], caption="../report/recall_by_size.rst",
               category=REPORT_CATEGORIES["detection"], labels={"dataset": "{dataset}", "figure": "recall by size"}),
    params:
        settings=lambda wc: [st["name"] for st in DATASETS[wc.dataset]["training"]["losses"]],
        size_unit=lambda wc: DATASETS[wc.dataset]["spacing_unit"],
        n_seeds=lambda wc: len(DATASETS[wc.dataset]["training"]["seeds"]),
    message:
        "recall-by-size figure of {wildcards.dataset}"
    log:
        LOGS + "/results/{dataset}_recall_by_size.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/recall_figure.py"


def _seeds(dataset):
    return DATASETS[dataset]["training"]["seeds"]


def _pair_files(key):
    """The files of the dataset's compared pair: per test case (image, label), or per seed and test case
    (predictions, last checkpoint), seed-major."""

    def files(wildcards):
        baseline, setting = comparison_pair(wildcards.dataset)
        cases = split_cases(wildcards.dataset, "test")
        if key in ("image", "label"):
            return [PATHS[key].format(dataset=wildcards.dataset, case=c) for c in cases]
        name = baseline if key.startswith("pred_a") else setting
        runs_ = [dict(dataset=wildcards.dataset, setting=name, seed=seed, checkpoint="last")
                 for seed in _seeds(wildcards.dataset)]
        if key.endswith("_dir"):  # the prediction folders (inputs), one per seed
            return [PATHS["predictions"].format(**run) for run in runs_]
        return [PATHS["pred"].format(**run, case=c) for run in runs_ for c in cases]  # seed-major

    return files


def _pair_metrics(wildcards):
    return [
        PATHS["metrics"].format(dataset=wildcards.dataset, setting=s, seed=seed, checkpoint="last")
        for s in comparison_pair(wildcards.dataset)
        for seed in _seeds(wildcards.dataset)
    ]


rule detection_figure:
    """Fig. 5/6: MIPs with detections (green TP, blue FP, red FN), baseline beside setting, on the test case
    with the largest seed-averaged F1 difference (at the seed closest to that average)."""
    input:
        metrics=_pair_metrics,
        images=_pair_files("image"),
        labels=_pair_files("label"),
        preds_a=_pair_files("pred_a_dir"),
        preds_b=_pair_files("pred_b_dir"),
        code=job_code("detection_figure.py"),
    output:
        report(PATHS["detection_figure"], caption="../report/detection.rst", category=REPORT_CATEGORIES["figures"],
               labels={"dataset": "{dataset}", "figure": "detections"}),
    params:
        pair=lambda wc: comparison_pair(wc.dataset),
        cases=lambda wc: split_cases(wc.dataset, "test"),
        preds_a=_pair_files("pred_a"),
        preds_b=_pair_files("pred_b"),
        seeds=lambda wc: _seeds(wc.dataset),
        connectivity=lambda wc: DATASETS[wc.dataset]["connectivity"],
    message:
        "detection figure of {wildcards.dataset}"
    log:
        LOGS + "/results/{dataset}_detection.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/detection_figure.py"


rule paired_figure:
    """Per-case F1 and DSC of the baseline against the setting, each case averaged over seeds."""
    input:
        metrics=_pair_metrics,
        code=job_code("paired_figure.py"),
    output:
        report(PATHS["paired_figure"], caption="../report/paired.rst", category=REPORT_CATEGORIES["paired"],
               labels={"dataset": "{dataset}", "figure": "paired per-case F1 and DSC"}),
    params:
        pair=lambda wc: comparison_pair(wc.dataset),
        n_seeds=lambda wc: len(_seeds(wc.dataset)),
    message:
        "paired per-case figure of {wildcards.dataset}"
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
        report(PATHS["curves_figure"], caption="../report/curves.rst", category=REPORT_CATEGORIES["figures"],
               labels={"dataset": "{dataset}", "figure": "training curves"}),
    params:
        names=lambda wc: [f"{s} seed {k}" for s, k in runs(wc.dataset)],
        has_val=lambda wc: bool(split_cases(wc.dataset, "val")),
    message:
        "training curves of {wildcards.dataset}"
    log:
        LOGS + "/results/{dataset}_training.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/training_curves.py"
