"""Tests of the local GPU slot allocator (blobloss.gpu)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from blobloss import gpu
from blobloss.gpu import count_gpus, gpu_slot

# A fake GPU job: takes a slot, records (slot, enter, exit) and what CUDA_VISIBLE_DEVICES was, holds it.
FAKE_JOB = textwrap.dedent(
    """
    import os, sys, time
    from blobloss.gpu import gpu_slot
    lock_dir, out, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with gpu_slot(n_gpus=2, lock_dir=lock_dir, poll=0.02) as slot:
        t0 = time.monotonic()
        seen = os.environ["CUDA_VISIBLE_DEVICES"]
        time.sleep(hold)
        t1 = time.monotonic()
    after = os.environ.get("CUDA_VISIBLE_DEVICES")
    with open(out, "w") as f:
        f.write(f"{slot} {seen} {t0} {t1} {after}")
    """
)

# Holds slot 0 of a one-GPU machine until killed; signals readiness through a file.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from blobloss.gpu import gpu_slot
    with gpu_slot(n_gpus=1, lock_dir=sys.argv[1], poll=0.02) as slot:
        open(sys.argv[2], "w").write(str(slot))
        time.sleep(600)
    """
)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", gpu.ENV_NUM_GPUS)}
    return env


@pytest.fixture
def no_cuda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(gpu.ENV_NUM_GPUS, raising=False)


def test_concurrent_jobs_never_share_a_slot_and_all_finish(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    procs = []
    outs = []
    for k in range(4):
        out = tmp_path / f"job{k}.txt"
        outs.append(out)
        procs.append(
            subprocess.Popen([sys.executable, "-c", FAKE_JOB, str(locks), str(out), "0.6"], env=_clean_env())
        )
    for p in procs:
        assert p.wait(timeout=60) == 0
    records = []
    for out in outs:
        slot, seen, t0, t1, after = out.read_text().split()
        assert slot == seen, "CUDA_VISIBLE_DEVICES inside the block is the yielded slot"
        assert slot in {"0", "1"}
        assert after == "None", "CUDA_VISIBLE_DEVICES is restored on exit"
        records.append((slot, float(t0), float(t1)))
    # Jobs on the same slot never overlap in time.
    for i, (s1, a1, b1) in enumerate(records):
        for s2, a2, b2 in records[i + 1:]:
            if s1 == s2:
                assert b1 <= a2 or b2 <= a1, f"two jobs held slot {s1} at once: {records}"
    # With 2 slots and 4 jobs both slots were used.
    assert {r[0] for r in records} == {"0", "1"}


def test_noop_when_scheduler_set_cuda_visible_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with gpu_slot(n_gpus=8, lock_dir=tmp_path / "locks") as slot:
        assert slot == "3"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists(), "no lock taken when the scheduler chose the device"


def test_no_gpu_yields_none(tmp_path: Path, no_cuda_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with gpu_slot(n_gpus=0, lock_dir=tmp_path / "locks") as slot:
        assert slot is None
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    # Counting: the environment variable wins, and a machine without nvidia-smi has no GPU.
    monkeypatch.setenv(gpu.ENV_NUM_GPUS, "0")
    with gpu_slot(lock_dir=tmp_path / "locks") as slot:
        assert slot is None
    monkeypatch.delenv(gpu.ENV_NUM_GPUS)
    monkeypatch.setattr(gpu.shutil, "which", lambda name: None)
    assert count_gpus() == 0


def test_count_gpus_reads_env_and_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpu.ENV_NUM_GPUS, "3")
    assert count_gpus() == 3
    monkeypatch.setenv(gpu.ENV_NUM_GPUS, "two")
    with pytest.raises(ValueError, match=gpu.ENV_NUM_GPUS):
        count_gpus()
    monkeypatch.delenv(gpu.ENV_NUM_GPUS)
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert count_gpus() == 2


def test_default_lock_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gpu.ENV_LOCK_DIR, str(tmp_path / "x"))
    assert gpu.default_lock_dir() == tmp_path / "x"
    monkeypatch.delenv(gpu.ENV_LOCK_DIR)
    assert gpu.default_lock_dir().name == "blobloss-gpu-locks"


def test_killed_holder_releases_its_slot(tmp_path: Path, no_cuda_env: None) -> None:
    locks = tmp_path / "locks"
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(locks), str(ready)], env=_clean_env())
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None, "holder exited early"
            assert time.monotonic() < deadline, "holder never took the slot"
            time.sleep(0.05)
        assert ready.read_text() == "0"
        # While held, the only slot is busy.
        with pytest.raises(TimeoutError, match="GPU slots"):
            with gpu_slot(n_gpus=1, lock_dir=locks, poll=0.05, timeout=0.3):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with gpu_slot(n_gpus=1, lock_dir=locks, poll=0.05, timeout=10) as slot:
        assert slot == "0"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_invalid_arguments(tmp_path: Path, no_cuda_env: None) -> None:
    with pytest.raises(ValueError, match="negative"):
        with gpu_slot(n_gpus=-1, lock_dir=tmp_path):
            pass
    with pytest.raises(ValueError, match="poll"):
        with gpu_slot(n_gpus=1, lock_dir=tmp_path, poll=0):
            pass


def test_several_listed_devices_are_handed_out_one_per_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with gpu_slot(lock_dir=tmp_path) as first:
        assert first == "2" and os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    # another job holds device 2: this one gets device 3
    with open(tmp_path / "gpu2.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with gpu_slot(lock_dir=tmp_path) as second:
            assert second == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"


# A fake K-GPU job on a 3-GPU machine: records (devices, enter, exit); holds its slots for a while.
MULTI_JOB = textwrap.dedent(
    """
    import os, sys, time
    from blobloss.gpu import gpu_slot
    lock_dir, out, count, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    with gpu_slot(n_gpus=3, lock_dir=lock_dir, poll=0.02, timeout=60, count=count) as devices:
        t0 = time.monotonic()
        seen = os.environ["CUDA_VISIBLE_DEVICES"]
        time.sleep(hold)
        t1 = time.monotonic()
    with open(out, "w") as f:
        f.write(f"{devices} {seen} {t0} {t1}")
    """
)


def test_two_gpu_and_one_gpu_jobs_get_whole_distinct_sets_without_deadlock(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    counts = [2, 1, 2, 1, 2, 1]  # 9 GPU-slots of demand on 3 GPUs: jobs must queue, none may deadlock
    procs, outs = [], []
    for k, count in enumerate(counts):
        out = tmp_path / f"job{k}.txt"
        outs.append(out)
        procs.append(subprocess.Popen([sys.executable, "-c", MULTI_JOB, str(locks), str(out), str(count), "0.4"],
                                      env=_clean_env()))
    for p in procs:
        assert p.wait(timeout=90) == 0, "a job failed or timed out waiting for its GPUs"
    records = []
    for out, count in zip(outs, counts):
        devices, seen, t0, t1 = out.read_text().split()
        got = devices.split(",")
        assert devices == seen and len(got) == count == len(set(got)), (devices, count)
        assert set(got) <= {"0", "1", "2"}
        records.append((set(got), float(t0), float(t1)))
    for i, (d1, a1, b1) in enumerate(records):
        for d2, a2, b2 in records[i + 1:]:
            if d1 & d2:
                assert b1 <= a2 or b2 <= a1, f"jobs shared GPUs {d1 & d2} at the same time: {records}"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"n_gpus": 1, "count": 2}, ValueError, "needs 2 GPUs but this machine has 1"),
     ({"n_gpus": 2, "count": 0}, ValueError, "count=0")],
)
def test_multi_gpu_slot_errors(tmp_path: Path, no_cuda_env: None, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        with gpu_slot(lock_dir=tmp_path, **kwargs):
            pass


def test_multi_gpu_slot_is_all_or_nothing_and_noop_under_a_scheduler(
    tmp_path: Path, no_cuda_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    with open(tmp_path / "gpu1.lock", "a") as held:  # another job holds GPU 1 of 3
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with gpu_slot(n_gpus=3, lock_dir=tmp_path, count=2, poll=0.02) as devices:
            assert devices == "0,2"
        with pytest.raises(TimeoutError, match="did not become free together"):
            with gpu_slot(n_gpus=2, lock_dir=tmp_path, count=2, poll=0.02, timeout=0.2):
                pass
        # the failed attempt released GPU 0 again: a 1-GPU job gets it at once
        with gpu_slot(n_gpus=2, lock_dir=tmp_path, count=1, poll=0.02, timeout=0.2) as devices:
            assert devices == "0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # SLURM gave this job its two GPUs
    with gpu_slot(n_gpus=8, lock_dir=tmp_path / "none", count=2) as devices:
        assert devices == "5,7"
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------------------------- GPU check

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_says_no_gpu_and_exits_0_on_a_cpu_machine(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():  # pragma: no cover - on a GPU machine the check itself is the test
        pytest.skip("a GPU is present: run benchmarks/gpu_check.sh itself")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "GPU_CHECK_OUT": str(tmp_path / "out")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gpu_check: no GPU (torch.cuda.is_available() is False)" in proc.stdout
    assert not list((tmp_path / "out").glob("*.json")), "nothing is measured without a GPU"


def test_gpu_check_python_steps_in_quick_mode_write_their_json(tmp_path: Path) -> None:
    """The steps gpu_check.sh runs on the GPU, with tiny sizes on the CPU (what --quick runs)."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["train-steps", "--quick", "--out", str(tmp_path / "steps.json")]) == 0
    steps = json.loads((tmp_path / "steps.json").read_text())
    assert {(r["loss"], r["precision"]) for r in steps["rows"]} >= {("dice", "fp32"), ("blob_dice", "fp32")}
    assert all(r["median_s"] > 0 for r in steps["rows"]) and steps["channels"] == 2
    assert module.main(["ddp", "--quick", "--out", str(tmp_path / "ddp.json")]) == 0
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    assert ddp["world_size"] == 1 and ddp["epochs"] == 2 and [r["world_size"] for r in ddp["log"]] == [1, 1]
