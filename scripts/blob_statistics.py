"""Snakemake job: Fig. 4-style blob statistics figure and summary table over all datasets."""
import pandas as pd

from blobloss.io import atomic_path
from blobloss.logs import log_to_file
from blobloss.plots import plot_blob_statistics
from blobloss.tables import blob_summary

with log_to_file(snakemake.log[0]):
    features = pd.concat([pd.read_csv(p) for p in snakemake.input.features], ignore_index=True)
    counts = pd.concat([pd.read_csv(p) for p in snakemake.input.counts], ignore_index=True)
    plot_blob_statistics(features, counts, snakemake.output.figure, percentile=snakemake.params.percentile)
    with atomic_path(snakemake.output.table) as tmp:
        blob_summary(features, counts).to_csv(tmp, index=False)
