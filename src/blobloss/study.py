"""Study statistics: seeds, paired comparisons of two settings, detection by instance size.

Definitions: docs/definitions.md section 8. Everything here works on the pipeline's long tables and imports
nothing of the pipeline:

* the per-case metrics table (one row per dataset, setting, seed, checkpoint and test case; the
  ``metrics.csv`` files of every run concatenated);
* the per-blob table (one row per ground-truth or predicted blob of a case; the ``blobs.csv`` files
  concatenated) with the columns ``kind`` (``gt`` or ``pred``), ``id``, ``volume_voxels``,
  ``volume_physical``, ``detected`` (ground-truth rows) and ``tp`` (predicted rows).

Seeds. Every setting trains once per seed. :func:`seed_summary` gives per (dataset, setting, checkpoint)
the mean over seeds of the test-set means (each seed's mean over its cases, NaN ignored) and the
seed-to-seed standard deviation (ddof = 1; NaN with a single seed).

Paired comparison (:func:`compare_settings`). A setting and its baseline are compared on the same test
cases. Each case's metric is first averaged over seeds; cases where either side is NaN are left out.
Over the remaining ``n_cases`` differences d = setting - baseline: ``mean_diff`` = mean(d); ``ci_low`` /
``ci_high`` = percentile bootstrap interval of the mean over cases (:data:`N_RESAMPLES` seeded resamples,
:func:`scipy.stats.bootstrap`); ``p_value`` = two-sided Wilcoxon signed-rank test as
:func:`scipy.stats.wilcoxon` computes it by default (NaN when every difference is zero or there are fewer
than 2 cases); ``p_holm`` = Holm's step-down adjustment over the metrics of one (dataset, setting,
baseline, checkpoint); ``better`` / ``worse`` / ``tied`` = cases with d > 0, d < 0, d = 0.

Detection by size (:func:`size_bin_edges`, :func:`detection_by_size`, :func:`small_recall`). Blob sizes are
``volume_physical`` (voxel count x voxel volume, the dataset's spacing unit). The bins are fixed per
dataset and identical for all settings: the user's edges, or ``n`` log-spaced bins between the smallest
and the largest ground-truth blob of the dataset's evaluated (test) cases, each counted once. The
outer bins are open: blobs below the second edge fall into the first bin, blobs at or above the
second-to-last edge into the last. Recall of a bin = detected / all ground-truth blobs in it, pooled over
the test cases of one seed; false positives per case = FP predicted blobs in the bin / test cases.
Small-instance recall of a case = the recall of its ground-truth blobs in the first bin (NaN when it has
none).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "COMPARISON_COLUMNS",
    "COMPARISON_METRICS",
    "DETECTION_COLUMNS",
    "N_RESAMPLES",
    "bin_labels",
    "bootstrap_ci",
    "case_means",
    "compare_settings",
    "dataset_edges",
    "default_comparisons",
    "detection_by_size",
    "holm",
    "paired_stats",
    "seed_means",
    "seed_summary",
    "size_bin_edges",
    "small_recall",
    "validate_comparisons",
    "wilcoxon_p",
]

#: Bootstrap resamples of the comparison intervals.
N_RESAMPLES = 10_000
#: Columns of the comparison table, in order.
COMPARISON_COLUMNS: tuple[str, ...] = (
    "dataset", "setting", "baseline", "checkpoint", "metric", "n_cases", "n_seeds", "setting_mean",
    "baseline_mean", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "better", "worse", "tied",
)
#: Metrics of the comparison table: label -> per-case column. ``small_recall`` comes from
#: :func:`small_recall`; the per-component metrics are used where the per-case table has them.
COMPARISON_METRICS: dict[str, str] = {
    "DSC": "dsc",
    "SDSC": "surface_dice",
    "F1": "f1",
    "IS": "instance_sensitivity",
    "IP": "instance_precision",
    "small_recall": "small_recall",
    "cc_dice": "cc_dice",
    "cc_surface_dice": "cc_surface_dice",
}
#: Columns of the detection-by-size table, in order.
DETECTION_COLUMNS: tuple[str, ...] = (
    "dataset", "setting", "loss", "checkpoint", "bin", "bin_low", "bin_high", "n_seeds", "n_cases", "n_gt",
    "recall", "recall_sd", "n_pred", "fp_per_case", "fp_per_case_sd",
)
#: Default number of log-spaced size bins.
DEFAULT_SIZE_BINS = 4

_GROUP = ["dataset", "setting", "checkpoint"]
_RUN = ["dataset", "setting", "seed", "checkpoint"]


def _require(frame: Any, columns: Iterable[str], what: str, hint: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {missing} (has {list(frame.columns)}); {hint}")


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return frame[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)


# ==================================================================================================
# seeds
# ==================================================================================================
def seed_means(per_case: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Each seed's test-set means: one row per (dataset, setting, checkpoint, seed).

    Args:
        per_case: Long per-case table with ``dataset, setting, checkpoint, seed, case`` and ``columns``.
        columns: Metric columns to average over the cases (NaN ignored).

    Returns:
        DataFrame with ``dataset, setting, checkpoint, seed``, ``n_cases`` and one column per metric
        (NaN where every case of the seed is NaN); groups in order of first appearance.

    Raises:
        ValueError: On missing columns.

    Example:
        >>> df = pd.DataFrame({"dataset": "d", "setting": "s", "checkpoint": "last", "seed": [0, 0, 1],
        ...                    "case": ["a", "b", "a"], "dsc": [0.2, 0.4, float("nan")]})
        >>> seed_means(df, ["dsc"])[["seed", "n_cases", "dsc"]].values.tolist()
        [[0.0, 2.0, 0.30000000000000004], [1.0, 1.0, nan]]
    """
    _require(per_case, [*_GROUP, "seed", "case", *columns], "per_case",
             "pass the per-case metrics tables of the runs concatenated.")
    values = pd.concat([per_case[[*_GROUP, "seed", "case"]], _numeric(per_case, columns)], axis=1)
    grouped = values.groupby([*_GROUP, "seed"], sort=False, dropna=False)
    means = grouped[list(columns)].mean()
    means.insert(0, "n_cases", grouped["case"].nunique())
    return means.reset_index()


def seed_summary(per_case: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean over seeds of the test-set means, and the seed-to-seed standard deviation.

    Args:
        per_case: Long per-case table (see :func:`seed_means`).
        columns: Metric columns.

    Returns:
        One row per (dataset, setting, checkpoint), in order of first appearance: ``n_seeds``,
        ``n_cases`` (distinct cases over all seeds), then per metric ``<column>`` (mean of the seeds'
        means, seeds whose mean is NaN left out) and ``<column>_sd`` (their standard deviation with
        ddof = 1; NaN with fewer than two seeds).

    Example:
        >>> df = pd.DataFrame({"dataset": "d", "setting": "s", "checkpoint": "last", "seed": [0, 0, 1, 1],
        ...                    "case": ["a", "b", "a", "b"], "dsc": [0.2, 0.4, 0.5, 0.7]})
        >>> row = seed_summary(df, ["dsc"]).iloc[0]
        >>> int(row["n_seeds"]), int(row["n_cases"]), round(float(row["dsc"]), 3), round(float(row["dsc_sd"]), 4)
        (2, 2, 0.45, 0.2121)
    """
    per_seed = seed_means(per_case, columns)
    rows = []
    for key, frame in per_seed.groupby(_GROUP, sort=False, dropna=False):
        row: dict[str, Any] = dict(zip(_GROUP, key))
        row["n_seeds"] = int(frame["seed"].nunique())
        cases = per_case
        for column, value in zip(_GROUP, key):
            cases = cases[cases[column] == value]
        row["n_cases"] = int(cases["case"].nunique())
        for column in columns:
            values = frame[column].dropna()
            row[column] = float(values.mean()) if len(values) else math.nan
            row[f"{column}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=[*_GROUP, "n_seeds", "n_cases",
                                       *[c for column in columns for c in (column, f"{column}_sd")]])


def case_means(per_case: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each case's metric averaged over seeds (NaN ignored).

    Args:
        per_case: Long per-case table with ``dataset, setting, checkpoint, seed, case`` and ``column``.
        column: The metric column.

    Returns:
        DataFrame with ``dataset, setting, checkpoint, case``, ``n_seeds`` and ``column``.

    Example:
        >>> df = pd.DataFrame({"dataset": "d", "setting": "s", "checkpoint": "last", "seed": [0, 1],
        ...                    "case": "a", "f1": [0.2, 0.6]})
        >>> case_means(df, "f1")[["case", "n_seeds", "f1"]].values.tolist()
        [['a', 2, 0.4]]
    """
    _require(per_case, [*_GROUP, "seed", "case", column], "per_case",
             "pass the per-case metrics tables of the runs concatenated.")
    values = per_case[[*_GROUP, "seed", "case"]].assign(**{column: _numeric(per_case, [column])[column]})
    grouped = values.groupby([*_GROUP, "case"], sort=False, dropna=False)
    out = grouped[column].mean().to_frame()
    out.insert(0, "n_seeds", grouped["seed"].nunique())
    return out.reset_index()


# ==================================================================================================
# paired statistics
# ==================================================================================================
def wilcoxon_p(setting: Sequence[float], baseline: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired values, as :func:`scipy.stats.wilcoxon` gives it.

    scipy's defaults throughout (``zero_method="wilcox"``: zero differences are dropped; exact or normal
    approximation chosen by scipy). NaN when there are fewer than 2 pairs or every difference is zero
    (scipy would return 1.0 with a warning there).

    Args:
        setting: Per-case values of the setting, shape (n,).
        baseline: Per-case values of the baseline, shape (n,), same cases in the same order.

    Returns:
        The p-value, or NaN.

    Example:
        >>> round(wilcoxon_p([0.5, 0.7, 0.9, 0.6], [0.4, 0.5, 0.6, 0.65]), 4)
        0.25
    """
    x = np.asarray(setting, dtype=float)
    y = np.asarray(baseline, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"setting and baseline must be 1D of equal length, got shapes {x.shape} and {y.shape}.")
    if x.size < 2 or not np.any(x - y != 0):
        return math.nan
    from scipy import stats  # imported when used: the workflow imports this module when it parses

    return float(stats.wilcoxon(x, y).pvalue)


def bootstrap_ci(
    differences: Sequence[float], n_resamples: int = N_RESAMPLES, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences (:func:`scipy.stats.bootstrap`).

    Args:
        differences: Per-case differences, shape (n,).
        n_resamples: Bootstrap resamples.
        confidence: Confidence level in (0, 1).
        seed: Seed of the resampling (the same seed gives the same interval).

    Returns:
        ``(low, high)``; ``(NaN, NaN)`` with fewer than 2 differences.

    Example:
        >>> low, high = bootstrap_ci([0.1, 0.2, 0.3, 0.4], n_resamples=2000)
        >>> 0.1 <= low < 0.25 < high <= 0.4
        True
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or not np.isfinite(d).all():
        raise ValueError(f"differences must be a 1D array of finite values, got {differences!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}; e.g. 0.95.")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    if d.size < 2:
        return math.nan, math.nan
    if np.all(d == d[0]):  # every resample has the same mean
        return float(d[0]), float(d[0])
    from scipy import stats

    result = stats.bootstrap(
        (d,), np.mean, n_resamples=int(n_resamples), confidence_level=confidence, method="percentile",
        vectorized=True, rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and do not count).

    With the m non-NaN p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of p_(i) is
    max over j <= i of min(1, (m - j + 1) p_(j)).

    Args:
        pvalues: The family's p-values, shape (k,).

    Returns:
        Adjusted p-values in the input order, shape (k,).

    Example:
        >>> holm([0.01, 0.04, float("nan"), 0.03]).round(3).tolist()
        [0.03, 0.06, nan, 0.06]
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1D, got shape {p.shape}.")
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m:
        order = valid[np.argsort(p[valid], kind="stable")]
        scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
        out[order] = np.maximum.accumulate(scaled)
    return out


def paired_stats(
    setting: Sequence[float],
    baseline: Sequence[float],
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int]:
    """Paired statistics of one metric: setting against baseline over the same cases.

    Pairs where either value is NaN are left out.

    Args:
        setting: Per-case values of the setting (already averaged over seeds), shape (n,).
        baseline: Per-case values of the baseline, same cases in the same order, shape (n,).
        n_resamples: Bootstrap resamples.
        confidence: Confidence level of the interval.
        seed: Bootstrap seed.

    Returns:
        ``n_cases, setting_mean, baseline_mean, mean_diff, ci_low, ci_high, p_value, better, worse, tied``.

    Example:
        >>> s = paired_stats([0.5, 0.7, float("nan")], [0.4, 0.7, 0.1], n_resamples=100)
        >>> s["n_cases"], round(s["mean_diff"], 3), s["better"], s["tied"]
        (2, 0.05, 1, 1)
    """
    x = np.asarray(setting, dtype=float)
    y = np.asarray(baseline, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"setting and baseline must be 1D of equal length, got shapes {x.shape} and {y.shape}.")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    d = x - y
    low, high = bootstrap_ci(d, n_resamples, confidence, seed) if d.size else (math.nan, math.nan)
    return {
        "n_cases": int(d.size),
        "setting_mean": float(x.mean()) if d.size else math.nan,
        "baseline_mean": float(y.mean()) if d.size else math.nan,
        "mean_diff": float(d.mean()) if d.size else math.nan,
        "ci_low": low,
        "ci_high": high,
        "p_value": wilcoxon_p(x, y),
        "better": int((d > 0).sum()),
        "worse": int((d < 0).sum()),
        "tied": int((d == 0).sum()),
    }


# ==================================================================================================
# which settings are compared
# ==================================================================================================
def default_comparisons(
    settings: Sequence[Mapping[str, Any]], default_lr: float | None = None, default_model: str | None = None
) -> list[tuple[str, str]]:
    """The default pairs of a dataset: every ``blob_X`` setting against the ``X`` setting like it.

    A setting whose loss is ``blob_X`` (``blob_dice``, ``blob_tversky``) is paired with the first setting
    whose loss is ``X`` (``dice``, ``tversky``) and that has the same learning rate and model; alpha and
    beta may differ (so each alpha/beta ablation is compared with the plain criterion). Settings without
    such a partner (e.g. ``blob_dice_nomask``) get no pair.

    Args:
        settings: The dataset's loss settings (``training.losses``): mappings with ``name`` and ``loss``,
            optionally ``lr`` and ``model``.
        default_lr: The learning rate of settings without ``lr``.
        default_model: The model of settings without ``model``.

    Returns:
        ``[(setting, baseline), ...]`` in the order of the blob settings.

    Example:
        >>> default_comparisons([{"name": "d", "loss": "dice"}, {"name": "b", "loss": "blob_dice"},
        ...                      {"name": "bu", "loss": "blob_dice", "model": "unetr"}])
        [('b', 'd')]
    """
    def key(st: Mapping[str, Any]) -> tuple:
        lr = st.get("lr") if st.get("lr") is not None else default_lr
        return (None if lr is None else float(lr), st.get("model") or default_model)

    pairs = []
    for st in settings:
        loss = str(st["loss"])
        if not loss.startswith("blob_"):
            continue
        base = loss[len("blob_"):]
        match = [other for other in settings if str(other["loss"]) == base and key(other) == key(st)]
        if match:
            pairs.append((str(st["name"]), str(match[0]["name"])))
    return pairs


def validate_comparisons(comparisons: Any, settings: Sequence[str], dataset: str) -> list[tuple[str, str]]:
    """Check a user's ``comparisons: [[setting, baseline], ...]`` against the dataset's settings.

    Args:
        comparisons: The configured list.
        settings: Names of the dataset's loss settings.
        dataset: The dataset name (for the message).

    Returns:
        The pairs as tuples.

    Raises:
        ValueError: On a malformed entry, a setting compared with itself, a pair listed twice, or a name
            that is not a loss setting of the dataset (the message lists the settings).

    Example:
        >>> validate_comparisons([["blob_dice", "dice"]], ["dice", "blob_dice"], "ms")
        [('blob_dice', 'dice')]
    """
    where = f"dataset {dataset!r}: comparisons"
    if not isinstance(comparisons, (list, tuple)):
        raise ValueError(f"{where} must be a list of [setting, baseline] pairs, got {comparisons!r}.")
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(comparisons):
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not all(isinstance(e, str) for e in entry):
            raise ValueError(f"{where}[{i}] must be a pair [setting, baseline] of setting names, got {entry!r}.")
        setting, baseline = entry
        unknown = [name for name in (setting, baseline) if name not in settings]
        if unknown:
            raise ValueError(
                f"{where}[{i}] = {list(entry)} names {unknown}, which are not in training.losses "
                f"({list(settings)}); use the settings' names."
            )
        if setting == baseline:
            raise ValueError(f"{where}[{i}] compares {setting!r} with itself; name two different settings.")
        if (setting, baseline) in pairs:
            raise ValueError(f"{where} lists the pair {list(entry)} twice; list each pair once.")
        pairs.append((setting, baseline))
    return pairs


# ==================================================================================================
# comparison table
# ==================================================================================================
def compare_settings(
    per_case: pd.DataFrame,
    comparisons: Mapping[str, Sequence[Sequence[str]]],
    metrics: Sequence[str] | None = None,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """The paired comparison table: one row per (dataset, setting, baseline, checkpoint, metric).

    Args:
        per_case: Long per-case table (columns ``dataset, setting, seed, checkpoint, case`` and the
            metric columns of :data:`COMPARISON_METRICS`; ``small_recall`` merged in from
            :func:`small_recall`). Metrics whose column is absent are skipped.
        comparisons: ``{dataset: [(setting, baseline), ...]}``.
        metrics: Metric labels (keys of :data:`COMPARISON_METRICS`), None for every one present.
        n_resamples: Bootstrap resamples per row.
        confidence: Confidence level of the interval.
        seed: Bootstrap seed (each row is resampled with this seed).

    Returns:
        DataFrame with exactly :data:`COMPARISON_COLUMNS`; checkpoints evaluated for both settings, in
        order of first appearance; ``n_seeds`` is the smaller of the two settings' seed counts.

    Raises:
        ValueError: On missing columns, an unknown metric, or a dataset / setting without rows.

    Example:
        >>> rows = [dict(dataset="d", setting=s, seed=0, checkpoint="last", case=c, f1=v)
        ...         for s, vals in (("b", [0.9, 0.8, 0.7]), ("a", [0.5, 0.6, 0.7])) for c, v in zip("xyz", vals)]
        >>> t = compare_settings(pd.DataFrame(rows), {"d": [("b", "a")]}, metrics=["F1"], n_resamples=200)
        >>> t[["metric", "n_cases", "better", "tied"]].values.tolist()
        [['F1', 3, 2, 1]]
    """
    _require(per_case, ["dataset", "setting", "seed", "checkpoint", "case"], "per_case",
             "pass the per-case metrics tables of the runs concatenated.")
    if metrics is None:
        labels = [m for m, column in COMPARISON_METRICS.items() if column in per_case.columns]
    else:
        unknown = [m for m in metrics if m not in COMPARISON_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; use some of {list(COMPARISON_METRICS)}.")
        absent = [m for m in metrics if COMPARISON_METRICS[m] not in per_case.columns]
        if absent:
            raise ValueError(f"per_case has no column for metric(s) {absent}; it has {list(per_case.columns)}.")
        labels = list(metrics)
    means = {m: case_means(per_case, COMPARISON_METRICS[m]) for m in labels}
    seeds = per_case.groupby(["dataset", "setting"], sort=False)["seed"].nunique()
    rows = []
    for dataset, pairs in comparisons.items():
        in_dataset = per_case[per_case["dataset"] == dataset]
        if in_dataset.empty:
            raise ValueError(f"dataset {dataset!r} has no rows in per_case (has {sorted(per_case['dataset'].unique())}).")
        available = list(dict.fromkeys(in_dataset["setting"].astype(str)))
        for pair in pairs:
            setting, baseline = (str(p) for p in pair)
            for name in (setting, baseline):
                if name not in available:
                    raise ValueError(
                        f"dataset {dataset!r}: setting {name!r} of the comparison {[setting, baseline]} has no "
                        f"evaluated runs (settings with runs: {available})."
                    )
            ckpts_s = list(dict.fromkeys(in_dataset.loc[in_dataset["setting"] == setting, "checkpoint"]))
            ckpts_b = set(in_dataset.loc[in_dataset["setting"] == baseline, "checkpoint"])
            n_seeds = int(min(seeds[(dataset, setting)], seeds[(dataset, baseline)]))
            for checkpoint in [c for c in ckpts_s if c in ckpts_b]:
                family = []
                for label in labels:
                    column = COMPARISON_METRICS[label]
                    table = means[label]
                    table = table[(table["dataset"] == dataset) & (table["checkpoint"] == checkpoint)]
                    wide = table.pivot_table(index="case", columns="setting", values=column, aggfunc="first",
                                             dropna=False)
                    wide = wide.reindex(columns=[setting, baseline]).dropna(how="all")
                    result = paired_stats(wide[setting].to_numpy(), wide[baseline].to_numpy(), n_resamples,
                                          confidence, seed)
                    family.append({"dataset": dataset, "setting": setting, "baseline": baseline,
                                   "checkpoint": checkpoint, "metric": label, "n_seeds": n_seeds, **result})
                adjusted = holm([r["p_value"] for r in family])
                for r, p in zip(family, adjusted):
                    r["p_holm"] = float(p)
                rows.extend(family)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


# ==================================================================================================
# detection by size
# ==================================================================================================
def size_bin_edges(volumes: Sequence[float], bins: int | Sequence[float] = DEFAULT_SIZE_BINS) -> np.ndarray:
    """The size-bin edges of a dataset.

    Args:
        volumes: The dataset's ground-truth blob sizes (each distinct blob once); only used when ``bins``
            is a number.
        bins: A number of log-spaced bins between the smallest and the largest volume, or the edges
            themselves (at least two, strictly increasing, not negative).

    Returns:
        The edges, shape (n_bins + 1,). With log-spaced bins and a single distinct volume: one bin.

    Raises:
        ValueError: On bad edges, a non-positive bin count, or no positive volume to place bins on.

    Example:
        >>> size_bin_edges([1, 10, 100, 1000], 3).round(6).tolist()
        [1.0, 10.0, 100.0, 1000.0]
        >>> size_bin_edges([], [0, 50, 500]).tolist()
        [0.0, 50.0, 500.0]
    """
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"evaluation.size_bins must be a positive number of bins or a list of edges, got {bins}.")
        v = np.asarray(volumes, dtype=float)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size == 0:
            raise ValueError(
                "no ground-truth blob with a positive volume to place log-spaced size bins on; give the bin "
                "edges with evaluation.size_bins: [edge, edge, ...]."
            )
        low, high = float(v.min()), float(v.max())
        if high <= low:
            return np.array([low, high])
        return np.geomspace(low, high, int(bins) + 1)
    if isinstance(bins, (str, bytes)) or not isinstance(bins, Iterable):
        raise ValueError(f"evaluation.size_bins must be a number of bins or a list of edges, got {bins!r}.")
    edges = np.asarray(list(bins), dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.isnan(edges).any() or (edges < 0).any() or np.any(np.diff(edges) <= 0):
        raise ValueError(
            f"evaluation.size_bins edges must be at least two strictly increasing non-negative numbers, got "
            f"{list(bins)!r}; e.g. [0, 50, 500, 5000]."
        )
    return edges


def _bin_index(volumes: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each volume; the outer bins are open (below/above the edges fall into the first/last)."""
    return np.searchsorted(edges[1:-1], volumes, side="right")


def _blob_sizes(blobs: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(blobs["volume_physical"], errors="coerce").to_numpy(dtype=float)


def _flag(values: pd.Series) -> np.ndarray:
    """A True/False column read from CSV (bool, 0/1 or 'True'/'False')."""
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0"]).to_numpy()


_BLOB_COLUMNS = ("dataset", "setting", "seed", "checkpoint", "case", "kind", "id", "volume_physical")


def dataset_edges(blobs: pd.DataFrame, bins: Mapping[str, int | Sequence[float]] | int | Sequence[float]) -> dict[str, np.ndarray]:
    """Size-bin edges per dataset from the per-blob table (see :func:`size_bin_edges`).

    Args:
        blobs: Per-blob table (``dataset, case, kind, id, volume_physical``).
        bins: One ``bins`` value for every dataset, or ``{dataset: bins}`` (missing datasets: the default).

    Returns:
        ``{dataset: edges}`` for every dataset in ``blobs``.

    Example:
        >>> b = pd.DataFrame({"dataset": "d", "case": "c", "kind": "gt", "id": [1, 2], "volume_physical": [1.0, 100.0]})
        >>> dataset_edges(b, 2)["d"].round(6).tolist()
        [1.0, 10.0, 100.0]
    """
    _require(blobs, ["dataset", "case", "kind", "id", "volume_physical"], "blobs",
             "pass the per-blob tables (blobs.csv) of the runs concatenated.")
    out = {}
    for dataset in dict.fromkeys(blobs["dataset"].astype(str)):
        spec = bins.get(dataset, DEFAULT_SIZE_BINS) if isinstance(bins, Mapping) else bins
        gt = blobs[(blobs["dataset"].astype(str) == dataset) & (blobs["kind"] == "gt")]
        gt = gt.drop_duplicates(["case", "id"])
        try:
            out[dataset] = size_bin_edges(_blob_sizes(gt), spec if spec is not None else DEFAULT_SIZE_BINS)
        except ValueError as err:
            raise ValueError(f"dataset {dataset!r}: {err}") from None
    return out


def _run_cases(per_case: pd.DataFrame) -> pd.DataFrame:
    _require(per_case, [*_RUN, "case"], "per_case", "pass the per-case metrics tables of the runs concatenated.")
    return per_case[[*_RUN, "case"]].drop_duplicates()


def small_recall(blobs: pd.DataFrame, per_case: pd.DataFrame, edges: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per evaluated case, the recall of its ground-truth blobs in the dataset's smallest size bin.

    Args:
        blobs: Per-blob table (``dataset, setting, seed, checkpoint, case, kind, id, volume_physical,
            detected``).
        per_case: Per-case metrics table; its rows name the evaluated cases (a case without any blob has
            no row in ``blobs``).
        edges: ``{dataset: edges}`` (:func:`dataset_edges`).

    Returns:
        DataFrame with ``dataset, setting, seed, checkpoint, case, n_small, small_recall`` (NaN when the
        case has no ground-truth blob in the first bin), one row per row of ``per_case``'s runs x cases.

    Example:
        >>> b = pd.DataFrame({"dataset": "d", "setting": "s", "seed": 0, "checkpoint": "last", "case": "c",
        ...                   "kind": "gt", "id": [1, 2, 3], "volume_physical": [1.0, 2.0, 900.0],
        ...                   "detected": [True, False, True], "tp": float("nan")})
        >>> pc = pd.DataFrame({"dataset": "d", "setting": "s", "seed": 0, "checkpoint": "last", "case": ["c", "e"]})
        >>> small_recall(b, pc, {"d": np.array([1.0, 10.0, 1000.0])})[["case", "n_small", "small_recall"]].values.tolist()
        [['c', 2, 0.5], ['e', 0, nan]]
    """
    _require(blobs, [*_BLOB_COLUMNS, "detected"], "blobs", "pass the per-blob tables (blobs.csv) concatenated.")
    cases = _run_cases(per_case)
    gt = blobs[blobs["kind"] == "gt"]
    parts = []
    for dataset, frame in gt.groupby("dataset", sort=False):
        if dataset not in edges:
            raise ValueError(f"no size bins for dataset {dataset!r}; pass edges for {sorted(map(str, gt['dataset'].unique()))}.")
        small = frame[_bin_index(_blob_sizes(frame), np.asarray(edges[dataset], float)) == 0]
        parts.append(small.assign(_hit=_flag(small["detected"]).astype(float)))
    small = pd.concat(parts) if parts else pd.DataFrame(columns=[*_RUN, "case", "_hit"])
    counts = small.groupby([*_RUN, "case"], sort=False)["_hit"].agg(["size", "mean"]).reset_index()
    out = cases.merge(counts, on=[*_RUN, "case"], how="left")
    out["n_small"] = out["size"].fillna(0).astype(int)
    out["small_recall"] = out["mean"].astype(float)
    return out.drop(columns=["size", "mean"]).reset_index(drop=True)


def detection_by_size(
    blobs: pd.DataFrame, per_case: pd.DataFrame, edges: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Recall per ground-truth size bin and false positives per case per predicted-size bin.

    For each run (dataset, setting, seed, checkpoint) and bin: recall = detected / ground-truth blobs in
    the bin, pooled over the run's test cases, and FP per case = FP predicted blobs in the bin / the
    run's test cases (from ``per_case``, so cases without blobs count). Then per (dataset, setting,
    checkpoint) the mean and standard deviation (ddof = 1) over seeds (a seed without ground-truth blobs
    in a bin has no recall there and is left out of that bin's recall).

    Args:
        blobs: Per-blob table (``dataset, setting, seed, checkpoint, case, kind, id, volume_physical``,
            ``detected`` for ``gt`` rows, ``tp`` for ``pred`` rows; optionally ``loss``).
        per_case: Per-case metrics table (the evaluated cases of each run).
        edges: ``{dataset: edges}`` (:func:`dataset_edges`).

    Returns:
        DataFrame with :data:`DETECTION_COLUMNS`. ``bin_low`` of the first bin is 0 and ``bin_high`` of the
        last is inf (the outer bins are open); ``n_gt`` and ``n_pred`` are ground-truth and predicted blobs
        in the bin per seed (mean over seeds).

    Example:
        >>> b = pd.DataFrame({"dataset": "d", "setting": "s", "seed": 0, "checkpoint": "last", "case": "c",
        ...                   "kind": ["gt", "gt", "pred"], "id": [1, 2, 1], "volume_physical": [2.0, 500.0, 3.0],
        ...                   "detected": [False, True, None], "tp": [None, None, False]})
        >>> pc = pd.DataFrame({"dataset": "d", "setting": "s", "seed": 0, "checkpoint": "last", "case": ["c", "e"]})
        >>> t = detection_by_size(b, pc, {"d": np.array([1.0, 10.0, 1000.0])})
        >>> t[["n_gt", "recall", "fp_per_case"]].values.tolist()
        [[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]]
    """
    _require(blobs, [*_BLOB_COLUMNS, "detected", "tp"], "blobs", "pass the per-blob tables (blobs.csv) concatenated.")
    cases = _run_cases(per_case)
    n_cases = cases.groupby(_RUN, sort=False).size().rename("n_cases").reset_index()
    losses = {}
    if "loss" in per_case.columns:
        losses = per_case.drop_duplicates(["dataset", "setting"]).set_index(["dataset", "setting"])["loss"].to_dict()
    by_run = {key: frame for key, frame in blobs.groupby(_RUN, sort=False)}
    empty = blobs.iloc[:0]
    rows = []
    for run, n in zip(n_cases[_RUN].itertuples(index=False, name=None), n_cases["n_cases"]):
        dataset = run[0]
        if dataset not in edges:
            raise ValueError(f"no size bins for dataset {dataset!r}; pass edges for it.")
        e = np.asarray(edges[dataset], float)
        n_bins = e.size - 1
        mine = by_run.get(run, empty)
        gt = mine[mine["kind"] == "gt"]
        pred = mine[mine["kind"] == "pred"]
        gt_bin = _bin_index(_blob_sizes(gt), e)
        pred_bin = _bin_index(_blob_sizes(pred), e)
        detected = _flag(gt["detected"])
        fp = ~_flag(pred["tp"])
        n_gt = np.bincount(gt_bin, minlength=n_bins)
        hits = np.bincount(gt_bin, weights=detected.astype(float), minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(n_gt > 0, hits / np.maximum(n_gt, 1), np.nan)
        fps = np.bincount(pred_bin, weights=fp.astype(float), minlength=n_bins)
        n_pred = np.bincount(pred_bin, minlength=n_bins)
        for k in range(n_bins):
            rows.append({**dict(zip(_RUN, run)), "bin": k, "n_cases_run": int(n), "n_gt": int(n_gt[k]),
                         "recall": float(recall[k]), "n_pred": int(n_pred[k]), "fp_per_case": float(fps[k]) / n})
    per_seed = pd.DataFrame(rows)
    out = []
    if not per_seed.empty:
        for key, frame in per_seed.groupby([*_GROUP, "bin"], sort=False):
            dataset, setting, checkpoint, k = key
            e = np.asarray(edges[dataset], float)
            recall = frame["recall"].dropna()
            out.append({
                "dataset": dataset, "setting": setting, "loss": losses.get((dataset, setting), setting),
                "checkpoint": checkpoint, "bin": int(k),
                "bin_low": 0.0 if k == 0 else float(e[k]),
                "bin_high": math.inf if k == e.size - 2 else float(e[k + 1]),
                "n_seeds": int(frame["seed"].nunique()), "n_cases": int(frame["n_cases_run"].max()),
                "n_gt": float(frame["n_gt"].mean()),
                "recall": float(recall.mean()) if len(recall) else math.nan,
                "recall_sd": float(recall.std(ddof=1)) if len(recall) > 1 else math.nan,
                "n_pred": float(frame["n_pred"].mean()),
                "fp_per_case": float(frame["fp_per_case"].mean()),
                "fp_per_case_sd": float(frame["fp_per_case"].std(ddof=1)) if len(frame) > 1 else math.nan,
            })
    return pd.DataFrame(out, columns=list(DETECTION_COLUMNS))


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Readable labels of the size bins (outer bins open), e.g. ``['< 10', '10-100', '>= 100']``.

    Example:
        >>> bin_labels([1, 10, 100, 1000])
        ['< 10', '10-100', '>= 100']
        >>> bin_labels([2, 5])
        ['all']
    """
    e = [float(x) for x in edges]
    if len(e) == 2:
        return ["all"]
    inner = [f"{x:.3g}" for x in e[1:-1]]
    return [f"< {inner[0]}", *[f"{a}-{b}" for a, b in zip(inner[:-1], inner[1:])], f">= {inner[-1]}"]
