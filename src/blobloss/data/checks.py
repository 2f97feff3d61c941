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

from collections.abc import Mapping, Sequence
from os import PathLike

import numpy as np

from blobloss.errors import DataIntegrityError, EmptyLabelWarning

__all__ = [
    "DataIntegrityError",
    "EmptyLabelWarning",
    "check_channel_shapes",
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
