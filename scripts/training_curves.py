"""Snakemake job: training curves of a dataset's runs (blobloss.jobs.training_curves_job)."""
from blobloss.jobs import training_curves_job
from blobloss.logs import log_to_file

with log_to_file(snakemake.log[0]):
    training_curves_job(dict(zip(snakemake.params.names, snakemake.input.logs)), snakemake.output[0],
                        dataset=snakemake.wildcards.dataset)
