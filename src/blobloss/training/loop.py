"""The training loop: config resolution, epochs, validation, checkpoints, logs and exact resume.

``train(cfg, train_cases, val_cases, out_dir)`` trains one network and writes into ``out_dir``:

* ``checkpoint_last.pt`` after every epoch (model, optimizer, scheduler (none), RNG states, completed epochs,
  config, history) and ``checkpoint_best.pt`` whenever the validation loss reaches a new minimum (only
  with a validation split) — both written atomically;
* ``log.csv`` (columns ``epoch, train_loss, val_loss, lr, seconds``; one row per completed epoch, ``val_loss``
  empty where no validation ran), ``curve.png`` (loss curves), and TensorBoard scalars under ``tensorboard/``
  when ``cfg["tensorboard"]`` is true.

Resume: when ``checkpoint_last.pt`` exists, training continues from it (model, optimizer, RNG states and
epoch count are restored and ``log.csv`` is rewritten from the checkpoint's history, so every epoch appears
exactly once). A job killed at any moment loses at most the epoch in progress. Raising ``epochs`` for a
finished run continues it; the optimizer is rebuilt for the new total number of iterations and its state
is loaded (this matters only for Ranger21's optional ``schedule: ranger21``, whose warm-down then moves
to the end of the longer run). The other settings that define the experiment (model, optimizer, loss,
patch, batch, crops, seed, training cases) must not change; a mismatch raises an error.

With ``deterministic: true`` on CPU, a killed and resumed run (and an extended run) ends with the same
weights, bit for bit, as an uninterrupted one: crops are drawn from generators keyed by (seed, epoch,
case), the DataLoader has its own generator, and the global RNG states are restored from the checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from blobloss.io import atomic_path
from blobloss.training.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from blobloss.data.checks import check_patch_size
from blobloss.training.data import CropDataset, EpochSampler, batches_per_epoch, make_loader
from blobloss.training.losses import build_loss_from_config
from blobloss.training.model import build_model_from_config, required_divisor
from blobloss.training.optim import build_optimizer_from_config, current_lr

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

#: Defaults of every training config key (the paper's settings where it gives them).
DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"name": "basicunet", "features": [32, 32, 64, 128, 256, 32], "dropout": 0.1, "act": "mish"},
    "optimizer": {"name": "ranger21", "lr": 1e-3, "weight_decay": None, "schedule": "constant"},
    "loss": {"name": "blob_dice", "alpha": None, "beta": None},
    "batch_size": 2,
    "crops_per_case": 2,
    "patch_size": [192, 192, 32],
    "epochs": 500,
    "seed": 0,
    "num_workers": 0,
    "foreground_prob": 0.95,
    "amp": None,
    "channels_last": False,
    "val_every": 1,
    "tensorboard": False,
    "deterministic": False,
    "pad_to_patch": False,
    "progress": True,
}

#: Keys whose change makes a checkpoint belong to a different experiment (resume refuses them).
_IDENTITY_KEYS: tuple[str, ...] = (
    "model", "optimizer", "loss", "batch_size", "crops_per_case", "patch_size", "seed", "foreground_prob",
)

LOG_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "lr", "seconds")

CHECKPOINT_LAST = "checkpoint_last.pt"
CHECKPOINT_BEST = "checkpoint_best.pt"


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
        >>> c["loss"], c["optimizer"]["name"], c["epochs"]
        ({'name': 'dice', 'alpha': None, 'beta': None}, 'ranger21', 500)
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

    for key in ("batch_size", "crops_per_case", "epochs", "val_every"):
        if not isinstance(out[key], (int, np.integer)) or isinstance(out[key], bool) or out[key] < 1:
            raise ValueError(f"config {key!r} must be an integer >= 1, got {out[key]!r}.")
    if not isinstance(out["num_workers"], (int, np.integer)) or out["num_workers"] < 0:
        raise ValueError(f"config 'num_workers' must be an integer >= 0, got {out['num_workers']!r}.")
    if not isinstance(out["seed"], (int, np.integer)) or out["seed"] < 0:
        raise ValueError(f"config 'seed' must be an integer >= 0, got {out['seed']!r}.")
    if out["amp"] not in (None, "bf16"):
        raise ValueError(f"config 'amp' must be 'bf16' or null, got {out['amp']!r}.")
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

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "log.csv"
        >>> _write_log(p, [{"epoch": 1, "train_loss": 0.5, "val_loss": None, "lr": 0.01, "seconds": 2.0}])
        >>> read_log(p)
        [{'epoch': 1, 'train_loss': 0.5, 'val_loss': None, 'lr': 0.01, 'seconds': 2.0}]
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
                }
            )
    return rows


def _plot_curve(path: Path, history: Sequence[Mapping[str, Any]], title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], label="training loss")
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), marker="o", markersize=3, label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


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


def _evaluate(
    model: torch.nn.Module,
    loader: Iterable[Mapping[str, torch.Tensor]],
    loss_fn: torch.nn.Module,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager],
    channels_last: bool,
) -> float:
    """Mean validation loss over fixed crops, weighted by the crops per batch (one sync at the end)."""
    model.eval()
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    with torch.no_grad():
        for batch in loader:
            image, instances = _to_device(batch, device, channels_last)
            with autocast():
                logits = model(image)
            total += loss_fn(logits.float(), instances).detach().double() * image.shape[0]
            count += image.shape[0]
    model.train()
    return float(total.item() / max(count, 1))


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
) -> dict[str, Any]:
    """Train a segmentation network (or resume/extend a run found in ``out_dir``).

    Args:
        cfg: Training config (see :data:`DEFAULT_CONFIG` and ``docs/training.md``): ``model`` (name,
            features, dropout, act), ``optimizer`` (name, lr, weight_decay, schedule), ``loss`` (name, alpha,
            beta, options), ``batch_size`` (cases per batch), ``crops_per_case``, ``patch_size``, ``epochs``,
            ``seed``, ``num_workers``, ``foreground_prob``, ``amp`` ("bf16" or None; CUDA only),
            ``channels_last`` (CUDA only), ``val_every``, ``tensorboard``, ``deterministic``, ``progress``.
        train_cases: ``[dict(image=path|array, instances=path|array[, name=...]), ...]``; images
            ``(C, *spatial)`` (see :func:`blobloss.training.data.load_training_case`).
        val_cases: Validation cases in the same form, or ``None``/``[]`` for no validation split.
        out_dir: Output folder (created); holds the checkpoints, ``log.csv`` and ``curve.png``.
        device: ``"cuda"``, ``"cpu"``, ... or ``None`` for CUDA when available.
        on_epoch_end: Optional callback receiving each epoch's log row (after the checkpoint is written).

    Returns:
        Summary dict: ``epochs`` (completed), ``start_epoch``, ``resumed``, ``train_loss`` and ``val_loss``
        of the last epoch, ``best_val_loss``, ``best_epoch``, ``device``, ``seconds`` and the paths
        ``checkpoint_last``, ``checkpoint_best`` (or None), ``log``, ``curve``.

    Raises:
        ValueError: On an invalid config or data, or a checkpoint from a different experiment.
        FloatingPointError: If the training loss becomes NaN or infinite.

    Example:
        >>> import tempfile
        >>> inst = np.zeros((32, 32), np.uint32); inst[4:9, 4:9] = 1; inst[20:23, 20:26] = 2
        >>> case = {"image": (inst > 0)[None].astype(np.float32), "instances": inst}
        >>> cfg = {"model": {"features": [2, 2, 2, 2, 2, 2]}, "patch_size": [32, 32], "epochs": 2,
        ...        "batch_size": 1, "progress": False}
        >>> out = train(cfg, [case], [case], tempfile.mkdtemp(), device="cpu")
        >>> out["epochs"], out["checkpoint_best"] is not None
        (2, True)
    """
    t_start = time.perf_counter()
    cfg = resolve_config(cfg)
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_cuda = dev.type == "cuda"
    if cfg["amp"] and not is_cuda:
        logger.warning("amp=%r needs CUDA; training on %s in float32", cfg["amp"], dev)
    if cfg["channels_last"] and not is_cuda:
        logger.warning("channels_last only helps on CUDA; ignored on %s", dev)
    use_amp = bool(cfg["amp"]) and is_cuda
    channels_last = bool(cfg["channels_last"]) and is_cuda

    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    if cfg["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = is_cuda
    try:
        return _train(cfg, train_cases, val_cases, out, dev, use_amp, channels_last, on_epoch_end, t_start)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.backends.cudnn.benchmark = prev_bench


def _train(
    cfg: dict[str, Any],
    train_cases: Sequence[Mapping[str, Any]],
    val_cases: Sequence[Mapping[str, Any]] | None,
    out: Path,
    dev: torch.device,
    use_amp: bool,
    channels_last: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
    t_start: float,
) -> dict[str, Any]:
    """Body of :func:`train` after the config and the global torch flags are set."""
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)

    patch = cfg["patch_size"]
    progress = bool(cfg["progress"])
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
    spatial_dims, in_channels = train_ds.spatial_dims, train_ds.in_channels
    epochs = int(cfg["epochs"])
    n_batches = batches_per_epoch(len(train_ds), cfg["batch_size"])

    model = build_model_from_config(cfg["model"], spatial_dims, in_channels, patch).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d if spatial_dims == 3 else torch.channels_last)
    optimizer = build_optimizer_from_config(model.parameters(), cfg["optimizer"], epochs * n_batches)
    # the cached data were validated: the blob losses can skip their per-step checks (no host sync)
    max_id = max(train_ds.max_instance_id, 0 if val_ds is None else val_ds.max_instance_id)
    loss_fn = build_loss_from_config(cfg["loss"], max_instance_id=max_id).to(dev)

    last_path, best_path = out / CHECKPOINT_LAST, out / CHECKPOINT_BEST
    log_path, curve_path = out / "log.csv", out / "curve.png"
    _remove_stale_temporaries(out)
    names = _case_names(train_ds)
    start_epoch, history = 0, []
    best_val, best_epoch = math.inf, None
    resumed = last_path.exists()
    if resumed:
        ckpt = load_checkpoint(last_path, map_location=dev)
        _check_resume(ckpt, cfg, names, last_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng_state(ckpt["rng"])
        start_epoch = int(ckpt["epoch"])
        history = list(ckpt.get("history", []))[:start_epoch]
        best_val = float(ckpt.get("best_val_loss", math.inf))
        best_epoch = ckpt.get("best_epoch")
        _write_log(log_path, history)
        logger.info("resuming %s at epoch %d of %d", last_path, start_epoch, epochs)
        if start_epoch > epochs:
            logger.warning("checkpoint has %d epochs, more than the configured %d; nothing to do", start_epoch, epochs)

    def summary() -> dict[str, Any]:
        last = history[-1] if history else {}
        return {
            "epochs": len(history),
            "start_epoch": start_epoch,
            "resumed": resumed,
            "train_loss": last.get("train_loss"),
            "val_loss": last.get("val_loss"),
            "best_val_loss": None if best_epoch is None else best_val,
            "best_epoch": best_epoch,
            "device": str(dev),
            "seconds": time.perf_counter() - t_start,
            "checkpoint_last": str(last_path),
            "checkpoint_best": str(best_path) if best_path.exists() else None,
            "log": str(log_path),
            "curve": str(curve_path) if curve_path.exists() else None,
        }

    if start_epoch >= epochs:
        if history and not curve_path.exists():
            _plot_curve(curve_path, history, _title(cfg))
        return summary()

    pin = dev.type == "cuda"
    sampler = EpochSampler(len(train_ds), seed, shuffle=True)
    loader = make_loader(train_ds, cfg["batch_size"], sampler, cfg["num_workers"], pin)
    val_loader = None
    if val_ds is not None:
        val_sampler = EpochSampler(len(val_ds), seed, shuffle=False)  # fixed key (0, i): same crops always
        val_loader = make_loader(val_ds, cfg["batch_size"], val_sampler, cfg["num_workers"], pin)
    writer = _tensorboard_writer(out) if cfg["tensorboard"] else None

    def autocast() -> contextlib.AbstractContextManager:
        if use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    base_state = {
        "format": CHECKPOINT_FORMAT,
        "cfg": cfg,
        "spatial_dims": spatial_dims,
        "in_channels": in_channels,
        "train_cases": names,
    }
    model.train()
    bar = tqdm(total=epochs, initial=start_epoch, desc="training", unit="epoch", disable=not progress)
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
            steps = 0
            inner = tqdm(loader, total=n_batches, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
            for batch in inner:
                image, instances = _to_device(batch, dev, channels_last)
                with autocast():
                    logits = model(image)
                loss = loss_fn(logits.float(), instances)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().double()
                steps += 1
            train_loss = float(loss_sum.item() / max(steps, 1))  # one device sync per epoch
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"training loss became {train_loss} in epoch {epoch + 1}; lower optimizer.lr "
                    f"(now {cfg['optimizer']['lr']}) or check the data for NaN values."
                )
            done = epoch + 1
            val_loss = None
            if val_loader is not None and (done % cfg["val_every"] == 0 or done == epochs):
                val_loss = _evaluate(model, val_loader, loss_fn, dev, autocast, channels_last)
            row = {
                "epoch": done,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": current_lr(optimizer),
                "seconds": round(time.perf_counter() - t0, 3),
            }
            history.append(row)
            if val_loss is not None and val_loss < best_val:
                best_val, best_epoch = val_loss, done
                # written before checkpoint_last, so a kill in between never leaves a stale best file
                save_checkpoint(best_path, {**base_state, "model": model.state_dict(), "epoch": done,
                                            "val_loss": val_loss})
            save_checkpoint(
                last_path,
                {
                    **base_state,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": None,
                    "rng": capture_rng_state(),
                    "epoch": done,
                    "history": history,
                    "best_val_loss": best_val,
                    "best_epoch": best_epoch,
                },
            )
            _write_log(log_path, history)
            if done % cfg["val_every"] == 0 or done == epochs:
                _plot_curve(curve_path, history, _title(cfg))
            if writer is not None:
                writer.add_scalar("loss/train", train_loss, done)
                if val_loss is not None:
                    writer.add_scalar("loss/val", val_loss, done)
                writer.add_scalar("lr", row["lr"], done)
                writer.flush()
            bar.set_postfix(loss=f"{train_loss:.4f}", val="-" if val_loss is None else f"{val_loss:.4f}")
            bar.update(1)
            if on_epoch_end is not None:
                on_epoch_end(dict(row))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return summary()


def _remove_stale_temporaries(out: Path) -> None:
    """Delete half-written temporary files that a killed run left beside its outputs."""
    for stem in ("checkpoint_last", "checkpoint_best", "log", "curve"):
        for tmp in out.glob(f".{stem}.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                logger.info("removed %s left by an interrupted run", tmp)


def _title(cfg: Mapping[str, Any]) -> str:
    return f"{cfg['model']['name']} / {cfg['loss']['name']} / {cfg['optimizer']['name']} lr={cfg['optimizer']['lr']:g}"
