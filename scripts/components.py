"""Snakemake job: instance map of one case (blobloss.components.compute_instances)."""
from blobloss.components import compute_instances
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    summary = compute_instances(
        snakemake.input.label,
        snakemake.output.instances,
        snakemake.output.summary,
        connectivity=snakemake.params.connectivity,
        given_instances_path=snakemake.input.given or None,
    )
    log.info("%s: %s", snakemake.wildcards.case, summary)
