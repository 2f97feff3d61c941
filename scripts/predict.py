"""Snakemake job: sliding-window TTA inference of every test case of one run (blobloss.jobs.predict_job),
on its own GPU slot."""
from blobloss.gpu import gpu_slot
from blobloss.jobs import predict_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log, gpu_slot() as device:
    log.info("CUDA_VISIBLE_DEVICES=%s", device)
    predict_job(
        snakemake.params.checkpoint,
        snakemake.input.images,
        snakemake.params.probs,
        snakemake.params.preds,
        snakemake.params.inference,
        threads=snakemake.threads,
        run=snakemake.params.name,
    )
