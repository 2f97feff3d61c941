"""Tables assembled from per-case results.

:func:`blob_summary` summarises the blob statistics. The results tables of the paper come from the
pipeline's long per-case metrics table (one row per dataset, setting, seed, checkpoint and test case):

* :func:`summarize_runs` -- one row per (dataset, setting, checkpoint): the mean over seeds of each seed's
  test-set mean (NaN ignored, docs/definitions.md sections 5 and 8) with the seed-to-seed standard
  deviation (``<metric>_sd``), ``n_seeds``, ``n_cases``, pooled TP/FP/FN and empty-case counts;
* :func:`table1` -- paper Table 1 (DSC, SDSC, F1, IS, IP per dataset and loss, then the per-component
  metrics where evaluated), optionally beside the paper's numbers (:data:`PAPER_RESULTS`);
* :func:`table2` -- paper Table 2, the alpha/beta ablation (DSC, S, P, SDSC, F1, IS, IP);
* :func:`pooled_table` -- the pooled counts companion;
* :func:`write_table` -- CSV (full precision, ``X`` and ``X_sd`` as separate columns), Markdown, LaTeX
  (booktabs) and a standalone HTML page (``"0.812 ± 0.013"``), written atomically.
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from blobloss.io import atomic_path
from blobloss.metrics import CASE_COLUMNS, aggregate
from blobloss.study import seed_summary

SHAPE_FEATURES = ("compactness", "sphereness", "stringness", "skewness")


def blob_summary(features: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Summarise blob statistics per dataset.

    Args:
        features: One row per blob with columns ``dataset``, ``case``, ``volume`` and the shape features.
        counts: One row per case with columns ``dataset``, ``case``, ``n_blobs`` (cases without blobs
            included with 0).

    Returns:
        One row per dataset: ``cases``, ``blobs``, ``blobs_per_case_median``, ``blobs_per_case_max``,
        ``volume_median``, ``volume_p95``, ``volume_max`` and ``<feature>_median`` for each shape
        feature (NaN features of single-voxel blobs ignored).

    Example:
        >>> f = pd.DataFrame({"dataset": ["a", "a"], "case": ["c0", "c0"], "volume": [1.0, 9.0],
        ...                   "compactness": [float("nan"), 0.5], "sphereness": [float("nan"), 0.8],
        ...                   "stringness": [float("nan"), 0.2], "skewness": [float("nan"), 0.1]})
        >>> c = pd.DataFrame({"dataset": ["a", "a"], "case": ["c0", "c1"], "n_blobs": [2, 0]})
        >>> row = blob_summary(f, c).iloc[0]
        >>> int(row["cases"]), int(row["blobs"]), float(row["compactness_median"])
        (2, 2, 0.5)
    """
    rows = []
    for dataset, per_case in counts.groupby("dataset", sort=True):
        blobs = features[features["dataset"] == dataset]
        row = {
            "dataset": dataset,
            "cases": int(len(per_case)),
            "blobs": int(per_case["n_blobs"].sum()),
            "blobs_per_case_median": float(per_case["n_blobs"].median()),
            "blobs_per_case_max": int(per_case["n_blobs"].max()),
            "volume_median": float(blobs["volume"].median()) if len(blobs) else float("nan"),
            "volume_p95": float(blobs["volume"].quantile(0.95)) if len(blobs) else float("nan"),
            "volume_max": float(blobs["volume"].max()) if len(blobs) else float("nan"),
        }
        for name in SHAPE_FEATURES:
            row[f"{name}_median"] = float(blobs[name].median()) if len(blobs) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


# ==================================================================================================
# Results tables (paper Table 1 and Table 2)
# ==================================================================================================

#: Columns that identify a run in the per-case table (besides ``seed`` and ``case``).
RUN_COLUMNS: tuple[str, ...] = ("dataset", "setting", "loss", "lr", "alpha", "beta", "model", "checkpoint")
#: Run columns carried into the summary when the per-case table has them (the loss options that differ
#: from the loss's defaults, as blobloss.losses.settings.describe_loss_options writes them).
OPTIONAL_RUN_COLUMNS: tuple[str, ...] = ("loss_options",)
#: One row of the summary per group of these columns.
GROUP_COLUMNS: tuple[str, ...] = ("dataset", "setting", "checkpoint")
#: Summary columns -> the labels the paper's tables use.
METRIC_LABELS: dict[str, str] = {
    "dsc": "DSC",
    "sensitivity": "S",
    "precision": "P",
    "surface_dice": "SDSC",
    "f1": "F1",
    "instance_sensitivity": "IS",
    "instance_precision": "IP",
}
#: Per-case columns the summary needs (the paper's metrics and counts).
BASE_CASE_COLUMNS: tuple[str, ...] = (
    "dsc", "sensitivity", "precision", "surface_dice", "tp", "fp", "fn", "instance_sensitivity",
    "instance_precision", "f1", "gt_empty", "pred_empty",
)
#: Metric columns beyond the paper's, averaged by :func:`summarize_runs` where the per-case table has them
#: (the per-component metrics, IS counted per ground-truth blob and the one-to-one IoU >= 0.5 rule) -> their
#: labels in Table 1, where they follow the paper's columns in this order.
EXTRA_LABELS: dict[str, str] = {
    "cc_dice": "cc_dice",
    "cc_surface_dice": "cc_surface_dice",
    "instance_sensitivity_gt": "IS_gt",
    "f1_iou": "F1_iou",
    "instance_sensitivity_iou": "IS_iou",
    "instance_precision_iou": "IP_iou",
}
#: The extra metric columns, in Table 1's order.
EXTRA_METRICS: tuple[str, ...] = tuple(EXTRA_LABELS)
TABLE1_METRICS: tuple[str, ...] = ("DSC", "SDSC", "F1", "IS", "IP")
TABLE2_METRICS: tuple[str, ...] = ("DSC", "S", "P", "SDSC", "F1", "IS", "IP")
#: Human-readable loss names (unknown losses: underscores become spaces).
LOSS_LABELS: dict[str, str] = {
    "dice": "dice",
    "blob_dice": "blob dice",
    "tversky": "tversky",
    "blob_tversky": "blob tversky",
    "iw": "iw",
    "blob_dice_nomask": "blob dice (no masking)",
    "bce": "bce",
    "blob_bce": "blob bce",
}
MODEL_LABELS: dict[str, str] = {"basicunet": "BasicUNet", "unetr": "UNETR"}
POOLED_COLUMNS: tuple[str, ...] = (
    "dataset", "setting", "checkpoint", "n_seeds", "n_cases", "n_evaluations", "tp", "fp", "fn",
    "pooled_instance_sensitivity", "pooled_instance_precision", "pooled_f1",
    "gt_empty", "pred_empty", "both_empty",
)

#: The paper's metrics, averaged per seed in :func:`summarize_runs`.
AGGREGATE_MEANS: tuple[str, ...] = (
    "dsc", "sensitivity", "precision", "surface_dice", "instance_sensitivity", "instance_precision", "f1",
)
_POOLED_STATS = ("tp", "fp", "fn", "pooled_instance_sensitivity", "pooled_instance_precision", "pooled_f1",
                 "gt_empty", "pred_empty", "both_empty")

_NAN = float("nan")
_PAPER_METRICS = ("DSC", "S", "P", "SDSC", "F1", "IS", "IP")
# The paper's reported test-set means: Kofler, Shit, Ezhov, et al., "blob loss: instance imbalance aware
# loss functions for semantic segmentation", IPMI 2023, LNCS 13939 (Tables 1 and 2 and the ablations in
# the text/supplement), as transcribed in docs/definitions.md section 7. Columns: paper dataset, loss, lr, alpha, beta
# (NaN for losses without them), model, checkpoint, DSC, S, P, SDSC, F1, IS, IP (NaN = not reported).
_PAPER_COLUMNS = ("paper_dataset", "loss", "lr", "alpha", "beta", "model", "checkpoint", *_PAPER_METRICS)
_N = _NAN
_PAPER_ROWS: tuple[tuple, ...] = (
    # Table 1 (last checkpoint); S and P of blob dice and dice on MS from Table 2
    ("MS", "blob_dice", 1e-2, 2, 1, "basicunet", "last", 0.680, 0.626, 0.782, 0.848, 0.810, 0.822, 0.828),
    ("MS", "dice", 1e-2, _N, _N, "basicunet", "last", 0.660, 0.704, 0.656, 0.820, 0.758, 0.854, 0.711),
    ("MS", "iw", 1e-2, _N, _N, "basicunet", "last", 0.153, _N, _N, 0.167, 0.278, 0.801, 0.188),
    ("MS", "iw", 1e-3, _N, _N, "basicunet", "last", 0.243, _N, _N, 0.273, 0.282, 0.819, 0.189),
    ("MS", "blob_tversky", 1e-2, 2, 1, "basicunet", "last", 0.690, _N, _N, 0.852, 0.804, 0.829, 0.804),
    ("MS", "tversky", 1e-2, _N, _N, "basicunet", "last", 0.601, _N, _N, 0.697, 0.566, 0.854, 0.459),
    ("LiTS", "blob_dice", 1e-2, 2, 1, "basicunet", "last", 0.663, _N, _N, 0.542, 0.657, 0.861, 0.631),
    ("LiTS", "dice", 1e-2, _N, _N, "basicunet", "last", 0.659, _N, _N, 0.546, 0.623, 0.801, 0.599),
    ("SHANEL", "blob_dice", 1e-3, 2, 1, "basicunet", "last", 0.543, _N, _N, 0.808, 0.792, 0.874, 0.724),
    ("SHANEL", "dice", 1e-3, _N, _N, "basicunet", "last", 0.539, _N, _N, 0.794, 0.783, 0.854, 0.723),
    ("DISCO-MS", "blob_dice", 1e-3, 2, 1, "basicunet", "last", 0.546, _N, _N, 0.678, 0.589, 0.760, 0.481),
    ("DISCO-MS", "dice", 1e-3, _N, _N, "basicunet", "last", 0.095, _N, _N, 0.083, 0.012, 0.870, 0.006),
    ("DISCO-MS", "dice", 3e-4, _N, _N, "basicunet", "last", 0.016, _N, _N, 0.036, 0.379, 0.896, 0.240),
    ("DISCO-MS", "dice", 1e-4, _N, _N, "basicunet", "last", 0.007, _N, _N, 0.011, 0.228, 0.825, 0.132),
    ("DeepMACT", "blob_dice", 1e-2, 2, 1, "basicunet", "last", 0.357, _N, _N, 0.393, 0.391, 0.871, 0.276),
    ("DeepMACT", "dice", 1e-2, _N, _N, "basicunet", "last", 0.353, _N, _N, 0.372, 0.367, 0.801, 0.254),
    # Table 2 (MS alpha/beta ablation); (2,1) and dice (1,0) are the Table 1 rows above
    ("MS", "blob_dice", 1e-2, 3, 1, "basicunet", "last", 0.674, 0.629, 0.765, 0.833, 0.790, 0.796, 0.815),
    ("MS", "blob_dice", 1e-2, 1, 1, "basicunet", "last", 0.658, 0.580, 0.802, 0.839, 0.804, 0.840, 0.801),
    ("MS", "blob_dice", 1e-2, 1, 2, "basicunet", "last", 0.630, 0.552, 0.803, 0.819, 0.792, 0.832, 0.786),
    ("MS", "blob_dice", 1e-2, 1, 0, "basicunet", "last", 0.660, 0.704, 0.656, 0.820, 0.758, 0.854, 0.711),
    ("MS", "blob_dice", 1e-2, 0, 1, "basicunet", "last", 0.522, 0.409, 0.837, 0.728, 0.744, 0.805, 0.727),
    # no-masking ablation (MS)
    ("MS", "blob_dice_nomask", 1e-2, 2, 1, "basicunet", "last", 0.358, _N, _N, 0.382, 0.297, 0.829, 0.201),
    # lowest-validation-loss checkpoint (MS)
    ("MS", "blob_dice", 1e-2, 2, 1, "basicunet", "best", 0.678, _N, _N, 0.849, 0.800, 0.859, 0.775),
    ("MS", "dice", 1e-2, _N, _N, "basicunet", "best", 0.640, _N, _N, 0.800, 0.759, 0.810, 0.748),
    ("MS", "blob_tversky", 1e-2, 2, 1, "basicunet", "best", 0.692, _N, _N, 0.857, 0.796, 0.848, 0.775),
    ("MS", "tversky", 1e-2, _N, _N, "basicunet", "best", 0.405, _N, _N, 0.461, 0.413, 0.851, 0.302),
    # architecture ablation: UNETR (MS, lr 1e-3)
    ("MS", "dice", 1e-3, _N, _N, "unetr", "last", 0.380, _N, _N, 0.386, 0.383, 0.870, 0.272),
    ("MS", "blob_dice", 1e-3, 2, 1, "unetr", "last", 0.632, _N, _N, 0.789, 0.691, 0.889, 0.600),
)
#: The paper's reported results (test-set means), one row per (paper dataset, loss, lr, alpha, beta,
#: model, checkpoint); NaN where the paper reports no value.
PAPER_RESULTS: pd.DataFrame = pd.DataFrame(list(_PAPER_ROWS), columns=list(_PAPER_COLUMNS))
del _N


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def _require(frame: pd.DataFrame, columns: Sequence[str], what: str, hint: str) -> None:
    """Raise a ValueError naming the columns of ``columns`` that ``frame`` lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {missing} (has {list(frame.columns)}); {hint}")


def _single_value(values: pd.Series, column: str, group: tuple) -> Any:
    """The one value of ``column`` within a run group (NaN counts as one value)."""
    distinct = values.drop_duplicates()
    if len(distinct) > 1:
        raise ValueError(
            f"run {dict(zip(GROUP_COLUMNS, group))} has several values of {column!r}: {list(distinct)}; "
            "each (dataset, setting, checkpoint) must name one configuration: give differing runs "
            "different setting names."
        )
    value = distinct.iloc[0]
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------------
def summarize_runs(per_case: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, setting, checkpoint): seed means with their spread, and pooled counts.

    Each metric is first averaged over the test cases of each seed (NaN ignored, docs/definitions.md
    section 5); the summary gives the mean of those seed means and their standard deviation over seeds
    (``<metric>_sd``, ddof = 1, NaN with one seed; docs/definitions.md section 8). The pooled TP/FP/FN
    (with IS/IP/F1 computed from them) and the empty-case counts come from
    :func:`blobloss.metrics.aggregate` over every (case, seed) evaluation.

    Args:
        per_case: One row per (run, checkpoint, case) with the columns :data:`RUN_COLUMNS`, ``seed``,
            ``case`` and :data:`BASE_CASE_COLUMNS`; the columns of :data:`EXTRA_METRICS` are averaged too
            where present (the pipeline's per-case metrics tables concatenated).

    Returns:
        DataFrame with :data:`RUN_COLUMNS`, ``n_seeds``, ``n_cases`` (distinct cases), ``n_evaluations``
        (rows: cases x seeds), the means ``dsc, sensitivity, precision, surface_dice,
        instance_sensitivity, instance_precision, f1`` (+ the extra metrics present), each followed by
        its ``_sd``, then ``tp, fp, fn``, ``pooled_instance_sensitivity, pooled_instance_precision,
        pooled_f1`` and ``gt_empty, pred_empty, both_empty``; groups in order of first appearance.

    Raises:
        ValueError: On missing columns, an empty table, a (case, seed) listed twice in a group, or a
            group whose loss/lr/alpha/beta/model differ between rows.

    Example:
        >>> row = dict(dataset="ms", setting="dice", loss="dice", lr=0.01, alpha=float("nan"),
        ...            beta=float("nan"), model="basicunet", checkpoint="last", seed=0, case="c0",
        ...            dsc=0.5, sensitivity=0.5, precision=0.5, surface_dice=0.5, tp=1, fp=1, fn=0,
        ...            instance_sensitivity=1.0, instance_precision=0.5, f1=2 / 3, gt_empty=False,
        ...            pred_empty=False)
        >>> s = summarize_runs(pd.DataFrame([row, dict(row, case="c1", dsc=1.0), dict(row, seed=1, dsc=0.25),
        ...                                  dict(row, seed=1, case="c1", dsc=0.75)]))
        >>> float(s.loc[0, "dsc"]), round(float(s.loc[0, "dsc_sd"]), 4), int(s.loc[0, "n_seeds"]), int(s.loc[0, "fp"])
        (0.625, 0.1768, 2, 4)
    """
    _require(
        per_case, (*RUN_COLUMNS, "seed", "case", *BASE_CASE_COLUMNS), "per_case",
        "pass the pipeline's per-case metrics tables (blobloss.jobs.metrics_job outputs) concatenated.",
    )
    if per_case.empty:
        raise ValueError("per_case has no rows; evaluate at least one run before summarising.")
    metrics = [*AGGREGATE_MEANS, *[c for c in EXTRA_METRICS if c in per_case.columns]]
    seeds = {tuple(r[list(GROUP_COLUMNS)]): r for _, r in seed_summary(per_case, metrics).iterrows()}
    rows = []
    for group, frame in per_case.groupby(list(GROUP_COLUMNS), sort=False, dropna=False):
        spread = seeds[tuple(group)]
        duplicated = frame.duplicated(["seed", "case"])
        if duplicated.any():
            first = frame.loc[duplicated, ["seed", "case"]].iloc[0].to_dict()
            raise ValueError(
                f"run {dict(zip(GROUP_COLUMNS, group))} lists (seed, case) {first} more than once; "
                "concatenate each metrics table once."
            )
        row = {column: _single_value(frame[column], column, group) for column in RUN_COLUMNS}
        row.update({c: _single_value(frame[c], c, group) for c in OPTIONAL_RUN_COLUMNS if c in frame.columns})
        row["n_seeds"] = int(spread["n_seeds"])
        row["n_cases"] = int(spread["n_cases"])
        row["n_evaluations"] = int(len(frame))
        for column in metrics:
            row[column] = float(spread[column])
            row[f"{column}_sd"] = float(spread[f"{column}_sd"])
        pooled = aggregate(frame.reindex(columns=list(CASE_COLUMNS)))
        row.update({k: pooled[k] for k in _POOLED_STATS})
        rows.append(row)
    return pd.DataFrame(rows)


def pooled_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The pooled-count companion of the results tables: one row per (dataset, setting, checkpoint).

    Args:
        summary: Output of :func:`summarize_runs`.

    Returns:
        DataFrame with :data:`POOLED_COLUMNS`: ``n_seeds``, ``n_cases``, ``n_evaluations`` (cases x
        seeds), the TP/FP/FN summed over all evaluations, IS/IP/F1 computed from those sums, and how many
        evaluations had an empty ground truth, an empty prediction, or both.

    Raises:
        ValueError: If a column is missing.

    Example:
        >>> s = pd.DataFrame([dict(dataset="ms", setting="dice", checkpoint="last", n_seeds=1, n_cases=2,
        ...     n_evaluations=2, tp=3, fp=1, fn=1, pooled_instance_sensitivity=0.75,
        ...     pooled_instance_precision=0.75, pooled_f1=0.75, gt_empty=0, pred_empty=0, both_empty=0)])
        >>> pooled_table(s)[["tp", "fp", "fn"]].values.tolist()
        [[3, 1, 1]]
    """
    _require(summary, POOLED_COLUMNS, "summary", "pass the output of blobloss.tables.summarize_runs.")
    return summary.loc[:, list(POOLED_COLUMNS)].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# row selection and labels
# --------------------------------------------------------------------------------------------------
def _select_rows(
    summary: pd.DataFrame,
    settings: Sequence[str] | Mapping[str, Sequence[str]] | None,
    checkpoint: str,
) -> pd.DataFrame:
    """Rows of ``summary`` at ``checkpoint``, ordered by dataset (first appearance) then ``settings``."""
    at_ckpt = summary[summary["checkpoint"] == checkpoint]
    if at_ckpt.empty:
        raise ValueError(
            f"no run was evaluated at checkpoint {checkpoint!r} (available: "
            f"{sorted(summary['checkpoint'].astype(str).unique())})."
        )
    if settings is None:
        return at_ckpt.reset_index(drop=True)
    if isinstance(settings, str):
        raise ValueError(f"settings must be a list of setting names, got the string {settings!r}; use [{settings!r}].")
    if isinstance(settings, Mapping):
        wanted = {str(d): [str(s) for s in names] for d, names in settings.items()}
        unknown = sorted(set(wanted) - set(at_ckpt["dataset"].astype(str)))
        if unknown:
            raise ValueError(f"settings names dataset(s) {unknown} that have no runs at checkpoint {checkpoint!r}.")
        datasets = [d for d in dict.fromkeys(at_ckpt["dataset"].astype(str)) if d in wanted]
    else:
        names = [str(s) for s in settings]
        datasets = list(dict.fromkeys(at_ckpt["dataset"].astype(str)))
        wanted = {d: names for d in datasets}
        absent = [s for s in names if s not in set(at_ckpt["setting"].astype(str))]
        if absent:
            raise ValueError(
                f"setting(s) {absent} have no runs at checkpoint {checkpoint!r}; available: "
                f"{list(dict.fromkeys(at_ckpt['setting'].astype(str)))}."
            )
    parts = []
    for dataset in datasets:
        rows = at_ckpt[at_ckpt["dataset"].astype(str) == dataset]
        rows = rows.set_index(rows["setting"].astype(str).rename("_setting"))
        present = [s for s in wanted[dataset] if s in rows.index]
        if isinstance(settings, Mapping) and len(present) < len(wanted[dataset]):
            absent = [s for s in wanted[dataset] if s not in rows.index]
            raise ValueError(f"dataset {dataset!r} has no runs of setting(s) {absent} at checkpoint {checkpoint!r}.")
        parts.append(rows.loc[present])
    return pd.concat(parts).reset_index(drop=True)


def loss_label(loss: str, options: Any = None) -> str:
    """Human-readable name of a loss, e.g. ``"blob_dice"`` -> ``"blob dice"``, with its non-default options.

    Args:
        loss: The loss name.
        options: The text of the options that differ from the loss's defaults (the run column
            ``loss_options``, from :func:`blobloss.losses.settings.describe_loss_options`); empty or NaN
            for none.

    Example:
        >>> loss_label("blob_tversky"), loss_label("my_loss"), loss_label("blob_dice", "logit masking")
        ('blob tversky', 'my loss', 'blob dice (logit masking)')
    """
    label = LOSS_LABELS.get(str(loss), str(loss).replace("_", " "))
    if isinstance(options, str) and options.strip():
        label += f" ({options.strip()})"
    return label


def _alpha_beta_text(alpha: Any, beta: Any) -> str:
    if pd.isna(alpha) and pd.isna(beta):
        return ""
    return f"({float(alpha):g},{float(beta):g})"


def _labels(rows: pd.DataFrame, with_alpha_beta: bool) -> list[str]:
    """Loss labels, qualified where one loss appears with other alpha/beta, model or setting."""
    options = rows["loss_options"] if "loss_options" in rows.columns else [None] * len(rows)
    labels = [loss_label(loss, opts) for loss, opts in zip(rows["loss"], options)]
    if with_alpha_beta:  # alpha/beta where one loss and model appear with several (alpha, beta)
        for _key, index in rows.groupby(["dataset", "loss", "model"], sort=False, dropna=False).groups.items():
            ab = [_alpha_beta_text(rows.at[i, "alpha"], rows.at[i, "beta"]) for i in index]
            if len(set(ab)) > 1:
                for i, text in zip(index, ab):
                    labels[i] += f" {text}" if text else ""
    # the model where one loss appears with several models, on rows off the dataset's most common model
    majority_model = {d: m.mode().iloc[0] for d, m in rows.groupby("dataset", sort=False)["model"]}
    for _key, index in rows.groupby(["dataset", "loss"], sort=False, dropna=False).groups.items():
        if rows.loc[index, "model"].nunique() > 1:
            for i in index:
                model = str(rows.at[i, "model"])
                if model != majority_model[rows.at[i, "dataset"]]:
                    labels[i] += f" {MODEL_LABELS.get(model, model)}"
    # still ambiguous (same label, dataset and lr): name the setting
    keys = pd.DataFrame({"dataset": rows["dataset"], "label": labels, "lr": rows["lr"],
                         "alpha": rows["alpha"] if not with_alpha_beta else 0,
                         "beta": rows["beta"] if not with_alpha_beta else 0})
    clash = keys.duplicated(keep=False).to_numpy()
    return [f"{label} [{setting}]" if c else label for label, setting, c in zip(labels, rows["setting"], clash)]


# --------------------------------------------------------------------------------------------------
# paper columns
# --------------------------------------------------------------------------------------------------
def _key_frame(frame: pd.DataFrame, dataset_column: str) -> pd.DataFrame:
    """String keys (dataset, loss, lr, alpha, beta, model, checkpoint) that compare floats robustly."""
    def number(values: pd.Series) -> pd.Series:
        return values.map(lambda v: "" if pd.isna(v) else f"{float(v):.6g}")

    return pd.DataFrame({
        "key_dataset": frame[dataset_column].astype(str),
        "key_loss": frame["loss"].astype(str),
        "key_lr": number(frame["lr"]),
        "key_alpha": number(frame["alpha"]),
        "key_beta": number(frame["beta"]),
        "key_model": frame["model"].astype(str).str.lower(),
        "key_checkpoint": frame["checkpoint"].astype(str),
    }, index=frame.index)


def paper_values(rows: pd.DataFrame, paper_datasets: Mapping[str, str], metrics: Sequence[str]) -> pd.DataFrame:
    """The paper's reported values for the runs in ``rows`` (NaN where the paper has none).

    A run matches a row of :data:`PAPER_RESULTS` when its dataset maps to that paper dataset and loss,
    lr, alpha, beta (NaN matches NaN), model and checkpoint agree.

    Args:
        rows: Runs with columns ``dataset, loss, lr, alpha, beta, model, checkpoint``.
        paper_datasets: ``{dataset: paper name}``, paper names among ``MS, LiTS, SHANEL, DISCO-MS,
            DeepMACT``.
        metrics: Paper metric labels to return (among DSC, S, P, SDSC, F1, IS, IP).

    Returns:
        DataFrame aligned with ``rows`` (same index) with columns ``"paper <metric>"``.

    Raises:
        ValueError: On an unknown paper dataset name or metric.

    Example:
        >>> r = pd.DataFrame([dict(dataset="ms", loss="dice", lr=0.01, alpha=float("nan"),
        ...                        beta=float("nan"), model="basicunet", checkpoint="last")])
        >>> float(paper_values(r, {"ms": "MS"}, ["DSC"]).iloc[0, 0])
        0.66
    """
    known = set(PAPER_RESULTS["paper_dataset"])
    unknown = sorted({str(v) for v in paper_datasets.values()} - known)
    if unknown:
        raise ValueError(f"unknown paper dataset name(s) {unknown}; use one of {sorted(known)}.")
    bad = [m for m in metrics if m not in _PAPER_METRICS]
    if bad:
        raise ValueError(f"unknown paper metric(s) {bad}; use some of {list(_PAPER_METRICS)}.")
    mapped = rows.assign(_paper=rows["dataset"].astype(str).map(lambda d: paper_datasets.get(d)))
    left = _key_frame(mapped, "_paper")
    left.loc[mapped["_paper"].isna(), "key_dataset"] = "\0none"
    right = pd.concat([_key_frame(PAPER_RESULTS, "paper_dataset"), PAPER_RESULTS[list(metrics)]], axis=1)
    merged = left.reset_index().merge(right, on=list(left.columns), how="left").set_index("index")
    out = merged.loc[rows.index, list(metrics)]
    out.columns = [f"paper {m}" for m in metrics]
    return out.rename_axis(None)


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------
def _metric_frame(rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """``<label>`` (seed mean) and ``<label>_sd`` (seed spread) per metric label, then n_seeds/n_cases first."""
    inverse = {label: column for column, label in (*METRIC_LABELS.items(), *EXTRA_LABELS.items())}
    out: dict[str, pd.Series] = {}
    for m in metrics:
        column = inverse.get(m, m)
        out[m] = rows[column].astype(float)
        sd = f"{column}_sd"
        out[f"{m}_sd"] = rows[sd].astype(float) if sd in rows.columns else pd.Series(_NAN, index=rows.index)
    return pd.DataFrame(out, index=rows.index)


def _counts_frame(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: rows[c].astype(int) for c in ("n_seeds", "n_cases")}, index=rows.index)


def _with_paper(table: pd.DataFrame, rows: pd.DataFrame, metrics: Sequence[str], paper: bool,
                paper_datasets: Mapping[str, str] | None) -> pd.DataFrame:
    if not paper or not paper_datasets:
        return table
    return pd.concat([table, paper_values(rows, paper_datasets, metrics)], axis=1)


def table1(
    summary: pd.DataFrame,
    settings: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    checkpoint: str = "last",
    paper: bool = True,
    paper_datasets: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Paper Table 1: DSC, SDSC, F1, IS and IP per dataset and loss (seed means of test-set means).

    Loss labels are human-readable (:data:`LOSS_LABELS`); where one loss appears several times in a
    dataset they say how the rows differ: ``"(alpha,beta)"`` when alpha/beta differ, the model name
    (e.g. ``"UNETR"``) on rows whose model is not the dataset's most common one, and ``"[setting]"`` if
    rows would still look alike.

    Args:
        summary: Output of :func:`summarize_runs`.
        settings: Setting names in table order: a list (applied to every dataset; each name must exist in
            at least one), a mapping ``{dataset: [settings]}`` (e.g. each dataset's ``evaluation.table1``),
            or None for every setting in the summary's order.
        checkpoint: Which checkpoint's results (``"last"`` as in the paper, or ``"best"``).
        paper: Add the paper's reported values as ``"paper DSC"``, ... columns (needs ``paper_datasets``).
        paper_datasets: ``{dataset: paper name}`` (``MS``, ``LiTS``, ``SHANEL``, ``DISCO-MS``,
            ``DeepMACT``); without it there are no paper columns. Unmatched rows get NaN.

    Returns:
        DataFrame with columns ``dataset, loss, lr, n_seeds, n_cases``, then ``DSC, DSC_sd, SDSC, SDSC_sd,
        F1, F1_sd, IS, IS_sd, IP, IP_sd`` (mean over seeds of the test-set means, and the seed-to-seed
        standard deviation), then the extra metrics the summary has, each with its ``_sd``:
        ``cc_dice, cc_surface_dice`` (per-component metrics), ``IS_gt`` (IS counted per ground-truth
        blob) and ``F1_iou, IS_iou, IP_iou`` (one-to-one IoU >= 0.5), and ``paper DSC`` ... ``paper IP``; datasets in order of
        first appearance, settings in the given order.

    Raises:
        ValueError: On missing columns, no run at ``checkpoint``, unknown settings or paper names.

    Example:
        >>> t = table1(summary, ["blob_dice", "dice"], paper_datasets={"ms": "MS"})  # doctest: +SKIP
        >>> list(t.columns)[:7]  # doctest: +SKIP
        ['dataset', 'loss', 'lr', 'n_seeds', 'n_cases', 'DSC', 'DSC_sd']
    """
    _require(summary, (*RUN_COLUMNS, "n_seeds", "n_cases", *METRIC_LABELS), "summary",
             "pass the output of blobloss.tables.summarize_runs.")
    rows = _select_rows(summary, settings, checkpoint)
    table = pd.DataFrame({
        "dataset": rows["dataset"].astype(str),
        "loss": _labels(rows, with_alpha_beta=True),
        "lr": rows["lr"].astype(float),
    })
    extra = [label for column, label in EXTRA_LABELS.items() if column in rows.columns]
    table = pd.concat([table, _counts_frame(rows), _metric_frame(rows, (*TABLE1_METRICS, *extra))], axis=1)
    return _with_paper(table, rows, TABLE1_METRICS, paper, paper_datasets)


def table2(
    summary: pd.DataFrame,
    settings: Sequence[str],
    checkpoint: str = "last",
    paper: bool = True,
    paper_datasets: Mapping[str, str] | None = None,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Paper Table 2: the alpha/beta ablation (DSC, S, P, SDSC, F1, IS, IP) of one dataset.

    Losses without a blob term (``dice``, ``tversky``) are the criterion alone, so they are shown with
    alpha = 1, beta = 0 as in the paper; other losses without alpha/beta show NaN.

    Args:
        summary: Output of :func:`summarize_runs`.
        settings: Setting names in table order (e.g. the dataset's ``evaluation.table2``).
        checkpoint: Which checkpoint's results.
        paper: Add the paper's values as ``"paper DSC"``, ... columns (needs ``paper_datasets``).
        paper_datasets: ``{dataset: paper name}``; only MS has ablation values in the paper.
        dataset: The dataset, required when the summary holds several.

    Returns:
        DataFrame with columns ``loss, alpha, beta, n_seeds, n_cases``, then ``DSC, DSC_sd, S, S_sd, ...,
        IP, IP_sd`` (seed means and seed-to-seed standard deviations) and the paper columns.

    Raises:
        ValueError: On missing columns, an ambiguous or unknown dataset, or unknown settings.

    Example:
        >>> t = table2(summary, ["blob_dice_a3_b1", "blob_dice", "dice"], dataset="ms")  # doctest: +SKIP
    """
    _require(summary, (*RUN_COLUMNS, "n_seeds", "n_cases", *METRIC_LABELS), "summary",
             "pass the output of blobloss.tables.summarize_runs.")
    datasets = list(dict.fromkeys(summary["dataset"].astype(str)))
    if dataset is None:
        if len(datasets) != 1:
            raise ValueError(f"summary holds several datasets {datasets}; name one with dataset=...")
        dataset = datasets[0]
    if dataset not in datasets:
        raise ValueError(f"dataset {dataset!r} not in the summary (has {datasets}).")
    rows = _select_rows(summary[summary["dataset"].astype(str) == dataset], list(settings), checkpoint)
    plain = rows["loss"].isin(["dice", "tversky"]) & rows["alpha"].isna() & rows["beta"].isna()
    table = pd.DataFrame({
        "loss": _labels(rows, with_alpha_beta=False),
        "alpha": rows["alpha"].astype(float).mask(plain, 1.0),
        "beta": rows["beta"].astype(float).mask(plain, 0.0),
    })
    table = pd.concat([table, _counts_frame(rows), _metric_frame(rows, TABLE2_METRICS)], axis=1)
    return _with_paper(table, rows, TABLE2_METRICS, paper, paper_datasets)


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
def format_lr(value: float) -> str:
    """Learning rate in the paper's notation, e.g. ``0.0003`` -> ``"3e-4"``.

    Example:
        >>> format_lr(0.01), format_lr(0.0003), format_lr(0.00125)
        ('1e-2', '3e-4', '1.25e-3')
    """
    mantissa, exponent = f"{float(value):.6e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def format_p(value: float) -> str:
    """A p-value with three significant digits, small ones as ``"<0.001"``.

    Example:
        >>> format_p(0.04321), format_p(0.00002), format_p(1.0)
        ('0.0432', '<0.001', '1')
    """
    v = float(value)
    return "<0.001" if v < 0.001 else f"{v:.3g}"


#: Column-specific formatters used by :func:`write_table` (others: ``float_format`` for floats).
COLUMN_FORMATS: dict[str, Callable[[Any], str]] = {
    "lr": format_lr,
    "alpha": lambda v: f"{float(v):g}",
    "beta": lambda v: f"{float(v):g}",
    "p_value": format_p,
    "p_holm": format_p,
    "bin_low": lambda v: f"{float(v):.4g}",
    "bin_high": lambda v: f"{float(v):.4g}",
}
#: Separator of a mean and its standard deviation in the formatted tables.
PLUS_MINUS = " ± "


def format_table(
    df: pd.DataFrame,
    float_format: str = "{:.3f}",
    na_rep: str = "--",
    column_formats: Mapping[str, Callable[[Any], str]] | None = None,
    merge_sd: bool = True,
) -> pd.DataFrame:
    """The table as strings: floats with ``float_format``, NaN as ``na_rep``, special columns formatted.

    A column ``X`` followed anywhere by ``X_sd`` becomes one column ``X`` reading ``"mean ± sd"`` (just the
    mean where the sd is NaN, e.g. with a single seed), and ``X_sd`` is dropped.

    Args:
        df: Any table.
        float_format: ``str.format`` pattern for float columns.
        na_rep: Text for missing values.
        column_formats: Per-column formatters (default :data:`COLUMN_FORMATS`).
        merge_sd: Merge ``X`` / ``X_sd`` pairs as described.

    Returns:
        A DataFrame of strings (without the merged ``_sd`` columns).

    Example:
        >>> format_table(pd.DataFrame({"lr": [0.01], "DSC": [float("nan")], "n": [3]})).values.tolist()
        [['1e-2', '--', '3']]
        >>> format_table(pd.DataFrame({"DSC": [0.8123, 0.5], "DSC_sd": [0.0131, float("nan")]})).values.tolist()
        [['0.812 ± 0.013'], ['0.500']]
    """
    formats = COLUMN_FORMATS if column_formats is None else column_formats
    out = {}
    for column in df.columns:
        values = df[column]
        if column in formats:
            fmt = formats[column]
        elif pd.api.types.is_float_dtype(values):
            fmt = float_format.format
        else:
            fmt = str
        out[column] = [na_rep if _is_missing(v) else fmt(v) for v in values]
    text = pd.DataFrame(out, index=df.index, columns=df.columns)
    if merge_sd:
        for column in _sd_pairs(df):
            sd = f"{column}_sd"
            text[column] = [
                m if _is_missing(v) or _is_missing(d) else f"{m}{PLUS_MINUS}{s}"
                for m, s, v, d in zip(text[column], text[sd], df[column], df[sd])
            ]
        text = text.drop(columns=[f"{c}_sd" for c in _sd_pairs(df)])
    return text


def _sd_pairs(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if isinstance(c, str) and f"{c}_sd" in df.columns]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


_HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.15em; margin-bottom: 0.3em; }
p.note { max-width: 60em; font-size: 0.9em; color: #444; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; white-space: nowrap; }
thead th { border-bottom: 2px solid #444; text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { text-align: left; }
tbody tr:nth-child(even) { background: #f6f6f6; }
"""


def table_html(df: pd.DataFrame, title: str | None = None, note: str | None = None,
               float_format: str = "{:.3f}") -> str:
    """A standalone HTML page showing the formatted table (what the report displays).

    Args:
        df: The table.
        title: Heading above the table.
        note: A sentence or two below the heading (what the numbers are).
        float_format: ``str.format`` pattern for floats.

    Returns:
        The HTML document (UTF-8, inline CSS, no scripts).

    Example:
        >>> '<td class="num">0.812 ± 0.013</td>' in table_html(pd.DataFrame({"DSC": [0.8123], "DSC_sd": [0.0131]}))
        True
    """
    import html

    text = format_table(df, float_format=float_format)
    numeric = {c: _is_numeric(df[c]) for c in text.columns}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in text.columns)
    body = "\n".join(
        "<tr>" + "".join(
            f'<td class="{"num" if numeric[c] else "text"}">{html.escape(str(v))}</td>' for c, v in row.items()
        ) + "</tr>"
        for _, row in text.iterrows()
    )
    parts = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title or 'table')}</title><style>{_HTML_STYLE}</style></head><body>"]
    if title:
        parts.append(f"<h1>{html.escape(title)}</h1>")
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n</body></html>\n")
    return "\n".join(parts)


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


TABLE_FORMATS: tuple[str, ...] = ("csv", "md", "tex", "html")


def write_table(
    df: pd.DataFrame,
    stem: str | PathLike[str],
    float_format: str = "{:.3f}",
    caption: str | None = None,
    note: str | None = None,
    formats: Sequence[str] = TABLE_FORMATS,
) -> dict[str, Path]:
    """Write a table as ``<stem>.csv`` (full precision), ``.md``, ``.tex`` and ``.html``, atomically.

    The CSV keeps every column at full precision (``X`` and ``X_sd`` separate). Markdown (tabulate),
    LaTeX (booktabs rules, no index) and HTML use ``float_format`` for float columns, ``"mean ± sd"`` for
    ``X`` / ``X_sd`` pairs (``$\\pm$`` in LaTeX), the paper's notation for ``lr`` (``1e-2``), three
    significant digits for p-values and ``"--"`` for NaN; text columns are left-aligned, numbers
    right-aligned, LaTeX and HTML special characters escaped.

    Args:
        df: The table (e.g. from :func:`table1`).
        stem: Output path without extension, e.g. ``results/tables/table1``.
        float_format: ``str.format`` pattern for floats in Markdown, LaTeX and HTML.
        caption: Optional caption: the LaTeX caption (then a ``table`` environment is written) and the
            HTML page's heading.
        note: Optional explanation shown under the HTML heading.
        formats: Which of ``csv, md, tex, html`` to write.

    Returns:
        ``{format: path}`` for each written format.

    Raises:
        ValueError: If ``df`` is not a DataFrame, ``float_format`` is not a valid pattern or a format is
            unknown.

    Example:
        >>> import tempfile, os
        >>> paths = write_table(pd.DataFrame({"loss": ["dice"], "DSC": [0.5]}), os.path.join(tempfile.mkdtemp(), "t"))
        >>> open(paths["md"]).read().splitlines()[2]
        '| dice   | 0.500 |'
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"write_table expects a pandas DataFrame, got {type(df).__name__}.")
    try:
        float_format.format(0.5)
    except (IndexError, KeyError, ValueError) as err:
        raise ValueError(
            f"float_format must be a str.format pattern such as '{{:.3f}}', got {float_format!r}."
        ) from err
    unknown = [f for f in formats if f not in TABLE_FORMATS]
    if unknown:
        raise ValueError(f"unknown table format(s) {unknown}; use some of {list(TABLE_FORMATS)}.")
    stem = Path(stem)
    paths = {ext: stem.with_name(f"{stem.name}.{ext}") for ext in formats}
    text = format_table(df, float_format=float_format)
    numeric = [_is_numeric(df[c]) for c in text.columns]
    if "csv" in paths:
        with atomic_path(paths["csv"]) as tmp:
            df.to_csv(tmp, index=False)
    if "md" in paths:
        markdown = text.to_markdown(
            index=False, disable_numparse=True, colalign=["right" if n else "left" for n in numeric]
        )
        with atomic_path(paths["md"]) as tmp:
            tmp.write_text(markdown + "\n", encoding="utf-8")
    if "tex" in paths:
        latex = text.to_latex(
            index=False, escape=True, caption=caption, column_format="".join("r" if n else "l" for n in numeric)
        ).replace(PLUS_MINUS, r" $\pm$ ")
        with atomic_path(paths["tex"]) as tmp:
            tmp.write_text(latex, encoding="utf-8")
    if "html" in paths:
        with atomic_path(paths["html"]) as tmp:
            tmp.write_text(table_html(df, title=caption, note=note, float_format=float_format), encoding="utf-8")
    return paths
