# Helpers shared by the rule files: config access, case lists, the one place that defines each path.
import os
import re
import sys
from pathlib import Path

import blobloss
from blobloss.data.convert import discover_cases
from blobloss.data.split import make_split

# Jobs run the thin scripts in scripts/; they import the package from src/ even in a conda env that
# does not install it.
_SRC = Path(workflow.basedir) / "src"
if _SRC.is_dir():
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_SRC), os.environ.get("PYTHONPATH", "")) if p
    )

RESULTS = config["results_dir"]
DATASETS = {name: dict(ds, name=name) for name, ds in config["datasets"].items()}

# Case discovery only globs file names (and reads dataset.json), so dry runs stay fast.
CASES = {name: sorted(discover_cases(ds)) for name, ds in DATASETS.items()}
SOURCES = {name: discover_cases(ds) for name, ds in DATASETS.items()}


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)) if DATASETS else "(?!)",
    case=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


# ---------------------------------------------------------------------------------------------------
# Paths: every path pattern of the workflow is defined here and nowhere else.
# ---------------------------------------------------------------------------------------------------
CASE_DIR = RESULTS + "/{dataset}/data/{case}"
PATHS = {
    "image": CASE_DIR + "/image.nii.gz",
    "label": CASE_DIR + "/label.nii.gz",
    "meta": CASE_DIR + "/meta.json",
    "given_instances": CASE_DIR + "/given_instances.nii.gz",
    "instances": CASE_DIR + "/instances.nii.gz",
    "instances_json": CASE_DIR + "/instances.json",
    "manifest": RESULTS + "/{dataset}/manifest.csv",
    "split": RESULTS + "/{dataset}/split.json",
    "blob_features": RESULTS + "/{dataset}/stats/blob_features.csv",
    "blob_counts": RESULTS + "/{dataset}/stats/blob_counts.csv",
    "stats_figure": RESULTS + "/stats/blob_statistics.png",
    "stats_table": RESULTS + "/stats/blob_statistics.csv",
}
LOGS = RESULTS + "/logs"


def per_case(key, dataset):
    """All per-case paths of one kind for one dataset."""
    return expand(PATHS[key], dataset=dataset, case=CASES[dataset])


def per_dataset(key):
    return expand(PATHS[key], dataset=list(DATASETS))


def pkg_src(*relpaths):
    """Source files of the package a rule depends on.

    Snakemake does not see Python imports, so rules list the package modules they run as inputs:
    editing one of them reruns exactly the rules that use it.
    """
    root = Path(blobloss.__file__).parent
    return [str(root / rel) for rel in relpaths]


def dataset_cfg(dataset):
    return DATASETS[dataset]


def instance_label_datasets():
    return [name for name, ds in DATASETS.items() if ds["instance_labels"]]


def _regex_of(names):
    return "|".join(map(re.escape, names)) if names else "(?!)"


def raw_files(wildcards):
    """The raw files one case is converted from (none for the synthetic dataset)."""
    sources = SOURCES[wildcards.dataset][wildcards.case]
    files = []
    for key in ("images", "label"):
        value = sources.get(key)
        if value is None:
            continue
        files.extend([value] if isinstance(value, (str, Path)) else value)
    return [str(f) for f in files]


def conversion_params(wildcards):
    """Every dataset setting the conversion of a case depends on (a change reruns conversion)."""
    ds = DATASETS[wildcards.dataset]
    keys = ("name", "source", "spacing", "spacing_unit", "instance_labels", "normalization")
    return {k: ds[k] for k in keys}


def split_params(wildcards):
    return dict(DATASETS[wildcards.dataset]["split"], cases=CASES[wildcards.dataset])


def dataset_split(dataset):
    """The split (train/val/test case lists) of a dataset, as the manifest rule writes it."""
    s = DATASETS[dataset]["split"]
    return make_split(
        CASES[dataset],
        seed=s["seed"],
        test_fraction=s["test_fraction"],
        val_fraction=s["val_fraction"],
        split_file=s["file"],
    )


def all_targets():
    targets = per_dataset("manifest") + per_dataset("blob_features") + per_dataset("blob_counts")
    targets += [PATHS["stats_figure"], PATHS["stats_table"]]
    return targets
