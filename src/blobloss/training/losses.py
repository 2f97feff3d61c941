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
| ``iw`` | inverse weighting (Shirokikh et al. 2020), ``InverseWeightingLoss("dice")`` (or ``iw_criterion``) |

The names, the options each loss takes and their defaults live in :mod:`blobloss.losses.settings`
(:data:`~blobloss.losses.settings.LOSS_NAMES`, :func:`~blobloss.losses.settings.loss_config`); the config
schema's loss list equals that list. Options of a config's loss entry: ``alpha``, ``beta``, ``mask_space``,
``masking``, ``published_running_mean``, ``implementation`` and ``criterion`` (a mapping of
:class:`~blobloss.losses.CriterionSettings` fields) for the ``blob_*`` losses; ``criterion`` for ``dice`` and
``tversky``; ``iw_criterion`` (``dice``, ``bce`` or ``asl``) for ``iw``.

The plain losses use the same criterion definitions as the global term of the blob losses
(docs/definitions.md section 2), so ``dice`` equals ``blob_dice`` with alpha = 1, beta = 0 (tested). The
paper's dice-only ablation point (1, 0) is ``dice`` (or ``blob_dice`` with ``alpha=1, beta=0``, which
computes the same number more slowly).
"""

from __future__ import annotations

from typing import Any

import torch  # noqa: F401  (doctest namespace)
from monai.losses import DiceLoss, TverskyLoss
from torch import Tensor, nn

from blobloss.losses.settings import LOSS_NAMES, CriterionSettings, loss_config

__all__ = ["LOSS_NAMES", "SemanticLoss", "build_loss", "build_loss_from_config"]


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
    **options: Any,
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
        **options: The loss entry's options (see :func:`blobloss.losses.settings.loss_config`):
            ``mask_space``, ``masking``, ``published_running_mean``, ``implementation``, ``criterion``
            (mapping) for ``blob_*``; ``criterion`` for ``dice``/``tversky``; ``iw_criterion`` for ``iw``;
            also ``clip`` and ``eps`` for ``iw`` (passed to ``InverseWeightingLoss``).

    Returns:
        A module mapping ``logits (B, 1, *spatial)`` float and ``instances (B, 1, *spatial)`` integer ids to
        a scalar loss.

    Raises:
        ValueError: On an unknown name, or an option (``alpha``/``beta`` included) the loss does not take.

    Example:
        >>> loss = build_loss("blob_dice", alpha=2, beta=1, mask_space="logits")
        >>> logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
        >>> inst = torch.zeros(2, 1, 8, 8, dtype=torch.int32); inst[0, 0, :2, :2] = 1; inst[0, 0, 5:, 5:] = 2
        >>> loss(logits, inst).backward()
        >>> loss.mask_space.value
        'logits'
    """
    iw_extra = {k: options.pop(k) for k in ("clip", "eps") if k in options}
    key = str(name).lower()
    if iw_extra and key != "iw":
        raise ValueError(f"loss {key!r} does not take option(s) {sorted(iw_extra)}: they apply to ['iw'].")
    cfg = loss_config(key, alpha=alpha, beta=beta, **options)
    settings = CriterionSettings.from_mapping(cfg.get("criterion"))
    if key.startswith("blob_"):
        from blobloss.losses import BlobLoss, settings as loss_settings

        checks: dict[str, Any] = {}
        if max_instance_id is not None:
            checks = {"check_inputs": False, "max_instance_id": int(max_instance_id)}
        return BlobLoss(
            loss_settings.BLOB_LOSSES[key]["criterion"],
            alpha=cfg["alpha"],
            beta=cfg["beta"],
            mask_space=cfg["mask_space"],
            masking=cfg["masking"],
            implementation=cfg["implementation"],
            published_running_mean=cfg["published_running_mean"],
            criterion_settings=settings,
            **checks,
        )
    if key == "iw":
        from blobloss.losses import InverseWeightingLoss

        return InverseWeightingLoss(cfg["iw_criterion"], **iw_extra)
    if key == "dice":
        return SemanticLoss(DiceLoss(sigmoid=True, smooth_nr=settings.smooth_nr, smooth_dr=settings.smooth_dr))
    if key == "tversky":
        return SemanticLoss(
            TverskyLoss(
                sigmoid=True,
                alpha=settings.tversky_alpha,
                beta=settings.tversky_beta,
                smooth_nr=settings.smooth_nr,
                smooth_dr=settings.smooth_dr,
            )
        )
    return SemanticLoss(nn.BCEWithLogitsLoss())


def build_loss_from_config(loss_cfg: dict, max_instance_id: int | None = None) -> nn.Module:
    """Build the loss described by the ``loss`` section of a training config.

    Args:
        loss_cfg: Mapping with ``name`` and optionally ``alpha``, ``beta`` and the loss options (see
            :func:`build_loss`; ``clip``, ``eps`` for ``iw``). ``None`` values are dropped.
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
