"""Snakemake job: detection MIPs of dice vs blob dice (blobloss.evaluation.detection_figure_job)."""
from blobloss.evaluation import detection_figure_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    cases = snakemake.params.cases
    case = detection_figure_job(
        snakemake.input.metrics,
        *snakemake.params.pair,
        images=dict(zip(cases, snakemake.input.images)),
        labels=dict(zip(cases, snakemake.input.labels)),
        preds_a=dict(zip(cases, snakemake.params.preds_a)),
        preds_b=dict(zip(cases, snakemake.params.preds_b)),
        out_png=snakemake.output[0],
        connectivity=snakemake.params.connectivity,
    )
    log.info("case with the largest F1 difference: %s", case)
