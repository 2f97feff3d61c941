"""Kill-and-resume and epoch extension of blobloss.training.train (real SIGKILL of a subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from blobloss.io import save_case_image, save_nifti
from blobloss.training import load_checkpoint, read_log, train

EPOCHS = 4
CFG = {
    "model": {"features": [4, 4, 8, 8, 16, 4]},
    "optimizer": {"name": "ranger21", "lr": 1e-2, "schedule": "constant"},  # extension exact (see below)
    "loss": {"name": "blob_dice"},
    "patch_size": [32, 16, 16],
    "batch_size": 2,
    "crops_per_case": 2,
    "epochs": EPOCHS,
    "seed": 3,
    "num_workers": 0,
    "deterministic": True,
    "pad_to_patch": True,  # the 24-voxel cases are smaller than the 32-voxel patch axis
    "progress": False,
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    """Four training and one validation case, 24x24x16, written in the standard layout."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    out: dict[str, list[dict[str, str]]] = {"train": [], "val": []}
    for i in range(5):
        inst = np.zeros((24, 24, 16), np.uint32)
        for k in range(1, 4):
            c = rng.integers(3, 20, size=3)
            c[2] = min(c[2], 12)
            inst[c[0] - 2 : c[0] + 2, c[1] - 2 : c[1] + 2, c[2] - 1 : c[2] + 2] = k
        img = (inst > 0).astype(np.float32) + 0.3 * rng.standard_normal(inst.shape).astype(np.float32)
        d = root / f"case{i}"
        save_case_image(d / "image.nii.gz", img[None], (1.0, 1.0, 2.0))
        save_nifti(d / "instances.nii.gz", inst, spacing=(1.0, 1.0, 2.0), dtype=np.uint32)
        out["train" if i < 4 else "val"].append(
            {"image": str(d / "image.nii.gz"), "instances": str(d / "instances.nii.gz")}
        )
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Same intra-op thread count here and in the subprocess: CPU results then agree bit for bit."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def uninterrupted(cases, tmp_path_factory) -> dict[str, torch.Tensor]:
    """Final weights of a run that was never interrupted."""
    out = tmp_path_factory.mktemp("uninterrupted")
    summary = train(CFG, cases["train"], cases["val"], out, device="cpu")
    assert summary["epochs"] == EPOCHS and not summary["resumed"]
    return load_checkpoint(out / "checkpoint_last.pt")["model"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs (max {float((a[key] - b[key]).abs().max())})"


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def test_sigkill_then_resume_continues_and_matches_uninterrupted(cases, uninterrupted, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # The child slows every case draw down so that the kill lands in the middle of an epoch.
    script = textwrap.dedent(
        f"""
        import time, torch
        torch.set_num_threads(1)
        from blobloss.training import train
        from blobloss.training.data import CropDataset
        _get = CropDataset.__getitem__
        def slow(self, key):
            time.sleep(0.25)
            return _get(self, key)
        CropDataset.__getitem__ = slow
        train({CFG!r}, {cases['train']!r}, {cases['val']!r}, {str(out)!r}, device="cpu")
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while _checkpoint_epoch(out / "checkpoint_last.pt") < 1:
            assert proc.poll() is None, f"training process ended early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        time.sleep(0.2)  # into the next epoch
        assert proc.poll() is None, "training finished before it could be killed; slow it down further"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(out / "checkpoint_last.pt")["epoch"]
    assert 1 <= killed_at < EPOCHS

    summary = train(CFG, cases["train"], cases["val"], out, device="cpu")  # started again

    assert summary["resumed"] and summary["start_epoch"] == killed_at and summary["epochs"] == EPOCHS
    assert [row["epoch"] for row in read_log(out / "log.csv")] == list(range(1, EPOCHS + 1))
    ckpt = load_checkpoint(out / "checkpoint_last.pt")
    assert ckpt["epoch"] == EPOCHS
    _assert_same_weights(ckpt["model"], uninterrupted)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_best.pt", "checkpoint_last.pt", "log.csv",
                                                          "progress.json"]


def test_raising_epochs_continues_a_finished_run(cases, uninterrupted, tmp_path: Path) -> None:
    first = train({**CFG, "epochs": 2}, cases["train"], cases["val"], tmp_path, device="cpu")
    assert first["epochs"] == 2
    again = train({**CFG, "epochs": 2}, cases["train"], cases["val"], tmp_path, device="cpu")
    assert again["resumed"] and again["epochs"] == 2  # nothing left to do

    more = train(CFG, cases["train"], cases["val"], tmp_path, device="cpu")

    assert more["resumed"] and more["start_epoch"] == 2 and more["epochs"] == EPOCHS
    assert [row["epoch"] for row in read_log(tmp_path / "log.csv")] == list(range(1, EPOCHS + 1))
    # constant learning rate: the extended run is the uninterrupted run
    _assert_same_weights(load_checkpoint(tmp_path / "checkpoint_last.pt")["model"], uninterrupted)


def test_extending_with_ranger21_schedule_rebuilds_the_optimizer(cases, tmp_path: Path) -> None:
    cfg = {**CFG, "optimizer": {"name": "ranger21", "lr": 1e-2, "schedule": "ranger21"}, "epochs": 1}
    train(cfg, cases["train"][:2], None, tmp_path, device="cpu")
    more = train({**cfg, "epochs": 3}, cases["train"][:2], None, tmp_path, device="cpu")
    assert more["start_epoch"] == 1 and more["epochs"] == 3 and more["checkpoint_best"] is None
    log = read_log(tmp_path / "log.csv")
    assert [row["epoch"] for row in log] == [1, 2, 3]
    assert all(row["val_loss"] is None for row in log)
    # One step per epoch. Ranger21 warms down over the last 28 % of num_iterations: with 1 iteration in
    # total, step 1 ends at the floor 3e-5; after rebuilding for 3 iterations, step 2 is half-way down.
    # An optimizer still sized for 1 iteration would give 3e-5 at step 2.
    assert log[0]["lr"] == pytest.approx(3e-5)
    assert log[1]["lr"] == pytest.approx(1e-2 - (1e-2 - 3e-5) / 2)
    assert log[2]["lr"] == pytest.approx(3e-5)

def test_resume_refuses_a_different_experiment(cases, tmp_path: Path) -> None:
    cfg = {**CFG, "epochs": 1}
    train(cfg, cases["train"][:2], None, tmp_path, device="cpu")
    with pytest.raises(ValueError, match="different configuration.*loss"):
        train({**cfg, "loss": {"name": "dice"}}, cases["train"][:2], None, tmp_path, device="cpu")
    with pytest.raises(ValueError, match="other cases"):
        train(cfg, cases["train"][1:3], None, tmp_path, device="cpu")
