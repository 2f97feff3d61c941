"""Inverse weighting baseline (Shirokikh et al., MICCAI 2020), docs/definitions.md section 3.

Every voxel gets a weight that is inversely proportional to the size of the connected component it
belongs to, so that small lesions weigh as much as large ones. Per training patch (batch element) with
``N`` voxels and ``K`` components (unique non-zero ids of the patch's instance map; the background is
counted as one more component)::

    w(v) = clip(N / ((K + 1) * |component(v)|), 1, 2e5)

Component ids are taken from the instance map as they are: a crop keeps the ids of the full volume, and
connected components are *not* recomputed inside the patch.

The weighted criteria follow the authors' code (``neuro-ml/inverse_weighting``); every spatial sum is taken
per batch element and the result is averaged over the batch:

* ``"dice"``  (iwDL):  ``1 - 2 sum(w p t) / sum(w (p^2 + t^2))``, no smoothing;
* ``"bce"``   (iwBCE): ``mean(w * BCE(x, t))`` over all voxels of the batch;
* ``"asl"``   (iwASL, asymmetric similarity loss, Hashemi et al. 2018, beta = 1.5):
  ``1 - (1 + beta^2) sum(w p t) / sum(w (beta^2 t^2 + p^2))``.

Weights are rounded to float32, as the reference implementation stores them, and then cast to the dtype
of the logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blobloss.losses.blob import BlobLossComponents, _detached
from blobloss.losses.settings import IW_CRITERIA
from blobloss.losses.validation import check_id_dtype, check_logits, check_map, check_values

__all__ = [
    "IW_CRITERIA",
    "InverseWeightingLoss",
    "inverse_weight_map",
    "weighted_asl_loss",
    "weighted_bce_loss",
    "weighted_dice_loss",
]

WeightedCriterion = Callable[[Tensor, Tensor, Tensor], Tensor]


def _check_clip(clip: Sequence[float] | None) -> tuple[float, float] | None:
    """Validate the ``(w_min, w_max)`` clipping range (``None`` disables clipping)."""
    if clip is None:
        return None
    try:
        low, high = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(
            f"clip must be a pair (w_min, w_max) or None, got {clip!r}; "
            "use e.g. clip=(1.0, 2e5) as in Shirokikh et al."
        ) from None
    if not (0.0 < low <= high < float("inf")):
        raise ValueError(
            f"clip must satisfy 0 < w_min <= w_max < inf, got {clip!r}; use e.g. clip=(1.0, 2e5)."
        )
    return low, high


def _check_instances(instances: Tensor, name: str = "instances") -> Tensor:
    """Validate an instance map of any shape ``(B, *patch)`` and return it as int64 ids.

    Integer tensors are accepted as they are; float tensors only when every value is a whole number (as
    after a MONAI transform pipeline). The messages are those of :mod:`blobloss.losses.validation`. Costs
    one host synchronisation.
    """
    instances = check_id_dtype(instances, name)
    if instances.dim() < 2:
        raise ValueError(
            f"{name} must have a batch axis and at least one more axis, got shape {tuple(instances.shape)}; "
            "pass (B, 1, *spatial)."
        )
    if instances.numel() == 0:
        return instances.to(torch.int64)
    check_values(None, {name: instances})
    return instances.to(torch.int64)


def inverse_weight_map(
    instances: Tensor,
    clip: Sequence[float] | None = (1.0, 2e5),
) -> Tensor:
    """Per-voxel inverse-size weights of Shirokikh et al. (2020), one map per batch element.

    The first axis is the batch; all other axes of an element form its patch. For an element with
    ``N`` voxels and ``K`` distinct non-zero ids, a voxel of component ``i`` (the background, id 0, is a
    component too) gets ``N / ((K + 1) * |i|)``, then the weights are clipped to ``clip``. An
    all-background patch gets weight 1 everywhere. Ids need not be contiguous and are never relabelled.

    Args:
        instances: integer instance ids, shape ``(B, *patch)`` such as ``(B, 1, X, Y, Z)``; 0 = background.
            Float tensors holding whole numbers are accepted.
        clip: ``(w_min, w_max)`` bounds for the weights, or ``None`` for no clipping.

    Returns:
        float32 tensor with the shape and device of ``instances``; it does not require grad.

    Raises:
        TypeError: for bool (a binary label) or complex maps.
        ValueError: for non-whole or negative ids, a missing batch axis, or a bad ``clip``.

    Example:
        >>> import torch
        >>> inst = torch.zeros(1, 1, 4, 4, dtype=torch.long)
        >>> inst[0, 0, 0, :2] = 7                 # one component of 2 voxels, N = 16, K = 1
        >>> w = inverse_weight_map(inst)
        >>> float(w[0, 0, 0, 0]), float(w[0, 0, 3, 3])  # 16 / (2 * 2) = 4; background 16 / 28 -> 1
        (4.0, 1.0)
    """
    return _weight_map(_check_instances(instances), _check_clip(clip))


def _weight_map(ids: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    """:func:`inverse_weight_map` on validated int64 ids ``(B, *patch)``."""
    batch = ids.shape[0]
    if ids.numel() == 0:
        return torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
    flat = ids.reshape(batch, -1)
    n_voxels = flat.shape[1]
    # One unique() over (element, id) keys handles the whole batch without a Python loop.
    stride = int(flat.max()) + 1
    element = torch.arange(batch, device=flat.device, dtype=torch.int64).unsqueeze(1)
    keys, inverse, counts = torch.unique(element * stride + flat, return_inverse=True, return_counts=True)
    key_element = torch.div(keys, stride, rounding_mode="floor")
    key_is_foreground = (keys % stride) != 0
    n_components = torch.zeros(batch, dtype=torch.float64, device=flat.device)
    n_components.index_add_(0, key_element, key_is_foreground.to(torch.float64))
    key_weight = n_voxels / ((n_components[key_element] + 1.0) * counts.to(torch.float64))
    # Round to float32 before clipping, as the reference implementation stores float32 weights.
    key_weight = key_weight.to(torch.float32)
    if bounds is not None:
        key_weight = key_weight.clamp(bounds[0], bounds[1])
    return key_weight[inverse].reshape(ids.shape)


def _spatial_dims(tensor: Tensor) -> tuple[int, ...]:
    return tuple(range(1, tensor.dim()))


def _weight_or_ones(weight: Tensor | None, like: Tensor) -> Tensor:
    if weight is None:
        return torch.ones_like(like)
    return weight.to(dtype=like.dtype, device=like.device)


def weighted_dice_loss(logits: Tensor, target: Tensor, weight: Tensor | None = None, eps: float = 0.0) -> Tensor:
    """Weighted soft Dice loss (iwDL) with squared denominators, averaged over the batch.

    ``loss_b = 1 - 2 sum(w p t) / (sum(w (p^2 + t^2)) + eps)`` with ``p = sigmoid(logits)``, sums over all
    non-batch axes of element ``b``; the result is ``mean_b loss_b``. With ``weight=None`` it is the plain
    (unweighted) squared Dice loss of the same code base.

    Args:
        logits: raw network output, shape ``(B, 1, *spatial)``.
        target: binary target (0/1), same shape as ``logits``.
        weight: voxel weights, same shape, or ``None`` for all ones.
        eps: added to the denominator; 0 (default) reproduces the reference. Use e.g. 1e-8 if a patch can
            have an empty target and probabilities that underflow to exactly 0.

    Returns:
        Scalar tensor.

    Example:
        >>> x = torch.zeros(1, 1, 2, 2); t = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
        >>> round(float(weighted_dice_loss(x, t)), 4)  # p = 0.5: 1 - 2 * 0.5 / (4 * 0.25 + 1)
        0.5
    """
    probs = torch.sigmoid(logits)
    w = _weight_or_ones(weight, probs)
    dims = _spatial_dims(probs)
    numerator = 2.0 * (w * probs * target).sum(dims)
    denominator = (w * (probs * probs + target * target)).sum(dims) + eps
    return (1.0 - numerator / denominator).mean()


def weighted_asl_loss(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, beta: float = 1.5, eps: float = 0.0
) -> Tensor:
    """Weighted asymmetric similarity loss (iwASL; Hashemi et al. 2018), averaged over the batch.

    ``loss_b = 1 - (1 + beta^2) sum(w p t) / (sum(w (beta^2 t^2 + p^2)) + eps)``, ``p = sigmoid(logits)``,
    sums over all non-batch axes of element ``b``. ``beta = 1`` gives :func:`weighted_dice_loss`.

    Args:
        logits: raw network output, shape ``(B, 1, *spatial)``.
        target: binary target (0/1), same shape.
        weight: voxel weights, same shape, or ``None`` for all ones.
        beta: recall/precision trade-off; 1.5 as in Shirokikh et al.
        eps: added to the denominator (0 reproduces the reference).

    Returns:
        Scalar tensor.

    Example:
        >>> x = torch.zeros(1, 1, 2, 2); t = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
        >>> round(float(weighted_asl_loss(x, t, beta=1.0)), 4)
        0.5
    """
    probs = torch.sigmoid(logits)
    w = _weight_or_ones(weight, probs)
    dims = _spatial_dims(probs)
    b2 = float(beta) ** 2
    numerator = (1.0 + b2) * (w * probs * target).sum(dims)
    denominator = (w * (b2 * target * target + probs * probs)).sum(dims) + eps
    return (1.0 - numerator / denominator).mean()


def weighted_bce_loss(logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Weighted binary cross-entropy (iwBCE): ``mean(w * BCE(logits, target))`` over all voxels.

    Args:
        logits: raw network output, shape ``(B, 1, *spatial)``.
        target: binary target (0/1), same shape.
        weight: voxel weights, same shape, or ``None`` for all ones.

    Returns:
        Scalar tensor.

    Example:
        >>> x = torch.zeros(1, 1, 2); t = torch.tensor([[[1.0, 0.0]]]); w = torch.tensor([[[3.0, 1.0]]])
        >>> round(float(weighted_bce_loss(x, t, w)), 4)  # ln 2 * (3 + 1) / 2
        1.3863
    """
    w = None if weight is None else weight.to(dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), weight=w, reduction="mean")


class InverseWeightingLoss(nn.Module):
    """Inverse weighting loss (Shirokikh et al. 2020) for sigmoid outputs, usable like ``BlobLoss``.

    The weight map is computed per batch element from the instance map (see :func:`inverse_weight_map`),
    the binary target is ``instances > 0``, and the chosen weighted criterion is applied to the logits.

    Args:
        criterion: ``"dice"`` (iwDL), ``"bce"`` (iwBCE), ``"asl"`` (iwASL) or a callable
            ``fn(logits, target, weight) -> scalar`` that receives float target and weight tensors shaped
            like the logits.
        clip: ``(w_min, w_max)`` for the weights; ``None`` disables clipping.
        asl_beta: ``beta`` of the asymmetric similarity loss (only used with ``"asl"``).
        eps: denominator stabiliser for ``"dice"``/``"asl"`` (0 = as published).
        check_inputs: raise on NaN/Inf logits (read in the same host sync as the id checks). Instance ids are always
            validated (the weight map needs their values anyway).

    Shapes:
        logits ``(B, 1, *spatial)`` float; instances ``(B, 1, *spatial)`` integer ids (0 = background);
        an optional precomputed ``weight`` of the same shape. Returns a scalar tensor.

    Example:
        >>> loss_fn = InverseWeightingLoss("dice")
        >>> logits = torch.randn(2, 1, 8, 8, 4, requires_grad=True)
        >>> inst = torch.zeros(2, 1, 8, 8, 4, dtype=torch.long); inst[0, 0, :2, :2, :2] = 1
        >>> loss = loss_fn(logits, inst)
        >>> loss.backward()
    """

    def __init__(
        self,
        criterion: Literal["dice", "bce", "asl"] | WeightedCriterion = "dice",
        clip: Sequence[float] | None = (1.0, 2e5),
        asl_beta: float = 1.5,
        eps: float = 0.0,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(criterion, str):
            criterion = criterion.strip().lower()
            if criterion not in IW_CRITERIA:
                raise ValueError(
                    f"criterion must be one of {IW_CRITERIA} or a callable fn(logits, target, weight), "
                    f"got {criterion!r}."
                )
        elif not callable(criterion):
            raise TypeError(
                f"criterion must be a name in {IW_CRITERIA} or a callable, got {type(criterion).__name__}."
            )
        if not float(asl_beta) > 0:
            raise ValueError(f"asl_beta must be > 0, got {asl_beta!r}.")
        if not float(eps) >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}.")
        self.criterion = criterion
        self.clip = _check_clip(clip)
        self.asl_beta = float(asl_beta)
        self.eps = float(eps)
        self.check_inputs = bool(check_inputs)
        self.last_components: BlobLossComponents | None = None

    def extra_repr(self) -> str:
        name = self.criterion if isinstance(self.criterion, str) else getattr(self.criterion, "__name__", "callable")
        return f"criterion={name!r}, clip={self.clip}"

    def components(self, logits: Tensor, instances: Tensor, weight: Tensor | None = None) -> BlobLossComponents:
        """Compute the loss as the terms every loss of :mod:`blobloss.losses` returns.

        Args:
            logits: ``(B, 1, *spatial)`` raw network output.
            instances: ``(B, 1, *spatial)`` integer instance ids.
            weight: optional precomputed weight map (e.g. from the data loader), same shape; computed from
                ``instances`` when ``None``.

        Returns:
            ``BlobLossComponents(total, global_term, blob_term)`` with ``global_term = total`` (the weighted
            criterion) and ``blob_term = None`` (there is no instance term).

        Example:
            >>> loss_fn = InverseWeightingLoss("bce")
            >>> parts = loss_fn.components(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long))
            >>> round(float(parts.total), 4), parts.blob_term  # ln 2, weight 1 everywhere
            (0.6931, None)
        """
        check_logits(logits)
        instances = check_map(instances, "instances", logits)
        if weight is not None:
            if not isinstance(weight, Tensor) or tuple(weight.shape) != tuple(logits.shape):
                raise ValueError(
                    f"weight {tuple(getattr(weight, 'shape', ()))} must have the shape of logits {tuple(logits.shape)}."
                )
        # instance values are always checked (the weight map needs them); logits only with check_inputs
        check_values(logits if self.check_inputs else None, {"instances": instances})
        ids = instances.to(torch.int64)
        if weight is None:
            weight = _weight_map(ids, self.clip)
        weight = weight.to(dtype=logits.dtype, device=logits.device)
        target = (ids > 0).to(logits.dtype)
        if not isinstance(self.criterion, str):
            loss = self.criterion(logits, target, weight)
        elif self.criterion == "dice":
            loss = weighted_dice_loss(logits, target, weight, eps=self.eps)
        elif self.criterion == "bce":
            loss = weighted_bce_loss(logits, target, weight)
        else:
            loss = weighted_asl_loss(logits, target, weight, beta=self.asl_beta, eps=self.eps)
        parts = BlobLossComponents(loss, loss, None)
        self.last_components = _detached(parts)
        return parts

    def forward(self, logits: Tensor, instances: Tensor, weight: Tensor | None = None) -> Tensor:
        """Compute the loss (scalar); its terms in ``last_components``.

        Args:
            logits: ``(B, 1, *spatial)`` raw network output.
            instances: ``(B, 1, *spatial)`` integer instance ids.
            weight: optional precomputed weight map (e.g. from the data loader), same shape; computed from
                ``instances`` when ``None``.

        Returns:
            Scalar loss tensor.
        """
        return self.components(logits, instances, weight).total
