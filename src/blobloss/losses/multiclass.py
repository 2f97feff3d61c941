"""Multi-class blob loss for softmax outputs (Kofler et al., IPMI 2023, Eq. 3; docs/definitions.md section 2).

With ``C`` foreground classes the network predicts ``C + 1`` channels (channel 0 = background) and
``p = softmax(logits, dim=1)``. Instances are per class: an instance is the pair ``(class c, id n)``, so the
same id may appear in several classes. For class ``c`` let ``L_c = instances * (class_map == c)``; for each
instance ``n`` of ``L_c`` only the *other instances of class c* are masked out
(``keep = (L_c == 0) | (L_c == n)``), voxels of other classes stay as background of the class-``c`` binary
problem, and the instance loss is ``criterion(p_c * keep, L_c == n)`` over the whole batch element.

Aggregation: class term = mean over the class's instances in the element; element blob term = the sum of
the class terms divided by ``C``, the number of foreground classes (``class_reduction="paper"``, Eq. 3: a
class without instances in the element adds 0), or the mean over the classes that have instances in the
element (``class_reduction="present"``); blob term = mean over the elements that have any instance (0,
still differentiable, when the batch has none). The global term is the criterion of every
foreground class against its one-hot target (as MONAI ``DiceLoss(softmax=True, to_onehot_y=True,
include_background=False)``), averaged over classes and batch elements. ``total = alpha * global +
beta * blob``.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blobloss.losses.blob import BlobLossComponents, _check_weight, _detached, fused_instance_losses
from blobloss.losses.criteria import (
    ClassReduction,
    Criterion,
    CriterionFn,
    CriterionSettings,
    Implementation,
    _reject_unknown,
    dice_from_sums,
    parse_option,
    resolve_criterion,
    settings_from_legacy,
    tversky_from_sums,
)
from blobloss.losses.settings import DEFAULT_ALPHA, DEFAULT_BETA
from blobloss.losses.validation import check_logits, check_map, check_values

__all__ = ["MultiClassBlobLoss", "multiclass_loop_instance_losses"]


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


def _reduce_classes(values: Tensor, present: Tensor, reduction: ClassReduction) -> tuple[Tensor, Tensor]:
    """Element blob terms from class terms ``(B, C)``: Eq. 3's sum / C, or the mean over present classes."""
    if reduction is ClassReduction.PRESENT:
        return _mean_over_present(values, present, dim=1)
    weight = present.to(values.dtype)
    return (values * weight).sum(1) / values.shape[1], weight.sum(1) > 0


class MultiClassBlobLoss(nn.Module):
    """Blob loss for multi-class softmax segmentation (Kofler et al., IPMI 2023, Eq. 3).

    ``total = alpha * global + beta * blob`` with ``p = softmax(logits, dim=1)``. For every foreground class
    ``c`` and each of its instances ``n`` (an instance is the pair (class, id)), the instance loss is
    ``criterion(p_c * keep, L_c == n)`` where ``keep`` masks only the *other instances of class c*; voxels of
    other classes stay as background. Class term = mean over its instances. Element term: with
    ``class_reduction="paper"`` (default, Eq. 3) the sum of the class terms divided by ``C``, the number of
    foreground classes, so a class without instances in the element adds 0; with ``"present"`` the mean
    over the classes that have instances in the element. Blob term = mean over the elements with instances
    (0 with gradient if none). The global term averages the criterion of each foreground class against its
    one-hot target over classes and batch elements (MONAI ``DiceLoss(softmax=True, to_onehot_y=True,
    include_background=False)`` for ``"dice"``).

    Worked example (``C = 2``, one element with one class-1 instance of loss 0.4 and no class-2 instance):
    ``"paper"`` gives ``(0.4 + 0) / 2 = 0.2``, ``"present"`` gives ``0.4``.

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
        class_reduction: ``"paper"`` (sum over classes / C, Eq. 3) or ``"present"`` (mean over the classes
            with instances in the element).
        criterion_settings: Smoothing and Tversky weights (:class:`~blobloss.losses.CriterionSettings`).
        check_inputs: validate values (NaN/Inf logits, class ids in ``0..C``, non-negative whole ids, every
            foreground voxel has an instance id and vice versa) with one host sync per call. Shapes and dtypes
            are always checked.
        **deprecated: The old keywords ``smooth_nr``, ``smooth_dr``, ``tversky_alpha``, ``tversky_beta``
            still work, with a DeprecationWarning that shows the ``criterion_settings`` form.

    Shapes:
        logits: ``(B, C + 1, *spatial)`` raw network output, channel 0 = background, ``C >= 1``.
        instances: ``(B, 1, *spatial)`` integer instance ids per class, 0 = background.
        class_map (keyword): ``(B, 1, *spatial)`` integer class ids ``0..C``.
        output: scalar.

    Example:
        >>> loss_fn = MultiClassBlobLoss("dice")
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)        # C = 2 foreground classes
        >>> class_map = torch.zeros(2, 1, 8, 8, dtype=torch.long)
        >>> instances = torch.zeros(2, 1, 8, 8, dtype=torch.long)
        >>> class_map[0, 0, :2, :2], instances[0, 0, :2, :2] = 1, 1     # class 1, instance 1
        >>> class_map[0, 0, 5:, 5:], instances[0, 0, 5:, 5:] = 2, 1     # class 2, also id 1: distinct
        >>> loss = loss_fn(logits, instances, class_map=class_map)
        >>> loss.backward()
        >>> parts = loss_fn.last_components
        >>> bool(torch.isclose(parts.total, 2 * parts.global_term + parts.blob_term))
        True
    """

    def __init__(
        self,
        criterion: str | Criterion | CriterionFn = "dice",
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        masking: bool = True,
        implementation: str | Implementation = "auto",
        *,
        class_reduction: str | ClassReduction = ClassReduction.PAPER,
        criterion_settings: CriterionSettings | None = None,
        check_inputs: bool = True,
        **deprecated: float,
    ) -> None:
        super().__init__()
        _reject_unknown(deprecated, "MultiClassBlobLoss")
        self.alpha = _check_weight(alpha, "alpha")
        self.beta = _check_weight(beta, "beta")
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha and beta are both 0, so the loss would be constant; set one of them > 0.")
        self.criterion_settings = settings_from_legacy(criterion_settings, deprecated, "MultiClassBlobLoss")
        self.class_reduction = parse_option(class_reduction, ClassReduction, "class_reduction")
        self.masking = bool(masking)
        self.check_inputs = bool(check_inputs)
        self.builtin, self.criterion_fn, self.implementation = resolve_criterion(
            criterion, implementation, self.criterion_settings
        )
        self.last_components: BlobLossComponents | None = None

    smooth_nr = property(lambda self: self.criterion_settings.smooth_nr)
    smooth_dr = property(lambda self: self.criterion_settings.smooth_dr)
    tversky_alpha = property(lambda self: self.criterion_settings.tversky_alpha)
    tversky_beta = property(lambda self: self.criterion_settings.tversky_beta)

    def extra_repr(self) -> str:
        crit = self.builtin.value if self.builtin is not None else type(self.criterion_fn).__name__
        return (
            f"criterion={crit!r}, alpha={self.alpha}, beta={self.beta}, masking={self.masking}, "
            f"implementation={self.implementation.value!r}, class_reduction={self.class_reduction.value!r}"
        )

    # ---------------------------------------------------------------------------------------------
    @staticmethod
    def _arguments(instances: Tensor, legacy: tuple, class_map: Tensor | None, where: str) -> tuple[Tensor, Tensor]:
        """``(instances, class_map)`` of the new call form; the old ``(logits, class_map, instances)`` warns."""
        if legacy:
            if len(legacy) > 1 or class_map is not None:
                raise TypeError(
                    f"MultiClassBlobLoss.{where} takes (logits, instances, class_map=class_map); got "
                    f"{2 + len(legacy)} positional arguments{' and class_map=' if class_map is not None else ''}."
                )
            warnings.warn(
                f"MultiClassBlobLoss.{where}(logits, class_map, instances) is deprecated; call "
                f"loss.{where}(logits, instances, class_map=class_map) (the order of every blobloss loss).",
                DeprecationWarning,
                stacklevel=3,
            )
            return legacy[0], instances
        if class_map is None:
            raise TypeError(
                f"MultiClassBlobLoss.{where} needs the class map as a keyword: "
                f"loss.{where}(logits, instances, class_map=class_map)."
            )
        return instances, class_map

    def _validate(self, logits: Tensor, class_map: Tensor, instances: Tensor) -> tuple[Tensor, Tensor, int | None]:
        """Check shapes, dtypes and (with ``check_inputs``) values; return integer maps and the max id."""
        check_logits(logits, multiclass=True)
        instances = check_map(instances, "instances", logits)
        class_map = check_map(class_map, "class_map", logits)
        n_classes = logits.shape[1] - 1
        max_id: int | None = None
        if self.check_inputs:
            cls_fg, inst_fg = class_map > 0, instances > 0
            ranges, (fg_without_id, id_without_fg) = check_values(
                logits,
                {"class_map": class_map, "instances": instances},
                extra=[(cls_fg & ~inst_fg).sum(), (~cls_fg & inst_fg).sum()],
            )
            top_class = int(ranges["class_map"][1])
            if top_class > n_classes:
                raise ValueError(
                    f"class_map contains class {top_class} but logits {tuple(logits.shape)} have "
                    f"{logits.shape[1]} channels, i.e. classes 0..{n_classes}; the network needs "
                    f"{top_class + 1} output channels (C + 1, channel 0 = background)."
                )
            if fg_without_id:
                raise ValueError(
                    f"{int(fg_without_id)} foreground voxels (class_map > 0) have instance id 0; compute the "
                    "instance map per class over the whole class foreground (e.g. cc3d on class_map == c for each c)."
                )
            if id_without_fg:
                raise ValueError(
                    f"{int(id_without_fg)} voxels have an instance id but class 0 (background); instance ids must "
                    "lie inside the class foreground."
                )
            max_id = int(ranges["instances"][1])
        if class_map.is_floating_point():
            class_map = class_map.to(torch.int64)
        if instances.is_floating_point():
            instances = instances.to(torch.int64)
        return class_map, instances, max_id

    # ---------------------------------------------------------------------------------------------
    def components(
        self, logits: Tensor, instances: Tensor, *legacy: Tensor, class_map: Tensor | None = None
    ) -> BlobLossComponents:
        """Compute the loss and its terms.

        Args:
            logits: ``(B, C + 1, *spatial)`` raw network output, channel 0 = background.
            instances: ``(B, 1, *spatial)`` instance ids per class, 0 = background.
            *legacy: The old call form ``components(logits, class_map, instances)`` still works, with a
                DeprecationWarning.
            class_map: ``(B, 1, *spatial)`` class ids ``0..C`` (keyword).

        Returns:
            :class:`~blobloss.losses.blob.BlobLossComponents` ``(total, global_term, blob_term)``, attached to
            the graph (``global_term`` is None when ``alpha == 0``, ``blob_term`` when ``beta == 0``).

        Raises:
            TypeError: Without ``class_map``.

        Example:
            >>> loss_fn = MultiClassBlobLoss("tversky", alpha=1.0, beta=1.0)
            >>> x = torch.zeros(1, 3, 4, 4)
            >>> empty = torch.zeros(1, 1, 4, 4, dtype=torch.long)
            >>> float(loss_fn.components(x, empty, class_map=empty).blob_term)  # no instances
            0.0
        """
        instances, class_map = self._arguments(instances, legacy, class_map, "components")
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
        self.last_components = _detached(parts)
        return parts

    def forward(
        self, logits: Tensor, instances: Tensor, *legacy: Tensor, class_map: Tensor | None = None
    ) -> Tensor:
        """Total loss ``alpha * global_term + beta * blob_term`` (scalar); terms in ``last_components``.

        Args:
            logits: ``(B, C + 1, *spatial)`` raw network output, channel 0 = background.
            instances: ``(B, 1, *spatial)`` instance ids per class, 0 = background.
            *legacy: The old call form ``loss(logits, class_map, instances)`` still works, with a
                DeprecationWarning.
            class_map: ``(B, 1, *spatial)`` class ids ``0..C`` (keyword).

        Returns:
            Scalar loss tensor.
        """
        instances, class_map = self._arguments(instances, legacy, class_map, "forward")
        return self.components(logits, instances, class_map=class_map).total

    # ---------------------------------------------------------------------------------------------
    def _global_term(self, probs: Tensor, class_map: Tensor) -> Tensor:
        """Criterion per foreground class against its one-hot target, mean over classes and elements."""
        n_classes = probs.shape[1] - 1
        fg = probs[:, 1:]
        classes = torch.arange(1, n_classes + 1, device=probs.device).view(1, -1, *([1] * (probs.ndim - 2)))
        target = (class_map == classes).to(probs.dtype)  # (B, C, *spatial) one-hot of the foreground classes
        if self.criterion_fn is not None:  # the loop (reference) or a custom criterion
            per_class = [self.criterion_fn(fg[:, k : k + 1], target[:, k : k + 1]) for k in range(n_classes)]
            return torch.stack(per_class).mean()
        if self.builtin is Criterion.BCE:
            return F.binary_cross_entropy(fg, target)
        s = self.criterion_settings
        dims = tuple(range(2, probs.ndim))
        tp = (fg * target).sum(dims)
        pred_sum = fg.sum(dims)
        target_sum = target.sum(dims)
        if self.builtin is Criterion.DICE:
            loss = dice_from_sums(tp, pred_sum, target_sum, s.smooth_nr, s.smooth_dr)
        else:
            loss = tversky_from_sums(
                tp, pred_sum - tp, target_sum - tp, s.tversky_alpha, s.tversky_beta, s.smooth_nr, s.smooth_dr
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
                criterion_settings=self.criterion_settings,
                masking=self.masking,
                mask_space="probabilities",
                max_id=max_id,
            )
            losses.append(element_loss)
            present.append(has)
        element_term, element_has = _reduce_classes(
            torch.stack(losses, 1), torch.stack(present, 1), self.class_reduction
        )
        blob, _ = _mean_over_present(element_term, element_has, dim=0)
        return blob.to(probs.dtype)

    def _loop_blob(self, probs: Tensor, class_map: Tensor, instances: Tensor) -> Tensor:
        """Blob term by one criterion call per instance (any criterion; the reference)."""
        assert self.criterion_fn is not None
        per_element = multiclass_loop_instance_losses(
            probs, class_map, instances, self.criterion_fn, masking=self.masking
        )
        n_classes = probs.shape[1] - 1
        element_terms = []
        for per_class in per_element:
            class_terms = [torch.stack(ls).mean() for ls in per_class if ls]
            if class_terms:
                total = torch.stack(class_terms).sum()
                divisor = n_classes if self.class_reduction is ClassReduction.PAPER else len(class_terms)
                element_terms.append(total / divisor)
        if not element_terms:
            return probs.sum() * 0.0  # exactly 0, still part of the graph
        return torch.stack(element_terms).mean()
