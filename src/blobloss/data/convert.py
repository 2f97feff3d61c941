"""Convert raw datasets into the standard case layout (one folder per case).

Source formats (``dataset["source"]["format"]``), one module each under :mod:`blobloss.data.sources`:

* ``synthetic``: the built-in generator, in memory (:mod:`blobloss.data.sources.synthetic`);
* ``generic``: image/label files found with ``image_glob`` / ``label_glob``, multi-channel by
  ``channel_suffixes`` or, with ``channels_last: true``, one file with the channels in its last axis
  (:mod:`blobloss.data.sources.generic`);
* ``nnunet``: an nnU-Net (v1/v2) or MSD dataset folder (:mod:`blobloss.data.sources.nnunet`);
* ``lits``: LiTS volumes and segmentations, tumour only, cropped to the liver
  (:mod:`blobloss.data.sources.lits`);
* ``lightsheet``: like ``generic``, usually TIFF stacks (:mod:`blobloss.data.sources.lightsheet`).

Label handling: the semantic label is binary (``label > 0``; or ``label in foreground_labels`` when the
dataset sets that optional key; LiTS: ``label == tumour_label``). A label with values other than 0 and 1
(e.g. 0/255) is binarized with a :class:`~blobloss.errors.LabelBinarizedWarning` (once in the job log) and
``meta["binarized"]`` (a column of the manifest). With ``instance_labels: true`` the label file holds
instance ids (e.g. nuclei masks): the label is their binarization and the ids, renumbered to 1..N in
increasing order of the original ids, are the instance map.

Every integrity check (:mod:`blobloss.data.checks`, :func:`check_case`) runs before anything is written;
outputs are written atomically, ``meta.json`` last. :func:`blobloss.data.checks.check_dataset` runs the
same checks on every case of a dataset at once, before any conversion.

Example:
    >>> import tempfile, os
    >>> ds = {"name": "demo", "source": {"format": "synthetic", "n_cases": 2, "shape": [16, 16, 8]}}
    >>> cases = discover_cases(ds)
    >>> sorted(cases)
    ['case_000', 'case_001']
    >>> d = tempfile.mkdtemp()
    >>> meta = convert_case(ds, "case_000", cases["case_000"], os.path.join(d, "image.nii.gz"),
    ...                     os.path.join(d, "label.nii.gz"), os.path.join(d, "meta.json"))
    >>> meta["shape"], meta["channels"]
    ([16, 16, 8], 1)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from blobloss.data.checks import (
    check_finite,
    check_label_values,
    check_shapes,
    check_spacing,
    check_spacing_given,
)
from blobloss.data.normalize import normalize_from_config
from blobloss.data.sources import RawCase, SourceFormat, source_config, source_module
from blobloss.errors import DataIntegrityError, EmptyLabelWarning, LabelBinarizedWarning
from blobloss.io import save_case_image, save_nifti, write_json_atomic

__all__ = [
    "SourceFormat",
    "RawCase",
    "check_case",
    "discover_cases",
    "read_case",
    "prepare_case",
    "convert_case",
    "convert_dataset",
]

PathLike = str | os.PathLike[str]

# kept for callers of the former private helper
_source = source_config


def discover_cases(dataset: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Find a dataset's cases and their source files by globbing (no image is read).

    Args:
        dataset: The dataset config (``name``, ``source``, ...; see the module docstring).

    Returns:
        Case id -> sources, sorted by case id. File formats: ``{"images": [path per channel], "label":
        path, "channel_names": [...]}``; synthetic: ``{"seed": int, "shape": [...], "index": int}``.
        All values are JSON-serialisable.

    Raises:
        ValueError: On config errors (unknown format, missing ``source.path``).
        DataIntegrityError: If no case is found, or on unpaired images/labels or missing channel files,
            listing the case ids and files and the fix.

    Example:
        >>> ds = {"name": "d", "source": {"format": "synthetic", "n_cases": 3, "seed": 1}}
        >>> discover_cases(ds)["case_002"]["index"]
        2
    """
    src = source_config(dataset)
    fmt = src["format"]
    cases = source_module(fmt).discover(dataset, src)
    if not cases:
        raise DataIntegrityError(
            f"dataset {dataset.get('name', '?')!r}: no cases found for format {fmt.value!r} under "
            f"{src.get('path')}; check source.path and the glob patterns"
        )
    return {k: cases[k] for k in sorted(cases)}


def read_case(dataset: Mapping[str, Any], case_id: str, sources: Mapping[str, Any]) -> RawCase:
    """Read (or generate) one case from its sources, checking only what reading needs.

    Args:
        dataset: The dataset config.
        case_id: Case id (a key of :func:`discover_cases`).
        sources: Its sources (the value of :func:`discover_cases`).

    Returns:
        The :class:`RawCase`.

    Raises:
        DataIntegrityError: If a file is unreadable/corrupt, an image or label is not 2D/3D, a single
            image file has an undeclared channel axis, channels differ in shape or spacing, or a single
            image file does not hold the declared number of channels.

    Example:
        >>> ds = {"name": "d", "source": {"format": "synthetic", "shape": [16, 16]}}
        >>> read_case(ds, "case_000", {"seed": 0, "shape": [16, 16]}).image.shape
        (1, 16, 16)
    """
    src = source_config(dataset)
    return source_module(src["format"]).read(dataset, src, case_id, sources)


def check_case(dataset: Mapping[str, Any], raw: RawCase) -> tuple[float, ...]:
    """Every integrity check of one read case; returns its spacing (from the file or the config).

    Args:
        dataset: The dataset config.
        raw: The case from :func:`read_case`.

    Returns:
        The spacing per spatial axis.

    Raises:
        DataIntegrityError: On NaN/Inf intensities, a shape or spacing mismatch, bad label values or a
            missing spacing.
        ValueError: On a config ``spacing`` of the wrong length.

    Example:
        >>> ds = {"name": "d", "source": {"format": "synthetic"}}
        >>> check_case(ds, read_case(ds, "case_000", {"seed": 0, "shape": [16, 16]}))
        (1.0, 1.0)
    """
    fmt = source_config(dataset)["format"]
    name = str(dataset.get("name", "?"))
    case = raw.case
    image_file = raw.image_files[0] if raw.image_files else "<generated>"
    check_finite(case, raw.image, raw.image_files or image_file)
    spatial = tuple(raw.image.shape[1:])
    check_shapes(case, spatial, raw.label.shape, image_file, raw.label_file)
    check_label_values(case, raw.label, raw.label_file)

    override = dataset.get("spacing")
    if override is not None:
        spacing = tuple(float(s) for s in override)
        if len(spacing) != len(spatial):
            raise ValueError(
                f"dataset {name!r}: spacing {list(spacing)} has {len(spacing)} entries but case {case!r} has "
                f"{len(spatial)} spatial axes (shape {spatial}); give one value per spatial axis in the file's "
                "axis order"
            )
        check_spacing_given(case, spacing, "the dataset config")
    elif fmt is SourceFormat.SYNTHETIC:
        spacing = (1.0,) * len(spatial)
    else:
        check_spacing_given(case, raw.spacing, raw.image_files[0])
        assert raw.spacing is not None
        spacing = raw.spacing
        if raw.label_spacing is not None:
            check_spacing(case, raw.spacing, raw.label_spacing, raw.image_files[0], raw.label_file)
    return tuple(float(s) for s in spacing)


def label_values(label: np.ndarray, limit: int = 8) -> list[int] | None:
    """The distinct values of an integer-valued label when it holds something other than 0 and 1, else None.

    At most ``limit`` values are returned (the smallest ones).

    Example:
        >>> label_values(np.array([0, 255, 255])), label_values(np.array([0, 1])), label_values(np.array([0]))
        ([0, 255], None, None)
    """
    arr = np.asarray(label)
    if arr.size == 0 or arr.dtype == bool:
        return None
    hi = arr.max()
    if hi <= 1:
        return None
    if np.issubdtype(arr.dtype, np.integer) and int(hi) < 2**16 and arr.min() >= 0:
        values = np.flatnonzero(np.bincount(arr.ravel().astype(np.intp, copy=False)))
    else:
        values = np.unique(arr)
    return [int(v) for v in values[:limit]]


def _relabel(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber non-zero ids to 1..N in increasing order of the original ids."""
    uniq, inv = np.unique(ids, return_inverse=True)
    inv = inv.reshape(ids.shape)
    if uniq.size and uniq[0] == 0:
        out = inv.astype(np.uint32)
        n = uniq.size - 1
    else:
        out = (inv + 1).astype(np.uint32)
        n = uniq.size
    return out, int(n)


def prepare_case(dataset: Mapping[str, Any], raw: RawCase) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Check and process a read case: integrity checks, spacing, LiTS crop, label, normalization.

    Args:
        dataset: The dataset config.
        raw: The case from :func:`read_case`.

    Returns:
        ``(meta, arrays)`` where ``arrays`` holds ``image`` ``(C, *spatial)`` float32, ``label`` uint8
        ``(*spatial)``, ``instances`` uint32 or ``None``, and ``affine`` (4x4 or ``None``).

    Raises:
        DataIntegrityError: On any failed integrity check (see :func:`check_case`).
        ValueError: On config errors (bad spacing length, margin, normalization).

    Warns:
        EmptyLabelWarning: When the label has no foreground voxel.
        LabelBinarizedWarning: When a semantic label holds values other than 0/1 (e.g. 0/255).

    Example:
        >>> ds = {"name": "d", "source": {"format": "synthetic"}}
        >>> raw = read_case(ds, "case_000", {"seed": 0, "shape": [16, 16]})
        >>> meta, arrays = prepare_case(ds, raw)
        >>> float(arrays["image"].max()), meta["spacing"]
        (1.0, [1.0, 1.0])
    """
    src = source_config(dataset)
    fmt = src["format"]
    name = str(dataset.get("name", "?"))
    case = raw.case

    # --- integrity checks (nothing has been written yet)
    spacing = check_case(dataset, raw)

    image = raw.image
    label = raw.label
    affine = None if raw.affine is None else np.array(raw.affine, dtype=float)
    extra_meta: dict[str, Any] = {}
    instances = None
    n_instances = None
    binarized: list[int] | None = None

    module = source_module(fmt)
    if hasattr(module, "process"):  # LiTS: tumour only, liver bounding box
        image, label, affine, fg, extra_meta = module.process(dataset, src, raw, image, label, affine)
    elif dataset.get("instance_labels", False):
        instances, n_instances = _relabel(np.asarray(label).astype(np.int64, copy=False))
        fg = instances > 0
    elif dataset.get("foreground_labels"):
        fg = np.isin(label, np.asarray(dataset["foreground_labels"]))
    else:
        binarized = label_values(label)
        if binarized is not None:
            warnings.warn(
                f"case {case!r}: label {raw.label_file} holds the values {binarized}, not only 0 and 1; it is "
                "binarized (foreground = every value > 0); if the values are instance ids set "
                "instance_labels: true",
                LabelBinarizedWarning,
                stacklevel=2,
            )
        fg = label > 0
    label_out = fg.astype(np.uint8)

    norm_cfg = dict(dataset.get("normalization") or {"method": "minmax"})
    image_out = normalize_from_config(image, norm_cfg)

    label_voxels = int(label_out.sum(dtype=np.int64))
    empty = label_voxels == 0
    if empty:
        warnings.warn(
            f"case {case!r}: the label {raw.label_file} has no foreground voxel (empty); it is kept and "
            "marked empty in meta.json",
            EmptyLabelWarning,
            stacklevel=2,
        )
    if fmt is SourceFormat.SYNTHETIC:
        sources: dict[str, Any] = {"generator": "blobloss.data.synthetic.generate_case", **raw.extra}
    else:
        sources = {"images": list(raw.image_files), "label": raw.label_file}
    meta: dict[str, Any] = {
        "case": case,
        "dataset": name,
        "format": fmt.value,
        "shape": [int(s) for s in label_out.shape],
        "spacing": [float(s) for s in spacing],
        "spacing_unit": str(dataset.get("spacing_unit", "mm")),
        "channels": int(image_out.shape[0]),
        "channel_names": list(raw.channel_names),
        "label_voxels": label_voxels,
        "empty": bool(empty),
        "instance_labels": bool(dataset.get("instance_labels", False)),
        "binarized": binarized is not None,
        "normalization": norm_cfg,
        "sources": sources,
    }
    if binarized is not None:
        meta["label_values"] = binarized
    if n_instances is not None:
        meta["n_instances"] = n_instances
    meta.update(extra_meta)
    arrays = {"image": image_out, "label": label_out, "instances": instances, "affine": affine}
    return meta, arrays


def convert_case(
    dataset: Mapping[str, Any],
    case_id: str,
    sources: Mapping[str, Any],
    out_image: PathLike,
    out_label: PathLike,
    out_meta: PathLike,
    out_instances: PathLike | None = None,
) -> dict[str, Any]:
    """Convert one case into the standard layout: ``image.nii.gz``, ``label.nii.gz``, ``meta.json``.

    Reads (or generates) the case, runs every integrity check before writing anything, applies the
    LiTS tumour-only label and liver crop, instance-label handling and normalization, then writes the
    image (float32, ``(*spatial)`` or ``(*spatial, C)``), the binary label (uint8), the instance ids
    (uint32, only with ``instance_labels: true``) and finally ``meta.json``, each atomically.

    Args:
        dataset: The dataset config (``name``, ``source``, ``spacing``, ``spacing_unit``,
            ``instance_labels``, ``normalization``; optional ``foreground_labels``).
        case_id: Case id from :func:`discover_cases`.
        sources: Its sources from :func:`discover_cases`.
        out_image: Destination of the normalized image (``.nii.gz``).
        out_label: Destination of the binary label (``.nii.gz``).
        out_meta: Destination of the metadata (``.json``).
        out_instances: Destination of the instance ids; only valid with ``instance_labels: true`` (other
            datasets get their instance maps from the components stage).

    Returns:
        The meta dict written to ``out_meta``: ``case``, ``dataset``, ``format``, ``shape`` (spatial),
        ``spacing``, ``spacing_unit``, ``channels``, ``channel_names``, ``label_voxels``, ``empty``,
        ``instance_labels``, ``normalization``, ``sources``, and ``n_instances`` / ``crop`` where relevant.

    Raises:
        DataIntegrityError: On corrupt files or failed integrity checks (nothing is written then).
        ValueError: On config errors, or ``out_instances`` without ``instance_labels``.

    Warns:
        EmptyLabelWarning: When the label has no foreground voxel (``meta["empty"]`` is then True).

    Example:
        See the module docstring.
    """
    if out_instances is not None and not dataset.get("instance_labels", False):
        raise ValueError(
            f"case {case_id!r}: out_instances was given but dataset {dataset.get('name', '?')!r} has "
            "instance_labels: false; instance maps of such datasets come from the components stage (cc3d)"
        )
    raw = read_case(dataset, case_id, sources)
    meta, arrays = prepare_case(dataset, raw)
    spacing = meta["spacing"]
    affine = arrays["affine"]
    save_case_image(out_image, arrays["image"], spacing, affine)
    save_nifti(out_label, arrays["label"], spacing=spacing, affine=affine, dtype=np.uint8)
    if out_instances is not None:
        save_nifti(out_instances, arrays["instances"], spacing=spacing, affine=affine, dtype=np.uint32)
    write_json_atomic(out_meta, meta)
    return meta


def convert_dataset(dataset: Mapping[str, Any], out_dir: PathLike) -> list[dict[str, Any]]:
    """Convert every case of a dataset into ``out_dir/<case>/{image.nii.gz,label.nii.gz,meta.json}``.

    A convenience for scripts and notebooks (the pipeline converts case by case). With
    ``instance_labels: true`` the instance ids go to ``out_dir/<case>/instances.nii.gz``.

    Args:
        dataset: The dataset config.
        out_dir: Output root folder.

    Returns:
        The meta dicts, in case order.

    Example:
        >>> import tempfile
        >>> ds = {"name": "d", "source": {"format": "synthetic", "n_cases": 2, "shape": [16, 16]}}
        >>> [m["case"] for m in convert_dataset(ds, tempfile.mkdtemp())]
        ['case_000', 'case_001']
    """
    out = Path(out_dir)
    metas = []
    inst = bool(dataset.get("instance_labels", False))
    for case, sources in discover_cases(dataset).items():
        d = out / case
        metas.append(
            convert_case(
                dataset,
                case,
                sources,
                d / "image.nii.gz",
                d / "label.nii.gz",
                d / "meta.json",
                d / "instances.nii.gz" if inst else None,
            )
        )
    return metas
