"""Blob loss (Kofler et al., IPMI 2023) and baselines.

* :class:`BlobLoss` — binary blob loss (global term + per-instance term), fused for dice/tversky/bce.
* :class:`MultiClassBlobLoss` — the multi-class blob loss (paper Eq. 3).
* :func:`fused_instance_losses` — the fused per-instance core (shared by the binary and multi-class losses).
* :class:`InverseWeightingLoss` — the inverse weighting baseline (Shirokikh et al. 2020).
* :mod:`blobloss.losses.criteria` — option enums and the built-in criteria.
"""

from blobloss.losses.blob import (
    BlobLoss,
    BlobLossComponents,
    fused_instance_losses,
    loop_instance_losses,
)
from blobloss.losses.criteria import Criterion, Implementation, MaskSpace
from blobloss.losses.inverse_weighting import (
    IW_CRITERIA,
    InverseWeightingLoss,
    inverse_weight_map,
    weighted_asl_loss,
    weighted_bce_loss,
    weighted_dice_loss,
)
from blobloss.losses.multiclass import MultiClassBlobLoss, multiclass_loop_instance_losses

__all__ = [
    "IW_CRITERIA",
    "BlobLoss",
    "BlobLossComponents",
    "Criterion",
    "Implementation",
    "InverseWeightingLoss",
    "MaskSpace",
    "MultiClassBlobLoss",
    "fused_instance_losses",
    "inverse_weight_map",
    "loop_instance_losses",
    "multiclass_loop_instance_losses",
    "weighted_asl_loss",
    "weighted_bce_loss",
    "weighted_dice_loss",
]
