# Helpers shared by the rule files: config access, case lists, the one place that defines each path.
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from blobloss.data.checks import check_patch_against_cases, check_patch_size
from blobloss.data.convert import discover_cases
from blobloss.data.split import make_split
from blobloss.errors import BlobLossError
from blobloss.losses.settings import describe_loss_options, loss_config
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
def _discover(ds):
    try:
        return discover_cases(ds)
    except BlobLossError as exc:  # one short message, no traceback
        raise WorkflowError(str(exc)) from None


SOURCES = {name: _discover(ds) for name, ds in DATASETS.items()}
CASES = {name: sorted(cases) for name, cases in SOURCES.items()}


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
    # every case of a dataset read and checked at once, before any conversion
    "checks": RESULTS + "/{dataset}/checks.json",
    # the training patch against every case (from the check's report), before any training
    "patch_check": RESULTS + "/{dataset}/patch_check.json",
    "given_instances": CASE_DIR + "/given_instances.nii.gz",
    "instances": CASE_DIR + "/instances.nii.gz",
    "instances_json": CASE_DIR + "/instances.json",
    "manifest": RESULTS + "/{dataset}/manifest.csv",
    "split": RESULTS + "/{dataset}/split.json",
    "blob_features": RESULTS + "/{dataset}/stats/blob_features.csv",
    "blob_counts": RESULTS + "/{dataset}/stats/blob_counts.csv",
    "stats_figure": RESULTS + "/stats/blob_statistics.png",
    "stats_table": RESULTS + "/stats/blob_statistics.csv",
    "stats_table_html": RESULTS + "/stats/blob_statistics.html",
    # one training run per (dataset, loss setting, seed); checkpoints live in work/ (not a declared
    # output, so Snakemake never deletes them and a killed or extended run resumes from them)
    "train_work": RESULTS + "/{dataset}/train/{setting}/seed{seed}/work",
    "model": RESULTS + "/{dataset}/train/{setting}/seed{seed}/model_last.pt",
    "train_log": RESULTS + "/{dataset}/train/{setting}/seed{seed}/log.csv",
    "train_curve": RESULTS + "/{dataset}/train/{setting}/seed{seed}/curve.png",
    # one prediction job per run and checkpoint writes every test case into one folder
    "predictions": RESULTS + "/{dataset}/predict/{setting}/seed{seed}/{checkpoint}",
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


def _load_codedeps():
    """The import scanner (workflow/lib/codedeps.py), loaded by path: it is not part of the package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "blobloss_workflow_codedeps", Path(workflow.basedir) / "workflow" / "lib" / "codedeps.py"
    )
    scanner = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = scanner  # dataclasses look their module up while the file runs
    spec.loader.exec_module(scanner)
    return scanner


def _code_root():
    """The folder above the package the jobs import: the workflow's own src/ (put first on their path
    above), else wherever the installed package lives (found without importing it)."""
    if (_SRC / "blobloss").is_dir():
        return _SRC
    import importlib.util

    spec = importlib.util.find_spec("blobloss")
    if spec is None or not spec.submodule_search_locations:
        raise WorkflowError(f"no blobloss package: neither {_SRC}/blobloss nor an installed one; run pip install -e .")
    return Path(list(spec.submodule_search_locations)[0]).parent


_CODEDEPS = _load_codedeps()
_CODE_ROOT = _code_root()
_JOB_CODE = {}


def job_code(script):
    """The package source files a rule's job runs: the import closure of scripts/<script>.

    Use it as the rule's code input (``code=job_code("train.py")`` beside ``script: "../../scripts/train.py"``):
    Snakemake does not see Python imports, so the files the script imports, and what they import in turn
    (workflow/lib/codedeps.py scans the source without running it), are declared as inputs and a content
    edit of any of them reruns exactly the rules whose jobs run it. The files are those of the workflow's
    own src/, which the jobs import.
    """
    if script not in _JOB_CODE:
        path = Path(workflow.basedir) / "scripts" / script
        try:
            _JOB_CODE[script] = [str(f) for f in _CODEDEPS.import_closure(path, _CODE_ROOT, "blobloss")]
        except _CODEDEPS.ImportScanError as err:
            raise WorkflowError(f"code inputs of scripts/{script}: {err}") from None
    return _JOB_CODE[script]


def pkg_src(*relpaths):
    """Removed: rules no longer list package modules by hand."""
    raise WorkflowError(
        f"pkg_src{relpaths} lists package modules by hand; derive them from the rule's script instead: "
        'code=job_code("<script>.py"), the script named in the rule\'s script: directive'
    )


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
    try:
        return make_split(
            CASES[dataset],
            seed=s["seed"],
            test_fraction=s["test_fraction"],
            val_fraction=s["val_fraction"],
            split_file=s["file"],
        )
    except (BlobLossError, ValueError) as exc:
        raise WorkflowError(f"dataset {dataset!r}: {exc}") from None


# ---------------------------------------------------------------------------------------------------
# Training, inference and evaluation settings
# ---------------------------------------------------------------------------------------------------
SETTINGS = {name: {st["name"]: st for st in ds["training"]["losses"]} for name, ds in DATASETS.items()}
# The keys of a setting that are not options of its loss.
_SETTING_KEYS = ("name", "loss", "lr", "model", "gpus")


def setting_loss(dataset, setting):
    """The complete loss entry of a setting, every default from the loss module (blobloss.losses.settings)."""
    st = SETTINGS[dataset][setting]
    options = {k: v for k, v in st.items() if k not in _SETTING_KEYS}
    try:
        return loss_config(st["loss"], **options)
    except ValueError as err:
        raise WorkflowError(f"dataset {dataset!r}, training.losses setting {setting!r}: {err}") from None


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
        opt = ds["training"]["optimizer"]
        if opt.get("schedule") == "ranger21" and opt["name"] != "ranger21":
            raise WorkflowError(
                f"dataset {name!r}: training.optimizer.schedule 'ranger21' is Ranger21's own schedule; "
                f"optimizer {opt['name']!r} has none: set schedule: constant (or leave it out)"
            )
        tr = ds["training"]
        try:
            check_patch_size(tr["patch_size"], key=f"datasets.{name}.training.patch_size")
        except BlobLossError as exc:
            raise WorkflowError(f"config error: {exc}") from None
        _check_patch_against_cases(name, tr["patch_size"], tr["pad_to_patch"])
        if not SPLITS[name]["test"]:
            raise WorkflowError(
                f"config error: datasets.{name}.split leaves no test case, so the settings {names} would not "
                "be evaluated; set split.test_fraction > 0 (with at least 2 cases) or list test cases in "
                "split.file"
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
        for setting in names:
            setting_loss(name, setting)  # a bad loss option fails at parse time, naming the setting


def _check_patch_against_cases(name, patch, pad):
    """The patch against every case's shape, from the dataset check's report when it exists (no image read;
    on a first run the check_patch job does this right after the dataset check)."""
    report_file = Path(PATHS["checks"].format(dataset=name))
    if not report_file.is_file():
        return
    import json

    try:
        cases = json.loads(report_file.read_text())["cases"]
    except (OSError, ValueError, KeyError):
        return
    shapes = {case: facts["shape"] for case, facts in cases.items() if case in CASES[name]}
    try:
        check_patch_against_cases(shapes, patch, pad=pad, dataset=name, key=f"datasets.{name}.training.patch_size")
    except BlobLossError as exc:
        raise WorkflowError(f"config error: {exc}") from None


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
            "foreground_prob", "val_every", "deterministic", "tensorboard", "pad_to_patch")
    return dict(
        {k: tr[k] for k in keys},
        gpus=train_gpus(wildcards),
        model=model,
        optimizer=optimizer,
        loss=setting_loss(wildcards.dataset, wildcards.setting),
        seed=int(wildcards.seed),
    )


def train_gpus(wildcards):
    """GPUs (DDP ranks) of one training run: the loss entry's `gpus`, else the dataset's training.gpus."""
    st = SETTINGS[wildcards.dataset][wildcards.setting]
    return int(st.get("gpus") or DATASETS[wildcards.dataset]["training"]["gpus"])


def run_name(wildcards):
    """Names of one training run for its progress lines and progress.json."""
    return {"dataset": wildcards.dataset, "setting": wildcards.setting, "seed": int(wildcards.seed)}


def job_threads(section):
    """Threads of a training or prediction job: the dataset's ``<section>.threads``, else min(cores, 8)."""

    def threads(wildcards):
        return DATASETS[wildcards.dataset][section]["threads"] or max(1, min(workflow.cores, 8))

    return threads


def split_cases(dataset, part):
    return SPLITS[dataset][part]


def runs(dataset):
    """(setting, seed) of every training run of a dataset."""
    ds = DATASETS[dataset]
    return [(st["name"], seed) for st in ds["training"]["losses"] for seed in ds["training"]["seeds"]]


def study_plan():
    """Every training run of the study with its epochs (for python -m blobloss.status)."""
    return [
        {"dataset": ds, "setting": setting, "seed": seed, "epochs": DATASETS[ds]["training"]["epochs"]}
        for ds in DATASETS
        for setting, seed in runs(ds)
    ]


def run_columns(wildcards):
    """The columns that identify a run in the metrics tables."""
    ds = DATASETS[wildcards.dataset]
    st = SETTINGS[wildcards.dataset][wildcards.setting]
    loss = setting_loss(wildcards.dataset, wildcards.setting)
    return {
        "dataset": wildcards.dataset,
        "setting": wildcards.setting,
        "loss": st["loss"],
        "lr": st.get("lr") or ds["training"]["optimizer"]["lr"],
        "alpha": loss.get("alpha"),
        "beta": loss.get("beta"),
        "loss_options": describe_loss_options(loss),
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
        targets += [PATHS["train_curve"].format(dataset=dataset, setting=s, seed=k) for s, k in runs(dataset)]
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
