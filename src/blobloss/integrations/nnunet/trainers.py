"""nnU-Net v2 trainers that train with the blob loss (Kofler et al., IPMI 2023).

``nnUNetv2_train DATASET 3d_fullres FOLD -tr nnUNetTrainerBlobDice`` after
``export nnUNet_extTrainer=$(python -m blobloss.integrations.nnunet --ext-trainer-path)`` (docs/nnunet.md).

What the trainers change in ``nnUNetTrainer`` and nothing else:

* data loading: :class:`~blobloss.integrations.nnunet.transforms.InstanceMapTransform` (cc3d, CPU, in the
  data-loader workers) appends the instance map of each augmented patch to its target, before nnU-Net's
  deep-supervision downsampling, which thus shrinks both channels the same way (nearest);
* ``_build_loss``: :class:`~blobloss.integrations.nnunet.loss.NNUNetBlobLoss` at every output scale, wrapped
  in nnU-Net's ``DeepSupervisionWrapper`` with nnU-Net's own scale weights;
* ``validation_step``: strips the instance channel before nnU-Net's pseudo-Dice bookkeeping.

Binary and multi-class label maps are supported. Region-based training (``regions_class_order``) and
``ignore`` labels are rejected when the trainer is created, with the dataset.json setting named.

Settings are class attributes (subclass to change them): ``blob_criterion``, ``blob_alpha`` (2.0),
``blob_beta`` (1.0), ``blob_connectivity`` (None: 26 in 3D, 8 in 2D) and ``blob_check_inputs`` (True).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from blobloss.integrations.nnunet.loss import NNUNetBlobLoss
from blobloss.integrations.nnunet.transforms import with_instance_maps

__all__ = [
    "check_dataset_json",
    "nnUNetTrainerBlobDice",
    "nnUNetTrainerBlobDiceCE",
    "nnUNetTrainerBlobDiceCE_1epoch",
    "nnUNetTrainerBlobDice_1epoch",
    "nnUNetTrainerBlobTversky",
    "nnUNetTrainerBlobTversky_1epoch",
]


def check_dataset_json(dataset_json: Mapping[str, Any], trainer: str = "the blob trainer") -> int:
    """Reject dataset.json settings the blob trainers do not support; return the number of foreground classes.

    Args:
        dataset_json: nnU-Net's dataset.json content.
        trainer: Trainer name for the messages.

    Returns:
        The number of foreground classes ``C``.

    Raises:
        ValueError: For region-based training (label values that are lists, ``regions_class_order``), an
            ``ignore`` label, or no foreground class.

    Example:
        >>> check_dataset_json({"labels": {"background": 0, "lesion": 1, "vessel": 2}})
        2
    """
    labels = dataset_json.get("labels")
    if not isinstance(labels, Mapping):
        raise ValueError(f"{trainer}: dataset.json has no 'labels' mapping (name -> class id).")
    regions = {k: v for k, v in labels.items() if isinstance(v, (list, tuple))}
    if regions or "regions_class_order" in dataset_json:
        raise ValueError(
            f"{trainer}: dataset.json sets up region-based training (\"regions_class_order\""
            + (f", region labels {sorted(regions)}" if regions else "")
            + "); the blob trainers need one class per voxel (softmax) because instances are computed per class. "
            "Use integer class ids in \"labels\" without \"regions_class_order\", or train this dataset with "
            "nnUNetTrainer."
        )
    if "ignore" in labels:
        raise ValueError(
            f"{trainer}: dataset.json declares an \"ignore\" label ({labels['ignore']!r}); the blob loss has no notion "
            "of unannotated voxels (each instance's keep mask would treat them as background). Remove the "
            "\"ignore\" label (and those voxels from labelsTr), or train this dataset with nnUNetTrainer."
        )
    foreground = [k for k, v in labels.items() if k != "background" and int(v) != 0]
    if not foreground:
        raise ValueError(f"{trainer}: dataset.json 'labels' {dict(labels)!r} declares no foreground class.")
    return len(foreground)


class nnUNetTrainerBlobDice(nnUNetTrainer):
    """nnU-Net trainer with the blob loss, soft Dice criterion (``alpha * Dice + beta * blob Dice``)."""

    blob_criterion: str = "dice"
    blob_alpha: float = 2.0
    blob_beta: float = 1.0
    blob_connectivity: int | dict[int, int] | None = None
    blob_check_inputs: bool = True

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's signature
    ) -> None:
        # before nnU-Net creates any output folder
        self.blob_n_classes = check_dataset_json(dataset_json, type(self).__name__)
        super().__init__(plans, configuration, fold, dataset_json, device)

    def _build_loss(self) -> torch.nn.Module:
        """The blob loss at every deep-supervision scale, with nnU-Net's scale weights."""
        base = super()._build_loss()  # nnU-Net's Dice + CE (the global term of "dice_ce"), maybe DS-wrapped
        deep = isinstance(base, DeepSupervisionWrapper)
        loss: torch.nn.Module = NNUNetBlobLoss(
            n_classes=self.label_manager.num_segmentation_heads - 1,
            criterion=self.blob_criterion,
            alpha=self.blob_alpha,
            beta=self.blob_beta,
            global_loss=base.loss if deep else base,
            check_inputs=self.blob_check_inputs,
        )
        if deep:
            loss = DeepSupervisionWrapper(loss, base.weight_factors)
        return loss

    @classmethod
    def get_training_transforms(cls, *args: Any, **kwargs: Any):  # type: ignore[override]
        """nnU-Net's training transforms plus the instance maps (before deep-supervision downsampling)."""
        return with_instance_maps(super().get_training_transforms(*args, **kwargs), cls.blob_connectivity)

    @classmethod
    def get_validation_transforms(cls, *args: Any, **kwargs: Any):  # type: ignore[override]
        """nnU-Net's validation transforms plus the instance maps."""
        return with_instance_maps(super().get_validation_transforms(*args, **kwargs), cls.blob_connectivity)

    def validation_step(self, batch: dict) -> dict:
        """nnU-Net's validation step; its pseudo-Dice sees the class channel, the loss both channels."""
        target = batch["target"]
        targets = target if isinstance(target, list) else [target]
        instances = [t[:, 1:] for t in targets]
        classes = [t[:, :1] for t in targets]
        loss = self.loss

        def with_instances(output: Any, target_classes: Any) -> torch.Tensor:
            tc = target_classes if isinstance(target_classes, list) else [target_classes]
            full = [torch.cat([c, i.to(c.device, c.dtype)], dim=1) for c, i in zip(tc, instances)]
            return loss(output, full if isinstance(target_classes, list) else full[0])

        self.loss = with_instances
        try:
            return super().validation_step({**batch, "target": classes if isinstance(target, list) else classes[0]})
        finally:
            self.loss = loss


class nnUNetTrainerBlobDiceCE(nnUNetTrainerBlobDice):
    """Blob loss with nnU-Net's Dice + CE as the criterion of both terms (the paper's compound outlook).

    Global term: nnU-Net's ``DC_and_CE_loss`` (the default trainer's loss); blob term: nnU-Net's Dice + CE
    per instance (see :class:`~blobloss.integrations.nnunet.loss.NNUNetBlobLoss`).
    """

    blob_criterion = "dice_ce"


class nnUNetTrainerBlobTversky(nnUNetTrainerBlobDice):
    """Blob loss with the Tversky criterion (false-positive weight 0.3, false-negative weight 0.7)."""

    blob_criterion = "tversky"



# The short variants spell out nnU-Net's __init__ signature (no *args/**kwargs mixin): nnUNetTrainer records
# its constructor arguments from inspect.signature(self.__init__) to rebuild the trainer from a checkpoint.
class nnUNetTrainerBlobDice_1epoch(nnUNetTrainerBlobDice):
    """:class:`nnUNetTrainerBlobDice` for smoke tests: 1 epoch of 5 training and 2 validation iterations."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        _shorten(self)


class nnUNetTrainerBlobDiceCE_1epoch(nnUNetTrainerBlobDiceCE):
    """:class:`nnUNetTrainerBlobDiceCE` for smoke tests: 1 epoch of 5 training and 2 validation iterations."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        _shorten(self)


class nnUNetTrainerBlobTversky_1epoch(nnUNetTrainerBlobTversky):
    """:class:`nnUNetTrainerBlobTversky` for smoke tests: 1 epoch of 5 training and 2 validation iterations."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        _shorten(self)


def _shorten(trainer: nnUNetTrainer) -> None:
    """The smoke-test length of the ``_1epoch`` variants (nnU-Net's defaults: 1000 x 250 and 50)."""
    trainer.num_epochs = 1
    trainer.num_iterations_per_epoch = 5
    trainer.num_val_iterations_per_epoch = 2
