"""Integration test: the pipeline on a real (one-node, throw-away) SLURM cluster through profiles/slurm.

The cluster (tests/slurm_cluster.py) runs slurmctld, slurmd and munged as root on this machine, with two
fake GPUs. The test runs the tiny study's data stages, training, inference and metrics with the
repository's SLURM profile and checks that

* only training runs and evaluations became SLURM jobs (one per training run, one per trained model
  that predicts and evaluates its test cases: group "evaluate"); the cheap jobs ran locally;
* the `gpus: 2` training run was ONE SLURM job holding two GPUs (SLURM's own record, ``scontrol show job
  -d``) whose job saw both devices and trained with two ranks; the 1-GPU run and every evaluation job
  held exactly one GPU; jobs never shared a GPU;
* every output (manifest, split, blob statistics, training log, predictions, metrics) equals that of a
  local run.

It needs root, ``apt-get install -y slurm-wlm munge`` and ``pip install "snakemake-executor-plugin-slurm>=2.7.1"``;
otherwise it is skipped with the reason. It takes a few minutes (the SLURM executor's status polling
backs off by 10 s per check, so every level of the DAG costs ~20-30 s).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import SlurmCluster, missing_requirements  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _skip_reason() -> str | None:
    reason = missing_requirements()
    if reason:
        return reason
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return 'snakemake-executor-plugin-slurm is not installed (pip install "snakemake-executor-plugin-slurm>=2.7.1")'
    from importlib.metadata import version

    if tuple(int(x) for x in version("snakemake-executor-plugin-slurm").split(".")[:3]) < (2, 7, 1):
        return "snakemake-executor-plugin-slurm < 2.7.1 launches a multi-GPU job once per GPU; upgrade it"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]

# One 2D dataset: 3 cases (2 train, 1 test), two loss settings -> two training runs, one of them on 2 GPUs.
CONFIG = {
    "results_dir": "results",
    "datasets": {
        "syn2d": {
            "source": {"format": "synthetic", "n_cases": 3, "shape": [32, 32], "seed": 2},
            "normalization": {"method": "percentile"},
            "split": {"test_fraction": 0.34},
            "training": {
                "model": {"features": [2, 2, 2, 2, 2, 2]},
                "batch_size": 1,
                "crops_per_case": 1,
                "patch_size": [32, 32],
                "epochs": 1,
                "num_workers": 0,
                "losses": [{"name": "dice", "loss": "dice"},
                           {"name": "blob_dice", "loss": "blob_dice", "gpus": 2}],
            },
            "inference": {"tta": False},
        }
    },
}
SETTINGS = ("dice", "blob_dice")
GPUS = {"dice": 1, "blob_dice": 2}
# Up to the metrics, the manifest and the statistics (tables and figures are local rules: only time).
UNTIL = ["--until", "metrics", "manifest", "blob_statistics"]
# One thread per job in both runs, so training is numerically identical (and light on a small machine).
THREADS = ["--set-threads", "train=1", "predict=1"]


def _snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), *args]


class JobMonitor:
    """Polls ``scontrol -o show job -d`` and records, per snapshot, the GPU indices of each running job."""

    _JOB = re.compile(r"JobId=(\d+)\s")
    _STATE = re.compile(r"JobState=(\w+)")
    _IDX = re.compile(r"GRES=gpu(?::[\w.]+)?:\d+\(IDX:([\d,-]+)\)")
    _PARTITION = re.compile(r"Partition=(\S+)")

    def __init__(self, env: dict[str, str], interval: float = 0.5) -> None:
        self.env = env
        self.interval = interval
        self.snapshots: list[dict[int, frozenset[int]]] = []
        self.partitions: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _indices(text: str) -> frozenset[int]:
        out: set[int] = set()
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
        return frozenset(out)

    def _run(self) -> None:
        while not self._stop.is_set():
            proc = subprocess.run(["scontrol", "-o", "show", "job", "-d"], capture_output=True, text=True,
                                  env=self.env, timeout=30, check=False)
            snap: dict[int, frozenset[int]] = {}
            for line in proc.stdout.splitlines():
                job, state = self._JOB.search(line), self._STATE.search(line)
                if not job or not state or state.group(1) != "RUNNING":
                    continue
                gpus: set[int] = set()
                for m in self._IDX.finditer(line):
                    gpus |= self._indices(m.group(1))
                snap[int(job.group(1))] = frozenset(gpus)
                partition = self._PARTITION.search(line)
                if partition:
                    self.partitions[int(job.group(1))] = partition.group(1)
            if snap:
                self.snapshots.append(snap)
            self._stop.wait(self.interval)

    def __enter__(self) -> JobMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def gpus_of(self, job: int) -> set[frozenset[int]]:
        """Every GPU set the job was seen holding while running (empty set: never seen running)."""
        return {snap[job] for snap in self.snapshots if job in snap}


def _slurm_jobs_by_rule(output: str) -> dict[str, list[int]]:
    """SLURM job ids per rule or group, from the "submitted with SLURM jobid N (log: .../rule_<rule>/...)"
    (or ``group_<group>``) lines of Snakemake's output."""
    jobs: dict[str, list[int]] = {}
    for m in re.finditer(r"SLURM jobid (\d+) \(log: \S*/(rule|group)_(\w+)/", output):
        # a group job's folder is group_<group>_<its rules>, e.g. group_evaluate_metrics_predict
        name = m.group(3).split("_")[0] if m.group(2) == "group" else m.group(3)
        jobs.setdefault(name, []).append(int(m.group(1)))
    return jobs


def _setting_of(job: int, output: str) -> str:
    """The setting wildcard of a train job, from its SLURM log path (.../rule_train/<wildcards>/<id>.log)."""
    m = re.search(rf"SLURM jobid {job} \(log: \S*/rule_train/(\S+)/{job}\.log", output)
    assert m, f"no log line for SLURM job {job}"
    found = [st for st in SETTINGS if m.group(1) == f"syn2d_{st}_0"]  # <dataset>_<setting>_<seed>
    assert len(found) == 1, (m.group(1), found)
    return found[0]


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with SlurmCluster() as c:
        yield c


def test_pipeline_on_slurm_k_gpus_per_training_job_grouped_evaluation_same_outputs_as_local(tmp_path: Path, cluster: SlurmCluster) -> None:
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    for d in (slurm_dir, local_dir):
        d.mkdir()
        (d / "config.yaml").write_text(yaml.safe_dump(CONFIG))

    # The reference: a plain local run (profiles/default), started first and run alongside.
    local_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    local = subprocess.Popen(_snakemake_cmd(local_dir, "--cores", "2", *THREADS, *UNTIL), cwd=local_dir,
                             env=local_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    slurm_cmd = _snakemake_cmd(
        slurm_dir,
        # the repository's profile, used as documented in README and docs/cluster.md (profiles/default
        # is layered underneath by Snakemake, exactly as on a user's cluster) ...
        "--profile", str(REPO / "profiles" / "slurm"),
        # ... with what only this test cluster needs: no accounting (so no account to guess) and fast
        # status checks for short jobs (the MinJobAge of the test cluster is far above this)
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1",
        *THREADS, *UNTIL,
    )
    try:
        with JobMonitor(cluster.env) as monitor:
            slurm = subprocess.run(slurm_cmd, cwd=slurm_dir, env=cluster.env, capture_output=True, text=True,
                                   timeout=600)
    finally:
        local_out, _ = local.communicate(timeout=600)
    slurm_out = slurm.stdout + slurm.stderr
    assert slurm.returncode == 0, f"SLURM run failed:\n{slurm_out[-6000:]}\n{cluster.logs()}"
    assert local.returncode == 0, f"local run failed:\n{local_out[-6000:]}"

    # --- fewer, larger jobs: one SLURM job per training run and one per trained model's evaluation -----
    jobs = _slurm_jobs_by_rule(slurm_out)
    assert sorted(jobs) == ["evaluate", "train"], f"only training and evaluation go to SLURM: {jobs}"
    assert len(jobs["train"]) == len(SETTINGS), jobs
    assert len(jobs["evaluate"]) == len(SETTINGS), jobs  # one checkpoint ("last") per run
    assert sum(map(len, jobs.values())) == 2 * len(SETTINGS)

    # --- GPUs: the 2-GPU run was one job with two GPUs, everything else one GPU; never shared --------------
    held = {}
    for job in jobs["train"]:
        setting = _setting_of(job, slurm_out)
        seen = monitor.gpus_of(job)
        assert seen, f"train job {job} was never seen running (snapshots: {len(monitor.snapshots)})"
        assert all(len(g) == GPUS[setting] for g in seen), f"{setting}: job {job} held GPUs {seen}"
        held[setting] = job
    for job in jobs["evaluate"]:
        seen = monitor.gpus_of(job)
        assert seen and all(len(g) == 1 for g in seen), f"evaluation job {job} held GPUs {seen}, expected one"
    for snap in monitor.snapshots:
        for a, b in itertools.combinations(snap, 2):
            assert snap[a].isdisjoint(snap[b]), f"jobs {a} and {b} shared a GPU: {snap}"
    # the job of the 2-GPU run saw both of its devices and trained with two ranks
    job_log = (slurm_dir / "results" / "logs" / "train" / "syn2d" / "blob_dice" / "seed0.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES=\d+,\d+, 2 rank\(s\)", job_log), job_log[-3000:]
    one_gpu_log = (slurm_dir / "results" / "logs" / "train" / "syn2d" / "dice" / "seed0.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES=\d+, 1 rank\(s\)", one_gpu_log), one_gpu_log[-3000:]
    for setting in SETTINGS:
        log = pd.read_csv(slurm_dir / "results" / "syn2d" / "train" / setting / "seed0" / "log.csv")
        assert set(log["world_size"]) == {GPUS[setting]}, (setting, log)
    # the partitions of profiles/slurm (the test cluster names its partitions like the profile)
    assert {monitor.partitions.get(j) for j in jobs["train"] + jobs["evaluate"]} <= {"gpu", None}
    assert {monitor.partitions.get(j) for j in jobs["train"]} == {"gpu"}

    # --- same outputs as the local run --------------------------------------------------------------------
    res_s, res_l = slurm_dir / "results", local_dir / "results"
    for rel in ("syn2d/manifest.csv", "syn2d/stats/blob_features.csv", "syn2d/stats/blob_counts.csv",
                "stats/blob_statistics.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(res_s / rel), pd.read_csv(res_l / rel), obj=rel)
    split = json.loads((res_l / "syn2d" / "split.json").read_text())
    assert json.loads((res_s / "syn2d" / "split.json").read_text()) == split
    assert len(split["test"]) == 1
    for setting in SETTINGS:
        run = Path("syn2d") / "train" / setting / "seed0"
        log_s, log_l = pd.read_csv(res_s / run / "log.csv"), pd.read_csv(res_l / run / "log.csv")
        timing = [c for c in log_l.columns if "second" in c or "time" in c]
        pd.testing.assert_frame_equal(log_s.drop(columns=timing), log_l.drop(columns=timing), obj=str(run))
        assert (res_s / run / "work" / "checkpoint_last.pt").is_file()
        rel = Path("syn2d") / "eval" / setting / "seed0" / "last" / "metrics.csv"
        pd.testing.assert_frame_equal(pd.read_csv(res_s / rel), pd.read_csv(res_l / rel), obj=str(rel))
        for case in split["test"]:
            for kind in ("pred", "prob"):
                rel = Path("syn2d") / "predict" / setting / "seed0" / "last" / f"{case}_{kind}.nii.gz"
                a = np.asarray(nib.load(res_s / rel).dataobj)
                b = np.asarray(nib.load(res_l / rel).dataobj)
                assert a.shape == b.shape, rel
                if kind == "pred":
                    assert np.array_equal(a, b), f"{rel} differs between the SLURM and the local run"
                else:
                    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=str(rel))
