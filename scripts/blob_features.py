"""Snakemake job: blob features and counts of one dataset (blobloss.stats)."""
from blobloss.logs import log_to_file
from blobloss.stats import write_dataset_statistics

with log_to_file(snakemake.log[0]) as log:
    features, counts = write_dataset_statistics(
        dict(zip(snakemake.params.cases, snakemake.input.instances)),
        snakemake.wildcards.dataset,
        snakemake.output.features,
        snakemake.output.counts,
        method=snakemake.params.method,
    )
    log.info("%d blobs in %d cases", len(features), len(counts))
