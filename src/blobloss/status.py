"""Where every run of a study stands, from the files its jobs write: ``python -m blobloss.status [results]``.

For a second terminal or a cluster login node while the study runs. One row per training run
(``<results>/<dataset>/train/<setting>/seed<k>/``):

* ``epoch`` x/N, last ``loss`` and ``val`` loss, and ``state``: ``running`` with its ETA, ``done`` or
  ``failed``, from ``work/progress.json``, which the training job rewrites atomically after every epoch;
* for runs without it, from ``work/log.csv`` (columns ``epoch, train_loss, val_loss``), ``model_last.pt``
  (done) and the job log under ``logs/train/`` (failed);
* ``predict``: test cases predicted out of the split's test cases (``split.json``) per checkpoint, and
  ``eval``: whether the run's metrics are written.

Runs that have not started yet are listed too (``waiting``, epoch ``0/N``): the workflow writes the plan
of the study, every (dataset, setting, seed) and its epochs, to ``<results>/runs.json`` when a run of
Snakemake starts (:func:`write_plan`).

Example output::

    dataset      setting    seed  epoch   loss    val     state    ETA     updated  predict     eval
    synthetic3d  blob_dice  0     30/30   0.3120  -       done     -       2 min    last 2/2    last
    synthetic3d  dice       0     12/30   0.4123  0.3911  running  58 s    4 s      -           -

Example:
    >>> import tempfile
    >>> format_table(collect_status(tempfile.mkdtemp()))
    'no training run found'
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["PLAN_FILE", "RunStatus", "collect_status", "format_table", "main", "read_plan", "run_status", "write_plan"]

RunStatus = dict[str, Any]

#: The study's plan, under the results folder (written by the workflow when it starts).
PLAN_FILE = "runs.json"

_COLUMNS = ("dataset", "setting", "seed", "epoch", "loss", "val", "state", "ETA", "updated", "predict", "eval")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_log_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _updated_age(updated: Any, now: float) -> float | None:
    if not isinstance(updated, str):
        return None
    try:
        stamp = datetime.fromisoformat(updated.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return max(0.0, now - stamp.timestamp())


def _job_failed(results: Path, dataset: str, setting: str, seed: int) -> bool:
    log = results / "logs" / "train" / dataset / setting / f"seed{seed}.log"
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " ERROR " in text


def run_status(results: str | PathLike[str], dataset: str, setting: str, seed: int, now: float | None = None) -> RunStatus:
    """The status of one training run, from its files.

    Args:
        results: The study's results folder.
        dataset: Dataset name.
        setting: Loss setting name.
        seed: Seed.
        now: The current time (seconds since the epoch; default: now).

    Returns:
        ``dataset, setting, seed, epoch, epochs, loss, val_loss, state ("running" | "done" | "failed" |
        "waiting"), eta_s`` (remaining, from the last update), ``age_s`` (seconds since the last update),
        ``predict`` (checkpoint -> (predicted, test cases)), ``evaluated`` (checkpoints with metrics) and
        ``source`` (the file the epoch came from).
    """
    now = time.time() if now is None else now
    res = Path(results)
    run_dir = res / dataset / "train" / setting / f"seed{seed}"
    work = run_dir / "work"
    st: RunStatus = {
        "dataset": dataset, "setting": setting, "seed": int(seed), "epoch": None, "epochs": None, "loss": None,
        "val_loss": None, "state": "waiting", "eta_s": None, "age_s": None, "source": None,
    }
    prog = _read_json(work / "progress.json")
    if isinstance(prog, dict):
        st.update(
            epoch=prog.get("epoch"), epochs=prog.get("epochs"), loss=_float(prog.get("loss")),
            val_loss=_float(prog.get("val_loss")), state=str(prog.get("state") or "running"),
            source="progress.json",
        )
        st["age_s"] = _updated_age(prog.get("updated"), now)
        eta = _float(prog.get("eta_s"))
        if eta is not None and st["state"] == "running":
            st["eta_s"] = max(0.0, eta - (st["age_s"] or 0.0))
    else:
        rows = _read_log_csv(work / "log.csv") or _read_log_csv(run_dir / "log.csv")
        if rows:
            last = rows[-1]
            st.update(epoch=int(float(last.get("epoch", 0) or 0)), loss=_float(last.get("train_loss")),
                      val_loss=_float(last.get("val_loss")), state="running", source="log.csv")
            for f in (work / "log.csv", run_dir / "log.csv"):
                if f.is_file():
                    st["age_s"] = max(0.0, now - f.stat().st_mtime)
                    break
        elif work.is_dir():
            st["state"] = "running"
        if (run_dir / "model_last.pt").is_file():
            st["state"] = "done"
    if st["state"] != "done" and _job_failed(res, dataset, setting, seed) and not (run_dir / "model_last.pt").is_file():
        if st["source"] != "progress.json" or st["state"] != "running" or (st["age_s"] or 0) > 60:
            st["state"] = "failed"
    if st["state"] in ("done", "failed"):
        st["eta_s"] = None

    split = _read_json(res / dataset / "split.json")
    n_test = len(split.get("test", [])) if isinstance(split, dict) else None
    predict: dict[str, tuple[int, int | None]] = {}
    pred_root = res / dataset / "predict" / setting / f"seed{seed}"
    if pred_root.is_dir():
        for ckpt in sorted(p for p in pred_root.iterdir() if p.is_dir()):
            predict[ckpt.name] = (len(list(ckpt.glob("*_pred.nii.gz"))), n_test)
    st["predict"] = predict
    eval_root = res / dataset / "eval" / setting / f"seed{seed}"
    st["evaluated"] = sorted(p.parent.name for p in eval_root.glob("*/metrics.csv")) if eval_root.is_dir() else []
    return st


_SEED_DIR = re.compile(r"seed(\d+)")


def write_plan(results: str | PathLike[str], runs: Sequence[dict[str, Any]]) -> Path:
    """Write the study's plan, one entry per training run, to ``<results>/runs.json`` atomically.

    Args:
        results: The study's results folder (created if missing).
        runs: Dicts with ``dataset``, ``setting``, ``seed`` and ``epochs``.

    Returns:
        The written path.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = write_plan(d, [{"dataset": "ds", "setting": "dice", "seed": 0, "epochs": 30}])
        >>> [(r["setting"], r["state"], r["epochs"]) for r in collect_status(d)]
        [('dice', 'waiting', 30)]
    """
    from blobloss.io import write_json_atomic  # the workflow's side; reading the status stays stdlib-only

    entries = [{"dataset": str(r["dataset"]), "setting": str(r["setting"]), "seed": int(r["seed"]),
                "epochs": _int(r.get("epochs"))} for r in runs]
    out = Path(results) / PLAN_FILE
    write_json_atomic(out, {"runs": entries}, indent=1)
    return out


def read_plan(results: str | PathLike[str]) -> list[dict[str, Any]]:
    """The entries of ``<results>/runs.json`` (empty when there is none or it cannot be read)."""
    plan = _read_json(Path(results) / PLAN_FILE)
    runs = plan.get("runs") if isinstance(plan, dict) else None
    if not isinstance(runs, list):
        return []
    return [r for r in runs if isinstance(r, dict) and {"dataset", "setting", "seed"} <= set(r)]


def collect_status(results: str | PathLike[str], now: float | None = None) -> list[RunStatus]:
    """The status of every training run of the study: those of the plan (``runs.json``, in its order;
    not started yet: ``waiting``), then any other run found under ``results``
    (``<dataset>/train/<setting>/seed<k>``, e.g. of an earlier config).

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "ds", "train", "dice", "seed0", "work"))
        >>> [(r["setting"], r["state"]) for r in collect_status(d)]
        [('dice', 'running')]
    """
    res = Path(results)
    planned: dict[tuple[str, str, int], int | None] = {}
    for entry in read_plan(res):
        try:
            key = (str(entry["dataset"]), str(entry["setting"]), int(entry["seed"]))
        except (TypeError, ValueError):
            continue
        planned[key] = _int(entry.get("epochs"))
    found = []
    for train in sorted(res.glob("*/train")):
        dataset = train.parent.name
        for setting_dir in sorted(p for p in train.iterdir() if p.is_dir()):
            for seed_dir in sorted(p for p in setting_dir.iterdir() if p.is_dir()):
                m = _SEED_DIR.fullmatch(seed_dir.name)
                if m:
                    found.append((dataset, setting_dir.name, int(m.group(1))))
    out = []
    for key in [*planned, *[k for k in found if k not in planned]]:
        st = run_status(res, *key, now=now)
        if st["epochs"] is None and planned.get(key) is not None:
            st["epochs"] = planned[key]
            if st["epoch"] is None and st["state"] == "waiting":
                st["epoch"] = 0
        out.append(st)
    return out


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _row(st: RunStatus) -> list[str]:
    epoch = "-" if st["epoch"] is None else f"{st['epoch']}/{st['epochs'] if st['epochs'] is not None else '?'}"
    predict = " ".join(
        f"{ck} {done}/{total if total is not None else '?'}" for ck, (done, total) in st["predict"].items()
    ) or "-"
    return [
        st["dataset"], st["setting"], str(st["seed"]), epoch,
        "-" if st["loss"] is None else f"{st['loss']:.4f}",
        "-" if st["val_loss"] is None else f"{st['val_loss']:.4f}",
        st["state"], _duration(st["eta_s"]), _duration(st["age_s"]), predict,
        " ".join(st["evaluated"]) or "-",
    ]


def format_table(statuses: Sequence[RunStatus]) -> str:
    """A plain-text table, one row per run (see the module docstring), and a one-line count of states.

    Example:
        >>> st = {"dataset": "d", "setting": "dice", "seed": 0, "epoch": 3, "epochs": 10, "loss": 0.5,
        ...       "val_loss": None, "state": "running", "eta_s": 70.0, "age_s": 2.0, "predict": {},
        ...       "evaluated": []}
        >>> print(format_table([st]).splitlines()[1])
        d        dice     0     3/10   0.5000  -    running  70 s  2 s      -        -
    """
    if not statuses:
        return "no training run found"
    rows = [list(_COLUMNS)] + [_row(st) for st in statuses]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st["state"]] = counts.get(st["state"], 0) + 1
    lines.append(f"{len(statuses)} run(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m blobloss.status [results_dir] [--json] [--watch SECONDS]``."""
    parser = argparse.ArgumentParser(
        prog="python -m blobloss.status",
        description="Print where every training run of a study stands (epoch, loss, ETA, done/failed), "
        "from the files its jobs write.",
    )
    parser.add_argument("results", nargs="?", default="results", help="the study's results_dir (default: results)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON instead of a table")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS until Ctrl-C")
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"{args.results} is not a folder; give the study's results_dir (e.g. python -m blobloss.status "
              "results)", file=sys.stderr)
        return 2
    try:
        while True:
            statuses = collect_status(args.results)
            if args.json:
                print(json.dumps(statuses, indent=2))
            else:
                print(format_table(statuses), flush=True)
            if not args.watch:
                return 0
            time.sleep(max(1.0, args.watch))
            print()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
