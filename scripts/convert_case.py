"""Snakemake job: convert one case into the standard layout (blobloss.jobs.convert_case_job)."""
from blobloss.jobs import convert_case_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    convert_case_job(
        snakemake.params.dataset,
        snakemake.wildcards.case,
        snakemake.params.sources,
        out_image=snakemake.output.image,
        out_label=snakemake.output.label,
        out_meta=snakemake.output.meta,
        out_instances=snakemake.output.get("instances"),
    )
