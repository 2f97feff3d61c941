"""The built-in criteria of the blob loss (soft Dice, Tversky, BCE) and how a loss resolves its criterion.

This module holds everything that is about *one* criterion, independent of instances:

* the closed forms of soft Dice and Tversky from spatial sums (:func:`dice_from_sums`,
  :func:`tversky_from_sums`), shared by the fused path and the global term;
* :func:`reference_criterion`, the per-call criterion modules the per-instance loop uses
  (MONAI ``DiceLoss`` / ``TverskyLoss`` on probabilities, torch binary cross-entropy);
* :func:`resolve_criterion`, shared by the blob losses.

The options (:class:`CriterionSettings`, :class:`Criterion`, :class:`MaskSpace`, :class:`Implementation`,
:func:`parse_option`) live in :mod:`blobloss.losses.settings` and are re-exported here. Conventions follow
MONAI's defaults (``DiceLoss``: ``smooth_nr = smooth_dr = 1e-5``, ``squared_pred=False``; ``TverskyLoss``
with ``alpha = 0.3, beta = 0.7`` as in the paper).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from blobloss.losses.settings import (
    ClassReduction,
    Criterion,
    CriterionSettings,
    Implementation,
    MaskSpace,
    parse_option,
)

__all__ = [
    "ClassReduction",
    "Criterion",
    "CriterionFn",
    "CriterionSettings",
    "Implementation",
    "MaskSpace",
    "dice_from_sums",
    "parse_option",
    "reference_criterion",
    "resolve_criterion",
    "tversky_from_sums",
]

_LEGACY_FIELDS = ("smooth_nr", "smooth_dr", "tversky_alpha", "tversky_beta")


def _reject_unknown(kwargs: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(kwargs) - set(_LEGACY_FIELDS))
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {unknown}.")


def settings_from_legacy(
    settings: CriterionSettings | Mapping[str, Any] | None,
    legacy: Mapping[str, Any],
    where: str,
    stacklevel: int = 3,
) -> CriterionSettings:
    """The :class:`CriterionSettings` of a call that may still pass the old loose keywords.

    Args:
        settings: The new ``criterion_settings`` argument (a settings object, a mapping, or None).
        legacy: The old keywords (``smooth_nr``, ``smooth_dr``, ``tversky_alpha``, ``tversky_beta``) that
            were given (None values are ignored).
        where: The function or class, shown in the warning.
        stacklevel: Passed to :func:`warnings.warn`.

    Returns:
        The settings.

    Raises:
        ValueError: If both forms are given.
    """
    given = {k: v for k, v in legacy.items() if v is not None}
    if isinstance(settings, Mapping):
        settings = CriterionSettings.from_mapping(settings, where="criterion_settings")
    if not given:
        return settings if settings is not None else CriterionSettings()
    if settings is not None:
        raise ValueError(
            f"{where}: pass the criterion options either as criterion_settings=CriterionSettings(...) or as the "
            f"deprecated keywords {sorted(given)}, not both."
        )
    new_form = ", ".join(f"{k}={v!r}" for k, v in given.items())
    warnings.warn(
        f"{where}: the keywords {sorted(given)} are deprecated; pass "
        f"criterion_settings=CriterionSettings({new_form}) (from blobloss.losses import CriterionSettings).",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return CriterionSettings(**given)


#: A criterion called as ``criterion(probabilities, target)`` returning a scalar tensor.
CriterionFn = Callable[[Tensor, Tensor], Tensor]


def dice_from_sums(
    intersection: Tensor,
    pred_sum: Tensor,
    target_sum: Tensor,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
) -> Tensor:
    """Soft Dice loss from spatial sums, as MONAI ``DiceLoss`` (``squared_pred=False``).

    ``1 - (2 * sum(p t) + smooth_nr) / (sum(t) + sum(p) + smooth_dr)``, elementwise over the inputs.

    Args:
        intersection: ``sum(p * t)``, any shape.
        pred_sum: ``sum(p)``, same shape.
        target_sum: ``sum(t)``, same shape.
        smooth_nr: Added to the numerator.
        smooth_dr: Added to the denominator.

    Returns:
        The loss, same shape as the inputs.

    Example:
        >>> t = torch.tensor
        >>> float(dice_from_sums(t(2.0), t(4.0), t(4.0), 0.0, 0.0))
        0.5
    """
    return 1.0 - (2.0 * intersection + smooth_nr) / (target_sum + pred_sum + smooth_dr)


def tversky_from_sums(
    tp: Tensor,
    fp: Tensor,
    fn: Tensor,
    alpha: float = 0.3,
    beta: float = 0.7,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
) -> Tensor:
    """Tversky loss from soft TP / FP / FN sums, as MONAI ``TverskyLoss``.

    ``1 - (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)`` with ``tp = sum(p t)``,
    ``fp = sum(p (1 - t))`` and ``fn = sum((1 - p) t)``.

    Args:
        tp: Soft true positives, any shape.
        fp: Soft false positives, same shape.
        fn: Soft false negatives, same shape.
        alpha: Weight of the false positives.
        beta: Weight of the false negatives.
        smooth_nr: Added to the numerator.
        smooth_dr: Added to the denominator.

    Returns:
        The loss, same shape as the inputs.

    Example:
        >>> t = torch.tensor
        >>> round(float(tversky_from_sums(t(1.0), t(0.0), t(1.0), 0.5, 0.5, 0.0, 0.0)), 4)  # 1 - 1 / 1.5
        0.3333
    """
    return 1.0 - (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)


def _bce_on_probabilities(probabilities: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy of probabilities (torch semantics: log clamped at -100)."""
    return F.binary_cross_entropy(probabilities, target.to(probabilities.dtype))


def reference_criterion(
    criterion: Criterion, settings: CriterionSettings | None = None, **deprecated: float
) -> CriterionFn:
    """The straightforward module for a built-in criterion, called on probabilities.

    Used by the per-instance loop (``implementation="loop"``), which is the reference the fused path
    is tested against. Each returned callable takes ``(probabilities, target)`` of shape
    ``(B, 1, *spatial)`` and returns the mean over the batch elements (MONAI ``batch=False``). Dice and
    Tversky are MONAI's losses, so this needs MONAI (``pip install "blobloss[monai]"``); the fused path
    does not.

    Args:
        criterion: Which built-in criterion.
        settings: Smoothing and Tversky weights (defaults: :class:`CriterionSettings`).
        **deprecated: The old keywords ``smooth_nr``, ``smooth_dr``, ``tversky_alpha``, ``tversky_beta``
            (a DeprecationWarning shows the new form).

    Returns:
        A callable ``(probabilities, target) -> scalar tensor``.

    Raises:
        ImportError: For Dice / Tversky without MONAI installed, naming the extra to install.

    Example:
        >>> dice = reference_criterion(Criterion.DICE)
        >>> p = torch.full((1, 1, 4, 4), 0.5)
        >>> round(float(dice(p, torch.ones_like(p))), 4)  # 1 - 2*8 / (16 + 8)
        0.3333
    """
    _reject_unknown(deprecated, "reference_criterion")
    s = settings_from_legacy(settings, deprecated, "reference_criterion")
    if criterion is Criterion.BCE:
        return _bce_on_probabilities
    if criterion not in (Criterion.DICE, Criterion.TVERSKY):
        raise ValueError(
            f"criterion={criterion!r} has no reference module; use one of {[c.value for c in Criterion]}."
        )
    from blobloss._optional import require

    monai_losses = require("monai.losses", extra="monai", purpose="the per-instance loop (implementation='loop')")
    if criterion is Criterion.DICE:
        return monai_losses.DiceLoss(sigmoid=False, smooth_nr=s.smooth_nr, smooth_dr=s.smooth_dr)
    return monai_losses.TverskyLoss(
        sigmoid=False, alpha=s.tversky_alpha, beta=s.tversky_beta, smooth_nr=s.smooth_nr, smooth_dr=s.smooth_dr
    )


def resolve_criterion(
    criterion: str | Criterion | CriterionFn,
    implementation: str | Implementation,
    settings: CriterionSettings | None = None,
) -> tuple[Criterion | None, CriterionFn | None, Implementation]:
    """Resolve a loss's ``criterion`` and ``implementation`` options (shared by the blob losses).

    Args:
        criterion: A built-in name (``"dice"``, ``"tversky"``, ``"bce"``) or a callable
            ``criterion(probabilities, target) -> scalar``.
        implementation: ``"auto"`` (fused for built-in criteria, loop otherwise), ``"fused"`` or ``"loop"``.
        settings: Options of the built-in criteria.

    Returns:
        ``(builtin, criterion_fn, implementation)``: the built-in criterion (None for a callable), the
        per-instance criterion the loop calls (None for a built-in criterion on the fused path, which does
        not need it), and the resolved implementation.

    Raises:
        TypeError: If ``criterion`` is neither a known name nor callable.
        ValueError: On an unknown name, or ``implementation="fused"`` with a custom criterion.

    Example:
        >>> b, fn, impl = resolve_criterion("dice", "auto")
        >>> b.value, fn, impl.value
        ('dice', None, 'fused')
    """
    impl = parse_option(implementation, Implementation, "implementation")
    builtin: Criterion | None
    criterion_fn: CriterionFn | None
    if isinstance(criterion, (str, Criterion)):
        builtin = parse_option(criterion, Criterion, "criterion")
        criterion_fn = None
    elif callable(criterion):
        builtin = None
        criterion_fn = criterion
    else:
        raise TypeError(
            f"criterion={criterion!r} must be one of {[c.value for c in Criterion]} or a callable "
            "criterion(probabilities, target) -> scalar tensor (e.g. a MONAI loss with sigmoid=False)."
        )
    if impl is Implementation.AUTO:
        impl = Implementation.FUSED if builtin is not None else Implementation.LOOP
    if impl is Implementation.FUSED and builtin is None:
        raise ValueError(
            "implementation='fused' needs a built-in criterion ('dice', 'tversky' or 'bce'); "
            "use implementation='loop' (or 'auto') for a custom criterion."
        )
    if builtin is not None and impl is Implementation.LOOP:
        criterion_fn = reference_criterion(builtin, settings)
    return builtin, criterion_fn, impl
