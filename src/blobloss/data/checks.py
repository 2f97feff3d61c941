"""Integrity checks on user data, with errors that name the case, the file and the fix.

Every check raises :class:`DataIntegrityError` (a ``ValueError``) whose message follows one pattern::

    case '<case>': <what is wrong, naming the file(s) and the offending value(s)>; <how to fix it>

The checks run on arrays already in memory (the converters call them after reading a case and *before*
writing anything), so a failing case never leaves partial outputs behind.

Example:
    >>> import numpy as np
    >>> check_shapes("c1", (4, 4, 2), (4, 4, 3), "img.nii.gz", "lab.nii.gz")
    Traceback (most recent call last):
    ...
    blobloss.errors.DataIntegrityError: case 'c1': label lab.nii.gz has shape (4, 4, 3) but image img.nii.gz has (4, 4, 2); resample the label onto the image grid or fix the pairing
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np

from blobloss.errors import ConfigError, DataIntegrityError, EmptyLabelWarning, PatchPaddingWarning

__all__ = [
    "DataIntegrityError",
    "EmptyLabelWarning",
    "check_channel_shapes",
    "check_dataset",
    "check_patch_against_cases",
    "check_patch_size",
    "check_finite",
    "check_label_values",
    "check_pairs",
    "check_shapes",
    "check_spacing",
    "check_spacing_given",
]

PathStr = str | PathLike[str]


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in shape)


def check_shapes(
    case: str,
    image_shape: Sequence[int],
    label_shape: Sequence[int],
    image_file: PathStr,
    label_file: PathStr,
) -> None:
    """Check that the label has the image's spatial shape.

    Args:
        case: Case id, used in the message.
        image_shape: Spatial shape of the image (without the channel axis).
        label_shape: Shape of the label.
        image_file: Image file (for the message).
        label_file: Label file (for the message).

    Raises:
        DataIntegrityError: If the shapes differ.

    Example:
        >>> check_shapes("c1", (4, 4, 2), (4, 4, 2), "img.nii.gz", "lab.nii.gz")  # passes silently
    """
    if _shape(image_shape) != _shape(label_shape):
        raise DataIntegrityError(
            f"case {case!r}: label {label_file} has shape {_shape(label_shape)} but image {image_file} "
            f"has {_shape(image_shape)}; resample the label onto the image grid or fix the pairing"
        )


def check_spacing(
    case: str,
    image_spacing: Sequence[float],
    label_spacing: Sequence[float],
    image_file: PathStr,
    label_file: PathStr,
    rtol: float = 1e-3,
    other_kind: str = "label",
) -> None:
    """Check that image and label spacings agree within a relative tolerance.

    Args:
        case: Case id, used in the message.
        image_spacing: Image voxel spacing, one value per spatial axis.
        label_spacing: Label voxel spacing, one value per spatial axis.
        image_file: Image file (for the message).
        label_file: Label file (for the message).
        rtol: Relative tolerance (default 1e-3, i.e. 0.1 %).
        other_kind: What the second file is, for the message (``"label"`` or e.g. ``"channel image"``).

    Raises:
        DataIntegrityError: If the lengths differ or any axis differs by more than ``rtol``.

    Example:
        >>> check_spacing("c1", (1.0, 1.0, 3.0), (1.0, 1.0, 3.0001), "img", "lab")  # within 0.1 %
    """
    a = np.asarray(image_spacing, dtype=float)
    b = np.asarray(label_spacing, dtype=float)
    if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=0.0):
        raise DataIntegrityError(
            f"case {case!r}: {other_kind} {label_file} has spacing {tuple(round(float(v), 6) for v in b)} "
            f"but image {image_file} has {tuple(round(float(v), 6) for v in a)} (relative tolerance {rtol}); "
            f"resample the {other_kind} onto the image grid, fix the header, or set `spacing` in the "
            "dataset config to override both"
        )


def check_channel_shapes(
    case: str,
    shapes: Sequence[Sequence[int]],
    files: Sequence[PathStr],
) -> None:
    """Check that all channel images of a case share one spatial shape.

    Args:
        case: Case id, used in the message.
        shapes: One spatial shape per channel.
        files: One file per channel (for the message), same order as ``shapes``.

    Raises:
        DataIntegrityError: If any channel's shape differs from the first channel's.

    Example:
        >>> check_channel_shapes("c1", [(4, 4), (4, 4)], ["a_0000.nii", "a_0001.nii"])
    """
    if not shapes:
        return
    ref = _shape(shapes[0])
    bad = [(str(f), _shape(s)) for f, s in zip(files, shapes) if _shape(s) != ref]
    if bad:
        listing = ", ".join(f"{f} has {s}" for f, s in bad)
        raise DataIntegrityError(
            f"case {case!r}: channel images differ in shape: {files[0]} has {ref} but {listing}; "
            "all channels must lie on one grid: resample them (e.g. co-register onto the first channel)"
        )


def check_label_values(case: str, label: np.ndarray, label_file: PathStr) -> None:
    """Check that a label holds only non-negative integer values.

    Float labels are accepted when every value is integral (e.g. 0.0 / 1.0 stored as float32).

    Args:
        case: Case id, used in the message.
        label: Label array, any shape.
        label_file: Label file (for the message).

    Raises:
        DataIntegrityError: If the label holds NaN/Inf, fractional or negative values.

    Example:
        >>> check_label_values("c1", np.array([0.0, 1.0, 2.0]), "lab.nii.gz")
        >>> check_label_values("c1", np.array([0.0, 0.5]), "lab.nii.gz")
        Traceback (most recent call last):
        ...
        blobloss.errors.DataIntegrityError: case 'c1': label lab.nii.gz holds non-integer values (e.g. 0.5); labels must be integer class or instance ids: export the label with nearest-neighbour interpolation, or round it
    """
    arr = np.asarray(label)
    if arr.dtype == bool:
        return
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            raise DataIntegrityError(
                f"case {case!r}: label {label_file} holds {int((~finite).sum())} NaN/Inf values; "
                "labels must be integer class or instance ids: fix or re-export the label"
            )
        frac = arr != np.round(arr)
        if frac.any():
            example = float(arr[frac].flat[0])
            raise DataIntegrityError(
                f"case {case!r}: label {label_file} holds non-integer values (e.g. {example:g}); labels must "
                "be integer class or instance ids: export the label with nearest-neighbour "
                "interpolation, or round it"
            )
    elif not np.issubdtype(arr.dtype, np.integer):
        raise DataIntegrityError(
            f"case {case!r}: label {label_file} has dtype {arr.dtype}; labels must be integer class or "
            "instance ids: re-export the label as an integer image"
        )
    if arr.size and (np.issubdtype(arr.dtype, np.signedinteger) or np.issubdtype(arr.dtype, np.floating)):
        lowest = arr.min()
        if lowest < 0:
            raise DataIntegrityError(
                f"case {case!r}: label {label_file} holds negative values (minimum {lowest:g}); labels must "
                "be non-negative (0 = background): fix the label export"
            )


def check_finite(case: str, image: np.ndarray, image_file: PathStr | Sequence[PathStr]) -> None:
    """Check that an image holds no NaN or Inf intensities.

    Args:
        case: Case id, used in the message.
        image: Image array, any shape (e.g. ``(C, *spatial)``).
        image_file: Image file(s) (for the message).

    Raises:
        DataIntegrityError: If any value is NaN or +/-Inf, with their counts.

    Example:
        >>> check_finite("c1", np.zeros((1, 2, 2), np.float32), "img.nii.gz")
    """
    arr = np.asarray(image)
    if not np.issubdtype(arr.dtype, np.floating):
        return
    if np.isfinite(arr).all():
        return
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(np.isinf(arr).sum())
    files = image_file if isinstance(image_file, (str, PathLike)) else ", ".join(map(str, image_file))
    raise DataIntegrityError(
        f"case {case!r}: image {files} holds {n_nan} NaN and {n_inf} Inf values; fix the export or "
        "replace them (e.g. with the background value) before converting"
    )


def check_spacing_given(case: str, spacing: Sequence[float] | None, image_file: PathStr) -> None:
    """Check that a spacing is known and positive.

    Args:
        case: Case id, used in the message.
        spacing: Spacing per spatial axis, or ``None`` when the file carries none (e.g. a plain TIFF).
        image_file: Image file (for the message).

    Raises:
        DataIntegrityError: If the spacing is missing, non-finite or not positive.

    Example:
        >>> check_spacing_given("c1", (1.0, 0.5), "img.tif")
    """
    if spacing is None:
        raise DataIntegrityError(
            f"case {case!r}: image {image_file} carries no voxel spacing; set `spacing` (one value per "
            "spatial axis, in the file's axis order) in the dataset config"
        )
    sp = np.asarray(spacing, dtype=float)
    if not (np.isfinite(sp).all() and (sp > 0).all()):
        raise DataIntegrityError(
            f"case {case!r}: image {image_file} has invalid spacing {tuple(float(v) for v in sp)}; "
            "spacing values must be finite and positive: fix the header or set `spacing` in the "
            "dataset config"
        )


def check_pairs(
    images: Mapping[str, object],
    labels: Mapping[str, object],
    hint: str = "check the image/label glob patterns and suffixes in the dataset config",
    dataset: str | None = None,
) -> None:
    """Check that every image case has a label and every label has an image.

    Args:
        images: Case id -> its image file(s).
        labels: Case id -> its label file.
        hint: The fix, appended to the message.
        dataset: Dataset name, prefixed to the message when given.

    Raises:
        DataIntegrityError: Listing every unpaired case and its file(s).

    Example:
        >>> check_pairs({"a": "a.nii"}, {"a": "a_seg.nii"})
    """
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if not no_label and not no_image:
        return
    parts = []
    if no_label:
        parts.append(
            "images without a label: " + "; ".join(f"case {c!r} ({_files(images[c])})" for c in no_label)
        )
    if no_image:
        parts.append(
            "labels without an image: " + "; ".join(f"case {c!r} ({_files(labels[c])})" for c in no_image)
        )
    prefix = f"dataset {dataset!r}: " if dataset is not None else ""
    raise DataIntegrityError(prefix + "missing image/label pairs: " + " | ".join(parts) + f"; {hint}")


def _files(obj: object) -> str:
    if isinstance(obj, (list, tuple)):
        return ", ".join(str(o) for o in obj)
    return str(obj)


# --------------------------------------------------------------------------------------------------
# the patch-size rule (the one place it is checked)
# --------------------------------------------------------------------------------------------------


def check_patch_size(
    patch_size: Sequence[int],
    shape: Sequence[int] | None = None,
    *,
    divisor: int = 16,
    pad: bool = False,
    case: str | None = None,
    key: str = "training.patch_size",
) -> list[int]:
    """The patch-size rule: multiples of ``divisor``, a bottleneck of more than one voxel, no larger than a case.

    The networks downsample by ``divisor`` (16), so every entry must be a multiple of it and the
    bottleneck (``patch / 16``) needs more than one voxel, i.e. at least one entry >= 32. With ``shape``
    (a case's spatial shape) the patch must also fit inside the case: a larger patch would be zero-padded
    and train on an image that is mostly padding, so that is an error unless ``pad`` (the config's
    ``training.pad_to_patch: true``), which warns instead.

    Args:
        patch_size: One entry per spatial axis (2 or 3).
        shape: A case's spatial shape, or None to check the patch alone.
        divisor: What every entry must be a multiple of.
        pad: Allow a patch larger than the case (warn with :class:`~blobloss.errors.PatchPaddingWarning`).
        case: Case id for the messages.
        key: Config key for the messages.

    Returns:
        The axes along which the case is smaller than the patch (empty when it fits).

    Raises:
        ConfigError: When the patch breaks the rule.
        DataIntegrityError: When the case is smaller than the patch and ``pad`` is False.

    Example:
        >>> check_patch_size([64, 64, 32]), check_patch_size([32, 32], shape=(40, 30), pad=True)
        ([], [1])
        >>> check_patch_size([40, 32, 16])
        Traceback (most recent call last):
        ...
        blobloss.errors.ConfigError: training.patch_size [40, 32, 16] must have entries that are multiples of 16 (the network downsamples by 16); e.g. [32, 32, 16]
    """
    patch = [int(p) for p in patch_size]
    div = int(divisor)
    if len(patch) not in (2, 3):
        raise ConfigError(f"{key} {patch} needs 2 or 3 entries (one per spatial axis)")
    if any(p < div or p % div for p in patch):
        raise ConfigError(
            f"{key} {patch} must have entries that are multiples of {div} (the network downsamples by {div}); "
            f"e.g. {[max(div, round(p / div) * div) for p in patch]}"
        )
    if math.prod(p // div for p in patch) < 2:
        raise ConfigError(
            f"{key} {patch} is too small: the network's bottleneck (1/{div} of the patch) needs more than one "
            f"voxel; make at least one entry {2 * div} or larger"
        )
    if shape is None:
        return []
    spatial = tuple(int(s) for s in shape)
    who = f"case {case!r}" if case is not None else "a case"
    if len(spatial) != len(patch):
        raise DataIntegrityError(
            f"{who} has {len(spatial)} spatial axes (shape {spatial}) but {key} {patch} has {len(patch)} "
            "entries; give one entry per spatial axis"
        )
    small = [ax for ax, (s, p) in enumerate(zip(spatial, patch)) if s < p]
    if small and not pad:
        fit = [min(p, s // div * div) for s, p in zip(spatial, patch)]
        fits = min(fit) >= div and math.prod(f // div for f in fit) >= 2
        choose = f"choose a patch that fits every case (e.g. {fit}) or " if fits else ""
        raise DataIntegrityError(
            f"{who} has shape {spatial}, smaller than {key} {patch} along axis {', '.join(map(str, small))}; "
            f"{choose}set training.pad_to_patch: true to zero-pad such cases (with a warning)"
        )
    if small:
        warnings.warn(
            f"{who} has shape {spatial}, smaller than {key} {patch} along axis {', '.join(map(str, small))}; "
            "it is zero-padded to the patch (training.pad_to_patch: true)",
            PatchPaddingWarning,
            stacklevel=2,
        )
    return small


def _patch_problems(shapes: Mapping[str, Sequence[int]], patch_size: Sequence[int], pad: bool,
                    key: str = "training.patch_size") -> tuple[list[str], dict[str, list[int]]]:
    """The messages of the cases smaller than the patch (unless ``pad``), and the cases to be padded."""
    problems, padded = [], {}
    for case, shape in sorted(shapes.items()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PatchPaddingWarning)
                small = check_patch_size(patch_size, shape, pad=pad, case=case, key=key)
        except DataIntegrityError as exc:
            problems.append(str(exc))
        else:
            if small:
                padded[case] = small
    return problems, padded


def check_patch_against_cases(
    shapes: Mapping[str, Sequence[int]],
    patch_size: Sequence[int],
    pad: bool = False,
    dataset: str = "",
    key: str = "training.patch_size",
) -> dict[str, list[int]]:
    """The patch-size rule (:func:`check_patch_size`) against every case of a dataset at once.

    Args:
        shapes: ``{case: spatial shape}`` (e.g. the ``shape`` of each case in the dataset check's report).
        patch_size: The training patch size.
        pad: Allow cases smaller than the patch (they are zero-padded; no warning is raised here).
        dataset: Dataset name, for the message.
        key: The config key of the patch, for the messages.

    Returns:
        ``{case: axes along which it is smaller than the patch}`` for the cases that will be padded.

    Raises:
        DataIntegrityError: Naming every case smaller than the patch (the first 10) when ``pad`` is False.
        ConfigError: When the patch itself breaks the rule.

    Example:
        >>> check_patch_against_cases({"a": (40, 40), "b": (40, 24)}, [32, 32], pad=True)
        {'b': [1]}
    """
    problems, padded = _patch_problems(shapes, patch_size, pad, key)
    if problems:
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        name = f"dataset {dataset!r}: " if dataset else ""
        raise DataIntegrityError(
            f"{name}{len(problems)} case(s) are smaller than the training patch:\n  "
            + "\n  ".join(problems[:10]) + more
        )
    return padded


# --------------------------------------------------------------------------------------------------
# every case of a dataset at once
# --------------------------------------------------------------------------------------------------


def _check_one(dataset: Mapping[str, Any], case: str, sources: Mapping[str, Any]) -> dict[str, Any]:
    """Read and check one case; ``{"case", "error"}`` or its facts (shape, channels, foreground, ...)."""
    from blobloss.data.convert import check_case, label_values, read_case
    from blobloss.data.sources import source_config, source_module

    src = source_config(dataset)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = read_case(dataset, case, sources)
            spacing = check_case(dataset, raw)
            label = raw.label
            module = source_module(src["format"])
            values = None
            if hasattr(module, "process"):
                _, label, _, fg, _ = module.process(dataset, src, raw, raw.image, raw.label, raw.affine)
            elif dataset.get("instance_labels", False):
                fg = np.asarray(label) > 0
            elif dataset.get("foreground_labels"):
                fg = np.isin(label, np.asarray(dataset["foreground_labels"]))
            else:
                values = label_values(label)
                fg = np.asarray(label) > 0
        except (DataIntegrityError, ValueError) as exc:
            return {"case": case, "error": str(exc)}
    return {
        "case": case,
        "shape": [int(s) for s in np.shape(label)],
        "spacing": list(spacing),
        "channels": int(raw.image.shape[0]),
        "dtype": str(raw.image.dtype),
        "label_voxels": int(np.count_nonzero(fg)),
        "label_values": values,
        "notes": [str(w.message) for w in caught],
    }


def check_dataset(
    dataset: Mapping[str, Any],
    cases: Mapping[str, Mapping[str, Any]],
    patch_size: Sequence[int] | None = None,
    pad_to_patch: bool = False,
    threads: int = 1,
) -> dict[str, Any]:
    """Check every case of a dataset at once and report ALL problems in one error, before any conversion.

    Each case is read and put through the conversion's own checks (:func:`blobloss.data.convert.check_case`:
    readable files, 2D/3D image and label, channel axis, shapes, spacing, NaN/Inf intensities, label
    values); then the dataset as a whole: the same channel count and dimensionality in every case, every
    case at least as large as the training patch (:func:`check_patch_size`), and not every label empty.

    Args:
        dataset: The dataset config (``name``, ``source``, ...).
        cases: Case id -> sources (:func:`blobloss.data.convert.discover_cases`).
        patch_size: The training patch size (None: not checked against the cases).
        pad_to_patch: Allow cases smaller than the patch (they are zero-padded, with a warning).
        threads: Cases read in parallel.

    Returns:
        The report: ``dataset``, ``n_cases``, ``cases`` (per case: shape, spacing, channels, dtype,
        label_voxels, label_values), ``empty`` and ``binarized`` (case lists), ``padded`` and ``notes``.

    Raises:
        DataIntegrityError: Listing every problem of every case, one line each, with the fixes.

    Example:
        >>> ds = {"name": "d", "source": {"format": "synthetic", "n_cases": 2, "shape": [32, 32]}}
        >>> from blobloss.data.convert import discover_cases
        >>> check_dataset(ds, discover_cases(ds), patch_size=[32, 32])["n_cases"]
        2
    """
    from concurrent.futures import ThreadPoolExecutor

    name = str(dataset.get("name", "?"))
    items = sorted(cases.items())
    with ThreadPoolExecutor(max_workers=max(1, int(threads))) as pool:
        results = list(pool.map(lambda kv: _check_one(dataset, kv[0], kv[1]), items))
    problems = [r["error"] for r in results if "error" in r]
    good = [r for r in results if "error" not in r]

    if good:
        for what, key in (("channel(s)", "channels"), ("spatial axes", None)):
            value = (lambda r: r[key]) if key else (lambda r: len(r["shape"]))
            counts: dict[int, list[str]] = {}
            for r in good:
                counts.setdefault(value(r), []).append(r["case"])
            if len(counts) > 1:
                common = max(counts, key=lambda k: len(counts[k]))
                for v, names in sorted(counts.items()):
                    if v != common:
                        problems.append(
                            f"case(s) {names[:5]}{' ...' if len(names) > 5 else ''} have {v} {what} but "
                            f"{len(counts[common])} other case(s) have {common}; every case of a dataset needs "
                            "the same channels and dimensionality: fix or remove those cases"
                        )
    padded: dict[str, list[int]] = {}
    if patch_size is not None:
        patch_problems, padded = _patch_problems({r["case"]: r["shape"] for r in good}, patch_size, pad_to_patch)
        problems.extend(patch_problems)
    empty = [r["case"] for r in good if r["label_voxels"] == 0]
    if good and len(empty) == len(results):
        problems.append(
            f"every label of the dataset is empty (no foreground voxel in {len(empty)} case(s)); check "
            "source.label_glob, foreground_labels or tumour_label"
        )
    if problems:
        shown = problems[:25]
        more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
        n_bad = len({p.split("'")[1] for p in problems if p.startswith("case '")})
        where = (f"in {n_bad} of {len(results)} case(s)" if n_bad
                 else f"of the dataset as a whole ({len(results)} case(s) checked)")
        raise DataIntegrityError(
            f"dataset {name!r}: {len(problems)} problem(s) {where}; nothing was "
            "converted. Fix them and run again:\n  " + "\n  ".join(shown) + more
        )
    binarized = {r["case"]: r["label_values"] for r in good if r["label_values"]}
    notes = [n for r in good for n in r["notes"] if "binarized" not in n]
    if binarized:
        first = next(iter(binarized))
        notes.append(
            f"{len(binarized)} case(s) have labels with values other than 0/1 (e.g. {first}: "
            f"{binarized[first]}); they are binarized (foreground = every value > 0)"
        )
    if padded:
        notes.append(
            f"{len(padded)} case(s) are smaller than training.patch_size {list(patch_size or [])} and will be "
            f"zero-padded (training.pad_to_patch: true): {sorted(padded)[:10]}"
        )
    if empty:
        notes.append(f"{len(empty)} case(s) have an empty label (kept, marked empty): {empty[:10]}")
    return {
        "dataset": name,
        "n_cases": len(results),
        "cases": {r["case"]: {k: v for k, v in r.items() if k not in ("case", "notes")} for r in good},
        "empty": empty,
        "binarized": sorted(binarized),
        "padded": {k: v for k, v in sorted(padded.items())},
        "notes": notes,
    }
