"""Snakemake job: blob features and counts of one dataset (blobloss.stats)."""
from blobloss.io import atomic_path
from blobloss.logs import log_to_file
from blobloss.stats import case_counts, dataset_features

with log_to_file(snakemake.log[0]) as log:
    paths = dict(zip(snakemake.params.cases, snakemake.input.instances))
    features = dataset_features(paths, snakemake.wildcards.dataset, method=snakemake.params.method)
    counts = case_counts(features, snakemake.params.cases, snakemake.wildcards.dataset)
    with atomic_path(snakemake.output.features) as tmp:
        features.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.counts) as tmp:
        counts.to_csv(tmp, index=False)
    log.info("%d blobs in %d cases", len(features), len(counts))
