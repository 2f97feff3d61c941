"""Loss factory: build the paper's training losses by name, all called as ``loss(logits, instances)``.

| name | loss |
|---|---|
| ``dice`` | soft Dice on sigmoid probabilities (MONAI ``DiceLoss(sigmoid=True)``, batch=False) |
| ``tversky`` | Tversky (MONAI ``TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)``) |
| ``bce`` | binary cross-entropy with logits |
| ``blob_dice`` | ``BlobLoss("dice", alpha, beta)``, defaults alpha = 2, beta = 1 |
| ``blob_tversky`` | ``BlobLoss("tversky", alpha, beta)`` |
| ``blob_bce`` | ``BlobLoss("bce", alpha, beta)`` |
| ``blob_dice_nomask`` | ``BlobLoss("dice", alpha, beta, masking=False)`` (paper Table 42 ablation) |
| ``iw`` | inverse weighting Dice (Shirokikh et al. 2020), ``InverseWeightingLoss("dice")`` |

The plain losses use the same criterion definitions as the global term of the blob losses (SPEC section 2),
so ``dice`` equals ``blob_dice`` with alpha = 1, beta = 0 (tested). ``alpha``/``beta`` belong to the
``blob_*`` losses only; the paper's dice-only ablation point (1, 0) is ``dice`` (or ``blob_dice`` with
``alpha=1, beta=0``, which computes the same number more slowly).
"""

from __future__ import annotations

import torch  # noqa: F401  (doctest namespace)
from monai.losses import DiceLoss, TverskyLoss
from torch import Tensor, nn

__all__ = ["LOSS_NAMES", "SemanticLoss", "build_loss", "build_loss_from_config"]

_BLOB_LOSSES: dict[str, dict] = {
    "blob_dice": {"criterion": "dice"},
    "blob_tversky": {"criterion": "tversky"},
    "blob_bce": {"criterion": "bce"},
    "blob_dice_nomask": {"criterion": "dice", "masking": False},
}
_PLAIN_LOSSES: tuple[str, ...] = ("dice", "tversky", "bce", "iw")
LOSS_NAMES: tuple[str, ...] = _PLAIN_LOSSES + tuple(_BLOB_LOSSES)


class SemanticLoss(nn.Module):
    """Adapter: apply a semantic criterion ``fn(logits, target)`` to ``target = (instances > 0)``.

    Args:
        criterion: Module or function taking ``(logits (B, 1, *spatial), target float (B, 1, *spatial))``.

    Example:
        >>> loss = SemanticLoss(DiceLoss(sigmoid=True))
        >>> inst = torch.zeros(1, 1, 4, 4, dtype=torch.int32); inst[..., :2, :2] = 3
        >>> round(float(loss(torch.full((1, 1, 4, 4), -20.0), inst)), 3)  # nothing predicted: Dice loss 1
        1.0
    """

    def __init__(self, criterion: nn.Module) -> None:
        super().__init__()
        self.criterion = criterion

    def forward(self, logits: Tensor, instances: Tensor) -> Tensor:
        """Compute ``criterion(logits, instances > 0)``; shapes ``(B, 1, *spatial)`` both."""
        if logits.shape != instances.shape:
            raise ValueError(
                f"instances shape {tuple(instances.shape)} must equal logits shape {tuple(logits.shape)}; "
                "add the channel axis with instances.unsqueeze(1) if needed."
            )
        return self.criterion(logits, (instances > 0).to(logits.dtype))


def build_loss(
    name: str,
    alpha: float | None = None,
    beta: float | None = None,
    *,
    max_instance_id: int | None = None,
    **options,
) -> nn.Module:
    """Build a training loss by name; every loss is called as ``loss(logits, instances)``.

    Args:
        name: One of :data:`LOSS_NAMES` (see the module table).
        alpha: Weight of the global term (``blob_*`` only; default 2).
        beta: Weight of the blob term (``blob_*`` only; default 1).
        max_instance_id: The largest instance id in the training data, if known. The ``blob_*`` losses then
            size their tables from it and skip the per-call value checks (``check_inputs=False``), so a
            training step has no host-device sync; the data must have been validated before (the training
            dataset does that when it caches the cases). Ignored by the other losses.
        **options: Extra keyword arguments for ``BlobLoss`` (``mask_space``, ``implementation``) with the
            ``blob_*`` losses, or for ``InverseWeightingLoss`` (``clip``, ``eps``) with ``iw``.

    Returns:
        A module mapping ``logits (B, 1, *spatial)`` float and ``instances (B, 1, *spatial)`` integer ids to
        a scalar loss.

    Raises:
        ValueError: On an unknown name, or ``alpha``/``beta``/options given to a loss that has none.

    Example:
        >>> loss = build_loss("blob_dice", alpha=2, beta=1)
        >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
        >>> inst = torch.zeros(2, 1, 8, 8, dtype=torch.int32); inst[0, 0, :2, :2] = 1; inst[0, 0, 5:, 5:] = 2
        >>> loss(logits, inst).backward()
    """
    key = str(name).lower()
    if key not in LOSS_NAMES:
        raise ValueError(f"Unknown loss {name!r}; choose one of {list(LOSS_NAMES)}.")
    if key in _BLOB_LOSSES:
        from blobloss.losses import BlobLoss

        if max_instance_id is not None:
            options = {"check_inputs": False, "max_instance_id": int(max_instance_id), **options}
        return BlobLoss(
            alpha=2.0 if alpha is None else float(alpha),
            beta=1.0 if beta is None else float(beta),
            **_BLOB_LOSSES[key],
            **options,
        )
    if alpha is not None or beta is not None:
        raise ValueError(
            f"alpha/beta apply only to the blob_* losses, got alpha={alpha!r}, beta={beta!r} for {key!r}; "
            "remove them (the paper's (1, 0) ablation point is the plain 'dice' loss)."
        )
    if key == "iw":
        from blobloss.losses import InverseWeightingLoss

        return InverseWeightingLoss("dice", **options)
    if options:
        raise ValueError(f"loss {key!r} takes no options, got {sorted(options)}.")
    if key == "dice":
        return SemanticLoss(DiceLoss(sigmoid=True))
    if key == "tversky":
        return SemanticLoss(TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7))
    return SemanticLoss(nn.BCEWithLogitsLoss())


def build_loss_from_config(loss_cfg: dict, max_instance_id: int | None = None) -> nn.Module:
    """Build the loss described by the ``loss`` section of a training config.

    Args:
        loss_cfg: Mapping with ``name`` and optionally ``alpha``, ``beta`` and loss options
            (``mask_space``, ``implementation``, ``clip``, ``eps``). ``None`` values are dropped.
        max_instance_id: See :func:`build_loss`.

    Example:
        >>> type(build_loss_from_config({"name": "dice", "alpha": None})).__name__
        'SemanticLoss'
    """
    cfg = {k: v for k, v in dict(loss_cfg).items() if v is not None}
    if "name" not in cfg:
        raise ValueError(f"loss config needs a 'name' (one of {list(LOSS_NAMES)}), got {loss_cfg!r}")
    if "clip" in cfg:
        cfg["clip"] = tuple(cfg["clip"])
    return build_loss(**cfg, max_instance_id=max_instance_id)

