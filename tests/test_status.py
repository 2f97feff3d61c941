"""The status command and the progress lines of pipeline jobs (fixture files; no training needed)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from blobloss.logs import PROGRESS_LOGGER, ProgressTimer, log_to_file, progress
from blobloss.status import collect_status, format_table, main, run_status, write_plan

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


def _iso(seconds_ago: float) -> str:
    return (datetime.fromtimestamp(NOW, timezone.utc) - timedelta(seconds=seconds_ago)).isoformat()


def _progress(run: Path, **values) -> None:
    base = {"dataset": "syn", "setting": "dice", "seed": 0, "epoch": 1, "epochs": 30, "loss": 0.9, "val_loss": None,
            "sec_per_epoch": 2.0, "eta_s": 58.0, "state": "running", "world_size": 1, "updated": _iso(0)}
    (run / "work").mkdir(parents=True, exist_ok=True)
    (run / "work" / "progress.json").write_text(json.dumps({**base, **values}))


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    """A study with a finished, a half-finished, a failed and an old-style (log.csv only) run."""
    res = tmp_path / "results"
    train = res / "syn" / "train"
    done = train / "blob_dice" / "seed0"
    _progress(done, setting="blob_dice", epoch=30, loss=0.3120, val_loss=0.2875, eta_s=0.0, state="done",
              updated=_iso(120))
    (done / "model_last.pt").write_bytes(b"x")
    half = train / "dice" / "seed0"
    _progress(half, epoch=12, loss=0.4123, val_loss=0.3911, eta_s=64.0, updated=_iso(4))
    failed = train / "dice" / "seed1"
    _progress(failed, seed=1, epoch=3, loss=float("nan"), state="failed", updated=_iso(600))
    legacy = train / "tversky" / "seed0"
    (legacy / "work").mkdir(parents=True)
    (legacy / "work" / "log.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n1,0.8,,0.01,1.0\n2,0.7,,0.01,1.0\n")
    # predictions and metrics of the finished run; the split names 3 test cases
    (res / "syn" / "split.json").write_text(json.dumps({"train": ["a"], "val": [], "test": ["b", "c", "d"]}))
    pred = res / "syn" / "predict" / "blob_dice" / "seed0" / "last"
    pred.mkdir(parents=True)
    for case in ("b", "c"):
        (pred / f"{case}_pred.nii.gz").write_bytes(b"x")
    ev = res / "syn" / "eval" / "blob_dice" / "seed0" / "last"
    ev.mkdir(parents=True)
    (ev / "metrics.csv").write_text("case\n")
    return res


def test_status_of_a_finished_and_a_half_finished_run(study: Path) -> None:
    by_run = {(s["setting"], s["seed"]): s for s in collect_status(study, now=NOW)}
    assert set(by_run) == {("blob_dice", 0), ("dice", 0), ("dice", 1), ("tversky", 0)}
    done, half = by_run[("blob_dice", 0)], by_run[("dice", 0)]
    assert (done["state"], done["epoch"], done["epochs"], done["eta_s"]) == ("done", 30, 30, None)
    assert done["predict"] == {"last": (2, 3)} and done["evaluated"] == ["last"]
    assert (half["state"], half["epoch"], half["epochs"], half["loss"]) == ("running", 12, 30, 0.4123)
    assert half["eta_s"] == pytest.approx(60.0)  # the ETA of the last update, minus the 4 s since
    assert half["age_s"] == pytest.approx(4.0)
    assert by_run[("dice", 1)]["state"] == "failed" and by_run[("dice", 1)]["loss"] is None  # NaN shown as "-"
    legacy = by_run[("tversky", 0)]
    assert (legacy["state"], legacy["epoch"], legacy["epochs"], legacy["loss"], legacy["source"]) == (
        "running", 2, None, 0.7, "log.csv")


def test_status_table_rows(study: Path) -> None:
    table = format_table(collect_status(study, now=NOW)).splitlines()
    assert table[0].split() == ["dataset", "setting", "seed", "epoch", "loss", "val", "state", "ETA", "updated",
                                "predict", "eval"]
    rows = {tuple(line.split()[1:3]): line.split() for line in table[1:-1]}
    assert rows[("blob_dice", "0")] == ["syn", "blob_dice", "0", "30/30", "0.3120", "0.2875", "done", "-", "2",
                                        "min", "last", "2/3", "last"]
    assert rows[("dice", "0")][3:9] == ["12/30", "0.4123", "0.3911", "running", "60", "s"]
    assert rows[("tversky", "0")][3:7] == ["2/?", "0.7000", "-", "running"]
    assert table[-1] == "4 run(s): 1 done, 1 failed, 2 running"


def test_runs_of_the_plan_not_started_yet_are_listed_as_waiting(study: Path) -> None:
    plan = [{"dataset": "syn", "setting": s, "seed": k, "epochs": 30}
            for s in ("blob_dice", "dice") for k in (0, 1, 2)]
    write_plan(study, plan)
    statuses = collect_status(study, now=NOW)
    # the plan's runs in its order, then the run found on disk that the plan lacks (an earlier config's)
    assert [(s["setting"], s["seed"]) for s in statuses] == [(p["setting"], p["seed"]) for p in plan] + [("tversky", 0)]
    waiting = {(s["setting"], s["seed"]): s for s in statuses if s["state"] == "waiting"}
    assert set(waiting) == {("blob_dice", 1), ("blob_dice", 2), ("dice", 2)}
    assert all((s["epoch"], s["epochs"]) == (0, 30) for s in waiting.values())
    table = format_table(statuses).splitlines()
    assert table[-1] == "7 run(s): 1 done, 1 failed, 2 running, 3 waiting"
    assert [line.split()[3] for line in table[1:-1] if " waiting " in line] == ["0/30"] * 3


@pytest.mark.slow
def test_the_workflow_writes_the_plan_when_it_starts(tmp_path: Path) -> None:
    import yaml

    config = {"results_dir": "res", "datasets": {"syn": {
        "source": {"format": "synthetic", "n_cases": 3, "shape": [32, 32], "seed": 2},
        "split": {"test_fraction": 0.34},
        "training": {"epochs": 7, "seeds": [0, 1], "patch_size": [32, 32],
                     "losses": [{"name": "dice", "loss": "dice"}, {"name": "blob_dice", "loss": "blob_dice"}]}}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "1", "res/syn/split.json", "--configfile", str(tmp_path / "c.yaml")]
    dry = subprocess.run([*cmd, "-n"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert not (tmp_path / "res" / "runs.json").exists()  # a dry run writes nothing
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [(s["setting"], s["seed"], s["state"], s["epoch"], s["epochs"]) for s in collect_status(tmp_path / "res")]
    assert rows == [("dice", 0, "waiting", 0, 7), ("dice", 1, "waiting", 0, 7),
                    ("blob_dice", 0, "waiting", 0, 7), ("blob_dice", 1, "waiting", 0, 7)]


def test_model_without_progress_file_is_done_and_error_log_is_failed(tmp_path: Path) -> None:
    run = tmp_path / "ds" / "train" / "dice" / "seed0"
    (run / "work").mkdir(parents=True)
    (run / "model_last.pt").write_bytes(b"x")
    assert run_status(tmp_path, "ds", "dice", 0)["state"] == "done"
    other = tmp_path / "ds" / "train" / "dice" / "seed1" / "work"
    other.mkdir(parents=True)
    log = tmp_path / "logs" / "train" / "ds" / "dice" / "seed1.log"
    log.parent.mkdir(parents=True)
    log.write_text("2026-01-01 10:00:00,000 ERROR blobloss: case 'c1': something\n")
    assert run_status(tmp_path, "ds", "dice", 1)["state"] == "failed"


def test_status_command_line(study: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "blobloss.status", str(study)], capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "blob_dice" in proc.stdout and "12/30" in proc.stdout and proc.stdout.strip().endswith("2 running")
    assert main([str(study), "--json"]) == 0
    assert main([str(tmp_path / "nope")]) == 2


def test_progress_lines_reach_the_console_and_the_log_without_bars(tmp_path: Path, capfd) -> None:
    from tqdm.auto import tqdm

    log = tmp_path / "job.log"
    with log_to_file(log) as logger:
        progress("[syn/dice/seed0/last] predict case %d/%d %s: started", 1, 2, "c1")
        logger.info("only in the log")
        for _ in tqdm(range(3), disable=False):  # a bar asked for inside a job draws nothing
            pass
    err = capfd.readouterr().err
    assert err == "[syn/dice/seed0/last] predict case 1/2 c1: started\n"
    text = log.read_text()
    assert "predict case 1/2 c1: started" in text and "only in the log" in text
    assert "\r" not in text and "%|" not in text
    assert not logging.getLogger(PROGRESS_LOGGER).handlers  # the console handler is removed again


def test_progress_timer_throttles() -> None:
    timer = ProgressTimer(total=5, every_s=0.05)
    assert [timer.due(i) for i in (1, 2, 3)] == [True, False, False]
    time.sleep(0.06)
    assert timer.due(4) and timer.due(5)


def test_predict_job_reports_case_position_and_elapsed(tmp_path: Path, capfd) -> None:
    import torch

    from blobloss.io import save_case_image
    from blobloss.jobs import predict_job
    from blobloss.training.checkpoint import save_checkpoint
    from blobloss.training.loop import resolve_config
    from blobloss.training.model import build_model_from_config

    cfg = resolve_config({"model": {"features": [2] * 6}, "patch_size": [32, 32]})
    torch.manual_seed(0)
    model = build_model_from_config(cfg["model"], 2, 1, [32, 32])
    ckpt = tmp_path / "model_last.pt"
    save_checkpoint(ckpt, {"cfg": cfg, "model": model.state_dict(), "spatial_dims": 2, "in_channels": 1, "epoch": 1})
    images = [tmp_path / name / "image.nii.gz" for name in ("c7", "c8")]
    for i, image in enumerate(images):
        save_case_image(image, np.random.default_rng(i).random((1, 32, 32), dtype=np.float32), (1.0, 1.0))
    inference = {"tta": True, "flips": True, "noise_copies": 1, "noise_std": 0.01, "overlap": 0.25,
                 "sw_batch_size": 4, "roi_size": None}
    with log_to_file(tmp_path / "predict.log"):
        summaries = predict_job(ckpt, images, [tmp_path / f"p{i}.nii.gz" for i in range(2)],
                                [tmp_path / f"b{i}.nii.gz" for i in range(2)], inference, threads=1,
                                run="syn/dice/seed0/last", every_s=0.0)
    lines = capfd.readouterr().err.splitlines()
    # sw_batch_size 4: the first pass predicts variants 1-4 together, the second the fifth
    assert any(ln.startswith("[syn/dice/seed0/last] predict case 1/2 c7: TTA variant 4/5,") for ln in lines)
    assert any(ln.startswith("[syn/dice/seed0/last] predict case 1/2 c7: done in ") for ln in lines)
    assert lines[-1].startswith("[syn/dice/seed0/last] predict case 2/2 c8: done in ")
    assert "(5 TTA variant(s))" in lines[-1] and [s["variants"] for s in summaries] == [5, 5]
    assert len(lines) <= 10  # concise: at most one per variant, one per case
