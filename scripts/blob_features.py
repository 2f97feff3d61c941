"""Snakemake job: blob features and counts of one dataset (blobloss.jobs.blob_features_job)."""
from blobloss.jobs import blob_features_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    blob_features_job(
        snakemake.wildcards.dataset,
        dict(zip(snakemake.params.cases, snakemake.input.instances)),
        snakemake.output.features,
        snakemake.output.counts,
        method=snakemake.params.method,
    )
