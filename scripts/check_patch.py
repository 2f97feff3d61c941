"""Snakemake job: the training patch against every case of a dataset (blobloss.jobs.check_patch_job)."""
from blobloss.jobs import check_patch_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    check_patch_job(
        snakemake.input.checks,
        snakemake.params.patch_size,
        snakemake.params.pad_to_patch,
        snakemake.output.report,
    )
