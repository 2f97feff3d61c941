"""Blob statistics (docs/definitions.md section 4, paper Fig. 4): per-blob shape features and per-case blob counts.

Per blob with voxel coordinates P (V voxels):

* ``D``: the maximum distance within the blob.

  - ``method="paper"`` (default, as the paper's code): c = centroid rounded to the voxel grid (round half
    to even); MOP = the voxel farthest from c (the first one in C order on ties); D = the distance from MOP
    to the voxel farthest from MOP; ``r_far = |MOP - c|``.
  - ``method="exact"``: D = the true maximum pairwise distance between voxel centres (convex hull of the
    blob's boundary voxels; flat and line-shaped blobs are handled); ``r_far`` = the distance from the
    unrounded centroid to the farthest voxel.

* ``d_eq = 2 (3V / 4 pi)^(1/3)`` (diameter of the sphere with the blob's volume),
  ``compactness = clip(V / (pi/6 D^3), 0, 1)``, ``sphereness = clip(d_eq / D, 0, 1)``,
  ``stringness = 1 - sphereness``, ``skewness = 2 (r_far / D - 0.5)`` (not clipped). A single-voxel blob
  has NaN shape features.

Units. Without ``spacing`` everything is in voxels (volume = voxel count, distances in voxel steps). With
``spacing`` (one value per array axis), distances are physical (coordinate differences times spacing),
volume = voxel count x prod(spacing) and ``d_eq`` is computed from that volume, so all features stay
dimensionless. The centroid is rounded on the voxel grid (index space) before distances are measured.

2D maps. A 2D instance map ``(X, Y)`` is treated as a single-slice 3D volume ``(X, Y, 1)`` with slice
thickness 1 (spacing ``(sx, sy, 1.0)``), so the formulas stay those of docs/definitions.md section 4; the "volume" of a 2D blob is then
its area (pixel count x sx x sy).

Speed. Foreground voxel coordinates are grouped by label once (a stable sort of the flat indices), and
every per-blob quantity of the paper method is a segment reduction over those groups (no per-label scan of
the volume, no Python loop); the exact method loops over blobs but only over each blob's own boundary
points.

Example:
    >>> import numpy as np
    >>> inst = np.zeros((12, 12, 3), dtype=np.uint32)
    >>> inst[1:11, 1:11, 1] = 1                       # a 10x10x1 plate
    >>> df = blob_features(inst)
    >>> list(df.columns[:6])
    ['label', 'volume', 'compactness', 'sphereness', 'stringness', 'skewness']
    >>> round(float(df.loc[0, "D"]), 4), round(float(df.loc[0, "skewness"]), 4)
    (12.7279, 0.1111)
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

import math
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist, pdist

__all__ = [
    "FeatureMethod",
    "FEATURE_COLUMNS",
    "EXTRA_COLUMNS",
    "COUNT_COLUMNS",
    "blob_features",
    "dataset_features",
    "case_counts",
    "dataset_statistics",
    "write_dataset_statistics",
]


class FeatureMethod(str, Enum):
    """How the maximum blob diameter ``D`` (and ``r_far``) is computed (docs/definitions.md section 4)."""

    PAPER = "paper"
    """Paper-faithful: rounded centroid -> farthest voxel (MOP) -> farthest voxel from MOP."""
    EXACT = "exact"
    """True maximum pairwise distance (convex hull); ``r_far`` from the unrounded centroid."""


#: The first six columns of :func:`blob_features`, in this order.
FEATURE_COLUMNS: tuple[str, ...] = ("label", "volume", "compactness", "sphereness", "stringness", "skewness")
#: Extra columns after :data:`FEATURE_COLUMNS`: voxel count, max diameter, MOP radius, equivalent diameter.
EXTRA_COLUMNS: tuple[str, ...] = ("n_voxels", "D", "r_far", "d_eq")
#: Columns of :func:`case_counts`.
COUNT_COLUMNS: tuple[str, ...] = ("dataset", "case", "n_blobs")

_BRUTE_FORCE_MAX_POINTS = 400  # below this, max pairwise distance by pdist beats building a hull
_CHUNK = 2048


def _parse_method(method: FeatureMethod | str) -> FeatureMethod:
    try:
        return FeatureMethod(method)
    except ValueError:
        options = ", ".join(repr(m.value) for m in FeatureMethod)
        raise ValueError(f"method={method!r} is not a blob feature method; use one of {options}.") from None


def _check_instances(instances: Any) -> np.ndarray:
    """Validate an instance map and return it as a 3D non-negative int64-compatible array."""
    arr = np.asarray(instances)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"instances must be an integer array, got dtype {arr.dtype}.")
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"instances must be a 2D or 3D instance map (spatial axes only), got shape {arr.shape}; "
            "drop channel / batch axes first."
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TypeError(
                "instances must hold integer ids, got non-integer floating-point values; "
                "compute instance maps with blobloss.components.label_instances."
            )
        arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"instances must be non-negative (0 = background), found minimum {arr.min()}.")
    return arr


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray | None:
    if spacing is None:
        return None
    s = np.asarray(spacing, dtype=np.float64).ravel()
    if s.shape != (ndim,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(
            f"spacing must hold one positive finite value per spatial axis ({ndim} for this map), "
            f"got {tuple(spacing)!r}; pass e.g. spacing={(1.0,) * ndim} or None for voxel units."
        )
    return s


def _group_by_label(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group foreground voxel coordinates by label.

    Returns:
        ``(labels (B,), starts (B,), counts (B,), coords (N, 3) int64)``: coordinates of label
        ``labels[b]`` are ``coords[starts[b]:starts[b] + counts[b]]``, in C order within each blob.
    """
    flat = instances.ravel()
    idx = np.flatnonzero(flat)
    lab = flat[idx]
    order = np.argsort(lab, kind="stable")  # stable: C order kept within each label
    idx = idx[order]
    lab = lab[order]
    if lab.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros((0, 3), dtype=np.int64)
    change = np.flatnonzero(lab[1:] != lab[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    counts = np.diff(np.concatenate((starts, [lab.size]))).astype(np.int64)
    coords = np.stack(np.unravel_index(idx, instances.shape), axis=1).astype(np.int64)
    return lab[starts].astype(np.int64), starts, counts, coords


def _segment_max_sqdist(
    coords: np.ndarray, seg: np.ndarray, starts: np.ndarray, ref: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Squared (scaled) distances of each voxel to its blob's reference point, and their per-blob max.

    Args:
        coords: (N, 3) voxel indices, grouped by blob. seg: (N,) blob index of each voxel.
        starts: (B,) first row of each blob. ref: (B, 3) reference point per blob (index units).
        s: (3,) spacing.

    Returns:
        ``(d2 (N,), max_d2 (B,))``.
    """
    d2 = np.zeros(len(coords), dtype=np.float64)
    for axis in range(3):
        diff = (coords[:, axis] - ref[seg, axis]) * s[axis]
        d2 += diff * diff
    return d2, np.maximum.reduceat(d2, starts)


def _first_argmax(d2: np.ndarray, seg: np.ndarray, max_d2: np.ndarray) -> np.ndarray:
    """Row index of the first (C-order) voxel of each blob whose ``d2`` equals the blob's maximum."""
    cand = np.flatnonzero(d2 == max_d2[seg])
    cand_seg = seg[cand]
    keep = np.ones(len(cand), dtype=bool)
    keep[1:] = cand_seg[1:] != cand_seg[:-1]
    return cand[keep]


def _max_pairwise_distance(points: np.ndarray) -> float:
    """Largest Euclidean distance between any two rows of ``points`` (M, k), in memory-bounded chunks."""
    m = len(points)
    if m < 2:
        return 0.0
    if m <= _CHUNK:
        return float(pdist(points).max())
    best = 0.0
    for i in range(0, m, _CHUNK):
        best = max(best, float(cdist(points[i : i + _CHUNK], points[i:], "sqeuclidean").max()))
    return math.sqrt(best)


def _exact_diameter(points: np.ndarray) -> float:
    """True maximum pairwise distance of a point set (M, 3) via its convex hull.

    The points are first projected onto their affine hull (found by SVD), so flat (plate) and line-shaped
    sets get a 2D hull or a 1D extent instead of a Qhull error; any remaining Qhull failure falls back to
    brute force over all points.
    """
    m = len(points)
    if m <= _BRUTE_FORCE_MAX_POINTS:
        return _max_pairwise_distance(points)
    centred = points - points.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(sv > 1e-9 * max(sv[0], 1.0)))
    if rank == 0:
        return 0.0
    proj = centred @ vt[:rank].T  # distances are preserved: the points lie in this subspace
    if rank == 1:
        return float(np.ptp(proj[:, 0]))
    try:
        hull = ConvexHull(proj)
    except (QhullError, ValueError):
        return _max_pairwise_distance(points)
    return _max_pairwise_distance(points[hull.vertices])


def _boundary_rows(coords: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Rows that are the first or last voxel of a run along the last axis (per blob, C order).

    Every other voxel lies between two of these on a line, so they contain all convex hull vertices.
    """
    n = len(coords)
    new_line = np.ones(n, dtype=bool)
    new_line[1:] = (
        (seg[1:] != seg[:-1]) | (coords[1:, 0] != coords[:-1, 0]) | (coords[1:, 1] != coords[:-1, 1])
    )
    line_end = np.ones(n, dtype=bool)
    line_end[:-1] = new_line[1:]
    return np.flatnonzero(new_line | line_end)


def _empty_features() -> pd.DataFrame:
    dtypes = {"label": "int64", "n_voxels": "int64"}
    cols = FEATURE_COLUMNS + EXTRA_COLUMNS
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float64")) for c in cols})


def blob_features(
    instances: np.ndarray,
    spacing: Sequence[float] | None = None,
    method: FeatureMethod | str = FeatureMethod.PAPER,
) -> pd.DataFrame:
    """Shape features of every blob in an instance map (docs/definitions.md section 4).

    Args:
        instances: Instance map, shape ``(X, Y, Z)`` or ``(X, Y)`` (treated as ``(X, Y, 1)``), non-negative
            integer ids, 0 = background. Ids need not be consecutive; ids that do not occur give no row.
        spacing: Optional voxel size per array axis (same order as the array's axes). ``None`` = voxel units.
        method: ``"paper"`` (default) or ``"exact"`` (see the module docstring).

    Returns:
        One row per blob, sorted by label, columns ``label, volume, compactness, sphereness, stringness,
        skewness, n_voxels, D, r_far, d_eq``. ``volume``, ``D``, ``r_far``, ``d_eq`` are in voxel units, or
        physical units when ``spacing`` is given. Single-voxel blobs have NaN compactness, sphereness,
        stringness and skewness (D = r_far = 0). An empty map gives an empty frame with these columns.

    Raises:
        ValueError: On a bad ``method``, ``spacing``, shape or negative ids.
        TypeError: On a non-integer map.

    Example:
        >>> line = np.zeros((1, 1, 20), dtype=np.uint8); line[...] = 3
        >>> row = blob_features(line).iloc[0]
        >>> int(row.label), float(row.volume), float(row.D), round(float(row.skewness), 4)
        (3, 20.0, 19.0, 0.0526)
        >>> round(float(blob_features(line, method="exact").iloc[0].skewness), 4)
        0.0
    """
    meth = _parse_method(method)
    arr = _check_instances(instances)
    s_given = _check_spacing(spacing, arr.ndim)
    if arr.ndim == 2:
        arr = arr[..., np.newaxis]
        s_given = None if s_given is None else np.append(s_given, 1.0)
    s = np.ones(3) if s_given is None else s_given
    voxel_volume = float(np.prod(s))

    labels, starts, counts, coords = _group_by_label(arr)
    if len(labels) == 0:
        return _empty_features()
    seg = np.repeat(np.arange(len(labels)), counts)
    centroid = np.add.reduceat(coords, starts, axis=0) / counts[:, None]  # exact integer sums

    if meth is FeatureMethod.PAPER:
        c = np.round(centroid)  # numpy rounds half to even
        d2, max_d2 = _segment_max_sqdist(coords, seg, starts, c, s)
        mop = coords[_first_argmax(d2, seg, max_d2)]
        _, diam2 = _segment_max_sqdist(coords, seg, starts, mop, s)
        diameter = np.sqrt(diam2)
        r_far = np.sqrt(max_d2)
    else:
        _, max_d2 = _segment_max_sqdist(coords, seg, starts, centroid, s)
        r_far = np.sqrt(max_d2)
        rows = _boundary_rows(coords, seg)
        pts = coords[rows] * s
        bounds = np.searchsorted(seg[rows], np.arange(len(labels) + 1))
        diameter = np.array(
            [_exact_diameter(pts[bounds[b] : bounds[b + 1]]) for b in range(len(labels))], dtype=np.float64
        )

    volume = counts * voxel_volume
    d_eq = 2.0 * np.cbrt(3.0 * volume / (4.0 * math.pi))
    with np.errstate(divide="ignore", invalid="ignore"):
        single = counts == 1
        d_safe = np.where(single, np.nan, diameter)
        compactness = np.clip(volume / (math.pi / 6.0 * d_safe**3), 0.0, 1.0)
        sphereness = np.clip(d_eq / d_safe, 0.0, 1.0)
        skewness = 2.0 * (r_far / d_safe - 0.5)
    return pd.DataFrame(
        {
            "label": labels,
            "volume": volume.astype(np.float64),
            "compactness": compactness,
            "sphereness": sphereness,
            "stringness": 1.0 - sphereness,
            "skewness": skewness,
            "n_voxels": counts,
            "D": diameter,
            "r_far": r_far,
            "d_eq": d_eq,
        }
    )


def dataset_features(
    instance_paths: Mapping[str, str | PathLike[str]],
    dataset: str,
    method: FeatureMethod | str = FeatureMethod.PAPER,
) -> pd.DataFrame:
    """Blob features of every case of a dataset, read from instance-map files.

    Spacing is taken from each file's header, so volumes and distances are physical.

    Args:
        instance_paths: ``{case: path to instances.nii.gz}``.
        dataset: Dataset name written into the ``dataset`` column.
        method: See :func:`blob_features`.

    Returns:
        Columns ``dataset, case`` followed by the :func:`blob_features` columns; one row per blob, cases in
        the mapping's order. Cases without blobs contribute no row (see :func:`case_counts`).

    Example:
        >>> dataset_features({"case_0": "results/demo/data/case_0/instances.nii.gz"}, "demo")  # doctest: +SKIP
    """
    from blobloss.io import load_image

    meth = _parse_method(method)
    frames = []
    for case, path in instance_paths.items():
        vol = load_image(path)
        df = blob_features(vol.array, spacing=vol.spacing, method=meth)
        df.insert(0, "case", str(case))
        df.insert(0, "dataset", dataset)
        frames.append(df)
    if not frames:
        empty = _empty_features()
        empty.insert(0, "case", pd.Series(dtype=object))
        empty.insert(0, "dataset", pd.Series(dtype=object))
        return empty
    return pd.concat(frames, ignore_index=True)


def case_counts(features: pd.DataFrame, cases: Iterable[str], dataset: str) -> pd.DataFrame:
    """Blob count per case, including cases without any blob (count 0).

    Args:
        features: Output of :func:`dataset_features` (needs a ``case`` column; a ``dataset`` column, if
            present, is filtered to ``dataset``).
        cases: Every case of the dataset, in the order wanted; the case list is needed because cases with
            zero blobs have no feature row.
        dataset: Dataset name.

    Returns:
        Columns ``dataset, case, n_blobs`` with one row per case of ``cases``.

    Raises:
        ValueError: If ``features`` lacks a ``case`` column, ``cases`` has duplicates, or ``features``
            holds cases that are not in ``cases``.

    Example:
        >>> f = pd.DataFrame({"dataset": ["d", "d"], "case": ["a", "a"], "label": [1, 2]})
        >>> case_counts(f, ["a", "b"], "d").n_blobs.tolist()
        [2, 0]
    """
    if "case" not in features.columns:
        raise ValueError(
            f"features needs a 'case' column (from dataset_features), got columns {list(features.columns)}."
        )
    case_list = [str(c) for c in cases]
    if len(set(case_list)) != len(case_list):
        dupes = sorted({c for c in case_list if case_list.count(c) > 1})
        raise ValueError(f"cases must be unique, got duplicates {dupes}.")
    rows = features
    if "dataset" in rows.columns:
        rows = rows[rows["dataset"] == dataset]
    per_case = rows["case"].astype(str).value_counts()
    unknown = sorted(set(per_case.index) - set(case_list))
    if unknown:
        raise ValueError(
            f"features of dataset {dataset!r} hold cases {unknown} that are not in the case list; "
            "pass the dataset's full case list."
        )
    counts = [int(per_case.get(c, 0)) for c in case_list]
    return pd.DataFrame(
        {"dataset": [dataset] * len(case_list), "case": case_list, "n_blobs": pd.Series(counts, dtype="int64")}
    )


def dataset_statistics(
    instance_paths: Mapping[str, str | PathLike[str]],
    dataset: str,
    method: FeatureMethod | str = FeatureMethod.PAPER,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and per-case counts of one dataset: ``(dataset_features(...), case_counts(...))``.

    Example:
        >>> feats, counts = dataset_statistics({"c0": "c0/instances.nii.gz"}, "demo")  # doctest: +SKIP
    """
    feats = dataset_features(instance_paths, dataset, method)
    return feats, case_counts(feats, list(instance_paths), dataset)


def write_dataset_statistics(
    instance_paths: Mapping[str, str | PathLike[str]],
    dataset: str,
    features_csv: str | PathLike[str],
    counts_csv: str | PathLike[str],
    method: FeatureMethod | str = FeatureMethod.PAPER,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute :func:`dataset_statistics` and write both tables as CSV (atomically).

    Args:
        instance_paths: ``{case: path to instances.nii.gz}`` for every case of the dataset.
        dataset: Dataset name.
        features_csv: Output path of the per-blob table (``dataset, case, label, volume, ...``).
        counts_csv: Output path of the per-case counts (``dataset, case, n_blobs``).
        method: See :func:`blob_features`.

    Returns:
        ``(features, counts)`` as written.

    Example:
        >>> write_dataset_statistics(paths, "demo", "blob_features.csv", "blob_counts.csv")  # doctest: +SKIP
    """
    from blobloss.io import atomic_path

    feats, counts = dataset_statistics(instance_paths, dataset, method)
    for table, path in ((feats, features_csv), (counts, counts_csv)):
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    return feats, counts
