"""Evaluation metrics of the paper (SPEC section 5): volumetric (pymia) and instance-wise (cc3d).

Volumetric metrics -- Dice (DSC), volumetric sensitivity S, volumetric precision P and Surface Dice (SDSC)
-- come from pymia 0.3.4's metric classes. The spacing travels through a SimpleITK image, the way pymia's
own evaluator reads it (``image.GetSpacing()[::-1]``), so it reaches pymia in the array's axis order.

Instance metrics follow the paper's section 2.5 rule: label prediction and ground truth with cc3d at the
same connectivity; a predicted blob that shares at least one voxel with the ground truth is a true
positive (TP), one that shares none a false positive (FP); a ground-truth blob that shares no voxel with
the prediction is a false negative (FN). So one predicted blob over two ground-truth blobs is 1 TP, 0 FN.

Empty cases follow the project's conventions (SPEC section 5), not pymia's raw sentinels:

=====================================  ===  ===  ===  ====  ===  ===  ==
case                                   DSC  S    P    SDSC  IS   IP   F1
=====================================  ===  ===  ===  ====  ===  ===  ==
both empty                             1    NaN  NaN  1     1    1    1
ground truth empty, prediction not     0    NaN  0    0     NaN  0    0
prediction empty, ground truth not     0    0    NaN  0     0    NaN  0
=====================================  ===  ===  ===  ====  ===  ===  ==

Compatibility notes:
    * pymia 0.3.4's ``SegmentationEvaluator`` calls ``np.in1d``, which NumPy 2.4 removed. This module
      never goes through the evaluator: it feeds pymia's ``ConfusionMatrix`` and ``Distances`` directly,
      so it works with any NumPy (the project still pins ``numpy<2.4`` for other pymia paths).
    * pymia's ``Distances`` imports from ``scipy.ndimage.filters`` / ``scipy.ndimage.morphology``, namespaces
      SciPy deprecates (removal announced for SciPy 2.0). The resulting ``DeprecationWarning`` is silenced
      here; should those namespaces be gone, :func:`volumetric_metrics` raises an ``ImportError`` that
      names the fix (``pip install "scipy<2"``).
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

import math
import warnings
from collections.abc import Sequence

import cc3d
import numpy as np
import pandas as pd
import SimpleITK as sitk
from pymia.evaluation import metric as pymia_metric

__all__ = [
    "CASE_COLUMNS",
    "AGGREGATE_MEAN_COLUMNS",
    "volumetric_metrics",
    "instance_metrics",
    "case_metrics",
    "aggregate",
    "to_sitk_image",
]

#: Columns of one row of the per-case metrics table, in order (what :func:`case_metrics` returns).
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

_NAN = float("nan")

# SPEC section 5, volumetric part of the empty-case table: (gt_empty, pred_empty) -> values.
_VOLUMETRIC_EMPTY: dict[tuple[bool, bool], dict[str, float]] = {
    (True, True): {"dsc": 1.0, "sensitivity": _NAN, "precision": _NAN, "surface_dice": 1.0},
    (True, False): {"dsc": 0.0, "sensitivity": _NAN, "precision": 0.0, "surface_dice": 0.0},
    (False, True): {"dsc": 0.0, "sensitivity": 0.0, "precision": _NAN, "surface_dice": 0.0},
}

# Connectivities cc3d accepts per dimensionality, and how a 3D connectivity maps onto a 2D image
# (a 2D image is one slice of a 3D volume: 26 and 18 restrict to 8 in the plane, 6 restricts to 4).
_CONNECTIVITY_3D = (6, 18, 26)
_CONNECTIVITY_2D = {4: 4, 8: 8, 6: 4, 18: 8, 26: 8}


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _as_binary(array: np.ndarray, name: str) -> np.ndarray:
    """Return ``array`` as a bool array after checking that it is a 2D/3D binary mask.

    Args:
        array: Array-like of shape (Y, X) or (Z, Y, X), values in {0, 1} (bool, integer or float).
        name: Argument name used in error messages ("pred" or "gt").

    Returns:
        Bool array of the same shape (a view when ``array`` already is bool).

    Raises:
        ValueError: If the array is not 2D/3D, is empty, or holds values other than 0 and 1.
    """
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a 2D (Y, X) or 3D (Z, Y, X) binary mask, got shape {arr.shape} "
            f"(ndim {arr.ndim}); drop channel/batch axes first, e.g. {name}[0]."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass a mask with at least one voxel.")
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a numeric or bool mask, got dtype {arr.dtype}.")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 1 or (np.issubdtype(arr.dtype, np.floating) and not np.isin(arr, (0, 1)).all()):
        bad = arr[(arr != 0) & (arr != 1)].flat[0].item()
        raise ValueError(
            f"{name} must be binary (values 0 and 1), found the value {bad} (min {lo.item()}, max {hi.item()}, "
            f"dtype {arr.dtype}). Threshold probabilities first ({name} = prob > 0.5) and turn instance "
            f"maps into masks ({name} = labels > 0)."
        )
    return arr.astype(bool)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prediction/ground-truth pair and return both as bool arrays of equal shape."""
    pred_b = _as_binary(pred, "pred")
    gt_b = _as_binary(gt, "gt")
    if pred_b.shape != gt_b.shape:
        raise ValueError(
            f"pred and gt must have the same shape, got pred {pred_b.shape} and gt {gt_b.shape}; "
            f"resample or crop the prediction onto the ground-truth grid first."
        )
    return pred_b, gt_b


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Return the spacing as a tuple of ``ndim`` positive floats (1.0 each when ``spacing`` is None)."""
    if spacing is None:
        return (1.0,) * ndim
    values = tuple(float(s) for s in np.ravel(np.asarray(spacing, dtype=float)))
    if len(values) != ndim:
        raise ValueError(
            f"spacing must have one entry per array axis ({ndim} for this {ndim}D mask, in the array's "
            f"axis order), got {values}."
        )
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing entries must be finite and > 0, got {values}.")
    return values


def _resolve_connectivity(connectivity: int, ndim: int) -> int:
    """Map the requested connectivity onto one cc3d accepts for this dimensionality."""
    if ndim == 3:
        if connectivity not in _CONNECTIVITY_3D:
            raise ValueError(f"connectivity for a 3D mask must be one of {_CONNECTIVITY_3D}, got {connectivity!r}.")
        return int(connectivity)
    if connectivity not in _CONNECTIVITY_2D:
        raise ValueError(
            f"connectivity for a 2D mask must be 4 or 8 (26/18 map to 8, 6 maps to 4), got {connectivity!r}."
        )
    return _CONNECTIVITY_2D[connectivity]


# --------------------------------------------------------------------------------------------------
# volumetric metrics (pymia)
# --------------------------------------------------------------------------------------------------
def to_sitk_image(mask: np.ndarray, spacing: Sequence[float] | None = None) -> sitk.Image:
    """Wrap a mask in a SimpleITK image that carries the spacing.

    SimpleITK reverses the axis order: a numpy array of shape (Z, Y, X) becomes an image of size (X, Y, Z),
    so the spacing, given per array axis, is set reversed. ``np.array(image.GetSpacing()[::-1])`` gives the
    spacing back in the array's axis order.

    Args:
        mask: Binary mask of shape (Y, X) or (Z, Y, X).
        spacing: One entry per array axis, in the array's axis order; None means 1.0 everywhere.

    Returns:
        A ``sitk.sitkUInt8`` image with the spacing set.

    Example:
        >>> img = to_sitk_image(np.zeros((4, 5, 6), bool), spacing=(3.0, 2.0, 1.0))
        >>> img.GetSize(), img.GetSpacing()
        ((6, 5, 4), (1.0, 2.0, 3.0))
    """
    arr = _as_binary(mask, "mask")
    image = sitk.GetImageFromArray(arr.view(np.uint8))
    image.SetSpacing(tuple(reversed(_check_spacing(spacing, arr.ndim))))
    return image


def _pymia_distances(pred_img: sitk.Image, gt_img: sitk.Image) -> pymia_metric.Distances:
    """Surface distances as pymia's evaluator computes them, with the images' spacing (array axis order)."""
    pred_arr = sitk.GetArrayViewFromImage(pred_img)
    gt_arr = sitk.GetArrayViewFromImage(gt_img)
    spacing = pred_img.GetSpacing()[::-1]
    with warnings.catch_warnings():
        # pymia 0.3.4 uses scipy.ndimage.filters / .morphology, deprecated namespaces in SciPy >= 1.8.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*scipy\.ndimage\.")
        try:
            return pymia_metric.Distances(pred_arr, gt_arr, spacing)
        except AttributeError as err:  # pragma: no cover - only with a SciPy that dropped the namespaces
            if "filters" in str(err) or "morphology" in str(err):
                raise ImportError(
                    "pymia 0.3.4's surface distances need scipy.ndimage.filters/morphology, which this SciPy "
                    f"no longer provides ({err}). Fix: pip install 'scipy<2'."
                ) from err
            raise


def volumetric_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    tolerance: float = 1.0,
) -> dict[str, float]:
    """Dice, volumetric sensitivity and precision, and Surface Dice of a binary prediction (pymia 0.3.4).

    Computed with pymia's ``DiceCoefficient``, ``Sensitivity``, ``Precision`` and ``SurfaceDiceOverlap``;
    the spacing is carried by SimpleITK images so that surface distances are in physical units. Empty
    cases return the SPEC section 5 conventions instead of pymia's sentinels (see the module docstring).

    Args:
        pred: Binary prediction, shape (Y, X) or (Z, Y, X); bool or 0/1 values.
        gt: Binary ground truth, same shape as ``pred``.
        spacing: Voxel size per array axis, in the array's axis order (e.g. (z, y, x) for a (Z, Y, X)
            array); None means isotropic 1.0. Dice, S and P do not depend on it, Surface Dice does.
        tolerance: Surface Dice tolerance, in the spacing's unit (>= 0).

    Returns:
        ``{"dsc", "sensitivity", "precision", "surface_dice"}`` as Python floats (NaN where undefined).

    Raises:
        ValueError: On non-binary masks, masks that are not 2D/3D, different shapes, a spacing of the
            wrong length or with non-positive entries, or a negative tolerance.

    Example:
        >>> gt = np.zeros((8, 8, 8), bool); gt[2:6, 2:6, 2:6] = True
        >>> pred = np.zeros_like(gt); pred[2:6, 2:6, 2:4] = True
        >>> m = volumetric_metrics(pred, gt)
        >>> round(m["dsc"], 4), m["sensitivity"], m["precision"]
        (0.6667, 0.5, 1.0)
    """
    pred_b, gt_b = _check_pair(pred, gt)
    spacing_t = _check_spacing(spacing, pred_b.ndim)
    tolerance = float(tolerance)
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0 (in the spacing's unit), got {tolerance}.")

    key = (not gt_b.any(), not pred_b.any())
    if key in _VOLUMETRIC_EMPTY:
        return dict(_VOLUMETRIC_EMPTY[key])

    pred_img = to_sitk_image(pred_b, spacing_t)
    gt_img = to_sitk_image(gt_b, spacing_t)
    confusion = pymia_metric.ConfusionMatrix(
        sitk.GetArrayViewFromImage(pred_img), sitk.GetArrayViewFromImage(gt_img)
    )
    result: dict[str, float] = {}
    for name, metric in (
        ("dsc", pymia_metric.DiceCoefficient()),
        ("sensitivity", pymia_metric.Sensitivity()),
        ("precision", pymia_metric.Precision()),
    ):
        metric.confusion_matrix = confusion
        result[name] = float(metric.calculate())
    surface_dice = pymia_metric.SurfaceDiceOverlap(tolerance=tolerance)
    surface_dice.distances = _pymia_distances(pred_img, gt_img)
    result["surface_dice"] = float(surface_dice.calculate())
    return result


# --------------------------------------------------------------------------------------------------
# instance metrics (cc3d)
# --------------------------------------------------------------------------------------------------
def _instance_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """IS, IP and F1 from blob counts, with the SPEC section 5 empty-case conventions.

    ``tp + fn`` is the number of matched-or-missed GT blobs (0 iff the GT is empty) and ``tp + fp`` the
    number of predicted blobs (0 iff the prediction is empty).
    """
    gt_empty = tp + fn == 0
    pred_empty = tp + fp == 0
    if gt_empty and pred_empty:
        return {"instance_sensitivity": 1.0, "instance_precision": 1.0, "f1": 1.0}
    sens = _NAN if gt_empty else tp / (tp + fn)
    prec = _NAN if pred_empty else tp / (tp + fp)
    f1 = 0.0 if tp == 0 else 2.0 * sens * prec / (sens + prec)
    return {"instance_sensitivity": float(sens), "instance_precision": float(prec), "f1": float(f1)}


def instance_metrics(pred: np.ndarray, gt: np.ndarray, connectivity: int = 26) -> dict[str, float | int]:
    """Instance-wise TP/FP/FN, sensitivity, precision and F1 (paper section 2.5, SPEC section 5).

    Both masks are labelled with cc3d at the same connectivity. A predicted blob that shares at least one
    voxel with the ground truth is a TP, one that shares none an FP; a GT blob that shares no voxel with
    the prediction is an FN. Cost: two cc3d passes plus one pass over the overlapping voxels (no per-blob
    loop), independent of the number of blobs.

    Args:
        pred: Binary prediction, shape (Y, X) or (Z, Y, X); bool or 0/1 values.
        gt: Binary ground truth, same shape as ``pred``.
        connectivity: 6, 18 or 26 for 3D masks; 4 or 8 for 2D masks. A 2D mask is treated as one slice of
            a 3D volume, so 26 and 18 map to 8 and 6 maps to 4 (the default 26 thus gives 8 in 2D).

    Returns:
        ``{"tp", "fp", "fn"}`` as ints and ``{"instance_sensitivity", "instance_precision", "f1"}`` as
        floats, with IS = TP / (TP + FN), IP = TP / (TP + FP), F1 = 2 IS IP / (IS + IP); empty cases use
        the conventions in the module docstring (F1 is 0 whenever TP is 0 and not both are empty).

    Raises:
        ValueError: On non-binary masks, masks that are not 2D/3D, different shapes, or an unsupported
            connectivity.

    Example:
        >>> gt = np.zeros((1, 5, 9), bool); gt[0, 1:4, 1:4] = True; gt[0, 1:4, 5:8] = True
        >>> pred = np.zeros_like(gt); pred[0, 2, 2:7] = True   # one blob over both GT blobs
        >>> m = instance_metrics(pred, gt)
        >>> m["tp"], m["fp"], m["fn"], m["f1"]
        (1, 0, 0, 1.0)
    """
    pred_b, gt_b = _check_pair(pred, gt)
    conn = _resolve_connectivity(connectivity, pred_b.ndim)

    pred_labels, n_pred = cc3d.connected_components(
        pred_b, connectivity=conn, return_N=True, binary_image=True
    )
    gt_labels, n_gt = cc3d.connected_components(gt_b, connectivity=conn, return_N=True, binary_image=True)

    # One pass over the overlapping voxels: which blob ids on either side touch the other mask.
    overlap_idx = np.flatnonzero(pred_b & gt_b)
    pred_hit = np.zeros(n_pred + 1, dtype=bool)
    pred_hit[pred_labels.ravel()[overlap_idx]] = True
    gt_hit = np.zeros(n_gt + 1, dtype=bool)
    gt_hit[gt_labels.ravel()[overlap_idx]] = True

    tp = int(np.count_nonzero(pred_hit[1:]))
    fp = int(n_pred) - tp
    fn = int(n_gt) - int(np.count_nonzero(gt_hit[1:]))
    return {"tp": tp, "fp": fp, "fn": fn, **_instance_scores(tp, fp, fn)}


# --------------------------------------------------------------------------------------------------
# per case and aggregate
# --------------------------------------------------------------------------------------------------
def case_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    connectivity: int = 26,
    tolerance: float = 1.0,
) -> dict[str, float | int | bool]:
    """All metrics of one test case: one row of the pipeline's per-case table.

    Args:
        pred: Binary prediction, shape (Y, X) or (Z, Y, X).
        gt: Binary ground truth, same shape.
        spacing: Voxel size per array axis, in the array's axis order (None: 1.0).
        connectivity: Blob connectivity (see :func:`instance_metrics`).
        tolerance: Surface Dice tolerance in the spacing's unit.

    Returns:
        A dict with exactly the keys of :data:`CASE_COLUMNS`, in that order: dsc, sensitivity, precision,
        surface_dice, tp, fp, fn, instance_sensitivity, instance_precision, f1, gt_empty, pred_empty.

    Example:
        >>> gt = np.zeros((6, 6, 6), bool); gt[1:4, 1:4, 1:4] = True
        >>> row = case_metrics(gt.copy(), gt)
        >>> row["dsc"], row["surface_dice"], row["tp"], row["f1"], row["gt_empty"]
        (1.0, 1.0, 1, 1.0, False)
    """
    pred_b, gt_b = _check_pair(pred, gt)
    row: dict[str, float | int | bool] = {}
    row.update(volumetric_metrics(pred_b, gt_b, spacing=spacing, tolerance=tolerance))
    row.update(instance_metrics(pred_b, gt_b, connectivity=connectivity))
    row["gt_empty"] = not bool(gt_b.any())
    row["pred_empty"] = not bool(pred_b.any())
    return {column: row[column] for column in CASE_COLUMNS}


def aggregate(df: pd.DataFrame) -> dict[str, float | int]:
    """Summarise a per-case metrics table (rows as returned by :func:`case_metrics`).

    Args:
        df: DataFrame with at least the columns of :data:`CASE_COLUMNS`, one row per test case (extra
            columns such as a case id are ignored). ``gt_empty``/``pred_empty`` may be bool or 0/1.

    Returns:
        A dict with
          * ``n_cases``: number of rows;
          * the mean over cases, ignoring NaN, of each column in :data:`AGGREGATE_MEAN_COLUMNS` (same key;
            NaN when every case is NaN);
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
    for column in AGGREGATE_MEAN_COLUMNS:
        summary[column] = float(pd.to_numeric(df[column], errors="raise").astype(float).mean(skipna=True))
    tp, fp, fn = (int(df[c].sum()) for c in ("tp", "fp", "fn"))
    summary.update({"tp": tp, "fp": fp, "fn": fn})
    pooled = _instance_scores(tp, fp, fn)
    summary["pooled_instance_sensitivity"] = pooled["instance_sensitivity"]
    summary["pooled_instance_precision"] = pooled["instance_precision"]
    summary["pooled_f1"] = pooled["f1"]
    gt_empty = df["gt_empty"].astype(bool).to_numpy()
    pred_empty = df["pred_empty"].astype(bool).to_numpy()
    summary["gt_empty"] = int(gt_empty.sum())
    summary["pred_empty"] = int(pred_empty.sum())
    summary["both_empty"] = int((gt_empty & pred_empty).sum())
    return summary
