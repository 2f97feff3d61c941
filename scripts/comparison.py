"""Snakemake job: paired comparison table (blobloss.jobs.comparison_job)."""
from blobloss.jobs import comparison_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    comparison_job(
        snakemake.input.metrics,
        snakemake.input.small_recall,
        snakemake.params.comparisons,
        snakemake.params.stem,
    )
