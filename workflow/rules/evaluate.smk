# Evaluation (SPEC section 5): per-case metrics of every run and checkpoint on the test cases.


def _test_files(key):
    def files(wildcards):
        return [
            PATHS[key].format(**dict(wildcards, case=case))
            for case in split_cases(wildcards.dataset, "test")
        ]

    return files


rule metrics:
    """Dice, S, P, Surface Dice and instance TP/FP/FN, IS, IP, F1 per test case of one run."""
    input:
        preds=_test_files("pred"),
        labels=_test_files("label"),
        code=pkg_src("metrics.py", "evaluation.py", "io.py"),
    output:
        PATHS["metrics"],
    params:
        cases=lambda wc: split_cases(wc.dataset, "test"),
        connectivity=lambda wc: DATASETS[wc.dataset]["connectivity"],
        tolerance=lambda wc: DATASETS[wc.dataset]["evaluation"]["surface_tolerance"],
        run=run_columns,
    group: "evaluate"  # with the predictions of its run (infer.smk)
    log:
        LOGS + "/metrics/{dataset}/{setting}/seed{seed}/{checkpoint}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/metrics.py"
