# Sliding-window inference with test-time augmentation (docs/definitions.md section 6): one job per run and checkpoint
# predicts every test case (the network is loaded once; on a cluster this is one job per model).


def _checkpoint_file(wildcards):
    if wildcards.checkpoint == "last":
        return PATHS["model"].format(**wildcards)
    return PATHS["train_work"].format(**wildcards) + "/checkpoint_best.pt"


def _test_case_paths(key):
    """Per test case of the run's dataset, the path ``key`` (image, prob or pred) with the run's wildcards."""

    def paths(wildcards):
        return [
            PATHS[key].format(**dict(wildcards, case=case))
            for case in split_cases(wildcards.dataset, "test")
        ]

    return paths


rule predict:
    """Probability maps (TTA average of sigmoid outputs) and binary predictions (> 0.5) of the test cases."""
    input:
        model=PATHS["model"],
        images=_test_case_paths("image"),
        code=job_code("predict.py"),
    output:
        directory(PATHS["predictions"]),
    params:
        checkpoint=_checkpoint_file,
        inference=lambda wc: {k: v for k, v in DATASETS[wc.dataset]["inference"].items() if k != "threads"},
        probs=_test_case_paths("prob"),
        preds=_test_case_paths("pred"),
        name=lambda wc: f"{wc.dataset}/{wc.setting}/seed{wc.seed}/{wc.checkpoint}",
    threads: job_threads("inference")
    # on a cluster: one job per model and checkpoint predicts all its test cases and evaluates them
    group: "evaluate"
    resources:
        gpu=1,
    message:
        "predict the test cases of {wildcards.dataset}/{wildcards.setting}/seed{wildcards.seed}/{wildcards.checkpoint}"
    log:
        LOGS + "/predict/{dataset}/{setting}/seed{seed}/{checkpoint}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/predict.py"
