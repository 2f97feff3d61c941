# Evaluation (docs/definitions.md sections 5 and 9): per-case metrics and the per-blob table of every
# run and checkpoint on the test cases.


def _test_files(key):
    def files(wildcards):
        return [
            PATHS[key].format(**dict(wildcards, case=case))
            for case in split_cases(wildcards.dataset, "test")
        ]

    return files


def _given_test_instances(wildcards):
    """The instance maps of the test cases when the ground-truth blobs are the dataset's own ids."""
    if DATASETS[wildcards.dataset]["evaluation"]["gt_instances"] != "given":
        return []
    return _test_files("instances")(wildcards)


def _check_gt_instances():
    for name, ds in DATASETS.items():
        if ds["evaluation"]["gt_instances"] == "given" and not ds["instance_labels"]:
            raise WorkflowError(
                f"dataset {name!r}: evaluation.gt_instances is 'given' but the dataset does not keep instance "
                "ids; set instance_labels: true on the dataset (datasets.<name>.instance_labels, or inside source:) or use "
                "gt_instances: components"
            )


_check_gt_instances()


rule metrics:
    """DSC, S, P, Surface Dice, instance counts (paper rule, IoU rule), per-component Dice per test case of
    one run, and one row per ground-truth and predicted blob."""
    input:
        predictions=PATHS["predictions"],
        labels=_test_files("label"),
        instances=_given_test_instances,
        code=job_code("metrics.py"),
    output:
        metrics=PATHS["metrics"],
        blobs=PATHS["blobs"],
    params:
        cases=lambda wc: split_cases(wc.dataset, "test"),
        preds=_test_files("pred"),
        connectivity=lambda wc: DATASETS[wc.dataset]["connectivity"],
        tolerance=lambda wc: DATASETS[wc.dataset]["evaluation"]["surface_tolerance"],
        gt_instances=lambda wc: DATASETS[wc.dataset]["evaluation"]["gt_instances"],
        matching=lambda wc: DATASETS[wc.dataset]["evaluation"]["matching"],
        run=run_columns,
    message:
        "metrics of {wildcards.dataset}/{wildcards.setting}/seed{wildcards.seed}/{wildcards.checkpoint}"
    group: "evaluate"  # with the predictions of its run (infer.smk)
    log:
        LOGS + "/metrics/{dataset}/{setting}/seed{seed}/{checkpoint}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/metrics.py"
