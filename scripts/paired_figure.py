"""Snakemake job: paired per-case F1 and DSC plot (blobloss.plots.plot_paired)."""
from blobloss.evaluation import read_metrics
from blobloss.logs import log_to_file
from blobloss.plots import plot_paired

with log_to_file(snakemake.log[0]):
    plot_paired(read_metrics(snakemake.input.metrics), *snakemake.params.pair, snakemake.output[0])
