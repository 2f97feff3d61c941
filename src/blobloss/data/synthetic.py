"""The built-in synthetic dataset: seeded 2D/3D cases with pronounced instance imbalance.

Each case holds

* 1-3 **large structures** (lobulated ellipsoids of roughly 1-5 thousand voxels at the default 3D size, a
  few thousand pixels in 2D) with a heterogeneous, textured interior;
* 20-80 **small blobs** (scaled with the volume for sizes other than the default) with log-normal sizes
  from 2 voxels to several hundred, about a quarter of them elongated / string-like; about a quarter are
  **faint** (contrast barely above the background noise);
* a noisy, textured background: smoothed Gaussian noise (``scipy.ndimage.gaussian_filter``) plus white
  noise plus a low-frequency multiplicative-looking bias field (a sum of a few slow cosine waves).

Blobs that overlap or touch simply merge; the instance map is computed afterwards with ``cc3d`` (connectivity
26 in 3D, 8 in 2D), so the instances are exactly the connected components of the label (docs/definitions.md section 1).
Everything depends only on ``seed`` and ``shape``; a 64x64x32 case takes a few tens of milliseconds.

Example:
    >>> image, label, instances = generate_case(0, (32, 32, 16))
    >>> image.shape, image.dtype, label.dtype, instances.dtype
    ((1, 32, 32, 16), dtype('float32'), dtype('uint8'), dtype('uint32'))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cc3d
import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["DEFAULT_SHAPE_2D", "DEFAULT_SHAPE_3D", "case_seed", "generate_case", "write_synthetic_raw"]

DEFAULT_SHAPE_3D: tuple[int, int, int] = (64, 64, 32)
DEFAULT_SHAPE_2D: tuple[int, int] = (128, 128)
_REF_SIZE = {2: float(np.prod(DEFAULT_SHAPE_2D)), 3: float(np.prod(DEFAULT_SHAPE_3D))}
_MIN_EDGE = 8


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a synthetic dataset with dataset seed ``seed`` (independent streams).

    Example:
        >>> case_seed(0, 1) == case_seed(0, 1) != case_seed(0, 2)
        True
    """
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shp = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a sequence of 2 or 3 ints, got {shape!r}") from None
    if len(shp) not in (2, 3) or any(s < _MIN_EDGE for s in shp):
        raise ValueError(
            f"shape must have 2 (2D) or 3 (3D) entries, each >= {_MIN_EDGE}, got {shape!r}; e.g. "
            f"{list(DEFAULT_SHAPE_3D)} or {list(DEFAULT_SHAPE_2D)}"
        )
    return shp


def _random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(ndim, ndim)))
    return q * np.sign(np.diag(r))[None, :]


def _unit_ball_volume(ndim: int) -> float:
    return np.pi if ndim == 2 else 4.0 / 3.0 * np.pi


def _paint_ellipsoid(
    mask: np.ndarray,
    values: np.ndarray,
    center: np.ndarray,
    semi_axes: np.ndarray,
    rotation: np.ndarray,
    value: float,
) -> None:
    """Set ``mask`` True and ``values`` to max(value, current) inside a rotated ellipsoid (in place)."""
    shape = np.asarray(mask.shape)
    reach = float(semi_axes.max()) + 1.0
    lo = np.maximum(np.floor(center - reach).astype(int), 0)
    hi = np.minimum(np.ceil(center + reach).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return
    axes = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    # coordinates in the ellipsoid frame: d_j = sum_i (x_i - c_i) R_ij
    q = 0.0
    for j in range(mask.ndim):
        d = sum((axes[i] - center[i]) * rotation[i, j] for i in range(mask.ndim))
        q = q + (d / semi_axes[j]) ** 2
    inside = q <= 1.0
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    mask[box] |= inside
    values[box] = np.where(inside, np.maximum(values[box], value), values[box])
    if int(inside.sum()) >= 2:
        return
    # very small blobs: keep the centre voxel and its neighbour along the longest axis (>= 2 voxels)
    c = np.clip(np.round(center).astype(int), 0, shape - 1)
    step = np.round(rotation[:, int(np.argmax(semi_axes))]).astype(int)
    if not step.any():
        step[int(np.argmax(np.abs(rotation[:, int(np.argmax(semi_axes))])))] = 1
    n = c + step if np.all(c + step < shape) and np.all(c + step >= 0) else c - step
    for v in (c, np.clip(n, 0, shape - 1)):
        mask[tuple(v)] = True
        values[tuple(v)] = max(values[tuple(v)], value)


def _semi_axes(volume: float, ratios: np.ndarray) -> np.ndarray:
    ndim = len(ratios)
    base = (volume / (_unit_ball_volume(ndim) * float(np.prod(ratios)))) ** (1.0 / ndim)
    return np.maximum(base * ratios, 0.75)


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(3):
        direction = rng.normal(size=len(shape))
        direction /= np.linalg.norm(direction)
        cycles = rng.uniform(0.2, 1.0)
        phase = rng.uniform(0, 2 * np.pi)
        arg = sum(g / s * d for g, s, d in zip(grids, shape, direction))
        field += (rng.uniform(0.05, 0.12) * np.cos(2 * np.pi * cycles * arg + phase)).astype(np.float32)
    return field


def _smoothed_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    n = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=sigma)
    std = float(n.std())
    return n / std if std > 0 else n


def generate_case(
    seed: int, shape: Sequence[int] = DEFAULT_SHAPE_3D
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate one synthetic case.

    Args:
        seed: Random seed; the same ``(seed, shape)`` always gives the same case.
        shape: Spatial shape, 2 entries (2D, default demo size 128x128) or 3 entries (3D, default
            64x64x32), each >= 8.

    Returns:
        ``(image, label, instances)``: image ``(1, *shape)`` float32 (roughly in [-0.5, 2.5], not
        normalized), label ``(*shape)`` uint8 in {0, 1}, instances ``(*shape)`` uint32 (0 = background,
        1..N = the label's connected components, connectivity 26 in 3D / 8 in 2D).

    Raises:
        ValueError: If ``shape`` does not have 2 or 3 entries >= 8.

    Example:
        >>> img, lab, inst = generate_case(3, (128, 128))
        >>> img.shape, lab.shape, int(inst.max()) > 10
        ((1, 128, 128), (128, 128), True)
    """
    shp = _check_shape(shape)
    ndim = len(shp)
    rng = np.random.default_rng(int(seed))
    size = float(np.prod(shp))
    scale = size / _REF_SIZE[ndim]
    dims = np.asarray(shp, dtype=float)
    gmean = size ** (1.0 / ndim)

    mask = np.zeros(shp, dtype=bool)
    contrast = np.zeros(shp, dtype=np.float32)
    large_mask = np.zeros(shp, dtype=bool)
    large_contrast = np.zeros(shp, dtype=np.float32)

    # 1-3 large, lobulated structures
    for _ in range(int(rng.integers(1, 4))):
        radius = gmean * (rng.uniform(0.11, 0.17) if ndim == 3 else rng.uniform(0.07, 0.1))
        center = rng.uniform(0.25, 0.75, size=ndim) * dims
        value = float(rng.uniform(0.7, 1.1))
        for lobe in range(int(rng.integers(1, 4))):
            ratios = rng.uniform(0.7, 1.4, size=ndim)
            semi = np.minimum(radius * ratios * (1.0 if lobe == 0 else rng.uniform(0.5, 0.8)), 0.3 * dims)
            offset = 0.0 if lobe == 0 else rng.normal(size=ndim) * radius * 0.6
            _paint_ellipsoid(large_mask, large_contrast, center + offset, semi, _random_rotation(rng, ndim), value)

    # many small blobs with log-normal sizes, some elongated, some faint
    n_small = max(3, int(round(int(rng.integers(20, 81)) * scale)))
    max_small = 800.0 if ndim == 3 else 300.0
    for _ in range(n_small):
        volume = float(np.clip(rng.lognormal(mean=np.log(14.0), sigma=1.1), 2.0, max_small))
        if rng.random() < 0.25:  # string-like
            ratios = np.ones(ndim)
            ratios[0] = rng.uniform(3.0, 7.0)
            if ndim == 3:
                ratios[1] = rng.uniform(0.7, 1.3)
        else:
            ratios = rng.uniform(0.6, 1.5, size=ndim)
        semi = _semi_axes(volume, ratios)
        center = rng.uniform(0, 1, size=ndim) * (dims - 1)
        value = float(rng.uniform(0.12, 0.3) if rng.random() < 0.25 else rng.uniform(0.45, 1.2))
        _paint_ellipsoid(mask, contrast, center, semi, _random_rotation(rng, ndim), value)

    # heterogeneous interior texture of the large structures
    texture = 1.0 + 0.25 * _smoothed_noise(rng, shp, sigma=2.0)
    contrast = np.maximum(contrast, large_contrast * texture.astype(np.float32))
    mask |= large_mask

    signal = gaussian_filter(contrast, sigma=0.6)
    background = 0.1 * _smoothed_noise(rng, shp, sigma=1.5) + 0.08 * rng.standard_normal(shp, dtype=np.float32)
    image = (0.2 + _bias_field(rng, shp) + signal + background).astype(np.float32)

    label = mask.astype(np.uint8)
    instances = cc3d.connected_components(label, connectivity=26 if ndim == 3 else 8).astype(np.uint32)
    return image[None], label, instances


def write_synthetic_raw(
    folder: str | os.PathLike[str],
    n_cases: int = 8,
    shape: Sequence[int] = DEFAULT_SHAPE_3D,
    seed: int = 0,
    spacing: Sequence[float] | None = None,
) -> list[Path]:
    """Write a synthetic dataset as raw NIfTI files in the ``generic`` layout (``images/``, ``labels/``).

    Useful to exercise the generic converter on realistic data; the pipeline itself generates synthetic
    cases in memory. Case ``i`` uses :func:`case_seed` ``(seed, i)``, like the synthetic converter.

    Args:
        folder: Root folder (created); files go to ``images/case_XXX.nii.gz`` and ``labels/case_XXX.nii.gz``.
        n_cases: Number of cases (>= 1).
        shape: Spatial shape, see :func:`generate_case`.
        seed: Dataset seed.
        spacing: Voxel spacing written to the headers (default 1.0 per axis).

    Returns:
        The written image paths.

    Example:
        >>> import tempfile
        >>> len(write_synthetic_raw(tempfile.mkdtemp(), n_cases=2, shape=(16, 16, 8)))
        2
    """
    from blobloss.io import save_nifti

    if int(n_cases) < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases!r}")
    root = Path(folder)
    out = []
    for i in range(int(n_cases)):
        image, label, _ = generate_case(case_seed(seed, i), shape)
        img_path = root / "images" / f"case_{i:03d}.nii.gz"
        save_nifti(img_path, image[0], spacing=spacing, dtype=np.float32)
        save_nifti(root / "labels" / f"case_{i:03d}.nii.gz", label, spacing=spacing, dtype=np.uint8)
        out.append(img_path)
    return out
