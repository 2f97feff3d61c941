"""Progress of a training run: one plain line per epoch, and ``progress.json`` beside the checkpoints.

Rank 0 of a run reports after every epoch:

* a line such as ``[synthetic3d/blob_dice/seed0] epoch 12/30 loss 0.4123 val 0.3911 3.2 s/epoch ETA 58 s``
  to the logger ``blobloss.training.progress`` (a job's log file), and to a console stream (in a pipeline
  job the terminal that runs snakemake) at most once every ``interval`` seconds, plus the first and the
  last epoch of the session: readable when several jobs run at once;
* ``progress.json`` in the run's folder, written atomically, with exactly the keys :data:`PROGRESS_KEYS`:
  ``dataset``, ``setting``, ``seed`` (``None`` outside the pipeline), ``epoch`` (completed), ``epochs``,
  ``loss`` and ``val_loss`` of the last epoch (``val_loss`` ``None`` where not computed), ``sec_per_epoch``
  (mean wall time of this session's epochs, validation and checkpoint included), ``eta_s``, ``state``
  (``"running"``, ``"done"`` or ``"failed"``), ``world_size`` and ``updated`` (ISO 8601, UTC).

``python -m blobloss.status`` reads these files for every run of a study.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from blobloss.io import atomic_path

__all__ = ["PROGRESS_FILE", "PROGRESS_KEYS", "ProgressReporter", "format_line", "mark_failed", "read_progress"]

logger = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
PROGRESS_KEYS: tuple[str, ...] = (
    "dataset", "setting", "seed", "epoch", "epochs", "loss", "val_loss", "sec_per_epoch", "eta_s", "state",
    "world_size", "updated",
)
STATES: tuple[str, ...] = ("running", "done", "failed")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_label(run: Mapping[str, Any] | None, out_dir: Path) -> str:
    """``dataset/setting/seed<k>`` of a pipeline run, else the output folder's name.

    Example:
        >>> run_label({"dataset": "ms", "setting": "dice", "seed": 0}, Path("x"))
        'ms/dice/seed0'
    """
    if run and run.get("dataset") is not None:
        return f"{run['dataset']}/{run.get('setting')}/seed{run.get('seed')}"
    return out_dir.name or str(out_dir)


def _duration(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_line(label: str, state: Mapping[str, Any]) -> str:
    """The console/log line of one progress state.

    Example:
        >>> format_line("syn/dice/seed0", {"epoch": 12, "epochs": 30, "loss": 0.41234, "val_loss": 0.3911,
        ...                                "sec_per_epoch": 3.21, "eta_s": 57.8, "state": "running"})
        '[syn/dice/seed0] epoch 12/30 loss 0.4123 val 0.3911 3.2 s/epoch ETA 58 s'
    """
    parts = [f"[{label}] epoch {state['epoch']}/{state['epochs']}"]
    if state.get("loss") is not None:
        parts.append(f"loss {state['loss']:.4f}")
    if state.get("val_loss") is not None:
        parts.append(f"val {state['val_loss']:.4f}")
    if state.get("sec_per_epoch") is not None:
        parts.append(f"{state['sec_per_epoch']:.1f} s/epoch")
    if state.get("state") == "done":
        parts.append("done")
    elif state.get("state") == "failed":
        parts.append("FAILED")
    elif state.get("eta_s") is not None:
        parts.append(f"ETA {_duration(state['eta_s'])}")
    return " ".join(parts)


def read_progress(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's ``progress.json`` as a dict, or None when it does not exist or cannot be parsed."""
    path = Path(out_dir) / PROGRESS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _write(out_dir: Path, state: Mapping[str, Any]) -> None:
    record = {key: state.get(key) for key in PROGRESS_KEYS}
    with atomic_path(out_dir / PROGRESS_FILE) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


class ProgressReporter:
    """Reports the epochs of one run (rank 0 only): log line, throttled console line, ``progress.json``.

    Args:
        out_dir: The run's folder (``progress.json`` goes there).
        epochs: Total epochs of the run.
        world_size: Ranks of the run.
        run: ``{"dataset", "setting", "seed"}`` of a pipeline run (None: library use).
        stream: Console stream for the lines (None: log only).
        interval: Minimum seconds between two console lines (the first and last epoch always print).

    Example:
        >>> import io, tempfile
        >>> out = Path(tempfile.mkdtemp()); console = io.StringIO()
        >>> rep = ProgressReporter(out, 2, 1, {"dataset": "d", "setting": "s", "seed": 0}, console, 0)
        >>> rep.start(0, [])
        >>> rep.epoch({"epoch": 1, "train_loss": 0.5, "val_loss": None}); rep.done()
        >>> console.getvalue().splitlines()[0].startswith("[d/s/seed0] epoch 1/2 loss 0.5000")
        True
        >>> read_progress(out)["state"]
        'done'
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        epochs: int,
        world_size: int,
        run: Mapping[str, Any] | None = None,
        stream: IO[str] | None = None,
        interval: float = 30.0,
    ) -> None:
        self.out = Path(out_dir)
        self.run = dict(run or {})
        self.label = run_label(self.run, self.out)
        self.stream = stream
        self.interval = float(interval)
        self.state: dict[str, Any] = {
            "dataset": self.run.get("dataset"),
            "setting": self.run.get("setting"),
            "seed": self.run.get("seed"),
            "epoch": 0,
            "epochs": int(epochs),
            "loss": None,
            "val_loss": None,
            "sec_per_epoch": None,
            "eta_s": None,
            "state": "running",
            "world_size": int(world_size),
        }
        self._t_last = time.monotonic()
        self._durations: list[float] = []
        self._printed_at: float | None = None

    def start(self, start_epoch: int, history: Sequence[Mapping[str, Any]]) -> None:
        """Record the state at the start (or resumption) of a session and write ``progress.json``."""
        self.state["epoch"] = int(start_epoch)
        if history:
            self.state["loss"] = history[-1].get("train_loss")
            self.state["val_loss"] = history[-1].get("val_loss")
            secs = [r["seconds"] for r in history if r.get("seconds")]
            if secs:
                self.state["sec_per_epoch"] = float(sum(secs) / len(secs))
                self.state["eta_s"] = self.state["sec_per_epoch"] * max(self.state["epochs"] - start_epoch, 0)
        self._t_last = time.monotonic()
        self._save()

    def epoch(self, row: Mapping[str, Any]) -> None:
        """Report one completed epoch (a ``log.csv`` row: ``epoch``, ``train_loss``, ``val_loss``)."""
        now = time.monotonic()
        self._durations.append(now - self._t_last)
        self._t_last = now
        sec = sum(self._durations) / len(self._durations)
        done = int(row["epoch"])
        self.state.update(
            epoch=done,
            loss=float(row["train_loss"]),
            val_loss=None if row.get("val_loss") is None else float(row["val_loss"]),
            sec_per_epoch=round(sec, 3),
            eta_s=round(sec * max(self.state["epochs"] - done, 0), 1),
        )
        self._save()
        line = format_line(self.label, self.state)
        logger.info("%s", line)
        first = self._printed_at is None
        if first or done >= self.state["epochs"] or now - self._printed_at >= self.interval:
            self._print(line)
            self._printed_at = now

    def done(self) -> None:
        """Mark the run finished (``state: done``, ETA 0)."""
        self.state.update(state="done", eta_s=0.0)
        self._save()

    def _save(self) -> None:
        _write(self.out, {**self.state, "updated": _now()})

    def _print(self, line: str) -> None:
        if self.stream is None:
            return
        try:
            print(line, file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed console must not stop training
            self.stream = None


def mark_failed(
    out_dir: str | os.PathLike[str],
    epochs: int,
    world_size: int,
    run: Mapping[str, Any] | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Set ``state: failed`` in the run's ``progress.json`` (creating it if the run never got that far).

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()); mark_failed(out, 10, 2)
        >>> p = read_progress(out); p["state"], p["epoch"], p["world_size"]
        ('failed', 0, 2)
    """
    out = Path(out_dir)
    old = read_progress(out) or {}
    run = dict(run or {})
    state = {key: old.get(key) for key in PROGRESS_KEYS}
    state.update(
        dataset=run.get("dataset", state["dataset"]),
        setting=run.get("setting", state["setting"]),
        seed=run.get("seed", state["seed"]),
        epoch=state["epoch"] or 0,
        epochs=int(epochs),
        world_size=int(world_size),
        state="failed",
        eta_s=None,
        updated=_now(),
    )
    if out.is_dir():
        _write(out, state)
    line = format_line(run_label(run, out), state)
    logger.error("%s", line)
    if stream is not None:
        try:
            print(line, file=stream, flush=True)
        except (OSError, ValueError):
            pass

