"""The paper's dataset configs: each validates and lists its whole DAG in a dry run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_pipeline import job_counts

REPO = Path(__file__).resolve().parents[1]
N_CASES = 6


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def fake_raw(fmt: str, root: Path, source: dict) -> None:
    """Empty files with the names each converter looks for (discovery only globs names)."""
    for i in range(N_CASES):
        if fmt == "generic":
            for suffix in source["channel_suffixes"]:
                _touch(root / "images" / f"c{i}{suffix}.nii.gz")
            _touch(root / "labels" / f"c{i}.nii.gz")
        elif fmt == "lits":
            _touch(root / f"volume-{i}.nii")
            _touch(root / f"segmentation-{i}.nii")
        elif fmt == "lightsheet":
            _touch(root / "images" / f"c{i}.tif")
            _touch(root / "labels" / f"c{i}.tif")
        else:  # pragma: no cover - a new config format needs a fake layout here
            raise AssertionError(f"no fake layout for format {fmt!r}")


PAPER_CONFIGS = sorted(p.name for p in (REPO / "config").glob("*.yaml") if p.name != "config.yaml")


def test_all_five_paper_configs_exist() -> None:
    # the five datasets, and MS trained with the published code's logit masking
    assert PAPER_CONFIGS == [
        "deepmact.yaml", "disco_ms.yaml", "lits.yaml", "ms.yaml", "ms_published_code.yaml", "shanel.yaml",
    ]


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_dry_run_lists_the_whole_dag(name: str, tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    (ds_name, ds), = config["datasets"].items()
    assert ds["source"]["path"].startswith("/path/to/"), "the config's only user value is the raw-data path"
    ds["source"]["path"] = str(tmp_path / "raw")
    fake_raw(ds["source"]["format"], tmp_path / "raw", ds["source"])
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(tmp_path / "cfg.yaml"), "--cores", "4", "-n"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    counts = job_counts(out)
    n_settings = len(ds["training"]["losses"])
    n_ckpt = len(ds.get("evaluation", {}).get("checkpoints", ["last"]))
    split = ds["split"]
    n_test = max(1, round(N_CASES * split["test_fraction"]))
    assert counts["convert_case"] == N_CASES
    assert counts["components"] == N_CASES
    assert counts["train"] == n_settings
    assert n_test >= 1
    assert counts["predict"] == n_settings * n_ckpt  # one job per run and checkpoint predicts every test case
    assert counts["metrics"] == n_settings * n_ckpt
