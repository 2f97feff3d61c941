"""Snakemake job: Table 1, Table 2, pooled counts (blobloss.jobs.tables_job)."""
from blobloss.jobs import tables_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    tables_job(
        snakemake.input.metrics,
        snakemake.params.out_dir,
        snakemake.params.table1,
        snakemake.params.table2,
        snakemake.params.paper,
        snakemake.params.best,
    )
