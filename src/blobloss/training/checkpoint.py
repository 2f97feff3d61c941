"""Checkpoints: atomic writes, loading, and the random-number-generator states needed to resume exactly.

A checkpoint is a ``dict`` saved with ``torch.save``:

* ``model``: the network's ``state_dict``; ``optimizer``: the optimizer's ``state_dict``;
  ``scheduler``: a scheduler's ``state_dict`` or ``None`` (the project's optimizers need none: Ranger21's
  schedule, the default, lives inside the optimizer's state, and ``schedule: constant`` keeps the lr);
* ``rng``: the states of torch (CPU and every CUDA device), NumPy's global generator and Python's
  ``random`` (see :func:`capture_rng_state`);
* ``epoch``: the number of *completed* epochs; ``cfg``: the training config; ``history``: one dict per
  completed epoch (the rows of ``log.csv``); ``best_val_loss`` and ``best_epoch``; ``format``: version.

Writes are atomic: the file is written to a hidden temporary file in the same folder, flushed to disk
and moved onto the final name with ``os.replace``, so a job killed at any moment leaves either the old or
the new checkpoint, never a truncated one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blobloss.io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1

PathLike = str | os.PathLike[str]


def save_checkpoint(path: PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically (temporary file in the same folder + ``os.replace``).

    Args:
        path: Final file name, e.g. ``out_dir / "checkpoint_last.pt"``.
        state: The checkpoint dict (tensors, numbers, strings, lists, dicts).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "c.pt"
        >>> save_checkpoint(p, {"epoch": 3})
        >>> load_checkpoint(p)["epoch"]
        3
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())


def load_checkpoint(path: PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Checkpoints hold NumPy RNG states and config dicts besides tensors, so they are loaded with
    ``weights_only=False``: load only checkpoints you (or your pipeline) wrote.

    Args:
        path: Checkpoint file.
        map_location: Device the tensors are mapped to.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not a readable checkpoint dict (names the file and the fix).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "c.pt"
        >>> save_checkpoint(p, {"epoch": 1, "model": {}})
        >>> sorted(load_checkpoint(p))
        ['epoch', 'model']
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist; train a model first or fix the path")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise ValueError(
            f"cannot read checkpoint {p}: {type(exc).__name__}: {exc}; delete it to start training afresh"
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {p} holds a {type(state).__name__}, expected a dict; was it written by blobloss?")
    return state


def capture_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Return the states of every random generator a training step may use.

    Args:
        device: A rank's CUDA device: keep only that device's CUDA state (a rank of a multi-GPU run must
            not touch the other GPUs). None: every CUDA device's state.

    Returns:
        ``{"torch": ByteTensor, "cuda": list[ByteTensor] (empty without CUDA), "numpy": tuple,
        "python": tuple}``.

    Example:
        >>> s = capture_rng_state(); a = torch.rand(1); restore_rng_state(s)
        >>> bool(torch.rand(1) == a)
        True
    """
    if device is not None and torch.device(device).type == "cuda":
        cuda = [torch.cuda.get_rng_state(device)]
    else:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def restore_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore generator states captured by :func:`capture_rng_state`.

    CUDA states are restored only when CUDA is available and the device count matches (a checkpoint
    from another machine then continues with freshly seeded CUDA generators); with ``device`` (a rank's
    CUDA device) the one saved state goes to that device.

    Example:
        >>> s = capture_rng_state(); x = np.random.rand(); restore_rng_state(s)
        >>> np.random.rand() == x
        True
    """
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    cuda = state.get("cuda") or []
    if device is not None and torch.device(device).type == "cuda":
        if len(cuda) == 1:
            torch.cuda.set_rng_state(cuda[0].cpu(), device)
    elif cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([c.cpu() for c in cuda])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
