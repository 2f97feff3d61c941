"""Re-exports the blob loss trainers for nnU-Net's ``nnUNet_extTrainer`` search (nothing else lives here)."""

from blobloss.integrations.nnunet.trainers import *  # noqa: F401,F403
from blobloss.integrations.nnunet.trainers import __all__  # noqa: F401
