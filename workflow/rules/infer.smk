# Sliding-window inference with test-time augmentation (SPEC section 6), one job per test case.


def _checkpoint_file(wildcards):
    if wildcards.checkpoint == "last":
        return PATHS["model"].format(**wildcards)
    return PATHS["train_work"].format(**wildcards) + "/checkpoint_best.pt"


rule predict:
    """Probability map (TTA average of sigmoid outputs) and binary prediction (> 0.5) of one case."""
    input:
        model=PATHS["model"],
        image=PATHS["image"],
        code=pkg_src("inference.py", "training/model.py", "jobs.py", "io.py"),
    output:
        prob=PATHS["prob"],
        pred=PATHS["pred"],
    params:
        checkpoint=_checkpoint_file,
        inference=lambda wc: DATASETS[wc.dataset]["inference"],
    threads: max(1, min(workflow.cores, 8))
    # on a cluster: one job per model and checkpoint predicts all its test cases and evaluates them
    group: "evaluate"
    resources:
        gpu=1,
    log:
        LOGS + "/predict/{dataset}/{setting}/seed{seed}/{checkpoint}/{case}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/predict.py"
