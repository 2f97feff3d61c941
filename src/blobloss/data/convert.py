"""Convert raw datasets into the standard case layout (one folder per case).

Source formats (``dataset["source"]["format"]``):

* ``synthetic``: the built-in generator (:mod:`blobloss.data.synthetic`), generated in memory; case
  ``case_<i>`` uses the seed ``case_seed(source.seed, i)``; spacing 1.0 unless ``spacing`` is set.
* ``generic``: NIfTI / TIFF / MetaImage / NRRD files found with ``image_glob`` and ``label_glob`` (relative to
  ``source.path``, ``**`` allowed). Case id = file stem (without extension), minus one of
  ``channel_suffixes`` for multi-channel images (one file per channel, in the listed order), minus
  ``label_suffix`` for labels. A single NIfTI with one more axis than its label is read as channels-last.
* ``nnunet``: an nnU-Net (v1/v2) or Medical Segmentation Decathlon folder with ``dataset.json``,
  ``imagesTr/`` and ``labelsTr/`` (``imagesTs/`` is ignored). Channels come from ``channel_names`` (v2) or
  ``modality`` (v1 / MSD), the file ending from ``file_ending`` (default ``.nii.gz``). Images are either one
  file per channel (``<case>_0000<ending>``) or one file per case (MSD; 4D files hold the channels in the
  4th axis). Hidden files (e.g. macOS ``._*`` files in the MSD archives) are skipped.
* ``lits``: LiTS ``volume-<n>.nii[.gz]`` / ``segmentation-<n>.nii[.gz]`` anywhere under ``source.path``,
  case id ``lits_<n>``. Only ``tumour_label`` (default 2) is kept as foreground, and image and label are
  cropped to the liver's bounding box (liver = label >= 1) plus ``margin`` voxels (int or per axis,
  default 10), clipped to the volume; the crop is recorded in ``meta.json`` and in the output affine.
* ``lightsheet``: like ``generic`` (usually TIFF stacks, axes ``(z, y, x)``); TIFF files rarely carry a
  spacing, so ``spacing`` from the config is required unless the file declares one.

Label handling: the semantic label is binary (``label > 0``; or ``label in foreground_labels`` when the
dataset sets that optional key; LiTS: ``label == tumour_label``). With ``instance_labels: true`` the label
file holds instance ids (e.g. nuclei masks): the label is their binarization and the ids, renumbered to
1..N in increasing order of the original ids, are the instance map.

Every integrity check (:mod:`blobloss.data.checks`) runs before anything is written; outputs are written
atomically, ``meta.json`` last.

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

import glob
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from blobloss.data.checks import (
    DataIntegrityError,
    EmptyLabelWarning,
    check_channel_shapes,
    check_finite,
    check_label_values,
    check_pairs,
    check_shapes,
    check_spacing,
    check_spacing_given,
)
from blobloss.data.normalize import normalize_from_config
from blobloss.io import (
    TIFF_SUFFIXES,
    Volume,
    load_image,
    read_json,
    save_case_image,
    save_nifti,
    strip_image_suffix,
    write_json_atomic,
)

__all__ = [
    "SourceFormat",
    "RawCase",
    "discover_cases",
    "read_case",
    "prepare_case",
    "convert_case",
    "convert_dataset",
]

PathLike = str | os.PathLike[str]


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


def _source(dataset: Mapping[str, Any]) -> dict[str, Any]:
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


def _root(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> Path:
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


def _glob(root: Path, pattern: str) -> list[str]:
    return sorted(p for p in glob.glob(str(root / pattern), recursive=True) if os.path.isfile(p) and _visible(p))


# --------------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------------


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
    src = _source(dataset)
    fmt = src["format"]
    if fmt is SourceFormat.SYNTHETIC:
        cases = _discover_synthetic(dataset, src)
    elif fmt in (SourceFormat.GENERIC, SourceFormat.LIGHTSHEET):
        cases = _discover_generic(dataset, src)
    elif fmt is SourceFormat.NNUNET:
        cases = _discover_nnunet(dataset, src)
    else:
        cases = _discover_lits(dataset, src)
    if not cases:
        raise DataIntegrityError(
            f"dataset {dataset.get('name', '?')!r}: no cases found for format {fmt.value!r} under "
            f"{src.get('path')}; check source.path and the glob patterns"
        )
    return {k: cases[k] for k in sorted(cases)}


def _discover_synthetic(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from blobloss.data.synthetic import _check_shape, case_seed

    n = int(src["n_cases"])
    if n < 1:
        raise ValueError(f"dataset {dataset.get('name', '?')!r}: source.n_cases must be >= 1, got {n}")
    shape = list(_check_shape(src["shape"]))
    width = max(3, len(str(n - 1)))
    return {
        f"case_{i:0{width}d}": {"seed": case_seed(int(src["seed"]), i), "shape": shape, "index": i}
        for i in range(n)
    }


def _strip_suffix(stem: str, suffixes: Sequence[str]) -> tuple[str, int] | None:
    """Return (case id, channel index) for the longest suffix that ``stem`` ends in."""
    best = None
    for idx, suf in enumerate(suffixes):
        if stem.endswith(suf) and len(stem) > len(suf) and (best is None or len(suf) > len(suffixes[best])):
            best = idx
    if best is None:
        return None
    return stem[: len(stem) - len(suffixes[best])] if suffixes[best] else stem, best


def _discover_generic(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    name = dataset.get("name", "?")
    root = _root(dataset, src)
    label_files = _glob(root, str(src["label_glob"]))
    label_set = set(label_files)
    image_files = [f for f in _glob(root, str(src["image_glob"])) if f not in label_set]
    if not image_files:
        raise DataIntegrityError(
            f"dataset {name!r}: no image file matches {root / str(src['image_glob'])}; check source.path and "
            "source.image_glob"
        )
    suffixes = list(src.get("channel_suffixes") or [])
    label_suffix = str(src.get("label_suffix") or "")

    images: dict[str, list[str | None]] = {}
    unmatched: list[str] = []
    dup: list[str] = []
    for f in image_files:
        stem = strip_image_suffix(f)
        if suffixes:
            hit = _strip_suffix(stem, suffixes)
            if hit is None:
                unmatched.append(f)
                continue
            case, ch = hit
        else:
            case, ch = stem, 0
        slots = images.setdefault(case, [None] * max(1, len(suffixes)))
        if slots[ch] is not None:
            dup.append(f"{slots[ch]} and {f}")
        slots[ch] = f
    if unmatched:
        raise DataIntegrityError(
            f"dataset {name!r}: image file(s) {unmatched} end in none of channel_suffixes {suffixes}; fix "
            "source.channel_suffixes or narrow source.image_glob"
        )
    labels: dict[str, str] = {}
    bad_labels: list[str] = []
    for f in label_files:
        stem = strip_image_suffix(f)
        if label_suffix:
            if not stem.endswith(label_suffix):
                bad_labels.append(f)
                continue
            stem = stem[: len(stem) - len(label_suffix)]
        if stem in labels:
            dup.append(f"{labels[stem]} and {f}")
        labels[stem] = f
    if bad_labels:
        raise DataIntegrityError(
            f"dataset {name!r}: label file(s) {bad_labels} do not end in label_suffix {label_suffix!r}; fix "
            "source.label_suffix or narrow source.label_glob"
        )
    if dup:
        raise DataIntegrityError(
            f"dataset {name!r}: several files map to one case id: {dup}; keep one file per case (and "
            "channel) or narrow the glob patterns"
        )
    missing_ch = {c: [suffixes[i] for i, f in enumerate(s) if f is None] for c, s in images.items()}
    missing_ch = {c: m for c, m in missing_ch.items() if m}
    if missing_ch:
        listing = "; ".join(
            f"case {c!r} lacks channel(s) {m} (has {[f for f in images[c] if f]})"
            for c, m in sorted(missing_ch.items())
        )
        raise DataIntegrityError(
            f"dataset {name!r}: missing channel files: {listing}; every case needs one file per entry of "
            "source.channel_suffixes: check the files and the suffixes"
        )
    check_pairs(
        images,
        labels,
        hint="check source.image_glob / label_glob / channel_suffixes / label_suffix",
        dataset=name,
    )
    channel_names = [s.strip("_") or f"channel_{i}" for i, s in enumerate(suffixes)] if suffixes else ["image"]
    return {
        c: {"images": [str(f) for f in images[c]], "label": labels[c], "channel_names": channel_names}
        for c in images
    }


def _nnunet_channels(meta: Mapping[str, Any], path: Path) -> list[str]:
    chans = meta.get("channel_names", meta.get("modality"))
    if not isinstance(chans, Mapping) or not chans:
        raise DataIntegrityError(
            f"{path} has no 'channel_names' (nnU-Net v2) or 'modality' (MSD / nnU-Net v1) mapping; add "
            'e.g. "channel_names": {"0": "CT"}'
        )
    try:
        items = sorted(((int(k), str(v)) for k, v in chans.items()))
    except ValueError as exc:
        raise DataIntegrityError(f"{path}: channel keys must be integers 0..C-1, got {list(chans)}") from exc
    if [k for k, _ in items] != list(range(len(items))):
        raise DataIntegrityError(f"{path}: channel keys must be 0..C-1, got {[k for k, _ in items]}")
    return [v for _, v in items]


def _discover_nnunet(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    name = dataset.get("name", "?")
    root = _root(dataset, src)
    meta_path = root / "dataset.json"
    meta = read_json(meta_path)
    if not isinstance(meta, Mapping):
        raise DataIntegrityError(f"{meta_path} must hold a JSON object")
    channel_names = _nnunet_channels(meta, meta_path)
    n_ch = len(channel_names)
    ending = str(meta.get("file_ending", ".nii.gz"))
    label_files = _glob(root / "labelsTr", f"*{ending}")
    labels = {Path(f).name[: -len(ending)]: f for f in label_files}
    image_files = _glob(root / "imagesTr", f"*{ending}")
    if not image_files:
        raise DataIntegrityError(
            f"dataset {name!r}: no image file matches {root / 'imagesTr' / ('*' + ending)}; source.path must "
            "be the folder holding dataset.json, imagesTr/ and labelsTr/"
        )
    per_channel: dict[str, list[str | None]] = {}
    single: dict[str, str] = {}
    pat = re.compile(r"(.+)_(\d{4})")
    for f in image_files:
        stem = Path(f).name[: -len(ending)]
        m = pat.fullmatch(stem)
        if stem not in labels and m and int(m.group(2)) < n_ch:
            per_channel.setdefault(m.group(1), [None] * n_ch)[int(m.group(2))] = f
        elif m and m.group(1) in labels and int(m.group(2)) >= n_ch:
            raise DataIntegrityError(
                f"dataset {name!r}: image {f} has channel index {int(m.group(2))} but {meta_path} declares "
                f"{n_ch} channel(s) {channel_names}; fix dataset.json or remove the file"
            )
        else:
            single[stem] = f
    both = sorted(set(per_channel) & set(single))
    if both:
        raise DataIntegrityError(
            f"dataset {name!r}: case(s) {both} have both a single image file and per-channel files in "
            f"{root / 'imagesTr'}; keep one layout"
        )
    missing = {c: [i for i, f in enumerate(s) if f is None] for c, s in per_channel.items()}
    missing = {c: m for c, m in missing.items() if m}
    if missing:
        listing = "; ".join(
            f"case {c!r} lacks {[f'{c}_{i:04d}{ending}' for i in m]}" for c, m in sorted(missing.items())
        )
        raise DataIntegrityError(
            f"dataset {name!r}: missing channel files in {root / 'imagesTr'}: {listing}; dataset.json "
            f"declares {n_ch} channel(s) {channel_names}"
        )
    images: dict[str, list[str]] = {c: [str(f) for f in s] for c, s in per_channel.items()}
    images.update({c: [f] for c, f in single.items()})
    check_pairs(
        images,
        labels,
        hint=f"every imagesTr case needs labelsTr/<case>{ending} (and vice versa)",
        dataset=name,
    )
    return {c: {"images": images[c], "label": labels[c], "channel_names": channel_names} for c in images}


_LITS_VOL = re.compile(r"volume-(\d+)\.nii(\.gz)?")
_LITS_SEG = re.compile(r"segmentation-(\d+)\.nii(\.gz)?")


def _discover_lits(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    name = dataset.get("name", "?")
    root = _root(dataset, src)
    images: dict[str, str] = {}
    labels: dict[str, str] = {}
    dup: list[str] = []
    for f in _glob(root, "**/*.nii*"):
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


# --------------------------------------------------------------------------------------------------
# reading one case
# --------------------------------------------------------------------------------------------------


def _load(case: str, path: str, kind: str) -> Volume:
    try:
        return load_image(path)
    except DataIntegrityError as exc:
        raise DataIntegrityError(f"case {case!r}: {kind}: {exc}") from exc


def read_case(dataset: Mapping[str, Any], case_id: str, sources: Mapping[str, Any]) -> RawCase:
    """Read (or generate) one case from its sources, checking only what reading needs.

    Args:
        dataset: The dataset config.
        case_id: Case id (a key of :func:`discover_cases`).
        sources: Its sources (the value of :func:`discover_cases`).

    Returns:
        The :class:`RawCase`.

    Raises:
        DataIntegrityError: If a file is unreadable/corrupt, channels differ in shape or spacing, or a
            single image file does not hold the declared number of channels.

    Example:
        >>> ds = {"name": "d", "source": {"format": "synthetic", "shape": [16, 16]}}
        >>> read_case(ds, "case_000", {"seed": 0, "shape": [16, 16]}).image.shape
        (1, 16, 16)
    """
    src = _source(dataset)
    if src["format"] is SourceFormat.SYNTHETIC:
        from blobloss.data.synthetic import generate_case

        if "seed" not in sources or "shape" not in sources:
            raise ValueError(f"case {case_id!r}: synthetic sources need 'seed' and 'shape', got {dict(sources)}")
        image, label, instances = generate_case(int(sources["seed"]), tuple(sources["shape"]))
        return RawCase(
            case_id, image, label, None, None, [], "<generated>", ["synthetic"], None, instances,
            extra={"seed": int(sources["seed"]), "shape": [int(s) for s in sources["shape"]]},
        )

    files = [str(f) for f in sources.get("images", [])]
    label_file = str(sources.get("label", ""))
    if not files or not label_file:
        raise ValueError(
            f"case {case_id!r}: sources must hold 'images' (list of files) and 'label', got {dict(sources)}"
        )
    channel_names = list(sources.get("channel_names") or [])
    label_vol = _load(case_id, label_file, "label")
    vols = [_load(case_id, f, "image") for f in files]
    label_spacing = label_vol.spacing if label_vol.spacing_from_file else None

    if len(vols) == 1:
        vol = vols[0]
        arr = vol.array
        expected = len(channel_names) if channel_names else None
        if arr.ndim == label_vol.ndim + 1:  # channels in the last axis (MSD 4D); shapes checked later
            if Path(files[0]).name.lower().endswith(TIFF_SUFFIXES):
                raise DataIntegrityError(
                    f"case {case_id!r}: TIFF image {files[0]} has shape {arr.shape}, one axis more than its "
                    f"label {label_file} {label_vol.shape}; store one TIFF per channel and set "
                    "source.channel_suffixes"
                )
            image = np.moveaxis(arr, -1, 0)
            spacing = vol.spacing[: label_vol.ndim]
        else:
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
        image_files=files,
        label_file=label_file,
        channel_names=channel_names,
        label_spacing=tuple(float(s) for s in label_spacing) if label_spacing is not None else None,
    )


# --------------------------------------------------------------------------------------------------
# processing
# --------------------------------------------------------------------------------------------------


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
        DataIntegrityError: On any failed integrity check (see :mod:`blobloss.data.checks`).
        ValueError: On config errors (bad spacing length, margin, normalization).

    Example:
        >>> ds = {"name": "d", "source": {"format": "synthetic"}}
        >>> raw = read_case(ds, "case_000", {"seed": 0, "shape": [16, 16]})
        >>> meta, arrays = prepare_case(ds, raw)
        >>> float(arrays["image"].max()), meta["spacing"]
        (1.0, [1.0, 1.0])
    """
    src = _source(dataset)
    fmt = src["format"]
    name = str(dataset.get("name", "?"))
    case = raw.case
    image_file = raw.image_files[0] if raw.image_files else "<generated>"

    # --- integrity checks (nothing has been written yet)
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

    image = raw.image
    label = raw.label
    affine = None if raw.affine is None else np.array(raw.affine, dtype=float)
    crop = None

    # --- LiTS: tumour only, liver bounding box
    if fmt is SourceFormat.LITS:
        if dataset.get("instance_labels", False):
            raise ValueError(
                f"dataset {name!r}: instance_labels: true is not supported for format 'lits' (its labels are "
                "liver/tumour classes, not instance ids); set instance_labels: false"
            )
        tumour = int(src["tumour_label"])
        liver = label >= 1
        box = _bbox(liver)
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
            crop = {"start": [int(v) for v in lo], "stop": [int(v) for v in hi], "source_shape": list(spatial)}
            if affine is not None:
                affine[:3, 3] = affine[:3, :3] @ np.concatenate([lo, np.zeros(3 - lo.size)])[:3] + affine[:3, 3]
        fg = label == tumour
        instances = None
        n_instances = None
    else:
        instances = None
        n_instances = None
        if dataset.get("instance_labels", False):
            instances, n_instances = _relabel(np.asarray(label).astype(np.int64, copy=False))
            fg = instances > 0
        elif dataset.get("foreground_labels"):
            fg = np.isin(label, np.asarray(dataset["foreground_labels"]))
        else:
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
        "normalization": norm_cfg,
        "sources": sources,
    }
    if n_instances is not None:
        meta["n_instances"] = n_instances
    if crop is not None:
        meta["crop"] = crop
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
