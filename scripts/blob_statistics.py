"""Snakemake job: Fig. 4-style blob statistics figure and summary table over all datasets
(blobloss.jobs.blob_statistics_job)."""
from blobloss.jobs import blob_statistics_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    blob_statistics_job(
        snakemake.input.features,
        snakemake.input.counts,
        snakemake.output.figure,
        snakemake.output.table,
        snakemake.output.html,
        percentile=snakemake.params.percentile,
    )
