"""What every source format shares: the read case, the config's source section, file discovery helpers.

A source format is one module of this package with

* ``discover(dataset, src) -> {case id: sources}``: find the cases by globbing (no image is read);
* ``read(dataset, src, case_id, sources) -> RawCase``: read (or generate) one case;
* optionally ``process(dataset, src, raw, image, label, affine) -> (image, label, affine, extra meta)``:
  a format-specific step after the integrity checks (LiTS: tumour only, liver crop).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from blobloss.data.checks import check_channel_shapes, check_spacing
from blobloss.errors import DataIntegrityError
from blobloss.io import TIFF_SUFFIXES, Volume, load_image

__all__ = ["RawCase", "SourceFormat", "read_files", "root_folder", "source_config", "visible_files"]

class SourceFormat(str, Enum):
    """The raw data formats (``dataset["source"]["format"]``)."""

    SYNTHETIC = "synthetic"
    GENERIC = "generic"
    NNUNET = "nnunet"
    LITS = "lits"
    LIGHTSHEET = "lightsheet"


_SOURCE_DEFAULTS: dict[str, Any] = {
    "format": "synthetic",
    "path": None,
    "n_cases": 8,
    "shape": [64, 64, 32],
    "seed": 0,
    "image_glob": "images/*.nii.gz",
    "label_glob": "labels/*.nii.gz",
    "channel_suffixes": None,
    "label_suffix": "",
    "tumour_label": 2,
    "margin": 10,
    "channels_last": False,
}

@dataclass
class RawCase:
    """A case as read from its source files, before any processing.

    Attributes:
        case: Case id.
        image: ``(C, *spatial)`` in the stored dtype (cast to float32 by normalization, after any crop).
        label: ``(*spatial)`` label as stored (integer ids, or float with integral values).
        spacing: Spacing per spatial axis as read from the image file, or ``None`` if the file has none.
        affine: 4x4 voxel-to-world matrix of the image, or ``None`` (TIFF, synthetic).
        image_files: Image file per channel (one file for channels-last images; empty for synthetic).
        label_file: Label file (``"<generated>"`` for synthetic).
        channel_names: One name per channel.
        label_spacing: Spacing of the label file, or ``None`` if it has none.
        instances: Instance map when the source provides one (synthetic), else ``None``.
    """

    case: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, ...] | None
    affine: np.ndarray | None
    image_files: list[str]
    label_file: str
    channel_names: list[str]
    label_spacing: tuple[float, ...] | None = None
    instances: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# configuration helpers
# --------------------------------------------------------------------------------------------------


def source_config(dataset: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(dataset, Mapping) or "source" not in dataset:
        raise ValueError(
            f"dataset config must be a mapping with a 'source' section, got {type(dataset).__name__} "
            f"with keys {sorted(dataset) if isinstance(dataset, Mapping) else '-'}"
        )
    src = {**_SOURCE_DEFAULTS, **{k: v for k, v in dict(dataset["source"]).items() if v is not None}}
    try:
        src["format"] = SourceFormat(src["format"])
    except ValueError:
        options = ", ".join(repr(f.value) for f in SourceFormat)
        raise ValueError(
            f"dataset {dataset.get('name', '?')!r}: unknown source format {src['format']!r}; choose one of "
            f"{options}"
        ) from None
    return src


def root_folder(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> Path:
    path = src.get("path")
    name = dataset.get("name", "?")
    if not path:
        raise ValueError(
            f"dataset {name!r}: source.path is required for format {src['format'].value!r}; set it to the "
            "folder holding the raw data (absolute, or relative to the working directory)"
        )
    root = Path(os.path.expanduser(str(path)))
    if not root.is_dir():
        raise DataIntegrityError(
            f"dataset {name!r}: source.path {root} (resolved: {root.resolve()}) is not a folder; fix "
            "source.path (relative paths are taken from the working directory)"
        )
    return root


def _visible(path: str) -> bool:
    return not Path(path).name.startswith(".")


def visible_files(root: Path, pattern: str) -> list[str]:
    return sorted(p for p in glob.glob(str(root / pattern), recursive=True) if os.path.isfile(p) and _visible(p))


# --------------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------------


def _load(case: str, path: str, kind: str) -> Volume:
    try:
        return load_image(path)
    except DataIntegrityError as exc:
        raise DataIntegrityError(f"case {case!r}: {kind}: {exc}") from exc



def _spatial_ndim_check(case: str, kind: str, path: str, shape: tuple[int, ...], fix: str) -> None:
    if len(shape) not in (2, 3):
        raise DataIntegrityError(
            f"case {case!r}: {kind} {path} has {len(shape)} axes (shape {shape}); {kind}s must be 2D or 3D"
            f"{fix}"
        )


def read_files(
    case_id: str,
    files: Sequence[str],
    label_file: str,
    channel_names: Sequence[str],
    channels_in_last_axis: bool,
    channels_option: str,
) -> RawCase:
    """Read the image file(s) and the label of one case (NIfTI, TIFF, MetaImage, NRRD).

    A single image file with one axis more than its label holds the channels in its last axis; that is
    accepted only where the dataset declares it (``channels_in_last_axis``: MSD/nnU-Net files whose
    ``dataset.json`` names the channels, or ``source.channels_last: true``), so a 4D time series or a
    mis-exported file never passes as channels silently.

    Args:
        case_id: Case id (for messages).
        files: One image file, or one per channel.
        label_file: The label file.
        channel_names: Declared channel names (may be empty).
        channels_in_last_axis: Whether a single file with one extra axis may hold the channels.
        channels_option: The config option that allows it, for the message.

    Returns:
        The :class:`RawCase` with ``image`` as ``(C, *spatial)``.

    Raises:
        DataIntegrityError: On unreadable files, labels or images that are not 2D/3D, an undeclared
            channel axis, channel files that differ in shape or spacing, or a wrong channel count.
    """
    channel_names = list(channel_names)
    label_vol = _load(case_id, label_file, "label")
    _spatial_ndim_check(
        case_id, "label", label_file, label_vol.shape,
        "; store one label value per voxel (a one-hot or multi-class 4D label: take its argmax; a time "
        "series: one case per time point)",
    )
    vols = [_load(case_id, f, "image") for f in files]
    label_spacing = label_vol.spacing if label_vol.spacing_from_file else None

    if len(vols) == 1:
        vol = vols[0]
        arr = vol.array
        expected = len(channel_names) if channel_names else None
        if arr.ndim == label_vol.ndim + 1:  # a channel axis last (MSD 4D); shapes checked later
            if Path(files[0]).name.lower().endswith(TIFF_SUFFIXES):
                raise DataIntegrityError(
                    f"case {case_id!r}: TIFF image {files[0]} has shape {arr.shape}, one axis more than its "
                    f"label {label_file} {label_vol.shape}; store one TIFF per channel and set "
                    "source.channel_suffixes"
                )
            if not channels_in_last_axis:
                raise DataIntegrityError(
                    f"case {case_id!r}: image {files[0]} has shape {arr.shape}, one axis more than its label "
                    f"{label_file} {label_vol.shape}. If its last axis holds {arr.shape[-1]} channels, set "
                    f"{channels_option}; or store one file per channel and set source.channel_suffixes; a "
                    "time series is not supported (store one volume per case)"
                )
            image = np.moveaxis(arr, -1, 0)
            spacing = vol.spacing[: label_vol.ndim]
        else:
            _spatial_ndim_check(
                case_id, "image", files[0], arr.shape,
                f" (a channel axis is the last one, beside a {label_vol.ndim}D label); if the file holds "
                f"channels its label must have one axis fewer: fix the export",
            )
            image = arr[None]
            spacing = vol.spacing
        if expected is not None and expected > 1 and image.shape[0] != expected:
            raise DataIntegrityError(
                f"case {case_id!r}: image {files[0]} has shape {arr.shape} ({image.shape[0]} channel(s)) but "
                f"{expected} channels {channel_names} are declared; store channels in the last axis or one "
                "file per channel"
            )
        n_channels = image.shape[0]
        if len(channel_names) != n_channels:
            if n_channels > 1:
                channel_names = [f"channel_{i}" for i in range(n_channels)]
            else:
                channel_names = channel_names[:1] or ["image"]
        spacing_known = vol.spacing_from_file
        affine = vol.affine
    else:
        for f, v in zip(files, vols):
            _spatial_ndim_check(case_id, "channel image", f, v.shape, "; store one 2D/3D file per channel")
        check_channel_shapes(case_id, [v.shape for v in vols], files)
        if all(v.spacing_from_file for v in vols):
            for f, v in zip(files[1:], vols[1:]):
                check_spacing(case_id, vols[0].spacing, v.spacing, files[0], f, other_kind="channel image")
        image = np.stack([v.array for v in vols], axis=0)
        spacing = vols[0].spacing
        spacing_known = vols[0].spacing_from_file
        affine = vols[0].affine
    return RawCase(
        case=case_id,
        image=np.asarray(image),
        label=label_vol.array,
        spacing=tuple(float(s) for s in spacing) if spacing_known else None,
        affine=affine,
        image_files=list(files),
        label_file=label_file,
        channel_names=channel_names,
        label_spacing=tuple(float(s) for s in label_spacing) if label_spacing is not None else None,
    )
