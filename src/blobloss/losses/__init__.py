"""Blob loss (Kofler et al., IPMI 2023) and baselines; all called as ``loss(logits, instances, ...)``.

* :class:`BlobLoss` — binary blob loss (global term + per-instance term), fused for dice/tversky/bce.
* :class:`MultiClassBlobLoss` — the multi-class blob loss (paper Eq. 3), ``loss(logits, instances,
  class_map=class_map)``.
* :class:`InverseWeightingLoss` — the inverse weighting baseline (Shirokikh et al. 2020).
* :class:`CriterionSettings` — the options of the built-in criteria, shared by every loss.
* :func:`fused_instance_losses` — the fused per-instance core (shared by the binary and multi-class losses).
* :mod:`blobloss.losses.settings` — option enums, defaults and the training loss names (no torch needed);
  :mod:`blobloss.losses.validation` — the input checks every loss shares.

Every loss offers ``components(logits, instances, ...)`` and ``last_components`` (a
:class:`BlobLossComponents`). The names are imported on first use, so that ``blobloss.losses.settings``
can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "BlobLoss": "blob",
    "BlobLossComponents": "blob",
    "LossComponents": "blob",
    "fused_instance_losses": "blob",
    "loop_instance_losses": "blob",
    "ClassReduction": "settings",
    "Criterion": "settings",
    "CriterionSettings": "settings",
    "Implementation": "settings",
    "MaskSpace": "settings",
    "DEFAULT_ALPHA": "settings",
    "DEFAULT_BETA": "settings",
    "IW_CRITERIA": "settings",
    "InverseWeightingLoss": "inverse_weighting",
    "inverse_weight_map": "inverse_weighting",
    "weighted_asl_loss": "inverse_weighting",
    "weighted_bce_loss": "inverse_weighting",
    "weighted_dice_loss": "inverse_weighting",
    "MultiClassBlobLoss": "multiclass",
    "multiclass_loop_instance_losses": "multiclass",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'blobloss.losses' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"blobloss.losses.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from blobloss.losses.blob import (
        BlobLoss,
        BlobLossComponents,
        LossComponents,
        fused_instance_losses,
        loop_instance_losses,
    )
    from blobloss.losses.inverse_weighting import (
        InverseWeightingLoss,
        inverse_weight_map,
        weighted_asl_loss,
        weighted_bce_loss,
        weighted_dice_loss,
    )
    from blobloss.losses.multiclass import MultiClassBlobLoss, multiclass_loop_instance_losses
    from blobloss.losses.settings import (
        DEFAULT_ALPHA,
        DEFAULT_BETA,
        IW_CRITERIA,
        ClassReduction,
        Criterion,
        CriterionSettings,
        Implementation,
        MaskSpace,
    )
