# blobloss: the blob loss study (Kofler et al., IPMI 2023) from raw data to statistics, tables and figures.
# Run:  snakemake --cores all            (profiles/default is loaded automatically)
# Config: config/config.yaml (validated against workflow/schemas/config.schema.yaml).
import os

from snakemake.utils import min_version, validate

min_version("9.0")


# The built-in synthetic demo is the default config. A config given with --configfile replaces it
# (it is not merged into it, so the demo's datasets never leak into a user's study).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/components.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
