"""Snakemake job: recall-by-size figure of one dataset (blobloss.jobs.recall_figure_job)."""
from blobloss.jobs import recall_figure_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    recall_figure_job(
        snakemake.input.table,
        snakemake.wildcards.dataset,
        snakemake.output[0],
        settings=snakemake.params.settings,
        size_unit=snakemake.params.size_unit,
        checks_json=snakemake.input.checks,
    )
