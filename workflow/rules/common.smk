# Helpers shared by the rule files: config access, case lists, the one place that defines each path.
import os
import re
import sys
from pathlib import Path

import blobloss
from snakemake.exceptions import WorkflowError
from blobloss.data.convert import discover_cases
from blobloss.data.split import make_split
from blobloss.study import default_comparisons, size_bin_edges, validate_comparisons

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
    setting=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    seed=r"\d+",
    checkpoint="last|best",


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
    # one training run per (dataset, loss setting, seed); checkpoints live in work/ (not a declared
    # output, so Snakemake never deletes them and a killed or extended run resumes from them)
    "train_work": RESULTS + "/{dataset}/train/{setting}/seed{seed}/work",
    "model": RESULTS + "/{dataset}/train/{setting}/seed{seed}/model_last.pt",
    "train_log": RESULTS + "/{dataset}/train/{setting}/seed{seed}/log.csv",
    "train_curve": RESULTS + "/{dataset}/train/{setting}/seed{seed}/curve.png",
    "prob": RESULTS + "/{dataset}/predict/{setting}/seed{seed}/{checkpoint}/{case}_prob.nii.gz",
    "pred": RESULTS + "/{dataset}/predict/{setting}/seed{seed}/{checkpoint}/{case}_pred.nii.gz",
    "metrics": RESULTS + "/{dataset}/eval/{setting}/seed{seed}/{checkpoint}/metrics.csv",
    "blobs": RESULTS + "/{dataset}/eval/{setting}/seed{seed}/{checkpoint}/blobs.csv",
    "tables": RESULTS + "/tables",
    # study statistics (each table also as .md/.tex/.html beside the .csv, see table_files)
    "comparison": RESULTS + "/tables/comparison.csv",
    "detection_by_size": RESULTS + "/tables/detection_by_size.csv",
    "small_recall": RESULTS + "/tables/small_recall.csv",
    "recall_figure": RESULTS + "/figures/{dataset}_recall_by_size.png",
    "detection_figure": RESULTS + "/figures/{dataset}_detection.png",
    "paired_figure": RESULTS + "/figures/{dataset}_paired.png",
    "curves_figure": RESULTS + "/figures/{dataset}_training.png",
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


# ---------------------------------------------------------------------------------------------------
# Training, inference and evaluation settings
# ---------------------------------------------------------------------------------------------------
SETTINGS = {name: {st["name"]: st for st in ds["training"]["losses"]} for name, ds in DATASETS.items()}
SPLITS = {name: dataset_split(name) for name in DATASETS}


def _check_settings():
    for name, ds in DATASETS.items():
        names = [st["name"] for st in ds["training"]["losses"]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise WorkflowError(
                f"dataset {name!r}: loss setting names {dupes} appear more than once in training.losses; "
                "give every setting its own name"
            )
        patch = ds["training"]["patch_size"]
        if max(patch) < 32:
            raise WorkflowError(
                f"dataset {name!r}: training.patch_size {patch} is too small: the network's bottleneck "
                "(1/16 of the patch) needs more than one voxel; make at least one entry 32 or larger"
            )
        if "best" in ds["evaluation"]["checkpoints"] and not SPLITS[name]["val"]:
            raise WorkflowError(
                f"dataset {name!r}: evaluation.checkpoints lists 'best' (lowest validation loss) but the "
                "split has no validation cases; set split.val_fraction > 0 (or a split file with val cases) "
                "or evaluate only 'last'"
            )
        for table in ("table1", "table2"):
            listed = ds["evaluation"][table] or []
            unknown = sorted(set(listed) - set(names))
            if unknown:
                raise WorkflowError(
                    f"dataset {name!r}: evaluation.{table} names {unknown}, which are not in "
                    f"training.losses ({names})"
                )


_check_settings()


def _comparisons(dataset):
    """(setting, baseline) pairs of a dataset: its `comparisons` list, or every blob_X against X."""
    ds = DATASETS[dataset]
    names = [st["name"] for st in ds["training"]["losses"]]
    if ds.get("comparisons") is not None:
        try:
            return validate_comparisons(ds["comparisons"], names, dataset)
        except ValueError as err:
            raise WorkflowError(str(err)) from None
    tr = ds["training"]
    return default_comparisons(tr["losses"], tr["optimizer"]["lr"], tr["model"]["name"])


COMPARISONS = {name: _comparisons(name) for name in DATASETS}


def _check_size_bins():
    for name, ds in DATASETS.items():
        bins = ds["evaluation"]["size_bins"]
        if isinstance(bins, list):
            try:
                size_bin_edges([], bins)
            except ValueError as err:
                raise WorkflowError(f"dataset {name!r}: {err}") from None


_check_size_bins()


def train_config(wildcards):
    """The complete training config of one run (every value goes through params, so a change reruns it)."""
    tr = DATASETS[wildcards.dataset]["training"]
    st = SETTINGS[wildcards.dataset][wildcards.setting]
    model = dict(tr["model"])
    if st.get("model"):
        model["name"] = st["model"]
    optimizer = dict(tr["optimizer"])
    if st.get("lr") is not None:
        optimizer["lr"] = st["lr"]
    keys = ("batch_size", "crops_per_case", "patch_size", "epochs", "num_workers", "amp", "channels_last",
            "foreground_prob", "val_every", "deterministic", "tensorboard")
    return dict(
        {k: tr[k] for k in keys},
        model=model,
        optimizer=optimizer,
        loss={"name": st["loss"], "alpha": st.get("alpha"), "beta": st.get("beta")},
        seed=int(wildcards.seed),
    )


def split_cases(dataset, part):
    return SPLITS[dataset][part]


def runs(dataset):
    """(setting, seed) of every training run of a dataset."""
    ds = DATASETS[dataset]
    return [(st["name"], seed) for st in ds["training"]["losses"] for seed in ds["training"]["seeds"]]


def run_columns(wildcards):
    """The columns that identify a run in the metrics tables."""
    ds = DATASETS[wildcards.dataset]
    st = SETTINGS[wildcards.dataset][wildcards.setting]
    blob = st["loss"].startswith("blob_")
    return {
        "dataset": wildcards.dataset,
        "setting": wildcards.setting,
        "loss": st["loss"],
        "lr": st.get("lr") or ds["training"]["optimizer"]["lr"],
        "alpha": st.get("alpha", 2.0) if blob else None,
        "beta": st.get("beta", 1.0) if blob else None,
        "model": st.get("model") or ds["training"]["model"]["name"],
        "seed": int(wildcards.seed),
        "checkpoint": wildcards.checkpoint,
    }


def run_targets(key, dataset):
    """One path per (setting, seed, checkpoint) of a dataset."""
    ds = DATASETS[dataset]
    return [
        PATHS[key].format(dataset=dataset, setting=setting, seed=seed, checkpoint=ckpt)
        for setting, seed in runs(dataset)
        for ckpt in ds["evaluation"]["checkpoints"]
    ]


def all_targets():
    targets = per_dataset("manifest") + per_dataset("blob_features") + per_dataset("blob_counts")
    targets += [PATHS["stats_figure"], PATHS["stats_table"]]
    targets += list(table_outputs().values())
    targets += list(comparison_outputs().values()) + list(detection_outputs().values())
    for dataset in DATASETS:
        targets.append(PATHS["curves_figure"].format(dataset=dataset))
        targets.append(PATHS["recall_figure"].format(dataset=dataset))
        if comparison_pair(dataset):
            targets.append(PATHS["detection_figure"].format(dataset=dataset))
            targets.append(PATHS["paired_figure"].format(dataset=dataset))
    return targets


def comparison_pair(dataset):
    """(baseline, setting) shown in the dataset's figures: the first pair of its comparisons."""
    pairs = COMPARISONS[dataset]
    return (pairs[0][1], pairs[0][0]) if pairs else None


def table_files(csv_path, exts=("csv", "md", "tex", "html")):
    """A table's files by format: the .csv path of PATHS with its siblings (same stem)."""
    stem = csv_path[: -len(".csv")]
    return {ext: f"{stem}.{ext}" for ext in exts}


def comparison_outputs():
    return table_files(PATHS["comparison"])


def detection_outputs():
    out = table_files(PATHS["detection_by_size"], ("csv", "md", "html"))
    out["small_recall"] = PATHS["small_recall"]
    return out


def best_datasets():
    return [ds for ds in DATASETS if "best" in DATASETS[ds]["evaluation"]["checkpoints"]]


def table_outputs():
    """The table files; which exist depends on the config (checkpoints, ablations), known at parse time."""
    stems = ["table1"] + (["table1_best"] if best_datasets() else [])
    stems += [f"table2_{ds}" for ds in DATASETS if DATASETS[ds]["evaluation"]["table2"]]
    exts = ("csv", "md", "tex", "html")
    out = {f"{stem}_{ext}": f"{PATHS['tables']}/{stem}.{ext}" for stem in stems for ext in exts}
    for name in ("per_case", "summary", "pooled"):
        out[name] = f"{PATHS['tables']}/{name}.csv"
    out["pooled_html"] = f"{PATHS['tables']}/pooled.html"
    return out
