"""Integration test: the pipeline on a real (one-node, throw-away) SLURM cluster through profiles/slurm.

The cluster (tests/slurm_cluster.py) runs slurmctld, slurmd and munged as root on this machine, with two
fake GPUs. The test runs the tiny study's data stages, training and inference with the repository's
SLURM profile and checks that

* every GPU job was its own SLURM job holding exactly one GPU, and the two training runs held *distinct*
  GPUs while running at the same time (SLURM's own record: ``scontrol show job -d`` while they ran);
* CPU jobs got no GPU;
* every output (manifest, split, blob statistics, training log, predictions) equals that of a local run.

It needs root, ``apt-get install -y slurm-wlm munge`` and ``pip install snakemake-executor-plugin-slurm``;
otherwise it is skipped with the reason. It takes about three minutes (the SLURM executor's status polling
backs off by 10 s per check, so every level of the DAG costs ~20-30 s).
"""

from __future__ import annotations

import importlib.util
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
        return "snakemake-executor-plugin-slurm is not installed (pip install snakemake-executor-plugin-slurm)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]

# One 2D dataset: 3 cases (2 train, 1 test), two loss settings -> two training runs that can run at once.
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
                "losses": [{"name": "dice", "loss": "dice"}, {"name": "blob_dice", "loss": "blob_dice"}],
            },
            "inference": {"tta": False},
        }
    },
}
SETTINGS = ("dice", "blob_dice")
# Up to the predictions, the manifest and the statistics (metrics, tables and figures only add DAG levels: time).
UNTIL = ["--until", "predict", "manifest", "blob_statistics"]
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
    """SLURM job ids per rule, from Snakemake's "submitted with SLURM jobid N (log: .../rule_<rule>/...)" lines."""
    jobs: dict[str, list[int]] = {}
    for m in re.finditer(r"SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", output):
        jobs.setdefault(m.group(2), []).append(int(m.group(1)))
    return jobs


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    with SlurmCluster() as c:
        yield c


def test_pipeline_on_slurm_one_gpu_per_job_and_same_outputs_as_local(tmp_path: Path, cluster: SlurmCluster) -> None:
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

    # --- every job was its own SLURM job --------------------------------------------------------------
    jobs = _slurm_jobs_by_rule(slurm_out)
    assert len(jobs.get("convert_case", [])) == 3 and len(jobs.get("components", [])) == 3, jobs
    assert len(jobs.get("train", [])) == len(SETTINGS), jobs
    assert len(jobs.get("predict", [])) == len(SETTINGS), jobs  # one test case per run

    # --- GPU jobs: one GPU each; the two training runs ran at once on distinct GPUs ----------------------
    for rule in ("train", "predict"):
        for job in jobs[rule]:
            seen = monitor.gpus_of(job)
            assert seen, f"{rule} job {job} was never seen running (snapshots: {len(monitor.snapshots)})"
            assert all(len(g) == 1 for g in seen), f"{rule} job {job} held GPUs {seen}, expected exactly one"
    train_a, train_b = jobs["train"]
    together = [s for s in monitor.snapshots if train_a in s and train_b in s]
    assert together, "the two training jobs never ran at the same time"
    assert all(s[train_a].isdisjoint(s[train_b]) for s in together), (
        f"training jobs {train_a} and {train_b} shared a GPU: {together}"
    )
    for rule in ("convert_case", "components"):
        for job in jobs[rule]:
            assert all(not g for g in monitor.gpus_of(job)), f"CPU job {rule} {job} was given a GPU"
    # the partitions of profiles/slurm (the test cluster names its partitions like the profile)
    for rule, partition in (("train", "gpu"), ("predict", "gpu"), ("convert_case", "cpu")):
        for job in jobs[rule]:
            assert monitor.partitions.get(job) in (partition, None), (rule, job, monitor.partitions.get(job))
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
