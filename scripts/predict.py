"""Snakemake job: sliding-window TTA inference of one case (blobloss.jobs.predict_job)."""
from blobloss.jobs import predict_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    summary = predict_job(
        snakemake.params.checkpoint,
        snakemake.input.image,
        snakemake.output.prob,
        snakemake.output.pred,
        snakemake.params.inference,
        threads=snakemake.threads,
    )
    log.info("%s: %s", snakemake.wildcards.case, summary)
