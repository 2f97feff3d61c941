"""Snakemake job: detection MIPs of a baseline vs a setting (blobloss.jobs.detection_figure_job)."""
from blobloss.jobs import detection_figure_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    cases, seeds = snakemake.params.cases, snakemake.params.seeds

    def by_seed(paths):  # inputs are seed-major: every case of the first seed, then the next seed
        return {seed: dict(zip(cases, paths[i * len(cases):(i + 1) * len(cases)])) for i, seed in enumerate(seeds)}

    case, seed = detection_figure_job(
        snakemake.input.metrics,
        *snakemake.params.pair,
        images=dict(zip(cases, snakemake.input.images)),
        labels=dict(zip(cases, snakemake.input.labels)),
        preds_a=by_seed(list(snakemake.params.preds_a)),
        preds_b=by_seed(list(snakemake.params.preds_b)),
        out_png=snakemake.output[0],
        connectivity=snakemake.params.connectivity,
        dataset=snakemake.wildcards.dataset,
    )
    log.info("case with the largest seed-averaged F1 difference: %s (shown at seed %s)", case, seed)
