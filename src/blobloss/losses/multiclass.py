"""Multi-class blob loss for softmax outputs (Kofler et al., IPMI 2023, Eq. 3; SPEC section 2).

With ``C`` foreground classes the network predicts ``C + 1`` channels (channel 0 = background) and
``p = softmax(logits, dim=1)``. Instances are per class: an instance is the pair ``(class c, id n)``, so the
same id may appear in several classes. For class ``c`` let ``L_c = instances * (class_map == c)``; for each
instance ``n`` of ``L_c`` only the *other instances of class c* are masked out
(``keep = (L_c == 0) | (L_c == n)``), voxels of other classes stay as background of the class-``c`` binary
problem, and the instance loss is ``criterion(p_c * keep, L_c == n)`` over the whole batch element.

Aggregation: class term = mean over the class's instances in the element; element blob term = mean over
the classes that have instances in the element; blob term = mean over the elements that have any
instance (0, still differentiable, when the batch has none). The global term is the criterion of every
foreground class against its one-hot target (as MONAI ``DiceLoss(softmax=True, to_onehot_y=True,
include_background=False)``), averaged over classes and batch elements. ``total = alpha * global +
beta * blob``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blobloss.losses.blob import BlobLossComponents, fused_instance_losses
from blobloss.losses.criteria import (
    Criterion,
    CriterionFn,
    Implementation,
    dice_from_sums,
    resolve_criterion,
    tversky_from_sums,
)

__all__ = ["MultiClassBlobLoss", "multiclass_loop_instance_losses"]


def _check_nonneg(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0.")
    return float(value)


def _not_whole(t: Tensor) -> Tensor:
    """0-d float64 flag: does the (float) id map hold a non-whole or NaN value? Always 0 for integer maps."""
    if not t.is_floating_point():
        return torch.zeros((), dtype=torch.float64, device=t.device)
    return (t != torch.trunc(t)).any().to(torch.float64)


def _class_instances(class_map: Tensor, instances: Tensor, c: int) -> Tensor:
    """Instance ids of class ``c`` (other classes' voxels set to 0); same shape as the inputs."""
    return torch.where(class_map == c, instances, torch.zeros_like(instances))


def multiclass_loop_instance_losses(
    probs: Tensor,
    class_map: Tensor,
    instances: Tensor,
    criterion: CriterionFn,
    *,
    masking: bool = True,
) -> list[list[list[Tensor]]]:
    """Per-instance losses of the multi-class blob loss, one criterion call per instance (the reference).

    For class ``c >= 1``, batch element ``b`` and instance id ``n`` of class ``c`` (increasing order), calls
    ``criterion(p_c * keep, L_c == n)`` on ``(1, 1, *spatial)`` tensors, with ``L_c`` the instance ids of
    class ``c`` and ``keep = (L_c == 0) | (L_c == n)`` (``p_c`` itself when ``masking=False``).

    Args:
        probs: ``(B, C + 1, *spatial)`` softmax probabilities.
        class_map: ``(B, 1, *spatial)`` integer class ids ``0..C``.
        instances: ``(B, 1, *spatial)`` integer instance ids, per class.
        criterion: called as ``criterion(probabilities, target)`` returning a scalar tensor.
        masking: mask the class's other instances (True) or not (the no-masking ablation).

    Returns:
        ``out[b][c - 1]``: the list of instance losses of class ``c`` in element ``b`` (empty if none).

    Example:
        >>> from monai.losses import DiceLoss
        >>> probs = torch.full((1, 3, 2, 2), 1 / 3)
        >>> cls = torch.tensor([[[[1, 0], [0, 2]]]]); inst = torch.tensor([[[[1, 0], [0, 1]]]])
        >>> out = multiclass_loop_instance_losses(probs, cls, inst, DiceLoss(smooth_nr=0, smooth_dr=0))
        >>> [[round(float(v), 4) for v in per_class] for per_class in out[0]]  # 1 - 2/3 / (1 + 4/3)
        [[0.7143], [0.7143]]
    """
    n_classes = probs.shape[1] - 1
    out: list[list[list[Tensor]]] = []
    for b in range(probs.shape[0]):
        per_class: list[list[Tensor]] = []
        for c in range(1, n_classes + 1):
            lab = _class_instances(class_map[b : b + 1], instances[b : b + 1], c)
            p_c = probs[b : b + 1, c : c + 1]
            losses: list[Tensor] = []
            for n in torch.unique(lab).tolist():
                if n == 0:
                    continue
                target = lab == n
                q = p_c * ((lab == 0) | target) if masking else p_c
                losses.append(criterion(q, target.to(q.dtype)))
            per_class.append(losses)
        out.append(per_class)
    return out


def _mean_over_present(values: Tensor, present: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Mean of ``values`` over ``dim`` where ``present``; also whether anything was present."""
    weight = present.to(values.dtype)
    count = weight.sum(dim)
    return (values * weight).sum(dim) / count.clamp(min=1.0), count > 0


class MultiClassBlobLoss(nn.Module):
    """Blob loss for multi-class softmax segmentation (Kofler et al., IPMI 2023, Eq. 3).

    ``total = alpha * global + beta * blob`` with ``p = softmax(logits, dim=1)``. For every foreground class
    ``c`` and each of its instances ``n`` (an instance is the pair (class, id)), the instance loss is
    ``criterion(p_c * keep, L_c == n)`` where ``keep`` masks only the *other instances of class c*; voxels of
    other classes stay as background. Class term = mean over its instances; element term = mean over the
    classes with instances; blob term = mean over the elements with instances (0 with gradient if none).
    The global term averages the criterion of each foreground class against its one-hot target over
    classes and batch elements (MONAI ``DiceLoss(softmax=True, to_onehot_y=True,
    include_background=False)`` for ``"dice"``).

    Built-in criteria (``"dice"``, ``"tversky"``, ``"bce"``) run the binary fused core once per class (no
    loop over instances). Any other criterion, a callable ``criterion(probabilities, target) -> scalar`` on
    ``(B, 1, *spatial)`` probabilities and float targets (e.g. a MONAI loss with ``sigmoid=False``), runs a
    per-instance loop and is also applied per class for the global term. Masking is always in probability
    space (masked voxels count as p = 0); the logit-space option of the binary loss has no softmax analogue.

    Args:
        criterion: ``"dice"``, ``"tversky"``, ``"bce"`` or a callable on probabilities.
        alpha: weight of the global term (paper default 2).
        beta: weight of the blob term (paper default 1).
        masking: False computes the no-masking ablation (``criterion(p_c, L_c == n)``).
        implementation: ``"auto"`` (fused for built-in criteria, loop otherwise), ``"fused"`` or ``"loop"``.
        smooth_nr: Dice / Tversky numerator smoothing (MONAI default 1e-5).
        smooth_dr: Dice / Tversky denominator smoothing (MONAI default 1e-5).
        tversky_alpha: Tversky false-positive weight (paper 0.3).
        tversky_beta: Tversky false-negative weight (paper 0.7).
        check_inputs: validate values (NaN/Inf logits, class ids in ``0..C``, non-negative whole ids, every
            foreground voxel has an instance id and vice versa) with one host sync per call. Shapes and dtypes
            are always checked.

    Shapes:
        logits: ``(B, C + 1, *spatial)`` raw network output, channel 0 = background, ``C >= 1``.
        class_map: ``(B, 1, *spatial)`` integer class ids ``0..C``.
        instances: ``(B, 1, *spatial)`` integer instance ids per class, 0 = background.
        output: scalar.

    Example:
        >>> loss_fn = MultiClassBlobLoss("dice")
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)        # C = 2 foreground classes
        >>> class_map = torch.zeros(2, 1, 8, 8, dtype=torch.long)
        >>> instances = torch.zeros(2, 1, 8, 8, dtype=torch.long)
        >>> class_map[0, 0, :2, :2], instances[0, 0, :2, :2] = 1, 1     # class 1, instance 1
        >>> class_map[0, 0, 5:, 5:], instances[0, 0, 5:, 5:] = 2, 1     # class 2, also id 1: distinct
        >>> loss = loss_fn(logits, class_map, instances)
        >>> loss.backward()
        >>> parts = loss_fn.last_components
        >>> bool(torch.isclose(parts.total, 2 * parts.global_term + parts.blob_term))
        True
    """

    def __init__(
        self,
        criterion: str | Criterion | CriterionFn = "dice",
        alpha: float = 2.0,
        beta: float = 1.0,
        masking: bool = True,
        implementation: str | Implementation = "auto",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        tversky_alpha: float = 0.3,
        tversky_beta: float = 0.7,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        self.alpha = _check_nonneg(alpha, "alpha")
        self.beta = _check_nonneg(beta, "beta")
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha and beta are both 0, so the loss would be constant; set one of them > 0.")
        self.smooth_nr = _check_nonneg(smooth_nr, "smooth_nr")
        self.smooth_dr = _check_nonneg(smooth_dr, "smooth_dr")
        self.tversky_alpha = _check_nonneg(tversky_alpha, "tversky_alpha")
        self.tversky_beta = _check_nonneg(tversky_beta, "tversky_beta")
        self.masking = bool(masking)
        self.check_inputs = bool(check_inputs)

        self.builtin, self.criterion_fn, self.implementation = resolve_criterion(
            criterion,
            implementation,
            smooth_nr=self.smooth_nr,
            smooth_dr=self.smooth_dr,
            tversky_alpha=self.tversky_alpha,
            tversky_beta=self.tversky_beta,
        )
        self.last_components: BlobLossComponents | None = None

    def extra_repr(self) -> str:
        crit = self.builtin.value if self.builtin is not None else type(self.criterion_fn).__name__
        return (
            f"criterion={crit!r}, alpha={self.alpha}, beta={self.beta}, masking={self.masking}, "
            f"implementation={self.implementation.value!r}"
        )

    # ---------------------------------------------------------------------------------------------
    def _validate(self, logits: Tensor, class_map: Tensor, instances: Tensor) -> tuple[Tensor, Tensor, int | None]:
        """Check shapes, dtypes and (with ``check_inputs``) values; return integer maps and the max id."""
        for name, value in (("logits", logits), ("class_map", class_map), ("instances", instances)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
        if not logits.is_floating_point():
            raise TypeError(f"logits must be a floating point tensor (raw network output), got {logits.dtype}.")
        if logits.ndim < 3:
            raise ValueError(
                f"logits must have shape (B, C + 1, *spatial) with 1 to 3 spatial axes, got {tuple(logits.shape)}."
            )
        if logits.shape[1] < 2:
            raise ValueError(
                f"logits {tuple(logits.shape)} have {logits.shape[1]} channel; the multi-class loss needs C + 1 >= 2 "
                "softmax channels (channel 0 = background). For one sigmoid channel use BlobLoss."
            )
        if logits.numel() == 0:
            raise ValueError(f"logits {tuple(logits.shape)} are empty.")
        expected = (logits.shape[0], 1, *logits.shape[2:])
        for name, value in (("class_map", class_map), ("instances", instances)):
            if tuple(value.shape) != expected:
                hint = ""
                if tuple(value.shape) == (logits.shape[0], *logits.shape[2:]):
                    hint = f" (add the channel axis: {name}.unsqueeze(1))"
                raise ValueError(
                    f"{name} {tuple(value.shape)} must have shape {expected} (B, 1, *spatial) to match logits "
                    f"{tuple(logits.shape)}{hint}."
                )
            if value.device != logits.device:
                raise ValueError(f"{name} is on {value.device} but logits on {logits.device}; move them together.")
            if value.dtype == torch.bool or value.is_complex():
                raise TypeError(
                    f"{name} must hold integer ids, got dtype {value.dtype}"
                    + (
                        "; label each class's connected components first (blobloss.components / cc3d)."
                        if name == "instances"
                        else "; pass the class label map (0 = background, 1..C) as an integer tensor."
                    )
                )
        n_classes = logits.shape[1] - 1
        max_id: int | None = None
        if self.check_inputs:
            cls_fg, inst_fg = class_map > 0, instances > 0
            flags = torch.stack(
                [
                    (~torch.isfinite(logits)).any().to(torch.float64),
                    _not_whole(class_map),
                    _not_whole(instances),
                    class_map.min().to(torch.float64),
                    class_map.max().to(torch.float64),
                    instances.min().to(torch.float64),
                    instances.max().to(torch.float64),
                    (cls_fg & ~inst_fg).sum().to(torch.float64),
                    (~cls_fg & inst_fg).sum().to(torch.float64),
                ]
            ).tolist()  # the one host sync
            if flags[0]:
                raise ValueError(
                    "logits contain NaN or Inf; the loss would be NaN. Check the network output (learning rate, "
                    "mixed precision overflow, input normalisation)."
                )
            if flags[1] or flags[2]:
                name = "class_map" if flags[1] else "instances"
                raise ValueError(
                    f"{name} is a float tensor with non-integer (or NaN) values; ids must be whole numbers "
                    "(use nearest-neighbour interpolation when resampling label maps)."
                )
            if flags[3] < 0 or flags[5] < 0:
                name, low = ("class_map", flags[3]) if flags[3] < 0 else ("instances", flags[5])
                raise ValueError(f"{name} contains negative ids (min {low:g}); ids must be >= 0, 0 = background.")
            if flags[4] > n_classes:
                raise ValueError(
                    f"class_map contains class {int(flags[4])} but logits {tuple(logits.shape)} have "
                    f"{logits.shape[1]} channels, i.e. classes 0..{n_classes}; the network needs "
                    f"{int(flags[4]) + 1} output channels (C + 1, channel 0 = background)."
                )
            if flags[7]:
                raise ValueError(
                    f"{int(flags[7])} foreground voxels (class_map > 0) have instance id 0; compute the instance "
                    "map per class over the whole class foreground (e.g. cc3d on class_map == c for each c)."
                )
            if flags[8]:
                raise ValueError(
                    f"{int(flags[8])} voxels have an instance id but class 0 (background); instance ids must lie "
                    "inside the class foreground."
                )
            max_id = int(flags[6])
        if class_map.is_floating_point():
            class_map = class_map.to(torch.int64)
        if instances.is_floating_point():
            instances = instances.to(torch.int64)
        return class_map, instances, max_id

    # ---------------------------------------------------------------------------------------------
    def components(self, logits: Tensor, class_map: Tensor, instances: Tensor) -> BlobLossComponents:
        """Compute the loss and its terms.

        Args:
            logits: ``(B, C + 1, *spatial)`` raw network output, channel 0 = background.
            class_map: ``(B, 1, *spatial)`` class ids ``0..C``.
            instances: ``(B, 1, *spatial)`` instance ids per class, 0 = background.

        Returns:
            :class:`~blobloss.losses.blob.BlobLossComponents` ``(total, global_term, blob_term)``, attached to
            the graph (``global_term`` is None when ``alpha == 0``, ``blob_term`` when ``beta == 0``).

        Example:
            >>> loss_fn = MultiClassBlobLoss("tversky", alpha=1.0, beta=1.0)
            >>> x = torch.zeros(1, 3, 4, 4)
            >>> empty = torch.zeros(1, 1, 4, 4, dtype=torch.long)
            >>> float(loss_fn.components(x, empty, empty).blob_term)  # no instances
            0.0
        """
        class_map, instances, max_id = self._validate(logits, class_map, instances)
        probs = torch.softmax(logits, dim=1)
        global_term = blob_term = None
        if self.alpha > 0:
            global_term = self._global_term(probs, class_map)
        if self.beta > 0:
            if self.implementation is Implementation.FUSED:
                blob_term = self._fused_blob(probs, class_map, instances, max_id)
            else:
                blob_term = self._loop_blob(probs, class_map, instances)
        total = None
        if global_term is not None:
            total = self.alpha * global_term
        if blob_term is not None:
            total = self.beta * blob_term if total is None else total + self.beta * blob_term
        assert total is not None
        parts = BlobLossComponents(total, global_term, blob_term)
        self.last_components = BlobLossComponents(*(t.detach() if t is not None else None for t in parts))
        return parts

    def forward(self, logits: Tensor, class_map: Tensor, instances: Tensor) -> Tensor:
        """Total loss ``alpha * global_term + beta * blob_term`` (scalar); terms in ``last_components``.

        Args:
            logits: ``(B, C + 1, *spatial)`` raw network output, channel 0 = background.
            class_map: ``(B, 1, *spatial)`` class ids ``0..C``.
            instances: ``(B, 1, *spatial)`` instance ids per class, 0 = background.

        Returns:
            Scalar loss tensor.
        """
        return self.components(logits, class_map, instances).total

    # ---------------------------------------------------------------------------------------------
    def _global_term(self, probs: Tensor, class_map: Tensor) -> Tensor:
        """Criterion per foreground class against its one-hot target, mean over classes and elements."""
        n_classes = probs.shape[1] - 1
        fg = probs[:, 1:]
        classes = torch.arange(1, n_classes + 1, device=probs.device).view(1, -1, *([1] * (probs.ndim - 2)))
        target = (class_map == classes).to(probs.dtype)  # (B, C, *spatial) one-hot of the foreground classes
        if self.implementation is Implementation.LOOP or self.builtin is None:
            per_class = [self.criterion_fn(fg[:, k : k + 1], target[:, k : k + 1]) for k in range(n_classes)]
            return torch.stack(per_class).mean()
        if self.builtin is Criterion.BCE:
            return F.binary_cross_entropy(fg, target)
        dims = tuple(range(2, probs.ndim))
        tp = (fg * target).sum(dims)
        pred_sum = fg.sum(dims)
        target_sum = target.sum(dims)
        if self.builtin is Criterion.DICE:
            loss = dice_from_sums(tp, pred_sum, target_sum, self.smooth_nr, self.smooth_dr)
        else:
            loss = tversky_from_sums(
                tp,
                pred_sum - tp,
                target_sum - tp,
                self.tversky_alpha,
                self.tversky_beta,
                self.smooth_nr,
                self.smooth_dr,
            )
        return loss.mean()

    def _fused_blob(self, probs: Tensor, class_map: Tensor, instances: Tensor, max_id: int | None) -> Tensor:
        """Blob term from the binary fused core, called once per foreground class."""
        assert self.builtin is not None
        cls, inst = class_map[:, 0], instances[:, 0]
        losses, present = [], []
        for c in range(1, probs.shape[1]):
            element_loss, has = fused_instance_losses(
                probs[:, c],
                _class_instances(cls, inst, c),
                self.builtin,
                smooth_nr=self.smooth_nr,
                smooth_dr=self.smooth_dr,
                tversky_alpha=self.tversky_alpha,
                tversky_beta=self.tversky_beta,
                masking=self.masking,
                mask_space="probabilities",
                max_id=max_id,
            )
            losses.append(element_loss)
            present.append(has)
        element_term, element_has = _mean_over_present(torch.stack(losses, 1), torch.stack(present, 1), dim=1)
        blob, _ = _mean_over_present(element_term, element_has, dim=0)
        return blob.to(probs.dtype)

    def _loop_blob(self, probs: Tensor, class_map: Tensor, instances: Tensor) -> Tensor:
        """Blob term by one criterion call per instance (any criterion; the reference)."""
        per_element = multiclass_loop_instance_losses(
            probs, class_map, instances, self.criterion_fn, masking=self.masking
        )
        element_terms = []
        for per_class in per_element:
            class_terms = [torch.stack(ls).mean() for ls in per_class if ls]
            if class_terms:
                element_terms.append(torch.stack(class_terms).mean())
        if not element_terms:
            return probs.sum() * 0.0  # exactly 0, still part of the graph
        return torch.stack(element_terms).mean()
