"""Blob loss inside other training frameworks.

* :mod:`blobloss.integrations.nnunet` — nnU-Net v2 trainers (``pip install "blobloss[nnunet]"``), found by
  nnU-Net through the ``nnUNet_extTrainer`` environment variable (see docs/nnunet.md).

MONAI needs no integration module: :class:`blobloss.losses.BlobLoss` is an ``nn.Module`` and
:mod:`blobloss.transforms` holds the MONAI transforms that add instance maps (see docs/monai.md).
"""
