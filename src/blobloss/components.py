"""Instance maps: connected components of a binary label (docs/definitions.md section 1).

An instance ("blob") is a connected component of the foreground (``label > 0``). Components are computed
with `cc3d <https://github.com/seung-lab/connected-components-3d>`_; the default connectivity is the cc3d
default, 26 in 3D and 8 in 2D. Instance maps are stored as ``uint32`` with ``0`` = background and the
instances numbered ``1..n`` without gaps.

The core functions (:func:`label_instances`, :func:`relabel_consecutive`, :func:`instance_summary`) work on
arrays only; :func:`compute_instances` is the thin file-level wrapper used by the pipeline.

Example:
    >>> import numpy as np
    >>> label = np.zeros((3, 3, 3), dtype=np.uint8)
    >>> label[0, 0, 0] = label[1, 1, 1] = 1          # two voxels touching at a corner
    >>> label_instances(label)[1]                     # one blob with 26-connectivity
    1
    >>> label_instances(label, connectivity=6)[1]     # two blobs with 6-connectivity
    2
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import cc3d
import numpy as np

__all__ = [
    "VALID_CONNECTIVITY",
    "DEFAULT_CONNECTIVITY",
    "resolve_connectivity",
    "label_instances",
    "relabel_consecutive",
    "instance_summary",
    "compute_instances",
]

#: Connectivities cc3d supports, per number of spatial dimensions.
VALID_CONNECTIVITY: dict[int, tuple[int, ...]] = {2: (4, 8), 3: (6, 18, 26)}
#: Default connectivity per number of spatial dimensions (the cc3d default; docs/definitions.md section 1).
DEFAULT_CONNECTIVITY: dict[int, int] = {2: 8, 3: 26}


def resolve_connectivity(ndim: int, connectivity: int | None = None) -> int:
    """Return the connectivity to use for an ``ndim``-dimensional label, validating a given value.

    Args:
        ndim: Number of spatial dimensions of the label (2 or 3).
        connectivity: Requested connectivity, or ``None`` for the default (26 in 3D, 8 in 2D).

    Returns:
        The connectivity as an ``int``.

    Raises:
        ValueError: If ``ndim`` is not 2 or 3, or ``connectivity`` is not valid for ``ndim``.

    Example:
        >>> resolve_connectivity(3), resolve_connectivity(2), resolve_connectivity(3, 6)
        (26, 8, 6)
    """
    if ndim not in VALID_CONNECTIVITY:
        raise ValueError(
            f"Instance maps need a 2D or 3D label, got {ndim} spatial dimensions; "
            "pass a single-channel label array of shape (X, Y) or (X, Y, Z)."
        )
    if connectivity is None:
        return DEFAULT_CONNECTIVITY[ndim]
    valid = VALID_CONNECTIVITY[ndim]
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)) or int(
        connectivity
    ) not in valid:
        raise ValueError(
            f"connectivity={connectivity!r} is not valid for a {ndim}D label; "
            f"use one of {list(valid)} (or None for the default {DEFAULT_CONNECTIVITY[ndim]})."
        )
    return int(connectivity)


def _check_label_array(label: Any, name: str = "label") -> np.ndarray:
    """Return ``label`` as a numeric numpy array of 2 or 3 dims, or raise a clear error."""
    arr = np.asarray(label)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a numeric or boolean array, got dtype {arr.dtype}; "
            "convert it with np.asarray(..., dtype=np.uint8) first."
        )
    if arr.ndim not in VALID_CONNECTIVITY:
        raise ValueError(
            f"{name} must be 2D or 3D (spatial axes only), got shape {arr.shape}; "
            "drop channel / batch axes first (e.g. label[0])."
        )
    return arr


def label_instances(label: np.ndarray, connectivity: int | None = None) -> tuple[np.ndarray, int]:
    """Connected components of the foreground ``label > 0``.

    Args:
        label: Semantic label, shape ``(X, Y)`` or ``(X, Y, Z)``, any numeric or boolean dtype. Every voxel
            with ``label > 0`` is foreground; class values are not distinguished.
        connectivity: 6, 18 or 26 for 3D; 4 or 8 for 2D; ``None`` = 26 in 3D, 8 in 2D.

    Returns:
        ``(instances, n)``: ``instances`` has the shape of ``label``, dtype ``uint32``, 0 = background and
        the components numbered ``1..n`` (cc3d order: first voxel in C order); ``n`` is the number of
        components.

    Raises:
        ValueError: On a wrong number of dimensions or an invalid connectivity.
        TypeError: On a non-numeric dtype.

    Example:
        >>> lab = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]])
        >>> inst, n = label_instances(lab, connectivity=4)
        >>> n, inst.dtype.name
        (3, 'uint32')
    """
    arr = _check_label_array(label)
    conn = resolve_connectivity(arr.ndim, connectivity)
    fg = np.ascontiguousarray(arr > 0)
    out, n = cc3d.connected_components(fg, connectivity=conn, return_N=True, out_dtype=np.uint32)
    return np.asarray(out, dtype=np.uint32), int(n)


def relabel_consecutive(instances: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber instance ids to ``1..n`` keeping their order (``0`` stays background).

    Ids that are already consecutive are returned unchanged (as ``uint32``).

    Args:
        instances: Instance map of non-negative integers, shape ``(X, Y)`` or ``(X, Y, Z)``.

    Returns:
        ``(relabelled uint32 map, n)``; id ``k``-th smallest nonzero id becomes ``k``.

    Raises:
        TypeError: If ``instances`` is not an integer (or boolean) array.
        ValueError: If it holds negative ids or has the wrong number of dimensions.

    Example:
        >>> relabel_consecutive(np.array([[0, 7], [3, 7]]))[0].tolist()
        [[0, 2], [1, 2]]
    """
    arr = _check_label_array(instances, "instances")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TypeError(
                "instances must hold integer ids, got non-integer floating-point values; "
                "store instance maps with an integer dtype."
            )
    if arr.size and arr.min() < 0:
        raise ValueError(
            f"instances must hold non-negative ids, found minimum {arr.min()}; 0 is background and "
            "instances are numbered from 1."
        )
    arr = arr.astype(np.int64, copy=False)
    max_id = int(arr.max()) if arr.size else 0
    if max_id == 0:
        return np.zeros(arr.shape, dtype=np.uint32), 0
    if max_id <= 50_000_000:  # presence table: O(voxels), no sort
        present = np.bincount(arr.ravel(), minlength=max_id + 1) > 0
        present[0] = False
        n = int(present.sum())
        if n == max_id:
            return arr.astype(np.uint32), n
        lut = np.cumsum(present).astype(np.uint32)
        lut[0] = 0
        return lut[arr], n
    ids, inverse = np.unique(arr, return_inverse=True)
    offset = 0 if ids[0] == 0 else 1
    n = len(ids) - (1 - offset)
    return (inverse.reshape(arr.shape) + offset).astype(np.uint32), int(n)


def instance_summary(instances: np.ndarray) -> dict[str, Any]:
    """Number of instances and their voxel counts.

    Args:
        instances: Instance map, shape ``(X, Y)`` or ``(X, Y, Z)``, non-negative integers, 0 = background.

    Returns:
        ``{"n_instances": int, "voxels": {"min", "median", "max", "total"}}``; the size entries are
        ``None`` when there is no instance. Ids that do not occur are not counted.

    Example:
        >>> instance_summary(np.array([[1, 1, 0], [0, 0, 2]]))
        {'n_instances': 2, 'voxels': {'min': 1, 'median': 1.5, 'max': 2, 'total': 3}}
    """
    arr = _check_label_array(instances, "instances")
    if arr.dtype.kind == "f":
        raise TypeError(f"instances must have an integer dtype, got {arr.dtype}.")
    if arr.size and arr.min() < 0:
        raise ValueError(f"instances must be non-negative, found minimum {arr.min()}.")
    fg = arr[arr > 0].astype(np.int64, copy=False)
    if fg.size == 0:
        return {"n_instances": 0, "voxels": {"min": None, "median": None, "max": None, "total": 0}}
    _, sizes = np.unique(fg, return_counts=True)
    med = float(np.median(sizes))
    return {
        "n_instances": int(len(sizes)),
        "voxels": {
            "min": int(sizes.min()),
            "median": int(med) if med.is_integer() else med,
            "max": int(sizes.max()),
            "total": int(sizes.sum()),
        },
    }


def compute_instances(
    label_path: str | PathLike[str],
    out_path: str | PathLike[str],
    out_json: str | PathLike[str],
    connectivity: int | None = None,
    given_instances_path: str | PathLike[str] | None = None,
) -> dict[str, Any]:
    """Compute (or adopt) the instance map of one case and write it beside the label.

    Reads ``label_path`` (NIfTI), labels its foreground with :func:`label_instances`, and writes
    ``out_path`` (``uint32``, the label's spacing and affine) and ``out_json``. When
    ``given_instances_path`` names a file that already holds instance ids (e.g. a dataset shipped with
    instance annotations), those ids are kept (renumbered to ``1..n`` in order if they have gaps) instead
    of recomputing components; its foreground must equal the label's.

    Args:
        label_path: Semantic label (``label.nii.gz``), shape ``(X, Y[, Z])``.
        out_path: Output instance map (``instances.nii.gz``).
        out_json: Output summary (``instances.json``): ``{"n_instances", "connectivity", "source",
            "shape", "voxels": {min, median, max, total}}``; ``connectivity`` is ``None`` for given ids.
        connectivity: See :func:`label_instances`.
        given_instances_path: Optional file with instance ids to keep.

    Returns:
        The dictionary written to ``out_json``.

    Raises:
        DataIntegrityError: If the given instance file's shape or foreground differs from the label (a
            ``ValueError``).
        ValueError: On an invalid connectivity.

    Example:
        >>> compute_instances("label.nii.gz", "instances.nii.gz", "instances.json")  # doctest: +SKIP
        {'n_instances': 12, 'connectivity': 26, 'source': 'cc3d', ...}
    """
    from blobloss.data.checks import DataIntegrityError
    from blobloss.io import load_image, save_nifti, write_json_atomic

    label_vol = load_image(label_path)
    label = np.asarray(label_vol.array)
    _check_label_array(label, f"label {label_path}")
    if given_instances_path is None:
        conn: int | None = resolve_connectivity(label.ndim, connectivity)
        instances, _ = label_instances(label, conn)
        source = "cc3d"
    else:
        given = np.asarray(load_image(given_instances_path).array)
        if given.shape != label.shape:
            raise DataIntegrityError(
                f"Given instance map {given_instances_path} has shape {given.shape} but the label "
                f"{label_path} has shape {label.shape}; they must describe the same voxels."
            )
        instances, _ = relabel_consecutive(given)
        mismatch = int(np.count_nonzero((instances > 0) != (label > 0)))
        if mismatch:
            raise DataIntegrityError(
                f"Given instance map {given_instances_path} and label {label_path} disagree on "
                f"{mismatch} foreground voxels; instance ids must cover exactly the label's foreground "
                "(derive the label as instances > 0, or drop given_instances_path to recompute)."
            )
        conn = None
        source = "given"
    save_nifti(out_path, instances, spacing=label_vol.spacing, affine=label_vol.affine, dtype=np.uint32)
    summary = instance_summary(instances)
    info: dict[str, Any] = {
        "n_instances": summary["n_instances"],
        "connectivity": conn,
        "source": source,
        "shape": [int(s) for s in instances.shape],
        "voxels": summary["voxels"],
    }
    write_json_atomic(out_json, info)
    return info
