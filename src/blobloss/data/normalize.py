"""Intensity normalization of case images (docs/definitions.md section 7).

Methods (``NormalizationMethod``):
    * ``none``: cast to float32, values unchanged.
    * ``minmax``: per channel, ``(x - min) / (max - min)`` -> ``[0, 1]`` (MS lesions, SHANEL).
    * ``percentile``: per channel, clip to the ``[lower, upper]`` percentiles of that channel's voxels (all
      voxels, background included), then scale that range to ``[0, 1]`` (DISCO-MS 0.5-99.5, DeepMACT 0-99.5).
    * ``ct_window``: a fixed Hounsfield window, the same for every channel: ``w = width * (1 + tolerance)``,
      clip to ``[center - w/2, center + w/2]`` and scale to ``[0, 1]``. LiTS: centre 30, width 150, +20 %
      -> ``[-60, 120]`` HU.

A channel whose range is zero (a constant image) becomes all zeros instead of dividing by zero.

Example:
    >>> import numpy as np
    >>> normalize(np.array([[0.0, 5.0, 10.0]]), "minmax")
    array([[0. , 0.5, 1. ]], dtype=float32)
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np

__all__ = ["NormalizationMethod", "normalize", "normalize_from_config", "ct_window_bounds"]


class NormalizationMethod(str, Enum):
    """Names of the normalization methods (the config's ``normalization.method``)."""

    NONE = "none"
    MINMAX = "minmax"
    PERCENTILE = "percentile"
    CT_WINDOW = "ct_window"

    @classmethod
    def parse(cls, value: str | NormalizationMethod) -> NormalizationMethod:
        """Return the member for ``value``; raise ``ValueError`` listing the options if unknown.

        Example:
            >>> NormalizationMethod.parse("minmax")
            <NormalizationMethod.MINMAX: 'minmax'>
        """
        try:
            return cls(value)
        except ValueError:
            options = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"unknown normalization method {value!r}; choose one of {options}") from None


_DEFAULTS: dict[str, float] = {
    "lower": 0.5,
    "upper": 99.5,
    "center": 30.0,
    "width": 150.0,
    "tolerance": 0.2,
}


def ct_window_bounds(center: float, width: float, tolerance: float = 0.0) -> tuple[float, float]:
    """Return the ``(low, high)`` intensity bounds of a CT window widened by ``tolerance``.

    Args:
        center: Window centre (HU).
        width: Window width (HU), > 0.
        tolerance: Fractional widening of the width (0.2 = +20 %), > -1.

    Example:
        >>> ct_window_bounds(30, 150, 0.2)
        (-60.0, 120.0)
    """
    if not np.isfinite(width) or width <= 0:
        raise ValueError(f"ct_window width must be a positive number, got {width!r}")
    if not np.isfinite(tolerance) or tolerance <= -1:
        raise ValueError(f"ct_window tolerance must be > -1 (a fraction, 0.2 = +20 %), got {tolerance!r}")
    w = float(width) * (1.0 + float(tolerance))
    return float(center) - w / 2.0, float(center) + w / 2.0


def _scale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not hi > lo:
        return np.zeros_like(x, dtype=np.float32)
    out = (np.clip(x, lo, hi) - lo) / (hi - lo)
    return out.astype(np.float32, copy=False)


def normalize(image: np.ndarray, method: str | NormalizationMethod = "minmax", **params: Any) -> np.ndarray:
    """Normalize a case image ``(C, *spatial)`` and return float32 of the same shape.

    Args:
        image: ``(C, *spatial)`` array (at least 2 axes), finite values.
        method: One of ``none``, ``minmax``, ``percentile``, ``ct_window`` (see the module docstring).
        **params: ``lower``, ``upper`` (percentile, in [0, 100]), ``center``, ``width``, ``tolerance``
            (ct_window). Parameters of other methods are accepted and ignored, so a whole
            ``normalization`` config section can be passed; unknown names raise.

    Returns:
        float32 array ``(C, *spatial)``, in ``[0, 1]`` for every method but ``none``.

    Raises:
        ValueError: On an unknown method or parameter, bad parameter values, an image with fewer than 2
            axes, or non-finite intensities.

    Example:
        >>> x = np.array([[[-100.0, 30.0, 300.0]]])  # (C=1, 1, 3)
        >>> normalize(x, "ct_window", center=30, width=150, tolerance=0.2)
        array([[[0. , 0.5, 1. ]]], dtype=float32)
    """
    m = NormalizationMethod.parse(method)
    unknown = sorted(set(params) - set(_DEFAULTS) - {"method"})
    if unknown:
        raise ValueError(
            f"normalize: unknown parameter(s) {unknown}; accepted: {sorted(_DEFAULTS)}"
        )
    p = {**_DEFAULTS, **{k: v for k, v in params.items() if k != "method" and v is not None}}
    x = np.asarray(image)
    if x.ndim < 2:
        raise ValueError(
            f"normalize: expected an image (C, *spatial), got shape {x.shape}; add a channel axis (image[None])"
        )
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise ValueError(f"normalize: image must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False) if x.dtype != np.float64 else x
    if not np.isfinite(x).all():
        raise ValueError("normalize: image holds NaN/Inf values; remove them first (see blobloss.data.checks)")

    if m is NormalizationMethod.NONE:
        return x.astype(np.float32, copy=True)
    if m is NormalizationMethod.CT_WINDOW:
        lo, hi = ct_window_bounds(float(p["center"]), float(p["width"]), float(p["tolerance"]))
        return _scale(x, lo, hi)

    out = np.empty(x.shape, dtype=np.float32)
    if m is NormalizationMethod.MINMAX:
        for c in range(x.shape[0]):
            out[c] = _scale(x[c], float(x[c].min()), float(x[c].max())) if x[c].size else x[c]
        return out

    lower, upper = float(p["lower"]), float(p["upper"])
    if not (0.0 <= lower < upper <= 100.0):
        raise ValueError(
            f"normalize: percentile bounds must satisfy 0 <= lower < upper <= 100, got lower={lower}, "
            f"upper={upper}"
        )
    for c in range(x.shape[0]):
        if x[c].size == 0:
            out[c] = x[c]
            continue
        lo, hi = np.percentile(x[c], [lower, upper])
        out[c] = _scale(x[c], float(lo), float(hi))
    return out


def normalize_from_config(image: np.ndarray, config: dict[str, Any] | None) -> np.ndarray:
    """Normalize with a dataset config's ``normalization`` section (``{"method": ..., **params}``).

    ``None`` or an empty dict means ``minmax``.

    Example:
        >>> normalize_from_config(np.array([[2.0, 4.0]]), {"method": "minmax", "lower": 0.5})
        array([[0., 1.]], dtype=float32)
    """
    cfg = dict(config or {})
    method = cfg.pop("method", "minmax")
    return normalize(image, method, **cfg)
