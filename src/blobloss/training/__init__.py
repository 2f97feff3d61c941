"""Training library: data (crops, caching, seeding), network/optimizer/loss factories, checkpoints, loop.

Example:
    >>> from blobloss.training import train, resolve_config
    >>> resolve_config({"patch_size": [64, 64, 32]})["optimizer"]["name"]
    'ranger21'
"""

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

from blobloss.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from blobloss.training.data import (
    CropDataset,
    EpochSampler,
    batches_per_epoch,
    collate_crops,
    load_training_case,
    make_loader,
)
from blobloss.training.losses import LOSS_NAMES, build_loss, build_loss_from_config
from blobloss.training.loop import DEFAULT_CONFIG, LOG_COLUMNS, read_log, resolve_config, resolve_device, train
from blobloss.training.model import MODEL_NAMES, build_model, build_model_from_config
from blobloss.training.optim import OPTIMIZER_NAMES, build_optimizer, build_optimizer_from_config, current_lr

__all__ = [
    "DEFAULT_CONFIG",
    "LOG_COLUMNS",
    "LOSS_NAMES",
    "MODEL_NAMES",
    "OPTIMIZER_NAMES",
    "CropDataset",
    "EpochSampler",
    "batches_per_epoch",
    "build_loss",
    "build_loss_from_config",
    "build_model",
    "build_model_from_config",
    "build_optimizer",
    "build_optimizer_from_config",
    "capture_rng_state",
    "collate_crops",
    "current_lr",
    "load_checkpoint",
    "load_training_case",
    "make_loader",
    "read_log",
    "resolve_config",
    "resolve_device",
    "restore_rng_state",
    "save_checkpoint",
    "train",
]
