"""Snakemake job: convert one case into the standard layout (blobloss.data.convert.convert_case)."""
from blobloss.data.convert import convert_case
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    meta = convert_case(
        snakemake.params.dataset,
        snakemake.wildcards.case,
        snakemake.params.sources,
        out_image=snakemake.output.image,
        out_label=snakemake.output.label,
        out_meta=snakemake.output.meta,
        out_instances=snakemake.output.get("instances"),
    )
    log.info("converted %s: %s", snakemake.wildcards.case, meta)
