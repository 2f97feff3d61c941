"""Snakemake job: detection by blob size and small-instance recall (blobloss.jobs.detection_by_size_job)."""
from blobloss.jobs import detection_by_size_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    detection_by_size_job(
        snakemake.input.metrics,
        snakemake.input.blobs,
        snakemake.params.size_bins,
        snakemake.params.stem,
        snakemake.output.small_recall,
    )
