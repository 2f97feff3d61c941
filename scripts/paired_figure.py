"""Snakemake job: paired per-case F1 and DSC plot, seed-averaged (blobloss.jobs.paired_figure_job)."""
from blobloss.jobs import paired_figure_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    paired_figure_job(snakemake.input.metrics, *snakemake.params.pair, snakemake.output[0],
                      dataset=snakemake.wildcards.dataset)
