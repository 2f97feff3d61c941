# blobloss: the blob loss study (Kofler et al., IPMI 2023) from raw data to statistics, tables and figures.
# Run:  snakemake --cores all            (profiles/default is loaded automatically)
# Config: config/config.yaml (validated against workflow/schemas/config.schema.yaml).
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# The workflow's own package sources come first, for the Snakefile as for its jobs.
if os.path.isdir(os.path.join(workflow.basedir, "src")):
    sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from blobloss.configuration import check_config
from blobloss.errors import ConfigError
from blobloss.logs import failure_summary
from blobloss.status import write_plan


# The built-in synthetic demo is the default config. A config given with --configfile replaces it
# (it is not merged into it, so the demo's datasets never leak into a user's study).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# One short line per mistake (key path, value, allowed values, nearest valid key); then Snakemake's own
# validation fills in the schema's defaults.
try:
    check_config(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"),
                 ", ".join(map(str, workflow.overwrite_configfiles or ["config/config.yaml"])))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
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
    message:
        "the study: tables, figures and statistics of every dataset"
    default_target: True


onstart:
    # the plan of the study (every run and its epochs), so python -m blobloss.status lists runs not started yet
    write_plan(RESULTS, study_plan())


onerror:
    # each failed job's message again, one line per job, after everything else
    summary = failure_summary(log)
    if summary:
        print(summary, file=sys.stderr)
