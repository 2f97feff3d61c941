"""Snakemake job: per-case metrics of one run and checkpoint (blobloss.evaluation.metrics_job)."""
from blobloss.evaluation import metrics_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    table = metrics_job(
        snakemake.params.cases,
        snakemake.params.preds,
        snakemake.input.labels,
        snakemake.output[0],
        connectivity=snakemake.params.connectivity,
        tolerance=snakemake.params.tolerance,
        run=snakemake.params.run,
    )
    log.info("metrics of %d cases written", len(table))
