"""Snakemake job: check every case of a dataset before any conversion (blobloss.jobs.check_dataset_job)."""
from blobloss.jobs import check_dataset_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    check_dataset_job(
        snakemake.params.check["dataset"],
        snakemake.params.check["cases"],
        snakemake.output.report,
        threads=snakemake.threads,
    )
