"""The folder to put in ``nnUNet_extTrainer`` (``python -m blobloss.integrations.nnunet --ext-trainer-path``).

nnU-Net imports every module of that folder as a top-level module while it looks for a trainer by name.
The one module here only re-exports the trainers of :mod:`blobloss.integrations.nnunet.trainers`, so the
classes keep their importable home (``blobloss.integrations.nnunet.trainers``) and can be pickled into
nnU-Net's data-loading worker processes.
"""
