"""Snakemake job: train one network (blobloss.jobs.train_job), on its own GPU slot when GPUs exist."""
from blobloss.gpu import gpu_slot
from blobloss.jobs import train_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log, gpu_slot() as device:
    log.info("CUDA_VISIBLE_DEVICES=%s", device)
    train_job(
        snakemake.params.cfg,
        snakemake.params.train_cases,
        snakemake.params.val_cases,
        snakemake.params.work,
        snakemake.output.model,
        snakemake.output.log,
        snakemake.output.curve,
        threads=snakemake.threads,
    )
