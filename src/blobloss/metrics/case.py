"""All metrics of one test case (one row of ``metrics.csv``) and the summary over cases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from blobloss.metrics._checks import check_pair, check_spacing, check_tolerance
from blobloss.metrics.instances import (
    MATCHING_RULES,
    _match_scores,
    blob_table,
    instance_scores,
    match_instances,
)
from blobloss.metrics.per_component import _component_summary
from blobloss.metrics.volumetric import volumetric_metrics

__all__ = [
    "CASE_COLUMNS",
    "EXTRA_CASE_COLUMNS",
    "AGGREGATE_MEAN_COLUMNS",
    "AGGREGATE_EXTRA_MEAN_COLUMNS",
    "case_metrics",
    "evaluate_case",
    "aggregate",
]

#: The paper's per-case columns, in order: what the paper's tables are computed from. :func:`case_metrics`
#: returns these first, then :data:`EXTRA_CASE_COLUMNS`.
CASE_COLUMNS: tuple[str, ...] = (
    "dsc",
    "sensitivity",
    "precision",
    "surface_dice",
    "tp",
    "fp",
    "fn",
    "instance_sensitivity",
    "instance_precision",
    "f1",
    "gt_empty",
    "pred_empty",
)

#: Per-case columns beyond the paper's (after :data:`CASE_COLUMNS` in ``metrics.csv``):
#:
#: * ``instance_sensitivity_gt``: detected ground-truth blobs / ground-truth blobs (IS counted per
#:   ground-truth blob; the paper's IS counts TPs on the predicted side);
#: * ``tp_iou``, ``fp_iou``, ``fn_iou``, ``instance_sensitivity_iou``, ``instance_precision_iou``,
#:   ``f1_iou``: the one-to-one IoU >= 0.5 rule;
#: * ``cc_dice``, ``cc_surface_dice``: per-component Dice and Surface Dice (docs/definitions.md section 9);
#: * ``gt_blobs``, ``pred_blobs``: number of ground-truth and predicted blobs.
EXTRA_CASE_COLUMNS: tuple[str, ...] = (
    "instance_sensitivity_gt",
    "tp_iou",
    "fp_iou",
    "fn_iou",
    "instance_sensitivity_iou",
    "instance_precision_iou",
    "f1_iou",
    "cc_dice",
    "cc_surface_dice",
    "gt_blobs",
    "pred_blobs",
)

#: Per-case metric columns that :func:`aggregate` averages (ignoring NaN).
AGGREGATE_MEAN_COLUMNS: tuple[str, ...] = (
    "dsc",
    "sensitivity",
    "precision",
    "surface_dice",
    "instance_sensitivity",
    "instance_precision",
    "f1",
)

#: Extra columns :func:`aggregate` averages when the table has them.
AGGREGATE_EXTRA_MEAN_COLUMNS: tuple[str, ...] = (
    "instance_sensitivity_gt",
    "instance_sensitivity_iou",
    "instance_precision_iou",
    "f1_iou",
    "cc_dice",
    "cc_surface_dice",
)


def evaluate_case(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    connectivity: int | None = None,
    tolerance: float = 1.0,
    gt_instances: np.ndarray | None = None,
    matching: str = "any_overlap",
) -> tuple[dict[str, float | int | bool], pd.DataFrame]:
    """The metrics row and the per-blob table of one case, sharing one labelling and matching.

    Args:
        pred: Binary prediction, shape (Y, X) or (Z, Y, X).
        gt: Binary ground truth, same shape.
        spacing: Voxel size per array axis, in the array's axis order (None: 1.0).
        connectivity: Blob connectivity (6/18/26 in 3D, 4/8 in 2D; None = 26 in 3D, 8 in 2D).
        tolerance: Surface Dice tolerance in the spacing's unit.
        gt_instances: Optional ground-truth instance ids used as the ground-truth blobs.
        matching: Rule behind the blob table's ``detected``/``outcome`` ("any_overlap" or
            "one_to_one_iou"); the metrics row always holds both rules' columns.

    Returns:
        ``(row, blobs)``: ``row`` has the keys :data:`CASE_COLUMNS` + :data:`EXTRA_CASE_COLUMNS` in that
        order; ``blobs`` is :func:`blobloss.metrics.blob_table`'s table.

    Raises:
        ValueError: On invalid masks or parameters (see :func:`case_metrics`).
    """
    if matching not in MATCHING_RULES:
        raise ValueError(f"matching must be one of {list(MATCHING_RULES)}, got {matching!r}.")
    pred_b, gt_b = check_pair(pred, gt)
    spacing_t = check_spacing(spacing, pred_b.ndim)
    tolerance = check_tolerance(tolerance)
    match = match_instances(pred_b, gt_b, connectivity=connectivity, gt_instances=gt_instances)
    row: dict[str, float | int | bool] = {}
    row.update(volumetric_metrics(pred_b, gt_b, spacing=spacing_t, tolerance=tolerance))
    row.update(_match_scores(match))
    row["gt_empty"] = not bool(gt_b.any())
    row["pred_empty"] = not bool(pred_b.any())
    components = _component_summary(pred_b, match.gt_labels, match.n_gt, spacing_t, tolerance)
    row["cc_dice"] = components["cc_dice"]
    row["cc_surface_dice"] = components["cc_surface_dice"]
    row = {column: row[column] for column in (*CASE_COLUMNS, *EXTRA_CASE_COLUMNS)}
    return row, blob_table(match, spacing=spacing_t, matching=matching)


def case_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    connectivity: int | None = None,
    tolerance: float = 1.0,
    gt_instances: np.ndarray | None = None,
) -> dict[str, float | int | bool]:
    """All metrics of one test case: one row of the pipeline's per-case table.

    Args:
        pred: Binary prediction, shape (Y, X) or (Z, Y, X).
        gt: Binary ground truth, same shape.
        spacing: Voxel size per array axis, in the array's axis order (None: 1.0).
        connectivity: Blob connectivity (6/18/26 in 3D, 4/8 in 2D; None = 26 in 3D, 8 in 2D).
        tolerance: Surface Dice tolerance in the spacing's unit.
        gt_instances: Optional ground-truth instance ids used as the ground-truth blobs (and components).

    Returns:
        A dict with the keys of :data:`CASE_COLUMNS` (dsc, sensitivity, precision, surface_dice, tp, fp,
        fn, instance_sensitivity, instance_precision, f1, gt_empty, pred_empty) followed by those of
        :data:`EXTRA_CASE_COLUMNS`.

    Raises:
        ValueError: On non-binary or mismatched masks, a bad spacing, tolerance or connectivity, or
            instance ids that do not cover the ground truth.

    Example:
        >>> gt = np.zeros((6, 6, 6), bool); gt[1:4, 1:4, 1:4] = True
        >>> row = case_metrics(gt.copy(), gt)
        >>> row["dsc"], row["surface_dice"], row["tp"], row["f1"], row["cc_dice"], row["gt_empty"]
        (1.0, 1.0, 1, 1.0, 1.0, False)
    """
    return evaluate_case(pred, gt, spacing, connectivity, tolerance, gt_instances)[0]


def aggregate(df: pd.DataFrame) -> dict[str, float | int]:
    """Summarise a per-case metrics table (rows as returned by :func:`case_metrics`).

    Args:
        df: DataFrame with at least the columns of :data:`CASE_COLUMNS`, one row per test case (other
            columns such as a case id are ignored; the :data:`AGGREGATE_EXTRA_MEAN_COLUMNS` present are
            averaged too). ``gt_empty``/``pred_empty`` may be bool or 0/1.

    Returns:
        A dict with
          * ``n_cases``: number of rows;
          * the mean over cases, ignoring NaN, of each column in :data:`AGGREGATE_MEAN_COLUMNS` and of each
            column of :data:`AGGREGATE_EXTRA_MEAN_COLUMNS` the table has (same key; NaN when every case is
            NaN);
          * ``tp``, ``fp``, ``fn``: sums over cases (pooled counts);
          * ``pooled_instance_sensitivity``, ``pooled_instance_precision``, ``pooled_f1``: IS, IP and F1
            from the pooled counts, with the same empty conventions as a single case;
          * ``gt_empty``, ``pred_empty``: how many cases have an empty ground truth / prediction (each
            including the both-empty cases), and ``both_empty``.

    Raises:
        ValueError: If ``df`` has no rows or lacks a required column.

    Example:
        >>> df = pd.DataFrame([
        ...     dict(dsc=1.0, sensitivity=1.0, precision=1.0, surface_dice=1.0, tp=2, fp=0, fn=0,
        ...          instance_sensitivity=1.0, instance_precision=1.0, f1=1.0, gt_empty=False, pred_empty=False),
        ...     dict(dsc=0.0, sensitivity=float("nan"), precision=0.0, surface_dice=0.0, tp=0, fp=2, fn=0,
        ...          instance_sensitivity=float("nan"), instance_precision=0.0, f1=0.0, gt_empty=True,
        ...          pred_empty=False)])
        >>> s = aggregate(df)
        >>> s["dsc"], s["sensitivity"], s["tp"], s["fp"], s["pooled_instance_precision"], s["gt_empty"]
        (0.5, 1.0, 2, 2, 0.5, 1)
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"aggregate expects a pandas DataFrame of per-case rows, got {type(df).__name__}.")
    missing = [c for c in CASE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"per-case table lacks the column(s) {missing}; it needs {list(CASE_COLUMNS)} "
            f"(the keys of blobloss.metrics.case_metrics)."
        )
    if len(df) == 0:
        raise ValueError("per-case table has no rows; evaluate at least one case before aggregating.")

    summary: dict[str, float | int] = {"n_cases": int(len(df))}
    means = [*AGGREGATE_MEAN_COLUMNS, *(c for c in AGGREGATE_EXTRA_MEAN_COLUMNS if c in df.columns)]
    for column in means:
        summary[column] = float(pd.to_numeric(df[column], errors="raise").astype(float).mean(skipna=True))
    tp, fp, fn = (int(df[c].sum()) for c in ("tp", "fp", "fn"))
    summary.update({"tp": tp, "fp": fp, "fn": fn})
    pooled = instance_scores(tp, fp, fn)
    summary["pooled_instance_sensitivity"] = pooled["instance_sensitivity"]
    summary["pooled_instance_precision"] = pooled["instance_precision"]
    summary["pooled_f1"] = pooled["f1"]
    gt_empty = df["gt_empty"].astype(bool).to_numpy()
    pred_empty = df["pred_empty"].astype(bool).to_numpy()
    summary["gt_empty"] = int(gt_empty.sum())
    summary["pred_empty"] = int(pred_empty.sum())
    summary["both_empty"] = int((gt_empty & pred_empty).sum())
    return summary
