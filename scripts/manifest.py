"""Snakemake job: the dataset's split and manifest (blobloss.jobs.manifest_job)."""
from blobloss.jobs import manifest_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    manifest_job(
        snakemake.params.split,
        snakemake.input.metas,
        snakemake.input.instances,
        snakemake.output.split,
        snakemake.output.manifest,
    )
