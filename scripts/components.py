"""Snakemake job: instance map of one case (blobloss.jobs.components_job)."""
from blobloss.jobs import components_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    components_job(
        snakemake.wildcards.case,
        snakemake.input.label,
        snakemake.output.instances,
        snakemake.output.summary,
        connectivity=snakemake.params.connectivity,
        given_instances=snakemake.input.given or None,
    )
