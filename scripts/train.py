"""Snakemake job: train one network on its GPUs (blobloss.jobs.train_job), logging to the rule's log."""
from blobloss.jobs import train_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    train_job(
        snakemake.params.cfg,
        snakemake.params.train_cases,
        snakemake.params.val_cases,
        snakemake.params.work,
        snakemake.output.model,
        snakemake.output.log,
        threads=snakemake.threads,
        run=snakemake.params.run,
    )
