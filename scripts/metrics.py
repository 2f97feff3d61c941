"""Snakemake job: per-case metrics and per-blob table of one run and checkpoint (blobloss.jobs.metrics_job)."""
from blobloss.jobs import metrics_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    table = metrics_job(
        snakemake.params.cases,
        snakemake.params.preds,
        snakemake.input.labels,
        snakemake.output.metrics,
        connectivity=snakemake.params.connectivity,
        tolerance=snakemake.params.tolerance,
        run=snakemake.params.run,
        blobs_csv=snakemake.output.blobs,
        instance_paths=snakemake.input.instances or None,
        gt_instances=snakemake.params.gt_instances,
        matching=snakemake.params.matching,
    )
    log.info("metrics and blob table of %d cases written", len(table))
