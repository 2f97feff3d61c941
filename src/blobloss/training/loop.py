"""The training loop: config resolution, setup, resume, epochs, validation, checkpoints, logs, progress.

``train(cfg, train_cases, val_cases, out_dir)`` trains one network and writes into ``out_dir``:

* ``checkpoint_last.pt`` after every epoch (model, optimizer (with Ranger21's schedule position),
  scheduler (none), every rank's RNG states, completed epochs, config, history, world size) and
  ``checkpoint_best.pt`` whenever the validation loss reaches a new minimum (only with a validation split)
  — both written atomically;
* ``log.csv`` (columns :data:`LOG_COLUMNS`: ``epoch, train_loss, val_loss, lr, seconds, world_size``; one
  row per completed epoch, ``val_loss`` empty where no validation ran), ``progress.json`` (see
  :mod:`blobloss.training.progress`), and TensorBoard scalars under ``tensorboard/`` when
  ``cfg["tensorboard"]`` is true. The training curve is drawn from ``log.csv`` by the pipeline's train
  job (:func:`blobloss.plots.plot_training_curves`), not here.

The work is split into :func:`setup_run` (network, optimizer, loss, loaders of one rank),
:func:`resume_run` (state from ``checkpoint_last.pt``), :func:`train_epoch` (one pass over the training
batches), :func:`validate` and :func:`save_epoch` (checkpoints and logs, rank 0).

Several ranks (``gpus: K``, :mod:`blobloss.training.distributed`): the job process reads the data once,
then forks K ranks joined by DistributedDataParallel (NCCL on GPUs, gloo on the CPU). ``batch_size``
stays the *global* batch: rank ``r`` gets its share of every global batch's crops
(:class:`~blobloss.training.data.GlobalBatchSampler`), all ranks gather the batch's logits and compute the
loss on the whole global batch, so the blob loss (whose blob term averages over the batch elements that
have instances) is exactly that of one rank; the gradient of the own share, scaled by K and averaged by DDP,
is the one-rank gradient. The training loss, the validation loss (each rank evaluates whole validation
batches, the sums are reduced) and hence every logged number equal a one-rank run's up to float rounding.
Only rank 0 writes files.

Resume: when ``checkpoint_last.pt`` exists, training continues from it (model, optimizer, RNG states and
epoch count are restored and ``log.csv`` is rewritten from the checkpoint's history, so every epoch appears
exactly once). A job killed at any moment loses at most the epoch in progress. Raising ``epochs`` for a
finished run continues it; the optimizer is rebuilt for the new total number of iterations and its state
is loaded (with ``schedule: ranger21`` the warm-down then moves to the end of the longer run). The other
settings that define the experiment (model, optimizer, loss, patch, batch, crops, seed, training cases)
must not change; a mismatch raises an error. The number of ranks may change (the global batch does not).

With ``deterministic: true`` on CPU, a killed and resumed run (and an extended run) ends with the same
weights, bit for bit, as an uninterrupted one: crops are drawn from generators keyed by (seed, epoch,
case), the DataLoader has its own generator, and every rank's RNG states are restored from the checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from blobloss.io import atomic_path
from blobloss.training.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from blobloss.data.checks import check_patch_size
from blobloss.training.data import CropDataset, GlobalBatchSampler, crop_bounds, make_loader
from blobloss.training.distributed import Dist, cuda_device_count, launch
from blobloss.training.losses import build_loss_from_config
from blobloss.training.model import build_model_from_config, required_divisor
from blobloss.training.optim import build_optimizer_from_config, current_lr
from blobloss.training.progress import ProgressReporter, mark_failed

__all__ = [
    "DEFAULT_CONFIG",
    "LOG_COLUMNS",
    "read_log",
    "resolve_config",
    "resolve_device",
    "train",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Defaults of every training config key. The pipeline's config schema
#: (workflow/schemas/config.schema.yaml, ``$defs/training``) holds the same values (a test checks it);
#: ``loss``, ``seed`` and ``progress`` are set per run by the pipeline.
DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"name": "basicunet", "features": [32, 32, 64, 128, 256, 32], "dropout": 0.1, "act": "mish"},
    # schedule None: the optimizer's own (Ranger21: its warm-up/warm-down; AdamW, SGD: constant)
    "optimizer": {"name": "ranger21", "lr": 0.01, "weight_decay": None, "schedule": None},
    "loss": {"name": "blob_dice", "alpha": None, "beta": None},
    "batch_size": 4,
    "crops_per_case": 2,
    "patch_size": [192, 192, 32],
    "epochs": 500,
    "seed": 0,
    "num_workers": 4,
    "foreground_prob": 0.95,
    "amp": None,
    "channels_last": False,
    "val_every": 1,
    "tensorboard": False,
    "deterministic": False,
    "pad_to_patch": False,
    "gpus": 1,
    "progress": True,
}

#: Keys whose change makes a checkpoint belong to a different experiment (resume refuses them).
_IDENTITY_KEYS: tuple[str, ...] = (
    "model", "optimizer", "loss", "batch_size", "crops_per_case", "patch_size", "seed", "foreground_prob",
)

LOG_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "lr", "seconds", "world_size")

CHECKPOINT_LAST = "checkpoint_last.pt"
CHECKPOINT_BEST = "checkpoint_best.pt"

# Rank r > 0 reseeds torch (dropout) with seed + r * this after the network is built.
_RANK_SEED_STRIDE = 1_000_003


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------


def resolve_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``cfg`` over :data:`DEFAULT_CONFIG` (section by section) and validate it.

    Args:
        cfg: User config; sections ``model``, ``optimizer``, ``loss`` are merged key by key.

    Returns:
        The complete config (a new dict; lists for sequences).

    Raises:
        ValueError: On unknown keys or invalid values, naming the key, the bad value and the fix.

    Example:
        >>> c = resolve_config({"patch_size": [64, 64, 32], "loss": {"name": "dice"}})
        >>> c["loss"], c["optimizer"]["schedule"], c["epochs"], c["gpus"]
        ({'name': 'dice', 'alpha': None, 'beta': None}, 'ranger21', 500, 1)
    """
    unknown = set(cfg) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"Unknown training config keys {sorted(unknown)}; allowed: {sorted(DEFAULT_CONFIG)}.")
    out = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in cfg.items():
        if isinstance(DEFAULT_CONFIG[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"config section {key!r} must be a mapping, got {value!r}.")
            if key == "loss" and "name" in value and str(value["name"]) != out["loss"]["name"]:
                out[key] = {"name": value["name"], "alpha": None, "beta": None}
            out[key].update(copy.deepcopy(dict(value)))
        else:
            out[key] = copy.deepcopy(value)
    out["model"]["features"] = [int(f) for f in out["model"]["features"]]
    out["patch_size"] = [int(p) for p in out["patch_size"]]

    for key in ("batch_size", "crops_per_case", "epochs", "val_every", "gpus"):
        if not isinstance(out[key], (int, np.integer)) or isinstance(out[key], bool) or out[key] < 1:
            raise ValueError(f"config {key!r} must be an integer >= 1, got {out[key]!r}.")
    if not isinstance(out["num_workers"], (int, np.integer)) or out["num_workers"] < 0:
        raise ValueError(f"config 'num_workers' must be an integer >= 0, got {out['num_workers']!r}.")
    if not isinstance(out["seed"], (int, np.integer)) or out["seed"] < 0:
        raise ValueError(f"config 'seed' must be an integer >= 0, got {out['seed']!r}.")
    if out["amp"] not in (None, "bf16"):
        raise ValueError(f"config 'amp' must be 'bf16' or null, got {out['amp']!r}.")
    opt = out["optimizer"]
    if opt.get("schedule") is None:
        opt["schedule"] = "ranger21" if str(opt.get("name")).lower() == "ranger21" else "constant"
    if opt["schedule"] == "ranger21" and str(opt.get("name")).lower() != "ranger21":
        raise ValueError(
            f"optimizer.schedule 'ranger21' is Ranger21's own warm-up/warm-down schedule; optimizer "
            f"{opt['name']!r} has none: set optimizer.schedule: constant (or leave it out)."
        )
    patch = out["patch_size"]
    if len(patch) not in (2, 3):
        raise ValueError(f"config 'patch_size' needs 2 or 3 entries, got {patch!r}.")
    check_patch_size(patch, divisor=required_divisor(out["model"]["name"]), key="config 'patch_size'")
    return out


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return ``device``, or CUDA when available and CPU otherwise.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu' or None.")
    return dev


def _device_type(device: str | torch.device | None) -> str:
    """``"cuda"`` or ``"cpu"`` for the ranks, decided without initialising CUDA here (the ranks are forked)."""
    if device is None:
        return "cuda" if cuda_device_count() > 0 else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and cuda_device_count() == 0:
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu' or None.")
    if dev.type not in ("cuda", "cpu"):
        raise ValueError(f"several ranks run on 'cuda' or 'cpu', got device {device!r}")
    return dev.type


# --------------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------------


def _write_log(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(LOG_COLUMNS)
            for row in history:
                writer.writerow(["" if row.get(c) is None else row[c] for c in LOG_COLUMNS])


def read_log(path: PathLike) -> list[dict[str, float | int | None]]:
    """Read a ``log.csv`` written by :func:`train` (``val_loss`` is ``None`` where not computed).

    Logs written before the ``world_size`` column existed read as one rank.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "log.csv"
        >>> _write_log(p, [{"epoch": 1, "train_loss": 0.5, "val_loss": None, "lr": 0.01, "seconds": 2.0,
        ...                 "world_size": 2}])
        >>> read_log(p)
        [{'epoch': 1, 'train_loss': 0.5, 'val_loss': None, 'lr': 0.01, 'seconds': 2.0, 'world_size': 2}]
    """
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            rows.append(
                {
                    "epoch": int(raw["epoch"]),
                    "train_loss": float(raw["train_loss"]),
                    "val_loss": float(raw["val_loss"]) if raw["val_loss"] else None,
                    "lr": float(raw["lr"]),
                    "seconds": float(raw["seconds"]),
                    "world_size": int(raw.get("world_size") or 1),
                }
            )
    return rows


def _tensorboard_writer(out_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "config 'tensorboard: true' needs the tensorboard package: pip install tensorboard "
            "(or set tensorboard: false)"
        ) from exc
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


# --------------------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------------------


def _to_device(
    batch: Mapping[str, torch.Tensor], device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to ``device`` (non-blocking from pinned memory); image ``(N, C, *patch)`` channels-last."""
    image = batch["image"].to(device, non_blocking=True)
    instances = batch["instances"].to(device, non_blocking=True)
    if channels_last:
        fmt = torch.channels_last_3d if image.dim() == 5 else torch.channels_last
        image = image.contiguous(memory_format=fmt)
    return image, instances


def _case_names(dataset: CropDataset | None) -> list[str]:
    return [] if dataset is None else [c.name for c in dataset.cases]


def _check_resume(ckpt: Mapping[str, Any], cfg: Mapping[str, Any], names: list[str], path: Path) -> None:
    old = ckpt.get("cfg", {})
    diff = [k for k in _IDENTITY_KEYS if old.get(k) != cfg.get(k)]
    if diff:
        details = "; ".join(f"{k}: checkpoint {old.get(k)!r} vs now {cfg.get(k)!r}" for k in diff)
        raise ValueError(
            f"{path} was trained with a different configuration ({details}). Only 'epochs' and runtime "
            "options may change when resuming; use a new output folder or delete the checkpoint to start over."
        )
    if ckpt.get("train_cases") is not None and list(ckpt["train_cases"]) != names:
        raise ValueError(
            f"{path} was trained on other cases ({len(ckpt['train_cases'])} cases: "
            f"{list(ckpt['train_cases'])[:5]}...) than given now ({len(names)}: {names[:5]}...); use a new "
            "output folder or delete the checkpoint to start over."
        )


@dataclass
class RunData:
    """What the job process prepares before any rank starts: config, cached data, the checkpoint to resume."""

    cfg: dict[str, Any]
    train_ds: CropDataset
    val_ds: CropDataset | None
    out: Path
    ckpt: dict[str, Any] | None
    use_amp_requested: bool
    channels_last_requested: bool

    @property
    def names(self) -> list[str]:
        return _case_names(self.train_ds)


@dataclass
class RunState:
    """One rank's training objects (:func:`setup_run`) and the run's progress (:func:`resume_run`)."""

    dist: Dist
    model: torch.nn.Module  # the network itself (evaluation, state dicts)
    net: torch.nn.Module  # what the training step calls: the DDP wrapper with several ranks
    optimizer: torch.optim.Optimizer
    loss_fn: torch.nn.Module
    sampler: GlobalBatchSampler
    loader: Any
    val_loader: Any
    use_amp: bool
    channels_last: bool
    base_state: dict[str, Any]
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def prepare_run(
    cfg: Mapping[str, Any],
    train_cases: Sequence[Mapping[str, Any]],
    val_cases: Sequence[Mapping[str, Any]] | None,
    out_dir: PathLike,
) -> RunData:
    """Resolve the config, read and cache the cases, and load and check ``checkpoint_last.pt`` if present.

    Runs once per job, before the ranks start, so data and config errors surface in the job process and
    the ranks share the cached cases.
    """
    cfg = resolve_config(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    patch, seed, progress = cfg["patch_size"], int(cfg["seed"]), bool(cfg["progress"])
    train_ds = CropDataset(train_cases, patch, cfg["crops_per_case"], seed, cfg["foreground_prob"], progress,
                           pad_to_patch=cfg["pad_to_patch"])
    val_ds = (
        CropDataset(val_cases, patch, cfg["crops_per_case"], seed, cfg["foreground_prob"], progress,
                    pad_to_patch=cfg["pad_to_patch"])
        if val_cases
        else None
    )
    if val_ds is not None and val_ds.in_channels != train_ds.in_channels:
        raise ValueError(
            f"validation cases have {val_ds.in_channels} channels but training cases {train_ds.in_channels}."
        )
    _remove_stale_temporaries(out)
    ckpt = None
    last_path = out / CHECKPOINT_LAST
    if last_path.exists():
        ckpt = load_checkpoint(last_path, map_location="cpu")
        _check_resume(ckpt, cfg, _case_names(train_ds), last_path)
    return RunData(cfg, train_ds, val_ds, out, ckpt, bool(cfg["amp"]), bool(cfg["channels_last"]))


def setup_run(data: RunData, dist: Dist) -> RunState:
    """Build one rank's network (DDP-wrapped with several ranks), optimizer, loss and loaders."""
    cfg = data.cfg
    dev = dist.device
    is_cuda = dev.type == "cuda"
    if dist.is_main and data.use_amp_requested and not is_cuda:
        logger.warning("amp=%r needs CUDA; training on %s in float32", cfg["amp"], dev)
    if dist.is_main and data.channels_last_requested and not is_cuda:
        logger.warning("channels_last only helps on CUDA; ignored on %s", dev)
    use_amp = data.use_amp_requested and is_cuda
    channels_last = data.channels_last_requested and is_cuda

    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    train_ds, val_ds = data.train_ds, data.val_ds
    spatial_dims, in_channels = train_ds.spatial_dims, train_ds.in_channels
    sampler = GlobalBatchSampler(
        len(train_ds), cfg["batch_size"], cfg["crops_per_case"], seed, True, dist.rank, dist.world_size, "crops"
    )
    model = build_model_from_config(cfg["model"], spatial_dims, in_channels, cfg["patch_size"]).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d if spatial_dims == 3 else torch.channels_last)
    if dist.rank > 0:  # distinct dropout masks per rank; rank 0 keeps the one-rank stream
        torch.manual_seed(seed + dist.rank * _RANK_SEED_STRIDE)
    if data.ckpt is not None:
        model.load_state_dict(data.ckpt["model"])
    net = model
    if dist.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # validation calls the bare model on each rank's own batches (no collective inside forward)
        net = DistributedDataParallel(model, device_ids=[dev.index] if is_cuda else None)
    optimizer = build_optimizer_from_config(
        model.parameters(), cfg["optimizer"], int(cfg["epochs"]) * sampler.num_batches
    )
    # the cached data were validated: the blob losses can skip their per-step checks (no host sync)
    max_id = max(train_ds.max_instance_id, 0 if val_ds is None else val_ds.max_instance_id)
    loss_fn = build_loss_from_config(cfg["loss"], max_instance_id=max_id).to(dev)

    pin = is_cuda
    loader = make_loader(train_ds, cfg["batch_size"], sampler, cfg["num_workers"], pin)
    val_loader = None
    if val_ds is not None:
        # fixed epoch 0 keys: the same validation crops every time; each rank evaluates whole batches
        val_sampler = GlobalBatchSampler(
            len(val_ds), cfg["batch_size"], cfg["crops_per_case"], seed, False, dist.rank, dist.world_size,
            "batches",
        )
        val_loader = make_loader(val_ds, cfg["batch_size"], val_sampler, cfg["num_workers"], pin)
    base_state = {
        "format": CHECKPOINT_FORMAT,
        "cfg": cfg,
        "spatial_dims": spatial_dims,
        "in_channels": in_channels,
        "train_cases": data.names,
        "world_size": dist.world_size,
    }
    return RunState(dist, model, net, optimizer, loss_fn, sampler, loader, val_loader, use_amp, channels_last,
                    base_state)


def resume_run(state: RunState, ckpt: Mapping[str, Any] | None, out: Path, epochs: int) -> None:
    """Restore optimizer, this rank's RNG states, epoch count, history and best loss from ``ckpt``."""
    if ckpt is None:
        return
    dist = state.dist
    state.optimizer.load_state_dict(ckpt["optimizer"])
    ranks = ckpt.get("rng_ranks")
    own_device = dist.device if dist.distributed else None
    if ranks and len(ranks) == dist.world_size:
        restore_rng_state(ranks[dist.rank], own_device)
    elif dist.rank == 0:
        restore_rng_state(ckpt["rng"], own_device)
    elif ranks is not None:  # rank > 0, and the checkpoint came from another number of ranks
        logger.warning(
            "checkpoint was written by %d ranks, this run has %d: rank %d starts fresh dropout RNG",
            len(ranks), dist.world_size, dist.rank,
        )
    state.start_epoch = int(ckpt["epoch"])
    state.history = list(ckpt.get("history", []))[: state.start_epoch]
    state.best_val = float(ckpt.get("best_val_loss", math.inf))
    state.best_epoch = ckpt.get("best_epoch")
    if dist.is_main:
        _write_log(out / "log.csv", state.history)
        logger.info("resuming %s at epoch %d of %d", out / CHECKPOINT_LAST, state.start_epoch, epochs)
        if state.start_epoch > epochs:
            logger.warning(
                "checkpoint has %d epochs, more than the configured %d; nothing to do", state.start_epoch, epochs
            )


def _loss_of_global_batch(
    state: RunState, logits: torch.Tensor, instances: torch.Tensor, b: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss of the whole global batch, what to backpropagate) from this rank's share of batch ``b``.

    Every rank gathers the other ranks' logits (as constants) and computes the loss of the global batch;
    the gradient then flows into the own share only. Backpropagating ``world_size * loss`` makes DDP's
    gradient average equal to the gradient of the global-batch loss. A rank whose share is empty trains on
    a stand-in crop with weight 0 (the ``0 * logits.sum()`` term keeps every parameter in the graph).
    """
    dist = state.dist
    n = state.sampler.batch_crops(b)
    counts = [hi - lo for lo, hi in (crop_bounds(n, r, dist.world_size) for r in range(dist.world_size))]
    own = counts[dist.rank]
    parts = dist.gather_rows(logits, counts)
    inst_parts = dist.gather_rows(instances, counts)
    parts[dist.rank] = logits[:own]
    inst_parts[dist.rank] = instances[:own]
    loss = state.loss_fn(torch.cat(parts), torch.cat(inst_parts))
    return loss, loss * dist.world_size + 0.0 * logits.sum()


def train_epoch(state: RunState, epoch: int) -> float:
    """One pass over the training batches (0-based ``epoch``); returns the mean global-batch loss.

    The loss is accumulated on the device and read once at the end (one host sync per epoch).
    """
    dist = state.dist
    dev = dist.device
    state.sampler.set_epoch(epoch)
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    steps = 0
    for b, batch in enumerate(state.loader):
        image, instances = _to_device(batch, dev, state.channels_last)
        with state.autocast():
            logits = state.net(image)
        logits = logits.float()
        if dist.distributed:
            loss, to_backprop = _loss_of_global_batch(state, logits, instances, b)
        else:
            loss = to_backprop = state.loss_fn(logits, instances)
        state.optimizer.zero_grad(set_to_none=True)
        to_backprop.backward()
        state.optimizer.step()
        loss_sum += loss.detach().double()
        steps += 1
    # every rank computed the same global-batch losses; the reduction keeps the ranks in agreement
    dist.all_reduce_sum(loss_sum)
    return float(loss_sum.item() / max(steps * dist.world_size, 1))


def validate(state: RunState) -> float:
    """Mean validation loss over the fixed validation crops, weighted by the crops per batch.

    Each rank evaluates whole validation batches (round robin); the sums are reduced across ranks.
    """
    dist = state.dist
    model = state.model
    model.eval()
    sums = torch.zeros(2, device=dist.device, dtype=torch.float64)  # (loss * crops, crops)
    with torch.no_grad():
        for batch in state.val_loader:
            image, instances = _to_device(batch, dist.device, state.channels_last)
            with state.autocast():
                logits = model(image)
            sums[0] += state.loss_fn(logits.float(), instances).detach().double() * image.shape[0]
            sums[1] += image.shape[0]
    model.train()
    dist.all_reduce_sum(sums)
    return float(sums[0].item() / max(sums[1].item(), 1.0))


def save_epoch(state: RunState, row: dict[str, Any], out: Path, rng_ranks: list[Any], writer: Any) -> None:
    """Rank 0: best and last checkpoint, ``log.csv`` and TensorBoard after an epoch."""
    done, val_loss = row["epoch"], row["val_loss"]
    model_state = state.model.state_dict()
    if val_loss is not None and val_loss < state.best_val:
        state.best_val, state.best_epoch = val_loss, done
        # written before checkpoint_last, so a kill in between never leaves a stale best file
        save_checkpoint(out / CHECKPOINT_BEST, {**state.base_state, "model": model_state, "epoch": done,
                                                "val_loss": val_loss})
    save_checkpoint(
        out / CHECKPOINT_LAST,
        {
            **state.base_state,
            "model": model_state,
            "optimizer": state.optimizer.state_dict(),
            "scheduler": None,
            "rng": rng_ranks[0],
            "rng_ranks": rng_ranks,
            "epoch": done,
            "history": state.history,
            "best_val_loss": state.best_val,
            "best_epoch": state.best_epoch,
        },
    )
    _write_log(out / "log.csv", state.history)
    if writer is not None:
        writer.add_scalar("loss/train", row["train_loss"], done)
        if val_loss is not None:
            writer.add_scalar("loss/val", val_loss, done)
        writer.add_scalar("lr", row["lr"], done)
        writer.flush()


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------


def train(
    cfg: Mapping[str, Any],
    train_cases: Sequence[Mapping[str, Any]],
    val_cases: Sequence[Mapping[str, Any]] | None,
    out_dir: PathLike,
    device: str | torch.device | None = None,
    *,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    run: Mapping[str, Any] | None = None,
    progress_stream: IO[str] | None = None,
    progress_interval: float = 30.0,
    force_distributed: bool = False,
) -> dict[str, Any]:
    """Train a segmentation network (or resume/extend a run found in ``out_dir``), on 1 or ``gpus`` ranks.

    Args:
        cfg: Training config (see :data:`DEFAULT_CONFIG` and ``docs/training.md``): ``model`` (name,
            features, dropout, act), ``optimizer`` (name, lr, weight_decay, schedule), ``loss`` (name, alpha,
            beta, options), ``batch_size`` (cases per global batch), ``crops_per_case``, ``patch_size``,
            ``epochs``, ``seed``, ``num_workers``, ``foreground_prob``, ``amp`` ("bf16" or None; CUDA only),
            ``channels_last`` (CUDA only), ``val_every``, ``tensorboard``, ``deterministic``, ``gpus``
            (ranks: GPUs, or CPU processes without CUDA), ``progress``.
        train_cases: ``[dict(image=path|array, instances=path|array[, name=...]), ...]``; images
            ``(C, *spatial)`` (see :func:`blobloss.training.data.load_training_case`).
        val_cases: Validation cases in the same form, or ``None``/``[]`` for no validation split.
        out_dir: Output folder (created); holds the checkpoints, ``log.csv``, ``progress.json``.
        device: ``"cuda"``, ``"cpu"``, ... or ``None`` for CUDA when available. With ``gpus > 1`` only the
            type counts: rank ``r`` uses ``cuda:r`` (or the CPU).
        on_epoch_end: Optional callback receiving each epoch's log row (after the checkpoint is written);
            with several ranks it runs in rank 0's process.
        run: ``{"dataset", "setting", "seed"}`` of a pipeline run, for the progress lines and ``progress.json``.
        progress_stream: Where the progress lines go (default: ``sys.stderr`` when ``cfg["progress"]``).
        progress_interval: Minimum seconds between two progress lines on ``progress_stream`` (every epoch
            is logged to the ``blobloss.training.progress`` logger regardless).
        force_distributed: Use the multi-rank path (forked ranks, DDP) even for ``gpus: 1``.

    Returns:
        Summary dict: ``epochs`` (completed), ``start_epoch``, ``resumed``, ``train_loss`` and ``val_loss``
        of the last epoch, ``best_val_loss``, ``best_epoch``, ``device``, ``world_size``, ``seconds`` and the
        paths ``checkpoint_last``, ``checkpoint_best`` (or None), ``log``, ``progress``.

    Raises:
        ValueError: On an invalid config or data, or a checkpoint from a different experiment.
        FloatingPointError: If the training loss becomes NaN or infinite.
        blobloss.training.distributed.RankFailedError: If a rank was killed (the job can be rerun to resume).

    Example:
        >>> import tempfile
        >>> inst = np.zeros((32, 32), np.uint32); inst[4:9, 4:9] = 1; inst[20:23, 20:26] = 2
        >>> case = {"image": (inst > 0)[None].astype(np.float32), "instances": inst}
        >>> cfg = {"model": {"features": [2, 2, 2, 2, 2, 2]}, "patch_size": [32, 32], "epochs": 2,
        ...        "batch_size": 1, "num_workers": 0, "progress": False}
        >>> out = train(cfg, [case], [case], tempfile.mkdtemp(), device="cpu")
        >>> out["epochs"], out["checkpoint_best"] is not None, out["world_size"]
        (2, True, 1)
    """
    t_start = time.perf_counter()
    resolved = resolve_config(cfg)
    world = int(resolved["gpus"])
    epochs = int(resolved["epochs"])
    stream = progress_stream if progress_stream is not None else (sys.stderr if resolved["progress"] else None)
    out = Path(out_dir)
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    try:
        data = prepare_run(resolved, train_cases, val_cases, out)
        distributed = world > 1 or force_distributed
        if distributed:
            device_type = _device_type(device)
        else:
            dev = resolve_device(device)
            device_type = dev.type
        if data.cfg["deterministic"]:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = device_type == "cuda"
        args = (data, on_epoch_end, run, stream, progress_interval, t_start)
        if distributed:
            logger.info("training on %d ranks (%s)", world, "NCCL, GPUs" if device_type == "cuda" else "gloo, CPU")
            return launch(_run_rank, world, device_type, args=args)
        return _run_rank(Dist(device=dev), *args)
    except BaseException:
        mark_failed(out, epochs, world, run, stream)
        raise
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.backends.cudnn.benchmark = prev_bench


def _run_rank(
    dist: Dist,
    data: RunData,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
    run: Mapping[str, Any] | None,
    stream: IO[str] | None,
    progress_interval: float,
    t_start: float,
) -> dict[str, Any]:
    """The training of one rank: setup, resume, epochs; rank 0 writes the files and reports progress."""
    cfg, out = data.cfg, data.out
    epochs = int(cfg["epochs"])
    state = setup_run(data, dist)
    resume_run(state, data.ckpt, out, epochs)
    resumed = data.ckpt is not None
    data.ckpt = None  # free the host copy of the checkpoint
    last_path, best_path = out / CHECKPOINT_LAST, out / CHECKPOINT_BEST
    log_path = out / "log.csv"
    reporter = ProgressReporter(out, epochs, dist.world_size, run, stream, progress_interval) if dist.is_main else None
    if reporter is not None:
        reporter.start(state.start_epoch, state.history)
        if dist.distributed:
            logger.info("rank 0 of %d: device %s, backend %s", dist.world_size, dist.device, dist.backend)

    def summary() -> dict[str, Any]:
        last = state.history[-1] if state.history else {}
        return {
            "epochs": len(state.history),
            "start_epoch": state.start_epoch,
            "resumed": resumed,
            "train_loss": last.get("train_loss"),
            "val_loss": last.get("val_loss"),
            "best_val_loss": None if state.best_epoch is None else state.best_val,
            "best_epoch": state.best_epoch,
            "device": str(dist.device),
            "world_size": dist.world_size,
            "seconds": time.perf_counter() - t_start,
            "checkpoint_last": str(last_path),
            "checkpoint_best": str(best_path) if best_path.exists() else None,
            "log": str(log_path),
            "progress": str(out / "progress.json"),
        }

    if state.start_epoch >= epochs:
        if dist.is_main:
            reporter.done()
        return summary()

    writer = _tensorboard_writer(out) if cfg["tensorboard"] and dist.is_main else None
    state.model.train()
    try:
        for epoch in range(state.start_epoch, epochs):
            t0 = time.perf_counter()
            train_loss = train_epoch(state, epoch)
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"training loss became {train_loss} in epoch {epoch + 1}; lower optimizer.lr "
                    f"(now {cfg['optimizer']['lr']}) or check the data for NaN values."
                )
            done = epoch + 1
            val_loss = None
            if state.val_loader is not None and (done % cfg["val_every"] == 0 or done == epochs):
                val_loss = validate(state)
            row = {
                "epoch": done,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": current_lr(state.optimizer),
                "seconds": round(time.perf_counter() - t0, 3),
                "world_size": dist.world_size,
            }
            state.history.append(row)
            rng_ranks = dist.all_gather_object(capture_rng_state(dist.device if dist.distributed else None))
            if dist.is_main:
                save_epoch(state, row, out, rng_ranks, writer)
                reporter.epoch(row)
                if on_epoch_end is not None:
                    on_epoch_end(dict(row))
        if reporter is not None:
            reporter.done()
    finally:
        if writer is not None:
            writer.close()
    return summary()


def _remove_stale_temporaries(out: Path) -> None:
    """Delete half-written temporary files that a killed run left beside its outputs."""
    for stem in ("checkpoint_last", "checkpoint_best", "log", "curve", "progress"):  # curve: older runs
        for tmp in out.glob(f".{stem}.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                logger.info("removed %s left by an interrupted run", tmp)
