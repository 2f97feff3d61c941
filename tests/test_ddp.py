"""Several ranks per training job (DDP) on the CPU with gloo: the code path of `gpus: K` on a machine without GPUs.

* a 2-rank run takes the same steps as a 1-rank run with the same global batch (same crops, same losses,
  same weights to float32 tolerance), including a batch whose crops do not split evenly;
* kill -9 of one rank ends the job at once, and a rerun resumes both ranks from the checkpoint and ends
  with the weights of an uninterrupted 2-rank run;
* the launcher re-raises a rank's exception in the job process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from blobloss.training import load_checkpoint, read_log, train
from blobloss.training.data import GlobalBatchSampler, crop_bounds
from blobloss.training.distributed import Dist, launch
from blobloss.training.progress import read_progress

# 3 training cases, batch 2 cases x 3 crops: batch 1 has 6 crops (3 + 3 per rank), batch 2 has 3 (1 + 2).
CFG = {
    "model": {"features": [4, 4, 4, 4, 4, 4], "dropout": 0.0},
    "patch_size": [32, 32],
    "batch_size": 2,
    "crops_per_case": 3,
    "epochs": 2,
    "num_workers": 0,
    "loss": {"name": "blob_dice"},
    "deterministic": True,
    "progress": False,
}
# Conv biases in front of an instance norm get a gradient of exactly zero in theory: in practice float
# noise, which Ranger21's gradient normalisation turns into steps of any size. They do not change the output.
_NORMALISED_BIAS = re.compile(r"\.conv\.bias$")


def _cases(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        inst = np.zeros((40, 36), np.uint32)
        for k in range(1, 4):
            y, x = rng.integers(2, 33, size=2)
            inst[y : y + 3, x : x + 3] = k
        img = (inst > 0).astype(np.float32) + 0.1 * rng.standard_normal(inst.shape).astype(np.float32)
        cases.append({"image": img[None], "instances": inst, "name": f"c{i}"})
    return cases


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w1")
    train(CFG, _cases(3), _cases(2, seed=5), out, device="cpu")
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w2")
    summary = train({**CFG, "gpus": 2}, _cases(3), _cases(2, seed=5), out, device="cpu")
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    return out


def test_global_batch_is_the_same_for_any_number_of_ranks() -> None:
    """The crops of every global batch, concatenated over the ranks, are the crops of one rank."""
    from blobloss.training.data import CropDataset, collate_crops

    ds = CropDataset(_cases(5), (32, 32), crops_per_case=3, seed=1)
    ref = GlobalBatchSampler(5, 2, 3, seed=1)
    ref.set_epoch(4)
    ref_batches = [collate_crops([ds[k] for k in keys])["image"] for keys in ref]
    for world in (2, 3, 4):
        per_rank = []
        for rank in range(world):
            s = GlobalBatchSampler(5, 2, 3, seed=1, rank=rank, world_size=world)
            s.set_epoch(4)
            per_rank.append([collate_crops([ds[k] for k in keys])["image"] for keys in s])
        for b, expected in enumerate(ref_batches):
            n = s.batch_crops(b)
            pieces = [per_rank[r][b][: crop_bounds(n, r, world)[1] - crop_bounds(n, r, world)[0]]
                      for r in range(world)]
            assert torch.equal(torch.cat(pieces), expected), (world, b)
    # ranks draw distinct crops, and an empty share (3 crops over 4 ranks) gets one stand-in crop
    s = GlobalBatchSampler(1, 1, 3, rank=3, world_size=4)
    assert list(s) == [[(0, 0, 2, 3)]] and s.share(0) == (3, 2, 3) and crop_bounds(3, 0, 4) == (0, 0)


def test_two_ranks_take_the_same_steps_as_one(one_rank: Path, two_ranks: Path) -> None:
    log1, log2 = read_log(one_rank / "log.csv"), read_log(two_ranks / "log.csv")
    assert [r["world_size"] for r in log1] == [1, 1] and [r["world_size"] for r in log2] == [2, 2]
    for a, b in zip(log1, log2):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5, abs=1e-6)
        assert a["lr"] == b["lr"]
    w1 = load_checkpoint(one_rank / "checkpoint_last.pt")
    w2 = load_checkpoint(two_ranks / "checkpoint_last.pt")
    assert w2["world_size"] == 2 and len(w2["rng_ranks"]) == 2 and w1["world_size"] == 1
    compared = 0
    for key, a in w1["model"].items():
        if _NORMALISED_BIAS.search(key):
            continue
        torch.testing.assert_close(w2["model"][key], a, rtol=1e-4, atol=2e-5, msg=key)
        compared += 1
    assert compared >= 20
    # the networks compute the same function (the normalised biases included)
    from blobloss.training import build_model_from_config

    x = torch.from_numpy(_cases(1, seed=9)[0]["image"][None, :, :32, :32])
    outs = []
    for ckpt in (w1, w2):
        net = build_model_from_config(ckpt["cfg"]["model"], 2, 1, [32, 32])
        net.load_state_dict(ckpt["model"])
        outs.append(net.eval()(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)
    # only rank 0 wrote; progress.json records the world size
    progress = read_progress(two_ranks)
    assert progress["world_size"] == 2 and progress["state"] == "done" and progress["epoch"] == 2
    assert not [p for p in two_ranks.iterdir() if p.name.startswith(".")]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return sorted(int(c) for c in path.read_text().split()) if path.exists() else []


def _epoch_of(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError, KeyError):
        return 0


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc (Linux) to find the rank processes")
def test_kill_9_of_one_rank_ends_the_job_and_a_rerun_resumes(two_ranks: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = {**CFG, "gpus": 2}
    script = textwrap.dedent(
        f"""
        import sys, time, numpy as np, torch
        torch.set_num_threads(1)
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_ddp import _cases
        from blobloss.training import train
        from blobloss.training.data import CropDataset
        _get = CropDataset.__getitem__
        def slow(self, key):
            time.sleep(0.15)
            return _get(self, key)
        CropDataset.__getitem__ = slow
        train({cfg!r}, _cases(3), _cases(2, seed=5), {str(out)!r}, device="cpu")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while _epoch_of(out / "checkpoint_last.pt") < 1:
            assert proc.poll() is None, f"training ended early: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        ranks = _children(proc.pid)
        assert len(ranks) == 2, f"expected two rank processes, found {ranks}"
        os.kill(ranks[1], signal.SIGKILL)
        t_kill = time.monotonic()
        proc.wait(timeout=60)
        ended_after = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert proc.returncode != 0, "the job must fail when a rank is killed"
    assert "RankFailedError" in err and "was killed by SIGKILL" in err and "resumes" in err, err[-3000:]
    assert ended_after < 30, f"the job took {ended_after:.0f} s to end after the kill"
    for pid in ranks:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert read_progress(out)["state"] == "failed"

    summary = train(cfg, _cases(3), _cases(2, seed=5), out, device="cpu")
    assert summary["resumed"] and summary["start_epoch"] >= 1 and summary["epochs"] == 2
    assert [r["epoch"] for r in read_log(out / "log.csv")] == [1, 2]
    resumed = load_checkpoint(out / "checkpoint_last.pt")["model"]
    reference = load_checkpoint(two_ranks / "checkpoint_last.pt")["model"]
    for key, value in reference.items():
        assert torch.equal(resumed[key], value), f"{key} differs after kill and resume"
    assert read_progress(out)["state"] == "done"


def _failing_rank(dist: Dist) -> None:
    if dist.rank == 1:
        raise ValueError("rank one cannot go on")
    dist.barrier()


def _sum_of_ranks(dist: Dist, base: float) -> float:
    return float(dist.all_reduce_sum(torch.tensor(base + dist.rank)))


def test_launch_returns_rank0_result_and_reraises_a_rank_exception() -> None:
    assert launch(_sum_of_ranks, 2, "cpu", args=(10.0,)) == 21.0
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="rank one cannot go on"):
        launch(_failing_rank, 2, "cpu")
    assert time.monotonic() - t0 < 60
    with pytest.raises(ValueError, match="world_size"):
        launch(_sum_of_ranks, 0)
