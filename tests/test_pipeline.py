"""End-to-end tests of the Snakemake DAG for the data stages, on tiny configs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, config: dict | None, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real Snakemake CLI on the repository's Snakefile inside ``workdir``."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        cfg_path = workdir / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(cfg_path)]
    cmd += ["--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's job-stats table ("job  count" rows) from a dry run's output."""
    counts: dict[str, int] = {}
    table = output.split("Job stats:")[-1] if "Job stats:" in output else ""
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


# The study-statistics jobs rerun whenever any run's metrics change (one recall figure per dataset).
STUDY_JOBS = {"detection_by_size": 1, "comparison": 1, "recall_by_size_figure": 2}

TINY_TRAINING = {
    "model": {"features": [2, 2, 2, 2, 2, 2]},
    "batch_size": 1,
    "crops_per_case": 1,
    "epochs": 1,
    "num_workers": 0,
    "losses": [{"name": "dice", "loss": "dice"}, {"name": "blob_dice", "loss": "blob_dice"}],
}


def tiny_synthetic(n3: int = 3, n2: int = 3) -> dict:
    return {
        "results_dir": "results",
        "datasets": {
            "syn3d": {"source": {"format": "synthetic", "n_cases": n3, "shape": [32, 24, 16], "seed": 1},
                      "split": {"test_fraction": 0.34},
                      "training": dict(TINY_TRAINING, patch_size=[32, 16, 16]),
                      "inference": {"noise_copies": 1}},
            "syn2d": {"source": {"format": "synthetic", "n_cases": n2, "shape": [32, 32], "seed": 2},
                      "normalization": {"method": "percentile"}, "split": {"test_fraction": 0.34},
                      "training": dict(TINY_TRAINING, patch_size=[32, 32]),
                      "inference": {"tta": False}},
        },
    }


def write_generic_dataset(root: Path, n: int = 3) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.normal(size=(12, 12, 8)).astype(np.float32)
        lab = np.zeros((12, 12, 8), np.uint8)
        lab[2:4, 2:4, 2:4] = 1
        lab[8:10, 8:10, 5:7] = 1
        nib.save(nib.Nifti1Image(img, np.eye(4)), root / "images" / f"c{i}.nii.gz")
        nib.save(nib.Nifti1Image(lab, np.eye(4)), root / "labels" / f"c{i}.nii.gz")


def test_dry_run_lists_the_per_case_dag_of_several_datasets(tmp_path: Path) -> None:
    write_generic_dataset(tmp_path / "raw_generic", n=4)
    config = tiny_synthetic(n3=5, n2=2)
    config["datasets"]["mine"] = {
        "source": {"format": "generic", "path": "raw_generic", "image_glob": "images/*.nii.gz",
                   "label_glob": "labels/*.nii.gz"},
    }
    write_generic_dataset(tmp_path / "raw_nuclei", n=3)
    config["datasets"]["nuclei"] = {
        "source": {"format": "generic", "path": "raw_nuclei"},
        "instance_labels": True,  # label files hold instance ids: converted by the rule that keeps them
    }
    proc = snakemake(tmp_path, config, "-n")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["convert_case"] == 5 + 2 + 4
    assert counts["convert_case_with_ids"] == 3
    assert "convert nuclei/c2 (instance ids kept)" in proc.stdout  # one line per job (the rules' message)
    assert counts["components"] == 14
    assert counts["manifest"] == 4
    assert counts["blob_features"] == 4
    assert counts["train"] == 2 * 4
    assert counts["blob_statistics"] == 1
    # each case appears as its own job
    assert "convert mine/c3" in proc.stdout
    assert counts["check_dataset"] == 4  # every dataset checked once, before its conversion


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["datasets"]["syn3d"].update(normalization={"method": "zscore"}), ["zscore", "normalization"]),
        (lambda c: c["datasets"]["syn3d"]["training"].update(patch_size=[16, 16, 16]), ["syn3d", "patch_size"]),
        (lambda c: c["datasets"]["syn3d"]["training"].update(patch_size=[40, 32, 16]), ["40", "multiple"]),
        (lambda c: c["datasets"]["syn3d"].update(evaluation={"checkpoints": ["best"]}), ["syn3d", "validation"]),
        (lambda c: c["datasets"]["syn2d"].update(evaluation={"table2": ["nope"]}), ["syn2d", "nope"]),
        (lambda c: c["datasets"]["syn2d"].update(comparisons=[["blob_dice", "dcie"]]), ["syn2d", "dcie", "training.losses"]),
        (lambda c: c["datasets"]["syn3d"].update(evaluation={"size_bins": [50, 5]}), ["syn3d", "strictly increasing"]),
    ],
)
def test_invalid_config_is_rejected_at_parse_time_with_the_key(tmp_path: Path, change, expected) -> None:
    config = tiny_synthetic()
    change(config)
    proc = snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    for word in expected:
        assert word in out, (word, out[-2000:])
    assert not (tmp_path / "results").exists()


def test_missing_pair_is_reported_before_any_work(tmp_path: Path) -> None:
    write_generic_dataset(tmp_path / "raw", n=2)
    (tmp_path / "raw" / "labels" / "c1.nii.gz").unlink()
    config = {"datasets": {"mine": {"source": {"format": "generic", "path": "raw"}}}}
    proc = snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0
    assert "c1" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_data_stages_run_end_to_end_and_rerun_only_what_a_change_touches(tmp_path: Path) -> None:
    config = tiny_synthetic()
    snakemake(tmp_path, config)
    res = tmp_path / "results"

    for ds, n, ndim in (("syn3d", 3, 3), ("syn2d", 3, 2)):
        manifest = pd.read_csv(res / ds / "manifest.csv")
        assert len(manifest) == n
        assert set(manifest["split"]) <= {"train", "val", "test"}
        assert (manifest["split"] == "test").sum() >= 1
        split = json.loads((res / ds / "split.json").read_text())
        assert sorted(sum(split.values(), [])) == sorted(manifest["case"])
        for case, n_inst in zip(manifest["case"], manifest["n_instances"]):
            inst = nib.load(res / ds / "data" / case / "instances.nii.gz").get_fdata().astype(np.int64)
            assert inst.ndim == ndim
            assert len(np.unique(inst[inst > 0])) == n_inst
        features = pd.read_csv(res / ds / "stats" / "blob_features.csv")
        assert list(features.columns[:2]) == ["dataset", "case"]
        assert {"label", "volume", "compactness", "sphereness", "stringness", "skewness"} <= set(features.columns)
        counts = pd.read_csv(res / ds / "stats" / "blob_counts.csv")
        assert counts["n_blobs"].tolist() == manifest["n_instances"].tolist()
        assert len(features) == counts["n_blobs"].sum()
    png = res / "stats" / "blob_statistics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = pd.read_csv(res / "stats" / "blob_statistics.csv")
    assert sorted(summary["dataset"]) == ["syn2d", "syn3d"]
    # no temporary files left behind by the atomic writers
    assert not [p for p in res.rglob(".*tmp*")]

    # Training, inference and metrics ran for every (dataset, setting) on the test cases.
    for ds, shape in (("syn3d", (32, 24, 16)), ("syn2d", (32, 32))):
        split = json.loads((res / ds / "split.json").read_text())
        for setting in ("dice", "blob_dice"):
            run = res / ds / "train" / setting / "seed0"
            log = pd.read_csv(run / "log.csv")
            assert log["epoch"].tolist() == [1]
            assert (run / "model_last.pt").stat().st_size > 0
            assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # rule training_curve, from log.csv
            assert (run / "work" / "checkpoint_last.pt").is_file()
            for case in split["test"]:
                prob = nib.load(res / ds / "predict" / setting / "seed0" / "last" / f"{case}_prob.nii.gz")
                pred = nib.load(res / ds / "predict" / setting / "seed0" / "last" / f"{case}_pred.nii.gz")
                label = nib.load(res / ds / "data" / case / "label.nii.gz")
                assert prob.shape == pred.shape == label.shape == shape
                assert np.allclose(pred.affine, label.affine)
                p = prob.get_fdata()
                assert 0.0 <= p.min() and p.max() <= 1.0
                assert np.array_equal(pred.get_fdata() > 0, p > 0.5)
            metrics = pd.read_csv(res / ds / "eval" / setting / "seed0" / "last" / "metrics.csv")
            assert sorted(metrics["case"]) == sorted(split["test"])
            assert set(metrics["setting"]) == {setting} and set(metrics["loss"]) == {setting}
            assert {"dsc", "surface_dice", "f1", "tp", "fp", "fn"} <= set(metrics.columns)
            assert "loss_options" in metrics.columns  # every option at its default: empty
            assert metrics["dsc"].between(0, 1).all()

    # Tables, figures and the self-contained report.
    table1 = pd.read_csv(res / "tables" / "table1.csv")
    assert sorted(table1["dataset"].unique()) == ["syn2d", "syn3d"]
    assert {"DSC", "SDSC", "F1", "IS", "IP"} <= set(table1.columns)
    # beside the paper's columns: IS per ground-truth blob and the one-to-one IoU rule
    assert {"IS_gt", "F1_iou", "IS_iou", "IP_iou"} <= set(table1.columns)
    assert table1["IS_gt"].between(0, 1).all()
    assert (res / "tables" / "table1.md").read_text().startswith("|")
    assert "\\begin{tabular}" in (res / "tables" / "table1.tex").read_text()
    pooled = pd.read_csv(res / "tables" / "pooled.csv")
    assert len(pooled) == 4 and (pooled["tp"] + pooled["fn"] > 0).all()
    for ds in ("syn3d", "syn2d"):
        for fig in ("detection", "paired", "training", "recall_by_size"):
            assert (res / "figures" / f"{ds}_{fig}.png").read_bytes()[:4] == b"\x89PNG"
    comparison = pd.read_csv(res / "tables" / "comparison.csv")
    assert list(comparison.columns) == ["dataset", "setting", "baseline", "checkpoint", "metric", "n_cases",
                                        "n_seeds", "setting_mean", "baseline_mean", "mean_diff", "ci_low",
                                        "ci_high", "p_value", "p_holm", "better", "worse", "tied"]
    assert set(comparison["dataset"]) == {"syn2d", "syn3d"} and set(comparison["setting"]) == {"blob_dice"}
    assert {"DSC", "F1", "small_recall"} <= set(comparison["metric"])
    detection = pd.read_csv(res / "tables" / "detection_by_size.csv")
    assert set(detection["dataset"]) == {"syn2d", "syn3d"} and detection["recall"].between(0, 1).any()
    snakemake(tmp_path, config, "--report", "report.html")
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "table1" in html and "syn3d_detection.png" in html and "blob_statistics.png" in html
    assert "comparison.html" in html and "syn2d_recall_by_size.png" in html and "1 Comparison" in html

    # Nothing to do on a second run.
    proc = snakemake(tmp_path, config, "-n")
    assert job_counts(proc.stdout + proc.stderr) == {}

    # A normalization change of one dataset reruns its conversion and what depends on it, nothing else.
    config["datasets"]["syn2d"]["normalization"] = {"method": "minmax"}
    proc = snakemake(tmp_path, config, "-n")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts.get("convert_case") == 3
    assert "results/syn3d/data" not in proc.stdout

    # A training setting reruns that dataset's training and what follows, nothing before it.
    config["datasets"]["syn2d"]["normalization"] = {"method": "percentile"}
    config["datasets"]["syn3d"]["training"]["epochs"] = 2
    proc = snakemake(tmp_path, config, "-n")
    counts = job_counts(proc.stdout + proc.stderr)
    n_test3 = len(json.loads((res / "syn3d" / "split.json").read_text())["test"])
    assert counts == {"train": 2, "predict": 2, "metrics": 2, "tables": 1, "detection_figure": 1,
                      "paired_figure": 1, "training_curves": 1, "training_curve": 2, **STUDY_JOBS, "all": 1}, counts
    config["datasets"]["syn3d"]["training"]["epochs"] = 1

    # A loss option of one loss entry (the published code's logit masking) reruns that setting only.
    losses = config["datasets"]["syn3d"]["training"]["losses"] = list(TINY_TRAINING["losses"])  # syn3d's own
    losses[1] = dict(losses[1], mask_space="logits")
    proc = snakemake(tmp_path, config, "-n")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts == {"train": 1, "predict": 1, "metrics": 1, "tables": 1, "detection_figure": 1,
                      "paired_figure": 1, "training_curves": 1, "training_curve": 1, **STUDY_JOBS, "all": 1}, counts
    assert "train syn3d/blob_dice/seed0" in proc.stdout and "train syn3d/dice/seed0" not in proc.stdout
    losses[1] = {"name": "blob_dice", "loss": "blob_dice"}

    # A metric setting reruns only the evaluation.
    config["datasets"]["syn3d"]["evaluation"] = {"surface_tolerance": 2.0}
    proc = snakemake(tmp_path, config, "-n")
    assert job_counts(proc.stdout + proc.stderr) == {"metrics": 2, "tables": 1, "detection_figure": 1,
                                                     "paired_figure": 1, **STUDY_JOBS, "all": 1}
    del config["datasets"]["syn3d"]["evaluation"]

    # A statistics setting reruns only the statistics.
    config["datasets"]["syn2d"]["normalization"] = {"method": "percentile"}
    config["stats"] = {"method": "exact"}
    proc = snakemake(tmp_path, config, "-n")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts == {"blob_features": 2, "blob_statistics": 1, "all": 1}

    # --forcerun recomputes a rule and what depends on it; --until stops after a rule.
    config["stats"] = {"method": "paper"}
    proc = snakemake(tmp_path, config, "-n", "--forcerun", "metrics")
    assert job_counts(proc.stdout + proc.stderr) == {"metrics": 4, "tables": 1, "detection_figure": 2,
                                                     "paired_figure": 2, **STUDY_JOBS, "all": 1}
    proc = snakemake(tmp_path, config, "-n", "--forcerun", "components", "--until", "manifest")
    assert job_counts(proc.stdout + proc.stderr) == {"components": 6, "manifest": 2}

    # A content edit of a package module reruns exactly the rules that run it: tests/test_reruns.py (on a
    # copy of the workflow, whose own src/ the code inputs come from).
