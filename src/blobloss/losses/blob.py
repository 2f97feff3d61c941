"""Binary blob loss (Kofler et al., IPMI 2023, Eq. 1 and 2): fused and per-instance implementations.

For every instance ``n`` of a batch element with instance map ``L``, the blob loss evaluates the
criterion on the element with all *other* instances masked out (``keep_n = (L == 0) | (L == n)``),
averages over the instances of the element and then over the elements that have instances. It is added
to a global term: ``total = alpha * criterion(p, L > 0) + beta * blob``.

Two implementations compute the blob term:

* :func:`fused_instance_losses` (dice, tversky, bce): every instance loss depends only on a few spatial
  sums (sum of p over instance n, its voxel count, the sum of p over the background, and BCE analogues),
  so one scatter-add pass keyed by ``(element, instance id)`` yields all instances at once. Time and memory
  do not grow with the number of instances and there is no per-instance host synchronisation.
* :func:`loop_instance_losses`: one criterion call per instance, for any criterion; the reference.

:class:`BlobLoss` wraps both behind a MONAI-style ``nn.Module``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blobloss.losses.criteria import (
    Criterion,
    CriterionFn,
    CriterionSettings,
    Implementation,
    MaskSpace,
    _reject_unknown,
    dice_from_sums,
    parse_option,
    resolve_criterion,
    settings_from_legacy,
    tversky_from_sums,
)
from blobloss.losses.settings import DEFAULT_ALPHA, DEFAULT_BETA
from blobloss.losses.validation import LIMITED_UINTS, check_logits, check_map, check_values

__all__ = [
    "BlobLoss",
    "BlobLossComponents",
    "LossComponents",
    "fused_instance_losses",
    "loop_instance_losses",
]

_LN2 = math.log(2.0)
# Partial sums per (element, instance): voxels are spread over up to this many bins per instance, by
# their index along the last spatial axis. This cuts atomic contention on GPUs (the background bin gets
# most voxels) and the rounding error of long float32 accumulations; the partial sums are added after.
_SPREAD = 32
# Budget of the (element, id, spread) table: max(numel // _TABLE_FRACTION, _TABLE_MIN) bins. Ids are
# compacted (torch.unique, one more host sync) when B * (max_id + 1) exceeds it, then the spread shrinks
# until the table fits.
_TABLE_FRACTION = 4
_TABLE_MIN = 1 << 16
_LIMITED_UINTS = LIMITED_UINTS


# --------------------------------------------------------------------------------------------------
# Fused path
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sums:
    """Spatial sums of one batch per (element, id column), shape (B, J); column 0 is the background.

    Columns 1.. are the instance ids 1..J-1 (or, after compaction, the sorted distinct ids); ids absent
    from an element have ``c == 0`` and ``s == 0`` there. ``s`` sum of p, ``c`` voxel count, for BCE
    ``a`` sum of -log p and ``q`` sum of -log(1 - p). ``voxels`` is the voxel count of one element.
    """

    s: Tensor
    c: Tensor
    a: Tensor | None
    q: Tensor | None
    voxels: int

    @property
    def is_inst(self) -> Tensor:
        """(B, J-1) bool: the id column is an instance present in the element."""
        return self.c[:, 1:] > 0

    @property
    def n_inst(self) -> Tensor:
        """(B,) number of instances per element (float)."""
        return self.is_inst.sum(1).to(self.s.dtype)


def _compact_ids(instances: Tensor) -> tuple[Tensor, int]:
    """Replace ids by their rank among the batch's distinct ids (0 stays 0); returns (map, max rank)."""
    ids = torch.unique(instances)
    if ids.numel() == 0 or int(ids[0]) != 0:
        ids = torch.cat([ids.new_zeros(1), ids])
    return torch.searchsorted(ids, instances.contiguous()), ids.numel() - 1


def _bin_index(instances: Tensor, max_id: int | None) -> tuple[Tensor, int, int]:
    """Bin of every voxel in a (B, J, spread) table keyed by (element, id column, partial sum).

    Args:
        instances: (B, ...) non-negative integer ids.
        max_id: The largest id in ``instances`` (computed here, with one host sync, if None).

    Returns:
        ``(bins, columns, spread)``: ``bins`` (numel,) int32/int64 flat index into the
        ``(B, columns, spread)`` table.
    """
    batch, width, numel = instances.shape[0], instances.shape[-1], instances.numel()
    if max_id is None:
        max_id = int(instances.max()) if numel else 0
    budget = max(numel // _TABLE_FRACTION, _TABLE_MIN)
    if batch * (max_id + 1) > budget:
        instances, max_id = _compact_ids(instances)
    columns = max_id + 1
    spread = max(1, min(_SPREAD, width))
    while spread > 1 and batch * columns * spread > budget:
        spread //= 2
    size = batch * columns * spread
    dtype = torch.int32 if size < 2**31 else torch.int64
    device = instances.device
    lane = torch.arange(width, device=device, dtype=dtype) % spread
    start = torch.arange(batch, device=device, dtype=dtype) * (columns * spread)
    offset = start.view((batch,) + (1,) * (instances.ndim - 1)) + lane  # (B, 1, ..., W), small
    if instances.dtype not in (torch.int32, torch.int64):
        instances = instances.to(dtype)
    bins = torch.add(offset, instances, alpha=spread)  # one pass over the voxels
    return bins.reshape(-1), columns, spread


def _table_sum(values: Tensor, bins: Tensor, batch: int, columns: int, spread: int) -> Tensor:
    """Sum voxel ``values`` (B, ...) per (element, id column): (B, columns). Differentiable.

    ``values`` may be a broadcast view (e.g. expanded ones, for counts): no full-size copy is made.
    """
    partial = torch.zeros(batch * columns * spread, dtype=values.dtype, device=values.device)
    partial.index_add_(0, bins, values.reshape(-1))  # in place on a fresh buffer: autograd-safe, no clone
    return partial.view(batch, columns, spread).sum(2)


def _instance_sums(
    probs: Tensor,
    instances: Tensor,
    *,
    bce: bool,
    logits: Tensor | None,
    max_id: int | None,
) -> _Sums:
    """One scatter-add pass: the sums every built-in criterion needs, per (element, id)."""
    acc = torch.float64 if probs.dtype == torch.float64 else torch.float32
    p = probs.to(acc)
    batch = probs.shape[0]
    bins, columns, spread = _bin_index(instances, max_id)
    s = _table_sum(p, bins, batch, columns, spread)
    # Counts in the float accumulation dtype: exact up to 2**24 voxels per partial sum in float32.
    c = _table_sum(torch.ones((), dtype=acc, device=probs.device).expand(bins.numel()), bins, batch, columns, spread)
    a = q = None
    if bce:
        if logits is not None:
            x = logits.to(acc)
            a = _table_sum(F.softplus(-x), bins, batch, columns, spread)  # -log p
            q = _table_sum(x, bins, batch, columns, spread) + a  # -log(1 - p) = x + softplus(-x)
        else:  # torch BCE semantics: logs clamped at -100
            a = _table_sum(-torch.log(p).clamp(min=-100.0), bins, batch, columns, spread)
            q = _table_sum(-torch.log1p(-p).clamp(min=-100.0), bins, batch, columns, spread)
    return _Sums(s=s, c=c, a=a, q=q, voxels=probs[0].numel())


def _instance_losses(
    sums: _Sums,
    criterion: Criterion,
    *,
    masking: bool,
    mask_space: MaskSpace,
    settings: CriterionSettings,
) -> Tensor:
    """Loss of every (element, id) from the sums, (B, J-1); meaningful where ``sums.is_inst``."""
    s, c = sums.s[:, 1:], sums.c[:, 1:]
    s_bg = sums.s[:, :1]
    if masking and mask_space is MaskSpace.LOGITS:
        fp = s_bg + 0.5 * (c.sum(1, keepdim=True) - c)  # other instances: logit 0, i.e. p = 0.5
    elif masking:
        fp = s_bg  # other instances count as p = 0
    else:
        fp = s_bg + (s.sum(1, keepdim=True) - s)  # nothing masked
    # Columns of ids absent from an element are discarded later; give them a voxel count of 1 so that
    # their (unused) ratios never divide 0 by 0, which would turn the masked gradient into NaN.
    if criterion is Criterion.DICE:
        c_safe = torch.where(sums.is_inst, c, 1.0)
        return dice_from_sums(s, s + fp, c_safe, settings.smooth_nr, settings.smooth_dr)
    if criterion is Criterion.TVERSKY:
        c_safe = torch.where(sums.is_inst, c, 1.0)
        return tversky_from_sums(
            s, fp, c_safe - s, settings.tversky_alpha, settings.tversky_beta, settings.smooth_nr, settings.smooth_dr
        )
    assert sums.a is not None and sums.q is not None
    a, q = sums.a[:, 1:], sums.q[:, 1:]
    numerator = a + sums.q[:, :1]
    if masking and mask_space is MaskSpace.LOGITS:
        numerator = numerator + _LN2 * (c.sum(1, keepdim=True) - c)
    elif not masking:
        numerator = numerator + (q.sum(1, keepdim=True) - q)
    return numerator / sums.voxels


def _global_losses(sums: _Sums, criterion: Criterion, settings: CriterionSettings) -> Tensor:
    """Criterion of each element against its binary target ``L > 0``, (B,)."""
    s_bg, s_fg, c_fg = sums.s[:, 0], sums.s[:, 1:].sum(1), sums.c[:, 1:].sum(1)
    if criterion is Criterion.DICE:
        return dice_from_sums(s_fg, s_fg + s_bg, c_fg, settings.smooth_nr, settings.smooth_dr)
    if criterion is Criterion.TVERSKY:
        return tversky_from_sums(
            s_fg, s_bg, c_fg - s_fg, settings.tversky_alpha, settings.tversky_beta, settings.smooth_nr, settings.smooth_dr
        )
    assert sums.a is not None and sums.q is not None
    return (sums.a[:, 1:].sum(1) + sums.q[:, 0]) / sums.voxels


def _mean_over_instances(sums: _Sums, loss: Tensor) -> Tensor:
    """Per-element mean of the instance losses (B, J-1) -> (B,); 0 for elements without instances."""
    per_elem = torch.where(sums.is_inst, loss, 0.0).sum(1)
    return per_elem / sums.n_inst.clamp(min=1.0)


def _blob_term(sums: _Sums, loss: Tensor) -> Tensor:
    """Mean over the elements with instances of their mean instance loss (0 with gradient if none)."""
    element_loss = _mean_over_instances(sums, loss)
    has = (sums.n_inst > 0).to(element_loss.dtype)
    return (element_loss * has).sum() / has.sum().clamp(min=1.0)


def _published_running_mean(sums: _Sums, loss: Tensor) -> Tensor:
    """Blob term as the published code computes it (scalar).

    The published no-masking code (and the first published masked version) appends the running mean of
    the element's instance losses after every instance (instances in increasing id order), then averages
    all appended values: ``sum_b sum_k mean(l_b1..l_bk) / sum_b K_b``.
    """
    inst = sums.is_inst
    count = inst.to(loss.dtype)
    running = torch.where(inst, loss, 0.0).cumsum(1) / count.cumsum(1).clamp(min=1.0)
    return torch.where(inst, running, 0.0).sum() / count.sum().clamp(min=1.0)


def _fused_terms(
    logits: Tensor,
    instances: Tensor,
    *,
    criterion: Criterion,
    masking: bool,
    mask_space: MaskSpace,
    settings: CriterionSettings,
    running_mean: bool,
    want_global: bool,
    want_blob: bool,
    max_id: int | None,
) -> tuple[Tensor | None, Tensor | None]:
    """Global term and blob term of a batch from one scatter-add pass (scalars; None if not wanted).

    Args:
        logits: (B, ...) raw network output (any shape with the batch first, e.g. (B, 1, *spatial)).
        instances: Integer ids, same shape.
        criterion, masking, mask_space: As BlobLoss.
        settings: The criterion options.
        running_mean: Aggregate the blob term as the published code (see :func:`_published_running_mean`).
        want_global: Compute the global term.
        want_blob: Compute the blob term.
        max_id: Largest id, or None to compute it.

    Returns:
        ``(global_term, blob_term)``.
    """
    probs = torch.sigmoid(logits)
    bce = criterion is Criterion.BCE
    sums = _instance_sums(probs, instances, bce=bce, logits=logits if bce else None, max_id=max_id)
    global_term = blob_term = None
    if want_global:
        global_term = _global_losses(sums, criterion, settings).mean()
    if want_blob:
        loss = _instance_losses(sums, criterion, masking=masking, mask_space=mask_space, settings=settings)
        blob_term = _published_running_mean(sums, loss) if running_mean else _blob_term(sums, loss)
    return global_term, blob_term


def fused_instance_losses(
    probs: Tensor,
    instances: Tensor,
    criterion: str | Criterion,
    *,
    criterion_settings: CriterionSettings | None = None,
    masking: bool = True,
    mask_space: str | MaskSpace = "probabilities",
    logits: Tensor | None = None,
    max_id: int | None = None,
    **deprecated: float,
) -> tuple[Tensor, Tensor]:
    """Mean instance loss of every batch element, for all instances in one scatter-add pass.

    For each element ``b`` and each instance id ``n > 0`` present in ``instances[b]``, the instance loss
    is ``criterion(q_n, instances[b] == n)`` over the whole element, where ``q_n`` is ``probs[b]`` with
    the other instances masked: ``q_n = probs * keep_n`` for ``mask_space="probabilities"`` (masked
    voxels count as p = 0, the paper), ``q_n = where(keep_n, probs, 0.5)`` for ``mask_space="logits"``
    (the published example multiplies the logits by the mask, so masked voxels have logit 0 and p = 0.5),
    and ``q_n = probs`` for ``masking=False`` (the paper's no-masking ablation). These losses depend only
    on per-instance sums, so time and memory do not depend on the number of instances. No host
    synchronisation happens when ``max_id`` is given (one ``.max()`` otherwise; ids so large or sparse
    that the (element, id) table would exceed a quarter of the voxel count are first compacted with
    ``torch.unique``, one more sync). Any shape ``(B, ...)`` works, e.g. with a channel axis of size 1.

    Criteria: ``"dice"`` (MONAI ``DiceLoss`` semantics, ``squared_pred=False``), ``"tversky"`` (MONAI
    ``TverskyLoss``: ``1 - (TP + nr) / (TP + alpha FP + beta FN + dr)``) and ``"bce"`` (mean over the
    element's voxels). For BCE pass ``logits`` when you have them: the log terms are then computed stably
    from the logits (as ``BCEWithLogitsLoss``); from ``probs`` alone they follow torch's
    ``binary_cross_entropy`` (logs clamped at -100).

    The blob term of the batch (paper Eq. 2) is the mean over the elements that have instances::

        element_loss, has = fused_instance_losses(probs, instances, "dice")
        blob = (element_loss * has).sum() / has.sum().clamp(min=1)   # 0 (with gradient) if none

    Args:
        probs: (B, *spatial) float probabilities in [0, 1], e.g. ``sigmoid(logits)[:, 0]`` or one class
            channel of a softmax. Not validated here (no host sync); :class:`BlobLoss` validates.
        instances: (B, *spatial) integer instance ids, 0 = background, ids need not be contiguous.
        criterion: ``"dice"``, ``"tversky"`` or ``"bce"``.
        criterion_settings: Smoothing and Tversky weights (:class:`~blobloss.losses.CriterionSettings`;
            default: MONAI's smoothing 1e-5 and the paper's Tversky 0.3 / 0.7).
        masking: Mask the other instances (True, the blob loss) or not (the ablation).
        mask_space: ``"probabilities"`` (default, paper) or ``"logits"`` (published example).
        logits: Optional (B, *spatial) logits with ``probs == sigmoid(logits)``; only used by BCE.
        max_id: The largest id in ``instances`` if known (avoids a host sync); must not be smaller.
        **deprecated: The old keywords ``smooth_nr``, ``smooth_dr``, ``tversky_alpha``, ``tversky_beta``
            still work, with a DeprecationWarning that shows the ``criterion_settings`` form.

    Returns:
        ``(element_loss, has_instances)``: ``element_loss`` (B,) float, the mean loss over each element's
        instances (0 where the element has none); ``has_instances`` (B,) bool.

    Example:
        >>> probs = torch.full((1, 4, 4), 0.5)
        >>> inst = torch.zeros(1, 4, 4, dtype=torch.long)
        >>> inst[0, 0, 0], inst[0, 3, 3] = 3, 7
        >>> no_smoothing = CriterionSettings(smooth_nr=0, smooth_dr=0)
        >>> loss, has = fused_instance_losses(probs, inst, "dice", criterion_settings=no_smoothing)
        >>> round(float(loss[0]), 4), bool(has[0])  # each instance: 1 - 2*0.5 / (1 + 0.5 + 7)
        (0.8824, True)
    """
    _reject_unknown(deprecated, "fused_instance_losses")
    settings = settings_from_legacy(criterion_settings, deprecated, "fused_instance_losses")
    crit = parse_option(criterion, Criterion, "criterion")
    space = parse_option(mask_space, MaskSpace, "mask_space")
    if probs.shape != instances.shape:
        raise ValueError(
            f"probs {tuple(probs.shape)} and instances {tuple(instances.shape)} must have the same shape "
            "(B, *spatial)."
        )
    if logits is not None and logits.shape != probs.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must have the shape of probs {tuple(probs.shape)}.")
    if instances.is_floating_point() or instances.is_complex() or instances.dtype == torch.bool:
        raise TypeError(
            f"instances must be an integer tensor of instance ids, got {instances.dtype}; convert whole-number "
            "float maps with instances.long()."
        )
    if instances.dtype in _LIMITED_UINTS:
        instances = instances.to(torch.int64)
    if probs.ndim < 2 or probs.numel() == 0:
        raise ValueError(f"probs must have shape (B, *spatial) with at least one voxel, got {tuple(probs.shape)}.")
    sums = _instance_sums(probs, instances, bce=crit is Criterion.BCE, logits=logits, max_id=max_id)
    loss = _instance_losses(sums, crit, masking=masking, mask_space=space, settings=settings)
    return _mean_over_instances(sums, loss), sums.n_inst > 0


# --------------------------------------------------------------------------------------------------
# Per-instance loop (reference, any criterion)
# --------------------------------------------------------------------------------------------------
def loop_instance_losses(
    logits: Tensor,
    instances: Tensor,
    criterion: CriterionFn,
    *,
    masking: bool = True,
    mask_space: str | MaskSpace = "probabilities",
) -> list[list[Tensor]]:
    """Instance losses by one criterion call per instance (the reference implementation).

    For element ``b`` and instance ``n`` (increasing id order), calls ``criterion(q, t)`` with
    ``t = (instances[b:b+1] == n)`` as float and ``q`` the element's probabilities with the other
    instances masked: ``sigmoid(x) * keep_n`` (``mask_space="probabilities"``), ``sigmoid(x * keep_n)``
    (``"logits"``) or ``sigmoid(x)`` (``masking=False``).

    Args:
        logits: (B, 1, *spatial) raw network output.
        instances: (B, 1, *spatial) integer instance ids, 0 = background.
        criterion: Called as ``criterion(probabilities, target)`` on (1, 1, *spatial) tensors, returning
            a scalar tensor.
        masking: Mask the other instances (True) or not (the ablation).
        mask_space: ``"probabilities"`` or ``"logits"``.

    Returns:
        One list of scalar losses per batch element (empty for elements without instances).

    Example:
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> inst = torch.zeros(1, 1, 4, 4, dtype=torch.long)
        >>> inst[..., 0, 0], inst[..., 3, 3] = 3, 7
        >>> from monai.losses import DiceLoss
        >>> losses = loop_instance_losses(x, inst, DiceLoss(smooth_nr=0, smooth_dr=0))
        >>> [round(float(v), 4) for v in losses[0]]
        [0.8824, 0.8824]
    """
    space = parse_option(mask_space, MaskSpace, "mask_space")
    out: list[list[Tensor]] = []
    for b in range(logits.shape[0]):
        x = logits[b : b + 1]
        lab = instances[b : b + 1]
        p = torch.sigmoid(x)
        losses: list[Tensor] = []
        for n in torch.unique(lab).tolist():
            if n == 0:
                continue
            target = lab == n
            if not masking:
                q = p
            else:
                keep = (lab == 0) | target
                q = p * keep if space is MaskSpace.PROBABILITIES else torch.sigmoid(x * keep)
            losses.append(criterion(q, target.to(q.dtype)))
        out.append(losses)
    return out


def _aggregate_loop(per_element: Sequence[Sequence[Tensor]], like: Tensor, running_mean: bool) -> Tensor:
    """Blob term from per-instance losses: mean over elements with instances (or the published variant)."""
    if running_mean:
        values = [
            torch.stack(list(ls)).cumsum(0) / torch.arange(1, len(ls) + 1, device=like.device)
            for ls in per_element
            if ls
        ]
    else:
        values = [torch.stack(list(ls)).mean().unsqueeze(0) for ls in per_element if ls]
    if not values:
        return like.sum() * 0.0  # exactly 0, still part of the graph
    return torch.cat(values).mean()


# --------------------------------------------------------------------------------------------------
# Module
# --------------------------------------------------------------------------------------------------
class BlobLossComponents(NamedTuple):
    """The terms of one loss evaluation (every loss of :mod:`blobloss.losses` returns these).

    Attributes:
        total: The loss, ``alpha * global_term + beta * blob_term`` for the blob losses (scalar).
        global_term: The criterion on the whole batch against ``instances > 0`` (mean over elements); for
            :class:`~blobloss.losses.InverseWeightingLoss` the weighted criterion. None when ``alpha == 0``
            (not computed).
        blob_term: Mean over elements with instances of the mean instance loss; None when ``beta == 0``
            and for the inverse weighting loss (it has no instance term).
    """

    total: Tensor
    global_term: Tensor | None
    blob_term: Tensor | None


#: The name every loss uses for its terms (:class:`BlobLossComponents`).
LossComponents = BlobLossComponents


def _check_weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0.")
    return float(value)


def _detached(parts: BlobLossComponents) -> BlobLossComponents:
    return BlobLossComponents(*(t.detach() if t is not None else None for t in parts))


class BlobLoss(nn.Module):
    """Blob loss for binary segmentation (Kofler et al., IPMI 2023): global term + per-instance term.

    ``total = alpha * criterion(p, instances > 0) + beta * blob``, ``p = sigmoid(logits)``, where
    ``blob`` averages ``criterion(p * keep_n, instances == n)`` over the instances ``n`` of each batch
    element (``keep_n`` masks the element's other instances) and then over the elements that have
    instances. A batch without instances gives ``blob = 0`` (a tensor that still backpropagates).

    Built-in criteria (``"dice"``, ``"tversky"``, ``"bce"``) use a fused implementation whose time and
    memory do not depend on the number of instances; any other criterion (a loss module or callable
    called as ``criterion(probabilities, target)`` on (B, 1, *spatial) probabilities and float targets,
    returning a scalar averaged over the batch elements) uses the per-instance loop.

    Args:
        criterion: ``"dice"`` (MONAI ``DiceLoss(sigmoid=True)`` semantics), ``"tversky"`` (MONAI
            ``TverskyLoss``), ``"bce"`` (binary cross-entropy), or a callable on probabilities.
        alpha: Weight of the global term (paper default 2). 0 gives the blob term alone.
        beta: Weight of the blob term (paper default 1). 0 gives the global term alone.
        mask_space: ``"probabilities"`` (paper, default): masked voxels count as p = 0. ``"logits"``:
            the logits are multiplied by the mask as in the authors' published example, so masked voxels
            count as p = 0.5; results differ on trained networks.
        masking: False computes the no-masking ablation (``criterion(p, instances == n)``).
        implementation: ``"auto"`` (fused for built-in criteria, loop otherwise), ``"fused"`` or ``"loop"``.
            The loop with a built-in criterion uses MONAI's losses (``pip install "blobloss[monai]"``).
        criterion_settings: Smoothing and Tversky weights of the built-in criteria
            (:class:`~blobloss.losses.CriterionSettings`: smooth_nr = smooth_dr = 1e-5, Tversky 0.3 / 0.7).
        published_running_mean: Reproduce the running-mean aggregation of the published no-masking code
            (and of its first masked version): after every instance, the running mean of the element's
            instance losses is appended, and the blob term is the mean of all appended values. Off by
            default (the paper's mean); only for parity with those numbers.
        check_inputs: Validate values (NaN/Inf logits, negative or non-integer ids) with one host sync per
            call. Shapes and dtypes are always checked.
        max_instance_id: Upper bound of the instance ids, if known: sizes the fused path's table without
            a host sync (with ``check_inputs=False`` the call then has no host sync at all, unless
            ``B * (max_instance_id + 1)`` exceeds a quarter of the voxel count, when ids are compacted
            with ``torch.unique``). Ids above it raise an error when ``check_inputs`` is on; otherwise
            they give wrong results or an indexing error.
        compile: Run the fused computation through ``torch.compile(dynamic=True)`` (falls back to eager,
            with a warning, if compilation fails). Meant for GPUs; on CPU it was slower than eager.
        **deprecated: The old keywords ``smooth_nr``, ``smooth_dr``, ``tversky_alpha``, ``tversky_beta``
            still work, with a DeprecationWarning that shows the ``criterion_settings`` form.

    Shapes:
        logits: (B, 1, *spatial) raw network output (2D or 3D spatial).
        instances: (B, 1, *spatial) integer instance ids (0 = background); float maps holding whole
            numbers are accepted.
        output: scalar.

    Example:
        >>> loss_fn = BlobLoss("dice", alpha=2.0, beta=1.0)
        >>> logits = torch.randn(2, 1, 8, 8, 8, requires_grad=True)
        >>> instances = torch.zeros(2, 1, 8, 8, 8, dtype=torch.long)
        >>> instances[0, 0, :2, :2, :2], instances[0, 0, 5:, 5:, 5:] = 1, 2
        >>> loss = loss_fn(logits, instances)
        >>> loss.backward()
        >>> parts = loss_fn.last_components  # detached total, global_term, blob_term
        >>> bool(torch.isclose(parts.total, 2 * parts.global_term + parts.blob_term))
        True
    """

    def __init__(
        self,
        criterion: str | Criterion | CriterionFn = "dice",
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        mask_space: str | MaskSpace = "probabilities",
        masking: bool = True,
        implementation: str | Implementation = "auto",
        *,
        criterion_settings: CriterionSettings | None = None,
        published_running_mean: bool = False,
        check_inputs: bool = True,
        max_instance_id: int | None = None,
        compile: bool = False,
        **deprecated: float,
    ) -> None:
        super().__init__()
        _reject_unknown(deprecated, "BlobLoss")
        self.alpha = _check_weight(alpha, "alpha")
        self.beta = _check_weight(beta, "beta")
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha and beta are both 0, so the loss would be constant; set one of them > 0.")
        self.criterion_settings = settings_from_legacy(criterion_settings, deprecated, "BlobLoss")
        self.mask_space = parse_option(mask_space, MaskSpace, "mask_space")
        self.masking = bool(masking)
        self.published_running_mean = bool(published_running_mean)
        self.check_inputs = bool(check_inputs)
        if max_instance_id is not None and (
            isinstance(max_instance_id, bool) or not isinstance(max_instance_id, int) or max_instance_id < 0
        ):
            raise ValueError(f"max_instance_id={max_instance_id!r} must be None or an integer >= 0.")
        self.max_instance_id = max_instance_id

        self.builtin, self.criterion_fn, self.implementation = resolve_criterion(
            criterion, implementation, self.criterion_settings
        )
        self.compile = bool(compile)
        self._compiled_terms: Callable[..., tuple[Tensor | None, Tensor | None]] | None = None
        self.last_components: BlobLossComponents | None = None

    # the criterion options, read-only (they live in ``criterion_settings``)
    smooth_nr = property(lambda self: self.criterion_settings.smooth_nr)
    smooth_dr = property(lambda self: self.criterion_settings.smooth_dr)
    tversky_alpha = property(lambda self: self.criterion_settings.tversky_alpha)
    tversky_beta = property(lambda self: self.criterion_settings.tversky_beta)

    def extra_repr(self) -> str:
        crit = self.builtin.value if self.builtin is not None else type(self.criterion_fn).__name__
        return (
            f"criterion={crit!r}, alpha={self.alpha}, beta={self.beta}, mask_space={self.mask_space.value!r}, "
            f"masking={self.masking}, implementation={self.implementation.value!r}"
        )

    # ---------------------------------------------------------------------------------------------
    def _validate(self, logits: Tensor, instances: Tensor) -> tuple[Tensor, int | None]:
        """Check shapes, dtypes and (with ``check_inputs``) values; return integer ids and the max id."""
        check_logits(logits)
        instances = check_map(instances, "instances", logits)
        max_id = self.max_instance_id
        if self.check_inputs:
            ranges, _ = check_values(logits, {"instances": instances})
            found = int(ranges["instances"][1])
            if max_id is not None and found > max_id:
                raise ValueError(f"instances contain id {found} > max_instance_id={max_id}; raise max_instance_id.")
            max_id = found if max_id is None else max_id
        if instances.is_floating_point():
            instances = instances.to(torch.int64)
        return instances, max_id

    def components(self, logits: Tensor, instances: Tensor) -> BlobLossComponents:
        """Compute the loss and its terms.

        Args:
            logits: (B, 1, *spatial) raw network output.
            instances: (B, 1, *spatial) instance ids, 0 = background.

        Returns:
            :class:`BlobLossComponents` ``(total, global_term, blob_term)``, all attached to the graph.

        Example:
            >>> loss_fn = BlobLoss("tversky", alpha=1.0, beta=1.0)
            >>> x, inst = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long)
            >>> total, global_term, blob_term = loss_fn.components(x, inst)
            >>> float(blob_term)  # no instances
            0.0
        """
        instances, max_id = self._validate(logits, instances)
        if self.implementation is Implementation.FUSED:
            parts = self._fused(logits, instances, max_id)
        else:
            parts = self._loop(logits, instances)
        self.last_components = _detached(parts)
        return parts

    def forward(self, logits: Tensor, instances: Tensor) -> Tensor:
        """Total loss ``alpha * global_term + beta * blob_term`` (scalar); terms in ``last_components``.

        Args:
            logits: (B, 1, *spatial) raw network output.
            instances: (B, 1, *spatial) instance ids, 0 = background.

        Returns:
            Scalar loss tensor.
        """
        return self.components(logits, instances).total

    # ---------------------------------------------------------------------------------------------
    def _combine(self, global_term: Tensor | None, blob_term: Tensor | None) -> BlobLossComponents:
        total = None
        if global_term is not None:
            total = self.alpha * global_term
        if blob_term is not None:
            total = self.beta * blob_term if total is None else total + self.beta * blob_term
        assert total is not None
        return BlobLossComponents(total, global_term, blob_term)

    def _fused(self, logits: Tensor, instances: Tensor, max_id: int | None) -> BlobLossComponents:
        assert self.builtin is not None
        # The channel axis (size 1) is kept: the fused core takes any (B, ...) shape, and avoiding a
        # select keeps its backward a view instead of a full-size zero-fill and copy.
        kwargs = {
            "criterion": self.builtin,
            "masking": self.masking,
            "mask_space": self.mask_space,
            "settings": self.criterion_settings,
            "running_mean": self.published_running_mean,
            "want_global": self.alpha > 0,
            "want_blob": self.beta > 0,
            "max_id": max_id,
        }
        if self.compile:
            if self._compiled_terms is None:
                self._compiled_terms = torch.compile(_fused_terms, dynamic=True)
            try:
                return self._combine(*self._compiled_terms(logits, instances, **kwargs))
            except Exception as err:  # pragma: no cover - depends on the platform's compiler
                warnings.warn(
                    f"torch.compile of the blob loss failed ({type(err).__name__}: {err}); using eager mode.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.compile = False
        return self._combine(*_fused_terms(logits, instances, **kwargs))

    def _loop(self, logits: Tensor, instances: Tensor) -> BlobLossComponents:
        global_term = blob_term = None
        if self.alpha > 0:
            global_term = self.criterion_fn(torch.sigmoid(logits), (instances > 0).to(logits.dtype))
        if self.beta > 0:
            per_element = loop_instance_losses(
                logits, instances, self.criterion_fn, masking=self.masking, mask_space=self.mask_space
            )
            blob_term = _aggregate_loop(per_element, logits, self.published_running_mean)
        return self._combine(global_term, blob_term)
