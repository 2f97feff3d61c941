"""Tables assembled from per-case results."""

from __future__ import annotations

import pandas as pd

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
