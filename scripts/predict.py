"""Snakemake job: sliding-window TTA inference of one case (blobloss.jobs.predict_job), on its own GPU slot."""
from blobloss.gpu import gpu_slot
from blobloss.jobs import predict_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log, gpu_slot() as device:
    log.info("CUDA_VISIBLE_DEVICES=%s", device)
    wc = snakemake.wildcards
    summary = predict_job(
        snakemake.params.checkpoint,
        snakemake.input.image,
        snakemake.output.prob,
        snakemake.output.pred,
        snakemake.params.inference,
        threads=snakemake.threads,
        run=f"{wc.dataset}/{wc.setting}/seed{wc.seed}/{wc.checkpoint}",
        position=snakemake.params.position,
    )
    log.info("%s: %s", wc.case, summary)
