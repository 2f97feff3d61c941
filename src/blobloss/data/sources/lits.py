"""Source format ``lits``: LiTS ``volume-<n>.nii[.gz]`` / ``segmentation-<n>.nii[.gz]``.

Files anywhere under ``source.path``, case id ``lits_<n>``. Only ``tumour_label`` (default 2) is kept as
foreground, and image and label are cropped to the liver's bounding box (liver = label >= 1) plus ``margin``
voxels (int or per axis, default 10), clipped to the volume; the crop is recorded in ``meta.json`` and in
the output affine.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from blobloss.data.checks import check_pairs
from blobloss.data.sources._common import RawCase, root_folder, visible_files
from blobloss.data.sources.generic import read as _read_generic
from blobloss.errors import DataIntegrityError

__all__ = ["discover", "process", "read"]


_LITS_VOL = re.compile(r"volume-(\d+)\.nii(\.gz)?")
_LITS_SEG = re.compile(r"segmentation-(\d+)\.nii(\.gz)?")


def discover(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    name = dataset.get("name", "?")
    root = root_folder(dataset, src)
    images: dict[str, str] = {}
    labels: dict[str, str] = {}
    dup: list[str] = []
    for f in visible_files(root, "**/*.nii*"):
        fname = Path(f).name
        for pat, target in ((_LITS_VOL, images), (_LITS_SEG, labels)):
            m = pat.fullmatch(fname)
            if m:
                case = f"lits_{int(m.group(1))}"
                if case in target:
                    dup.append(f"{target[case]} and {f}")
                target[case] = f
    if dup:
        raise DataIntegrityError(
            f"dataset {name!r}: several files map to one LiTS case: {dup}; keep one copy of each file"
        )
    if not images:
        raise DataIntegrityError(
            f"dataset {name!r}: no volume-<n>.nii[.gz] file under {root}; source.path must hold the LiTS "
            "training volumes and segmentations"
        )
    check_pairs(images, labels, hint="each volume-<n>.nii needs segmentation-<n>.nii", dataset=name)
    return {c: {"images": [images[c]], "label": labels[c], "channel_names": ["CT"]} for c in images}




def read(dataset: Mapping[str, Any], src: Mapping[str, Any], case_id: str, sources: Mapping[str, Any]) -> RawCase:
    """Read one LiTS case (one CT file and its segmentation)."""
    return _read_generic(dataset, {**src, "channels_last": False}, case_id, sources)


def _margin(value: Any, ndim: int, name: str) -> np.ndarray:
    m = np.atleast_1d(np.asarray(value, dtype=int))
    if m.size == 1:
        m = np.repeat(m, ndim)
    if m.size != ndim or (m < 0).any():
        raise ValueError(
            f"dataset {name!r}: source.margin must be a non-negative int or one per spatial axis ({ndim}), "
            f"got {value!r}"
        )
    return m


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if not mask.any():
        return None
    lo, hi = [], []
    for ax in range(mask.ndim):
        proj = np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != ax))
        idx = np.flatnonzero(proj)
        lo.append(idx[0])
        hi.append(idx[-1] + 1)
    return np.asarray(lo), np.asarray(hi)


def process(
    dataset: Mapping[str, Any],
    src: Mapping[str, Any],
    raw: RawCase,
    image: np.ndarray,
    label: np.ndarray,
    affine: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, dict[str, Any]]:
    """Crop to the liver's bounding box plus the margin and keep only the tumour as foreground.

    Returns:
        ``(image, label, affine, foreground, extra_meta)``; ``extra_meta`` holds the ``crop``.
    """
    name = str(dataset.get("name", "?"))
    case = raw.case
    if dataset.get("instance_labels", False):
        raise ValueError(
            f"dataset {name!r}: instance_labels: true is not supported for format 'lits' (its labels are "
            "liver/tumour classes, not instance ids); set instance_labels: false"
        )
    spatial = tuple(image.shape[1:])
    tumour = int(src["tumour_label"])
    liver = label >= 1
    box = _bbox(liver)
    extra: dict[str, Any] = {}
    if box is None:
        warnings.warn(
            f"case {case!r}: label {raw.label_file} has no liver (no value >= 1); the volume is not "
            "cropped",
            stacklevel=2,
        )
    else:
        m = _margin(src["margin"], label.ndim, name)
        lo = np.maximum(box[0] - m, 0)
        hi = np.minimum(box[1] + m, np.asarray(label.shape))
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        image = image[(slice(None),) + sl]
        label = label[sl]
        extra["crop"] = {"start": [int(v) for v in lo], "stop": [int(v) for v in hi], "source_shape": list(spatial)}
        if affine is not None:
            affine = np.array(affine, dtype=float)
            affine[:3, 3] = affine[:3, :3] @ np.concatenate([lo, np.zeros(3 - lo.size)])[:3] + affine[:3, 3]
    return image, label, affine, label == tumour, extra
