"""Snakemake job: sliding-window TTA inference of every test case of one run on its own GPU slot
(blobloss.jobs.predict_job)."""
from blobloss.jobs import predict_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    predict_job(
        snakemake.params.checkpoint,
        snakemake.input.images,
        snakemake.params.probs,
        snakemake.params.preds,
        snakemake.params.inference,
        threads=snakemake.threads,
        run=snakemake.params.name,
    )
