"""nnU-Net v2 integration: trainers that train with the blob loss (``pip install "blobloss[nnunet]"``).

Three commands (docs/nnunet.md)::

    export nnUNet_extTrainer=$(python -m blobloss.integrations.nnunet --ext-trainer-path)
    nnUNetv2_plan_and_preprocess -d DATASET --verify_dataset_integrity
    nnUNetv2_train DATASET 3d_fullres 0 -tr nnUNetTrainerBlobDice

Trainers (in :mod:`blobloss.integrations.nnunet.trainers`, imported lazily from here so that the command
above runs without importing nnU-Net): ``nnUNetTrainerBlobDice``, ``nnUNetTrainerBlobDiceCE``,
``nnUNetTrainerBlobTversky`` and their ``_1epoch`` smoke-test variants.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

#: The trainer names nnU-Net finds in :func:`ext_trainer_path` (``-tr NAME``).
TRAINERS = (
    "nnUNetTrainerBlobDice",
    "nnUNetTrainerBlobDiceCE",
    "nnUNetTrainerBlobTversky",
    "nnUNetTrainerBlobDice_1epoch",
    "nnUNetTrainerBlobDiceCE_1epoch",
    "nnUNetTrainerBlobTversky_1epoch",
)

__all__ = ["TRAINERS", "ext_trainer_path", *TRAINERS]


def ext_trainer_path() -> Path:
    """The directory to put in nnU-Net's ``nnUNet_extTrainer`` environment variable.

    nnU-Net 2.8 looks up ``-tr NAME`` in its own package first, then imports the modules of each directory
    listed in ``nnUNet_extTrainer`` (separated by ``os.pathsep``) as top-level modules and takes the first
    class of that name. This directory holds one module that re-exports :data:`TRAINERS`.

    Returns:
        Absolute path of ``blobloss/integrations/nnunet/ext_trainers``.

    Example:
        >>> ext_trainer_path().name
        'ext_trainers'
    """
    return Path(__file__).resolve().parent / "ext_trainers"


def __getattr__(name: str) -> Any:
    if name in TRAINERS:
        return getattr(importlib.import_module("blobloss.integrations.nnunet.trainers"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
