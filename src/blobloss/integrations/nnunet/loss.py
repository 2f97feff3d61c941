"""The blob loss on one nnU-Net output scale (no nnU-Net import: nnU-Net's own losses are passed in).

nnU-Net trains softmax networks with ``C + 1`` output channels (channel 0 = background) and integer class
targets of shape ``(B, 1, *spatial)``. The blob trainers append the instance map as a second target channel
in the data-loading transforms (:class:`~blobloss.integrations.nnunet.transforms.InstanceMapTransform`), so
one scale's target is ``(B, 2, *spatial)``: channel 0 the classes, channel 1 the instance ids (per class,
0 = background). nnU-Net downsamples both channels together (nearest) for deep supervision, so every
scale's instance map matches that scale's target; nnU-Net's ``DeepSupervisionWrapper`` then sums
:class:`NNUNetBlobLoss` over the scales with its usual weights.

Binary datasets (one foreground class) use :class:`~blobloss.losses.BlobLoss` on the logit difference
``x_1 - x_0`` (``sigmoid(x_1 - x_0)`` is exactly the softmax probability of the foreground); datasets with
several classes use :class:`~blobloss.losses.MultiClassBlobLoss` on the softmax (docs/definitions.md
section 2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from blobloss.losses import BlobLoss, ClassReduction, MultiClassBlobLoss

__all__ = ["CRITERIA", "NNUNetBlobLoss"]

#: Criteria of :class:`NNUNetBlobLoss`: the built-in blob criteria and ``"dice_ce"`` (nnU-Net's Dice + CE).
CRITERIA = ("dice", "tversky", "dice_ce")


class NNUNetBlobLoss(nn.Module):
    """Blob loss for one nnU-Net output scale: ``loss(logits, target)`` with the instance map in the target.

    ``"dice"`` / ``"tversky"``: ``alpha * criterion(p, classes) + beta * blob`` with the blob loss of
    docs/definitions.md section 2 (soft Dice as MONAI ``DiceLoss``, Tversky 0.3 / 0.7).

    ``"dice_ce"``: nnU-Net's Dice + CE as the criterion for both terms. The global term is ``global_loss``,
    nnU-Net's own ``DC_and_CE_loss`` (exactly the loss of the default ``nnUNetTrainer``); the blob term uses
    nnU-Net's per-instance Dice + CE: for instance ``n`` with masked probability ``q = p * keep_n``,
    ``-Dice_nnU-Net(q, L == n) + BCE(q, L == n)``, where nnU-Net's soft Dice loss is the negative Dice
    ``-(2 sum(q t) + 1e-5) / (sum(q) + sum(t) + 1e-5)`` and its cross-entropy on the instance's two-class
    problem is the binary cross-entropy. Since ``-Dice_nnU-Net = dice_loss - 1`` with the blob loss's soft
    Dice (same smoothing) and the blob term is a mean over instances, the blob term is computed exactly as
    ``blob_dice + blob_bce - 1`` by the fused core (cost independent of the instance count; a batch without
    instances has a blob term of 0). As in nnU-Net's logs, the values can be negative.

    Args:
        n_classes: Number of foreground classes ``C`` (the network has ``C + 1`` output channels).
        criterion: ``"dice"``, ``"tversky"`` or ``"dice_ce"``.
        alpha: Weight of the global term (paper default 2).
        beta: Weight of the blob term (paper default 1).
        global_loss: For ``"dice_ce"``: nnU-Net's ``DC_and_CE_loss``, called as ``global_loss(logits,
            classes)`` with ``classes`` ``(B, 1, *spatial)``. Ignored otherwise.
        check_inputs: Validate the instance maps in the blob losses (one host sync per loss call).

    Shapes:
        logits: ``(B, C + 1, *spatial)`` raw network output of one scale.
        target: ``(B, 2, *spatial)``: classes ``0..C`` and instance ids (per class).
        output: scalar.

    Example:
        >>> import torch
        >>> loss_fn = NNUNetBlobLoss(n_classes=1, criterion="dice")
        >>> logits = torch.randn(2, 2, 8, 8, 8, requires_grad=True)
        >>> target = torch.zeros(2, 2, 8, 8, 8, dtype=torch.int16)
        >>> target[0, :, :2, :2, :2] = 1                    # class 1, instance 1
        >>> target[0, 0, 5:, 5:, 5:], target[0, 1, 5:, 5:, 5:] = 1, 2
        >>> loss_fn(logits, target).backward()
    """

    def __init__(
        self,
        n_classes: int,
        criterion: str = "dice",
        alpha: float = 2.0,
        beta: float = 1.0,
        global_loss: nn.Module | None = None,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
            raise ValueError(f"n_classes={n_classes!r} must be an integer >= 1 (foreground classes).")
        if criterion not in CRITERIA:
            raise ValueError(f"criterion={criterion!r} is not supported; use one of {list(CRITERIA)}.")
        self.n_classes = n_classes
        self.criterion = criterion
        self.alpha, self.beta = float(alpha), float(beta)
        loss_cls = BlobLoss if n_classes == 1 else MultiClassBlobLoss
        if criterion == "dice_ce":
            if global_loss is None and self.alpha > 0:
                raise ValueError("criterion='dice_ce' needs global_loss (nnU-Net's DC_and_CE_loss) when alpha > 0.")
            self.global_loss = global_loss
            # the blob term alone (alpha=0): nnU-Net's per-instance -Dice + CE = (dice - 1) + bce, see above
            self.blob_dice = loss_cls("dice", alpha=0.0, beta=1.0, check_inputs=check_inputs)
            self.blob_bce = loss_cls("bce", alpha=0.0, beta=1.0, check_inputs=check_inputs)
        else:
            self.global_loss = None
            self.blob = loss_cls(criterion, alpha=alpha, beta=beta, check_inputs=check_inputs)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, criterion={self.criterion!r}, alpha={self.alpha}, beta={self.beta}"

    def _blob_call(self, loss: nn.Module, logits: Tensor, classes: Tensor, instances: Tensor) -> Tensor:
        if self.n_classes == 1:
            # sigmoid(x1 - x0) == softmax(x)[:, 1]: the binary blob loss on the foreground's softmax probability
            return loss(logits[:, 1:2] - logits[:, 0:1], instances)
        # keywords fit both the unified API loss(logits, instances, class_map=...) and the older
        # forward(logits, class_map, instances)
        return loss(logits, instances=instances, class_map=classes)

    def _constant_term(self, classes: Tensor, instances: Tensor) -> Tensor:
        """The blob term of the constant criterion 1, reduced as the blob loss reduces (the ``-1`` of
        nnU-Net's ``-Dice``): 1 where an element has instances (binary, or the mean over present classes);
        with the paper's reduction (Eq. 3) the number of classes with instances divided by C. A batch without
        instances gives 0. No host sync."""
        fg = instances.flatten(1) > 0
        has = fg.any(dim=1)  # (B,)
        if self.n_classes == 1 or self.blob_dice.class_reduction is ClassReduction.PRESENT:
            per_element = has.to(torch.float64)
        else:
            cls = classes.flatten(1)
            present = torch.stack([(fg & (cls == c)).any(dim=1) for c in range(1, self.n_classes + 1)], dim=1)
            per_element = present.to(torch.float64).sum(dim=1) / self.n_classes
        n = has.sum()
        return torch.where(n > 0, (per_element * has).sum() / n.clamp(min=1), per_element.new_zeros(()))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of one scale.

        Args:
            logits: ``(B, C + 1, *spatial)``.
            target: ``(B, 2, *spatial)`` classes and instance ids.

        Returns:
            Scalar loss.
        """
        if logits.ndim < 3 or logits.shape[1] != self.n_classes + 1:
            raise ValueError(
                f"logits {tuple(logits.shape)} must have {self.n_classes + 1} channels (C + 1 softmax outputs, "
                f"C = {self.n_classes} foreground classes)."
            )
        if target.ndim != logits.ndim or target.shape[1] != 2:
            raise ValueError(
                f"target {tuple(target.shape)} must be (B, 2, *spatial): nnU-Net's class map plus the instance map "
                "that the blob trainers add in their data-loading transforms (InstanceMapTransform). A target "
                "without it comes from a transform pipeline other than the trainer's get_training_transforms / "
                "get_validation_transforms."
            )
        classes = target[:, :1].long()
        instances = target[:, 1:2].long()
        if self.criterion != "dice_ce":
            return self._blob_call(self.blob, logits, classes, instances)
        blob = (
            self._blob_call(self.blob_dice, logits, classes, instances)
            + self._blob_call(self.blob_bce, logits, classes, instances)
            - self._constant_term(classes, instances).to(logits.dtype)
        )
        total = self.beta * blob
        if self.alpha > 0:
            assert self.global_loss is not None
            total = total + self.alpha * self.global_loss(logits, classes)
        return total
