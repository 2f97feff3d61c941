"""Read and write images with their geometry, and write every output atomically.

Formats:
    * NIfTI (``.nii``, ``.nii.gz``) via nibabel; axes in nibabel's order, spacing from the header zooms.
    * TIFF (``.tif``, ``.tiff``) via tifffile; axes as stored, ``(z, y, x)`` or ``(y, x)``; spacing from
      ImageJ metadata / resolution tags when the file declares a physical unit, otherwise unknown.
    * MetaImage / NRRD (``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr``) via SimpleITK; transposed to ``(x, y, z)``
      so the axis order matches NIfTI, with an affine in nibabel's RAS+ convention.

Case images (the standard layout, see ``docs/CONVENTIONS.md``): in memory ``(C, *spatial)`` float32; on disk
a NIfTI holding ``(*spatial)`` for one channel and ``(*spatial, C)`` for ``C > 1`` (a 2D multi-channel image is
stored as ``(X, Y, 1, C)`` and tagged in the header so it loads back as 2D). Use :func:`load_case_image` and
:func:`save_case_image` so every stage shares that convention.

Atomic writes: every writer here writes to a hidden temporary file in the destination folder whose name
keeps the file's extension (``.image.tmp-<pid>-<token>.nii.gz``, so nibabel still compresses), then
``os.replace``-s it onto the final name. A crash or exception mid-write leaves no file under the final name.

Example:
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> save_case_image(os.path.join(d, "image.nii.gz"), np.zeros((2, 4, 4, 3), np.float32), (1.0, 1.0, 2.5))
    >>> img, spacing = load_case_image(os.path.join(d, "image.nii.gz"))
    >>> img.shape, spacing
    ((2, 4, 4, 3), (1.0, 1.0, 2.5))
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blobloss.errors import DataIntegrityError

__all__ = [
    "NIFTI_SUFFIXES",
    "TIFF_SUFFIXES",
    "ITK_SUFFIXES",
    "IMAGE_SUFFIXES",
    "Volume",
    "atomic_path",
    "image_suffix",
    "strip_image_suffix",
    "load_image",
    "save_nifti",
    "save_tiff",
    "load_case_image",
    "save_case_image",
    "read_json",
    "write_json_atomic",
]

PathLike = str | os.PathLike[str]

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
TIFF_SUFFIXES: tuple[str, ...] = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
ITK_SUFFIXES: tuple[str, ...] = (".mha", ".mhd", ".nrrd", ".nhdr")
IMAGE_SUFFIXES: tuple[str, ...] = NIFTI_SUFFIXES + TIFF_SUFFIXES + ITK_SUFFIXES

# Header tag marking a 2D multi-channel case image stored as (X, Y, 1, C).
_CASE_TAG_2D = b"blobloss spatial_ndim=2"


@dataclass
class Volume:
    """An image array with its geometry.

    Attributes:
        array: The data, axes in the file's order (NIfTI: nibabel order; TIFF: ``(z, y, x)``). Dtype as
            stored, so integer labels stay integer; NIfTI data with a scaling slope/intercept is scaled
            and returned as float32.
        spacing: Voxel size per array axis (same order as ``array.shape``). ``1.0`` per axis when the file
            carries no spacing (see ``spacing_from_file``).
        affine: 4x4 voxel-to-world matrix (NIfTI / ITK formats), or ``None`` (TIFF).
        spacing_from_file: ``False`` when the file declared no physical spacing (plain TIFF): callers must
            then take the spacing from the user's config.

    Example:
        >>> v = Volume(np.zeros((3, 4)), (1.0, 2.0), None)
        >>> v.ndim
        2
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray | None = None
    spacing_from_file: bool = True

    @property
    def ndim(self) -> int:
        """Number of array axes."""
        return self.array.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape."""
        return tuple(self.array.shape)


# --------------------------------------------------------------------------------------------------
# file names and atomic writes
# --------------------------------------------------------------------------------------------------


def image_suffix(path: PathLike) -> str:
    """Return the (possibly compound) image extension of ``path``, lower case.

    Example:
        >>> image_suffix("a/b.nii.gz"), image_suffix("x.TIF"), image_suffix("y.json")
        ('.nii.gz', '.tif', '.json')
    """
    name = Path(path).name.lower()
    for suf in IMAGE_SUFFIXES + (".tar.gz",):
        if name.endswith(suf):
            return suf
    return Path(name).suffix


def strip_image_suffix(path: PathLike) -> str:
    """Return the file name of ``path`` without its (compound) extension.

    Example:
        >>> strip_image_suffix("/data/BRATS_001_0000.nii.gz")
        'BRATS_001_0000'
    """
    name = Path(path).name
    suf = image_suffix(name)
    return name[: len(name) - len(suf)] if suf else name


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path`` with ``os.replace``.

    The temporary name is hidden and keeps the extension (``.image.tmp-<pid>-<token>.nii.gz``) so that
    format detection by extension still works. The parent folder is created if needed. If the body
    raises, the temporary file is removed and nothing appears under ``path``.

    Args:
        path: Final destination.

    Yields:
        The temporary path to write to.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> with atomic_path(os.path.join(d, "out.txt")) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> open(os.path.join(d, "out.txt")).read()
        'hello'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suf = image_suffix(final)
    stem = final.name[: len(final.name) - len(suf)] if suf else final.name
    tmp = final.with_name(f".{stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{suf}")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable: {obj!r}")


def write_json_atomic(path: PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically.

    NumPy scalars and arrays, paths and sets are converted to plain JSON types.

    Args:
        path: Destination file.
        obj: JSON-serialisable object.
        indent: JSON indentation.

    Raises:
        TypeError: If ``obj`` holds something JSON cannot represent (nothing is written then).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.json")
        >>> write_json_atomic(p, {"n": np.int64(3)})
        >>> read_json(p)
        {'n': 3}
    """
    text = json.dumps(obj, indent=indent, default=_json_default, allow_nan=True) + "\n"
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def read_json(path: PathLike) -> Any:
    """Read a JSON file.

    Raises:
        DataIntegrityError: If the file is missing or not valid JSON, naming the file.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.json")
        >>> write_json_atomic(p, [1, 2])
        >>> read_json(p)
        [1, 2]
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataIntegrityError(
            f"cannot read JSON file {path}: {exc}; check that the file exists and is valid JSON"
        ) from exc


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


def load_image(path: PathLike) -> Volume:
    """Read an image (NIfTI, TIFF, MetaImage or NRRD) with its geometry.

    The data is read eagerly, so a truncated or corrupt file fails here, not later.

    Args:
        path: Image file.

    Returns:
        The :class:`Volume` (array in the file's dtype and axis order, spacing per array axis, affine).

    Raises:
        DataIntegrityError: If the file is missing, unreadable, corrupt or of an unknown format, naming it.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.nii.gz")
        >>> save_nifti(p, np.ones((3, 4, 5), np.uint8), spacing=(1.0, 1.0, 2.0))
        >>> v = load_image(p)
        >>> v.shape, v.spacing, v.array.dtype
        ((3, 4, 5), (1.0, 1.0, 2.0), dtype('uint8'))
    """
    p = Path(path)
    suf = image_suffix(p)
    if not p.is_file():
        raise DataIntegrityError(f"image file {p} does not exist; check the path and the glob patterns")
    try:
        if suf in NIFTI_SUFFIXES:
            return _load_nifti(p)
        if suf in TIFF_SUFFIXES:
            return _load_tiff(p)
        if suf in ITK_SUFFIXES:
            return _load_itk(p)
    except DataIntegrityError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unusable
        raise DataIntegrityError(
            f"cannot read {p}: {type(exc).__name__}: {exc}; the file is unreadable or corrupt: "
            "re-download or re-export it"
        ) from exc
    raise DataIntegrityError(
        f"image {p} has unknown extension {suf!r}; supported: {', '.join(IMAGE_SUFFIXES)}"
    )


def _load_nifti(p: Path) -> Volume:
    import nibabel as nib

    img = nib.load(str(p))
    proxy = img.dataobj
    slope = float(getattr(proxy, "slope", 1.0))
    inter = float(getattr(proxy, "inter", 0.0))
    if nib.is_proxy(proxy) and (slope != 1.0 or inter != 0.0):
        # scaled data (e.g. int16 + scl_slope): scale in float32, not nibabel's float64 (half the memory)
        arr = np.asarray(proxy.get_unscaled()).astype(np.float32)
        arr *= np.float32(slope)
        arr += np.float32(inter)
    else:
        arr = np.asanyarray(proxy)
    arr = np.ascontiguousarray(arr)
    zooms = tuple(float(z) for z in img.header.get_zooms()[: arr.ndim])
    zooms = zooms + (1.0,) * (arr.ndim - len(zooms))
    return Volume(arr, zooms, np.asarray(img.affine, dtype=float), True)


def _load_tiff(p: Path) -> Volume:
    import tifffile

    with tifffile.TiffFile(str(p)) as tf:
        arr = tf.asarray()
        spacing = _tiff_spacing(tf, arr.ndim)
    if spacing is None:
        return Volume(arr, (1.0,) * arr.ndim, None, False)
    return Volume(arr, spacing, None, True)


def _tiff_spacing(tf: Any, ndim: int) -> tuple[float, ...] | None:
    """Spacing of a TIFF, only if the file declares a physical unit (ImageJ ``unit`` or OME sizes)."""
    page = tf.pages[0]
    ij = tf.imagej_metadata or {}
    unit = str(ij.get("unit", "")).strip().lower()
    if not unit or unit in ("pixel", "pixels", "none"):
        return None

    def _res(tag: str) -> float | None:
        t = page.tags.get(tag)
        if t is None:
            return None
        num, den = t.value
        return float(den) / float(num) if num else None

    sx, sy = _res("XResolution"), _res("YResolution")
    if sx is None or sy is None:
        return None
    if ndim == 2:
        return (sy, sx)
    if ndim == 3:
        sz = float(ij.get("spacing", 1.0))
        return (sz, sy, sx)
    return None


def _load_itk(p: Path) -> Volume:
    import SimpleITK as sitk

    img = sitk.ReadImage(str(p))
    arr = sitk.GetArrayFromImage(img)  # (z, y, x[, components])
    n = img.GetDimension()
    comps = img.GetNumberOfComponentsPerPixel()
    spatial_axes = list(range(n))[::-1]  # reverse spatial axes to (x, y, z)
    if comps > 1:
        arr = np.transpose(arr, spatial_axes + [n])
    else:
        arr = np.transpose(arr, spatial_axes)
    arr = np.ascontiguousarray(arr)
    spacing = tuple(float(s) for s in img.GetSpacing())
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(n, n)
    origin = np.asarray(img.GetOrigin(), dtype=float)
    affine = np.eye(4)
    affine[:n, :n] = direction * np.asarray(spacing)[None, :]
    affine[:n, 3] = origin
    # ITK is LPS+, nibabel is RAS+: flip the first two world axes
    affine[:2, :] *= -1
    if comps > 1:
        spacing = spacing + (1.0,)
    return Volume(arr, spacing, affine, True)


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------


def _spacing_tuple(spacing: Sequence[float] | None, n: int, what: str) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    sp = tuple(float(s) for s in spacing)
    if len(sp) > n or len(sp) == 0:
        raise ValueError(f"{what}: spacing {sp} has {len(sp)} entries but the array has {n} axes; give one "
                         "value per spatial axis")
    if not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"{what}: spacing {sp} must be finite and positive")
    return sp


def save_nifti(
    path: PathLike,
    array: np.ndarray,
    spacing: Sequence[float] | None = None,
    affine: np.ndarray | None = None,
    dtype: np.dtype | type | str | None = None,
) -> None:
    """Write an array as NIfTI (``.nii`` or ``.nii.gz``) atomically.

    Geometry: ``affine`` gives orientation and origin; ``spacing`` (one value per spatial axis, at most 3,
    or one per array axis) sets the voxel size. With both, the affine's direction columns are rescaled to
    ``spacing`` (spacing wins). With neither, the identity affine (1.0 spacing) is used.

    Args:
        path: Destination ending in ``.nii`` or ``.nii.gz``.
        array: Data, any of 1 to 5 dimensions (e.g. ``(X, Y, Z)`` or ``(X, Y, Z, C)``).
        spacing: Voxel size per axis (entries for leading axes; missing trailing axes get 1.0).
        affine: 4x4 voxel-to-world matrix.
        dtype: Output dtype (default: the array's; bool is stored as uint8, float64 as float32 only if asked).

    Raises:
        ValueError: On a non-NIfTI extension, a bad affine shape or a spacing of the wrong length.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "lab.nii.gz")
        >>> save_nifti(p, np.zeros((4, 4, 2), bool), spacing=(0.5, 0.5, 3.0), dtype=np.uint8)
        >>> load_image(p).spacing
        (0.5, 0.5, 3.0)
    """
    import nibabel as nib

    if image_suffix(path) not in NIFTI_SUFFIXES:
        raise ValueError(f"save_nifti: {path} must end in .nii or .nii.gz")
    arr = np.asarray(array)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.int64 and dtype is None:
        arr = arr.astype(np.int32) if arr.size == 0 or (arr.min() >= -(2**31) and arr.max() < 2**31) else arr
    aff = _build_affine(arr.ndim, spacing, affine, f"save_nifti({path})")
    img = nib.Nifti1Image(arr, aff)
    img.header.set_data_dtype(arr.dtype)
    sp = _spacing_tuple(spacing, arr.ndim, f"save_nifti({path})")
    zooms = list(img.header.get_zooms())
    if sp is not None:
        zooms[: len(sp)] = sp
    img.header.set_zooms(tuple(zooms))
    img.header.set_xyzt_units(xyz="mm")
    _write_nifti(img, path)


def _build_affine(
    ndim: int, spacing: Sequence[float] | None, affine: np.ndarray | None, what: str
) -> np.ndarray:
    n_spatial = min(ndim, 3)
    sp = _spacing_tuple(spacing, ndim, what)
    if affine is None:
        aff = np.eye(4)
        if sp is not None:
            for i in range(min(n_spatial, len(sp))):
                aff[i, i] = sp[i]
        return aff
    aff = np.array(affine, dtype=float)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise ValueError(f"{what}: affine must be a finite 4x4 matrix, got shape {aff.shape}")
    if sp is not None:
        for i in range(min(n_spatial, len(sp))):
            norm = np.linalg.norm(aff[:3, i])
            if norm > 0 and not np.isclose(norm, sp[i], rtol=1e-6):
                aff[:3, i] *= sp[i] / norm
    return aff


def _write_nifti(img: Any, path: PathLike) -> None:
    import nibabel as nib

    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def save_tiff(path: PathLike, array: np.ndarray, spacing: Sequence[float] | None = None, unit: str = "um") -> None:
    """Write a 2D ``(y, x)`` or 3D ``(z, y, x)`` array as an ImageJ TIFF atomically.

    The spacing (same axis order as the array) is stored in the resolution tags and ImageJ metadata, so
    :func:`load_image` reads it back.

    Args:
        path: Destination ending in ``.tif`` or ``.tiff``.
        array: 2D or 3D array (ImageJ-compatible dtype: uint8, uint16, int16, float32).
        spacing: Voxel size per axis, or ``None`` to store none.
        unit: Physical unit written to the ImageJ metadata (only with ``spacing``).

    Raises:
        ValueError: On a bad extension, dimensionality or spacing length.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "s.tif")
        >>> save_tiff(p, np.zeros((2, 3, 4), np.uint16), spacing=(5.0, 2.0, 2.0))
        >>> load_image(p).spacing
        (5.0, 2.0, 2.0)
    """
    import tifffile

    if image_suffix(path) not in TIFF_SUFFIXES:
        raise ValueError(f"save_tiff: {path} must end in .tif or .tiff")
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise ValueError(f"save_tiff: expected a 2D (y, x) or 3D (z, y, x) array, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    kwargs: dict[str, Any] = {}
    if spacing is not None:
        sp = _spacing_tuple(spacing, arr.ndim, f"save_tiff({path})")
        assert sp is not None
        if len(sp) != arr.ndim:
            raise ValueError(f"save_tiff({path}): spacing {sp} needs one value per axis of {arr.shape}")
        kwargs["resolution"] = (1.0 / sp[-1], 1.0 / sp[-2])
        meta: dict[str, Any] = {"unit": unit}
        if arr.ndim == 3:
            meta["spacing"] = sp[0]
            meta["axes"] = "ZYX"
        else:
            meta["axes"] = "YX"
        kwargs["metadata"] = meta
    with atomic_path(path) as tmp:
        tifffile.imwrite(str(tmp), arr, imagej=True, **kwargs)


# --------------------------------------------------------------------------------------------------
# the standard case layout
# --------------------------------------------------------------------------------------------------


def save_case_image(
    path: PathLike,
    image: np.ndarray,
    spacing: Sequence[float],
    affine: np.ndarray | None = None,
) -> None:
    """Write a case image ``(C, *spatial)`` as float32 NIfTI in the standard layout, atomically.

    One channel is stored as ``(*spatial)``; ``C > 1`` channels as ``(*spatial, C)`` (2D: ``(X, Y, 1, C)``,
    tagged in the header description so :func:`load_case_image` returns 2D again).

    Args:
        path: Destination ``.nii.gz``.
        image: ``(C, *spatial)`` with 2 or 3 spatial axes.
        spacing: One value per spatial axis.
        affine: Optional 4x4 matrix (orientation/origin); spacing wins on voxel size.

    Raises:
        ValueError: If ``image`` is not ``(C, X, Y)`` / ``(C, X, Y, Z)`` or spacing has the wrong length.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "image.nii.gz")
        >>> save_case_image(p, np.ones((3, 8, 6), np.float32), (0.5, 0.5))
        >>> a, s = load_case_image(p)
        >>> a.shape, s
        ((3, 8, 6), (0.5, 0.5))
    """
    import nibabel as nib

    img_arr = np.asarray(image)
    if img_arr.ndim not in (3, 4):
        raise ValueError(
            f"save_case_image({path}): expected (C, *spatial) with 2 or 3 spatial axes, got shape "
            f"{img_arr.shape}; add a leading channel axis (image[None]) for single-channel images"
        )
    n_spatial = img_arr.ndim - 1
    sp = tuple(float(s) for s in spacing)
    if len(sp) != n_spatial:
        raise ValueError(
            f"save_case_image({path}): spacing {sp} has {len(sp)} entries but the image has "
            f"{n_spatial} spatial axes (shape {img_arr.shape})"
        )
    c = img_arr.shape[0]
    arr = img_arr.astype(np.float32, copy=False)
    tag = b""
    if c == 1:
        data = arr[0]
    elif n_spatial == 3:
        data = np.moveaxis(arr, 0, -1)
    else:
        data = np.moveaxis(arr, 0, -1)[:, :, None, :]
        tag = _CASE_TAG_2D
    aff = _build_affine(min(n_spatial, 3), sp, affine, f"save_case_image({path})")
    nii = nib.Nifti1Image(np.ascontiguousarray(data), aff)
    nii.header.set_data_dtype(np.float32)
    zooms = list(nii.header.get_zooms())
    zooms[:n_spatial] = sp
    nii.header.set_zooms(tuple(zooms))
    nii.header.set_xyzt_units(xyz="mm")
    if tag:
        nii.header["descrip"] = tag
    _write_nifti(nii, path)


def load_case_image(path: PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a case image written by :func:`save_case_image` as ``(C, *spatial)`` float32.

    Convention: a 2D or 3D NIfTI is one channel; a 4D NIfTI is ``(X, Y, Z, C)`` (or ``(X, Y, 1, C)`` tagged
    as 2D).

    Args:
        path: Case image file.

    Returns:
        ``(image, spacing)``: image ``(C, *spatial)`` float32, spacing per spatial axis.

    Raises:
        DataIntegrityError: If the file is unreadable or has an unsupported number of axes.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "image.nii.gz")
        >>> save_case_image(p, np.ones((1, 4, 4, 2), np.float32), (1.0, 1.0, 3.0))
        >>> load_case_image(p)[0].shape
        (1, 4, 4, 2)
    """
    vol = load_image(path)
    arr = vol.array
    is_2d = False
    if image_suffix(path) in NIFTI_SUFFIXES:
        import nibabel as nib

        with contextlib.suppress(Exception):
            descrip = bytes(nib.load(str(path)).header["descrip"].tobytes()).rstrip(b"\x00")
            is_2d = descrip.startswith(_CASE_TAG_2D)
    if arr.ndim in (2, 3):
        out = arr[None]
        spacing = vol.spacing[: arr.ndim]
    elif arr.ndim == 4:
        if is_2d and arr.shape[2] == 1:
            out = np.moveaxis(arr[:, :, 0, :], -1, 0)
            spacing = vol.spacing[:2]
        else:
            out = np.moveaxis(arr, -1, 0)
            spacing = vol.spacing[:3]
    else:
        raise DataIntegrityError(
            f"case image {path} has shape {arr.shape}; expected (*spatial) or (*spatial, C) with 2 or 3 "
            "spatial axes: write it with blobloss.io.save_case_image"
        )
    return np.ascontiguousarray(out, dtype=np.float32), tuple(float(s) for s in spacing)
