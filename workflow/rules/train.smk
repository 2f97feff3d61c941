# Training (docs/definitions.md section 7): one job per (dataset, loss setting, seed) on training.gpus GPUs (DDP ranks).

def _train_inputs(wildcards):
    cases = split_cases(wildcards.dataset, "train") + split_cases(wildcards.dataset, "val")
    return {
        "images": expand(PATHS["image"], dataset=wildcards.dataset, case=cases),
        "instances": expand(PATHS["instances"], dataset=wildcards.dataset, case=cases),
        "patch_check": PATHS["patch_check"].format(dataset=wildcards.dataset),
        "code": job_code("train.py"),
    }


def _case_files(wildcards, part):
    return [
        {
            "name": case,
            "image": PATHS["image"].format(dataset=wildcards.dataset, case=case),
            "instances": PATHS["instances"].format(dataset=wildcards.dataset, case=case),
        }
        for case in split_cases(wildcards.dataset, part)
    ]


rule train:
    """Train one network; resumes from work/checkpoint_last.pt when it exists (killed, requeued or extended run)."""
    input:
        unpack(_train_inputs),
    output:
        model=PATHS["model"],
        log=PATHS["train_log"],
    params:
        cfg=train_config,
        train_cases=lambda wc: _case_files(wc, "train"),
        val_cases=lambda wc: _case_files(wc, "val"),
        work=lambda wc: PATHS["train_work"].format(**wc),
        run=run_name,
    threads: job_threads("training")
    resources:
        # K GPUs per run: locally the job takes K devices at once (blobloss.gpu.gpu_slot); on SLURM one
        # job with one task and K GPUs (profiles/slurm)
        gpu=train_gpus,
    message:
        "train {wildcards.dataset}/{wildcards.setting}/seed{wildcards.seed}"
    log:
        LOGS + "/train/{dataset}/{setting}/seed{seed}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train.py"


rule training_curve:
    """The training curve of one run, drawn from its log (a figure edit never retrains a model)."""
    input:
        logs=[PATHS["train_log"]],
        code=job_code("training_curves.py"),
    output:
        report(
            PATHS["train_curve"],
            caption="../report/training_curve.rst",
            category="Training",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "setting": "{setting}", "seed": "{seed}"},
        ),
    params:
        names=lambda wc: [f"{wc.setting} seed {wc.seed}"],
        has_val=lambda wc: bool(split_cases(wc.dataset, "val")),
    message:
        "training curve of {wildcards.dataset}/{wildcards.setting}/seed{wildcards.seed}"
    log:
        LOGS + "/train/{dataset}/{setting}/seed{seed}_curve.log",
    conda:
        "../../envs/stats.yaml"
    script:
        "../../scripts/training_curves.py"
