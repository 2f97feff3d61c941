"""Option enums and the built-in criteria of the blob loss (soft Dice, Tversky, BCE).

This module holds everything that is about *one* criterion, independent of instances:

* the string options of :class:`~blobloss.losses.BlobLoss` as ``str`` enums with readable errors
  (:class:`Criterion`, :class:`MaskSpace`, :class:`Implementation`, :func:`parse_option`);
* the closed forms of soft Dice and Tversky from spatial sums (:func:`dice_from_sums`,
  :func:`tversky_from_sums`), shared by the fused path and the global term;
* :func:`reference_criterion`, the per-call criterion modules the per-instance loop uses
  (MONAI ``DiceLoss`` / ``TverskyLoss`` on probabilities, torch binary cross-entropy).

Conventions follow MONAI's defaults (``DiceLoss(sigmoid=True)``: ``smooth_nr = smooth_dr = 1e-5``,
``squared_pred=False``; ``TverskyLoss`` with ``alpha = 0.3, beta = 0.7`` as in the paper).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, TverskyLoss
from torch import Tensor

__all__ = [
    "Criterion",
    "CriterionFn",
    "Implementation",
    "MaskSpace",
    "dice_from_sums",
    "parse_option",
    "reference_criterion",
    "tversky_from_sums",
]

#: A criterion called as ``criterion(probabilities, target)`` returning a scalar tensor.
CriterionFn = Callable[[Tensor, Tensor], Tensor]


class Criterion(str, Enum):
    """Built-in criteria with a fused (instance-count independent) implementation."""

    DICE = "dice"
    TVERSKY = "tversky"
    BCE = "bce"


class MaskSpace(str, Enum):
    """Where the keep-mask of an instance is applied.

    ``PROBABILITIES`` (paper, default): masked voxels count as p = 0.
    ``LOGITS`` (the authors' published example): the logits are multiplied by the mask, so masked
    voxels count as p = sigmoid(0) = 0.5.
    """

    PROBABILITIES = "probabilities"
    LOGITS = "logits"


class Implementation(str, Enum):
    """How the blob term is computed.

    ``FUSED``: one scatter-add pass over the batch, cost independent of the instance count (built-in
    criteria only). ``LOOP``: one criterion call per instance (any criterion; the reference).
    ``AUTO``: fused for built-in criteria, loop otherwise.
    """

    AUTO = "auto"
    FUSED = "fused"
    LOOP = "loop"


_E = TypeVar("_E", bound=Enum)


def parse_option(value: object, enum_cls: type[_E], name: str) -> _E:
    """Convert a string (or enum member) to ``enum_cls``, with an error listing the allowed values.

    Args:
        value: The user's value, e.g. ``"dice"`` or ``Criterion.DICE``; case-insensitive.
        enum_cls: A ``str`` enum such as :class:`Criterion`.
        name: The argument name shown in the error message.

    Returns:
        The enum member.

    Raises:
        ValueError: If ``value`` is not one of the allowed values.

    Example:
        >>> parse_option("Dice", Criterion, "criterion")
        <Criterion.DICE: 'dice'>
    """
    if isinstance(value, enum_cls):
        return value
    allowed = [m.value for m in enum_cls]  # type: ignore[attr-defined]
    if isinstance(value, str):
        key = value.strip().lower()
        for member in enum_cls:
            if member.value == key:  # type: ignore[attr-defined]
                return member
    raise ValueError(f"{name}={value!r} is not supported; use one of {allowed}.")


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
    criterion: Criterion,
    *,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    tversky_alpha: float = 0.3,
    tversky_beta: float = 0.7,
) -> CriterionFn:
    """The straightforward module for a built-in criterion, called on probabilities.

    Used by the per-instance loop (``implementation="loop"``), which is the reference the fused path
    is tested against. Each returned callable takes ``(probabilities, target)`` of shape
    ``(B, 1, *spatial)`` and returns the mean over the batch elements (MONAI ``batch=False``).

    Args:
        criterion: Which built-in criterion.
        smooth_nr: Dice / Tversky numerator smoothing.
        smooth_dr: Dice / Tversky denominator smoothing.
        tversky_alpha: Tversky false-positive weight.
        tversky_beta: Tversky false-negative weight.

    Returns:
        A callable ``(probabilities, target) -> scalar tensor``.

    Example:
        >>> dice = reference_criterion(Criterion.DICE)
        >>> p = torch.full((1, 1, 4, 4), 0.5)
        >>> round(float(dice(p, torch.ones_like(p))), 4)  # 1 - 2*8 / (16 + 8)
        0.3333
    """
    if criterion is Criterion.DICE:
        return DiceLoss(sigmoid=False, smooth_nr=smooth_nr, smooth_dr=smooth_dr)
    if criterion is Criterion.TVERSKY:
        return TverskyLoss(
            sigmoid=False,
            alpha=tversky_alpha,
            beta=tversky_beta,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
        )
    if criterion is Criterion.BCE:
        return _bce_on_probabilities
    raise ValueError(f"criterion={criterion!r} has no reference module; use one of {[c.value for c in Criterion]}.")


def resolve_criterion(
    criterion: str | Criterion | CriterionFn,
    implementation: str | Implementation,
    *,
    smooth_nr: float,
    smooth_dr: float,
    tversky_alpha: float,
    tversky_beta: float,
) -> tuple[Criterion | None, CriterionFn, Implementation]:
    """Resolve a loss's ``criterion`` and ``implementation`` options (shared by the blob losses).

    Args:
        criterion: A built-in name (``"dice"``, ``"tversky"``, ``"bce"``) or a callable
            ``criterion(probabilities, target) -> scalar``.
        implementation: ``"auto"`` (fused for built-in criteria, loop otherwise), ``"fused"`` or ``"loop"``.
        smooth_nr, smooth_dr, tversky_alpha, tversky_beta: Settings of the built-in criteria.

    Returns:
        ``(builtin, criterion_fn, implementation)``: the built-in criterion (None for a callable), the
        per-instance criterion the loop calls, and the resolved implementation.

    Raises:
        TypeError: If ``criterion`` is neither a known name nor callable.
        ValueError: On an unknown name, or ``implementation="fused"`` with a custom criterion.

    Example:
        >>> b, fn, impl = resolve_criterion("dice", "auto", smooth_nr=1e-5, smooth_dr=1e-5,
        ...                                 tversky_alpha=0.3, tversky_beta=0.7)
        >>> b.value, impl.value
        ('dice', 'fused')
    """
    impl = parse_option(implementation, Implementation, "implementation")
    builtin: Criterion | None
    if isinstance(criterion, (str, Criterion)):
        builtin = parse_option(criterion, Criterion, "criterion")
        criterion_fn: CriterionFn = reference_criterion(
            builtin,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            tversky_alpha=tversky_alpha,
            tversky_beta=tversky_beta,
        )
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
    return builtin, criterion_fn, impl
