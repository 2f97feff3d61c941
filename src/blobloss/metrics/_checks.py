"""Input validation shared by the metric modules: binary masks, spacing, tolerance, instance maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from blobloss.components import relabel_consecutive, resolve_connectivity

__all__ = [
    "as_binary",
    "check_pair",
    "check_spacing",
    "check_tolerance",
    "check_given_instances",
    "resolve_connectivity",
]


def as_binary(array: np.ndarray, name: str) -> np.ndarray:
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


def check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prediction/ground-truth pair and return both as bool arrays of equal shape."""
    pred_b = as_binary(pred, "pred")
    gt_b = as_binary(gt, "gt")
    if pred_b.shape != gt_b.shape:
        raise ValueError(
            f"pred and gt must have the same shape, got pred {pred_b.shape} and gt {gt_b.shape}; "
            f"resample or crop the prediction onto the ground-truth grid first."
        )
    return pred_b, gt_b


def check_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
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


def check_tolerance(tolerance: float) -> float:
    """Return the Surface Dice tolerance as a float after checking it is finite and >= 0."""
    value = float(tolerance)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0 (in the spacing's unit), got {value}.")
    return value


def check_given_instances(instances: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, int]:
    """Validate a given ground-truth instance map against the binary ground truth.

    Args:
        instances: Instance ids of the ground truth (0 = background), same shape as ``gt``.
        gt: The binary ground truth (bool).

    Returns:
        ``(ids, n)``: the ids renumbered to ``1..n`` in order (``uint32``) and their number.

    Raises:
        ValueError: If the shape differs, the ids are not non-negative integers, or their foreground is
            not exactly the ground truth's.
    """
    arr = np.asarray(instances)
    if arr.shape != gt.shape:
        raise ValueError(
            f"gt_instances must have the shape of gt, got {arr.shape} and {gt.shape}; pass the instance map "
            "of the same case."
        )
    if arr.dtype.kind not in "biu":
        raise ValueError(
            f"gt_instances must hold integer instance ids, got dtype {arr.dtype}; load the instance map "
            "with an integer dtype."
        )
    ids, n = relabel_consecutive(arr)
    mismatch = int(np.count_nonzero((ids > 0) != gt))
    if mismatch:
        raise ValueError(
            f"gt_instances and gt disagree on {mismatch} foreground voxels; the instance ids must cover "
            "exactly the ground truth's foreground (gt = instances > 0)."
        )
    return ids, n
