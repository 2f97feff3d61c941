"""Short errors: what a user reads for bad data, a config mistake or a missing file, and nothing more."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from blobloss.configuration import check_config, config_problems, load_schema, normalize_config
from blobloss.errors import (
    BlobLossError,
    ConfigError,
    DataIntegrityError,
    MissingFileError,
    is_known_error,
)
from blobloss.logs import failure_summary

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
ENV = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}


# ---------------------------------------------------------------- the error classes


@pytest.mark.parametrize(
    ("cls", "also"),
    [(DataIntegrityError, ValueError), (ConfigError, ValueError), (MissingFileError, FileNotFoundError)],
)
def test_known_errors_share_one_base_and_keep_their_builtin_type(cls, also) -> None:
    err = cls("x")
    assert isinstance(err, BlobLossError) and isinstance(err, also) and is_known_error(err)
    assert not is_known_error(ValueError("x")) and not is_known_error(KeyError("x"))


def test_io_no_longer_imports_the_data_package() -> None:
    code = "import sys, blobloss.io; print(sorted(m for m in sys.modules if m.startswith('blobloss.data')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    from blobloss.data.checks import DataIntegrityError as Old  # the former home still works

    assert Old is DataIntegrityError


# ---------------------------------------------------------------- job logs


def _run_job(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, str]:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        from blobloss.errors import DataIntegrityError
        from blobloss.logs import log_to_file
        with log_to_file({str(tmp_path / 'job.log')!r}) as log:
            log.info("working")
            {body}
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=ENV, timeout=60)
    return proc, (tmp_path / "job.log").read_text()


def test_known_error_ends_the_job_with_its_message_only(tmp_path: Path) -> None:
    msg = "case 'c1': label lab.nii.gz has shape (4, 4, 3) but image img.nii.gz has (4, 4, 2); resample the label"
    proc, log = _run_job(tmp_path, f"raise DataIntegrityError({msg!r})")
    assert proc.returncode == 1
    assert proc.stderr == ""  # the console gets it once, in the run's failure summary
    lines = log.splitlines()
    assert len(lines) == 2 and lines[1].endswith("ERROR blobloss: " + msg)
    assert "Traceback" not in log and log.count(msg) == 1


def test_ctrl_c_ends_the_job_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    proc, log = _run_job(tmp_path, "raise KeyboardInterrupt")
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr and "Traceback" not in log
    assert log.splitlines()[-1].endswith("ERROR blobloss: interrupted (Ctrl-C); run the same command again to "
                                         "continue where it stopped")


def test_unexpected_error_keeps_its_traceback(tmp_path: Path) -> None:
    proc, log = _run_job(tmp_path, "raise KeyError('spacing')")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'spacing'" in proc.stderr
    assert "Traceback" in log and "job failed" in log


def test_failure_summary_lists_each_failed_job_with_its_message(tmp_path: Path) -> None:
    known = tmp_path / "logs" / "convert" / "c1.log"
    known.parent.mkdir(parents=True)
    known.write_text("2026-01-01 10:00:00,000 INFO blobloss: working\n"
                     "2026-01-01 10:00:01,000 ERROR blobloss: dataset 'g': 2 problem(s):\n  case 'a': bad\n  case 'b': bad\n")
    crash = tmp_path / "logs" / "train.log"
    crash.write_text("2026-01-01 10:00:01,000 ERROR blobloss: job failed\nTraceback (most recent call last):\n"
                     "  File \"x.py\", line 1\nKeyError: 'spacing'\n")
    main = tmp_path / "snakemake.log"
    main.write_text(f"Error in rule check_dataset:\n    jobid: 2\n    log: {known} (check log file(s) for error details)\n"
                    f"Error in rule train:\n    jobid: 3\n    output: m.pt\n    log: {crash} (check log file(s) for error details)\n")
    summary = failure_summary([str(main)]).splitlines()
    assert summary[0] == "blobloss: 2 job(s) failed:"
    assert summary[1] == f"  {known}: dataset 'g': 2 problem(s):"
    assert summary[2:4] == ["    case 'a': bad", "    case 'b': bad"]
    assert summary[4] == f"  {crash}: KeyError: 'spacing' (traceback in {crash})"
    assert failure_summary(tmp_path / "missing.log") == ""


# ---------------------------------------------------------------- config errors (unit)

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _demo(change) -> dict:
    cfg = copy.deepcopy(DEMO)
    cfg["datasets"]["synthetic3d"]["training"] = copy.deepcopy(cfg["datasets"]["synthetic3d"]["training"])
    change(cfg)
    return cfg


D3 = "datasets.synthetic3d"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(result_dir="out"),
         ["result_dir (top level): unknown key", "did you mean 'results_dir'?", "allowed keys: results_dir"]),
        (lambda c: c["datasets"]["synthetic3d"]["training"]["losses"][0].update(loss="blobdice"),
         [f"{D3}.training.losses[0].loss: 'blobdice' is not allowed", "did you mean 'blob_dice'?",
          "allowed: dice, tversky, bce, iw, blob_dice"]),
        (lambda c: c["datasets"]["synthetic3d"].update(instance_label=True),
         [f"{D3}.instance_label: unknown key", "did you mean 'instance_labels'?"]),
        (lambda c: c["datasets"]["synthetic3d"].update(tta=False),
         [f"{D3}.tta: unknown key", "'tta' belongs at datasets.<name>.inference.tta"]),
        (lambda c: c["datasets"]["synthetic3d"]["training"].update(epochs="ten"),
         [f"{D3}.training.epochs: 'ten' has the wrong type; expected integer"]),
        (lambda c: c["datasets"]["synthetic3d"]["training"].update(patch_size=[40, 32, 32]),
         [f"{D3}.training.patch_size[0]: 40 is not a multiple of 16"]),
        (lambda c: c["datasets"]["synthetic3d"]["normalization"].update(method="zscore"),
         [f"{D3}.normalization.method: 'zscore' is not allowed", "allowed: none, minmax, percentile, ct_window"]),
        (lambda c: c["datasets"]["synthetic3d"]["source"].pop("format"),
         [f"{D3}.source: required key(s) format missing"]),
        (lambda c: c["datasets"].update({"my data": {"source": {"format": "synthetic"}}}),
         ["datasets: name 'my data' is not allowed; use letters, digits"]),
    ],
)
def test_config_problem_names_key_value_allowed_and_nearest(change, expected) -> None:
    problems = config_problems(_demo(change), load_schema(SCHEMA))
    assert len(problems) == 1, problems
    for part in expected:
        assert part in problems[0], f"{part!r} missing from {problems[0]!r}"
    assert len(problems[0]) < 250


def test_valid_config_has_no_problem_and_check_config_raises_a_short_error() -> None:
    assert config_problems(copy.deepcopy(DEMO), load_schema(SCHEMA)) == []
    bad = _demo(lambda c: c.update(result_dir="out", stat={}))
    with pytest.raises(ConfigError) as exc:
        check_config(bad, SCHEMA, "my.yaml")
    lines = str(exc.value).splitlines()
    assert len(lines) == 3 and all(ln.startswith("config error: ") for ln in lines[:2]) and "my.yaml" in lines[2]
    assert "did you mean 'stats'?" in lines[1]


def test_instance_labels_is_accepted_under_source_too() -> None:
    cfg = {"datasets": {"nuc": {"source": {"format": "generic", "path": "x", "instance_labels": True}}}}
    assert normalize_config(cfg) == ["datasets.nuc.source.instance_labels read as datasets.nuc.instance_labels"]
    assert cfg["datasets"]["nuc"] == {"source": {"format": "generic", "path": "x"}, "instance_labels": True}
    assert config_problems(cfg, load_schema(SCHEMA)) == []
    both = {"datasets": {"nuc": {"source": {"format": "generic", "instance_labels": True}, "instance_labels": False}}}
    with pytest.raises(ConfigError, match=r"set it once, as datasets\.nuc\.instance_labels"):
        normalize_config(both)


# ---------------------------------------------------------------- what snakemake prints (end to end)


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *args, "--configfile", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=600)


def _lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]


TINY = {"model": {"features": [2] * 6}, "epochs": 1, "num_workers": 0, "patch_size": [32, 32, 16]}


def _generic(root: Path, n: int = 5, shape=(40, 40, 20)) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.random(shape).astype(np.float32)
        lab = np.zeros(shape, np.uint8)
        lab[2:6, 2:6, 2:6] = 1
        lab[20:30, 20:30, 10:15] = 1
        nib.save(nib.Nifti1Image(img, np.eye(4)), root / "images" / f"c{i}.nii.gz")
        nib.save(nib.Nifti1Image(lab, np.eye(4)), root / "labels" / f"c{i}.nii.gz")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(result_dir="out"), ["did you mean 'results_dir'?", "allowed keys: results_dir"]),
        (lambda c: c["datasets"]["g"]["training"].update(losses=[{"name": "b", "loss": "blobdice"}]),
         ["datasets.g.training.losses[0].loss: 'blobdice' is not allowed", "did you mean 'blob_dice'?"]),
        (lambda c: c["datasets"]["g"].update(instance_labels=False) or c["datasets"]["g"]["source"].update(
            instance_labels=True), ["set it once, as datasets.g.instance_labels"]),
        (lambda c: c["datasets"]["g"].update(split={"test_fraction": 0.0}),
         ["datasets.g.split leaves no test case", "test_fraction > 0"]),
    ],
)
def test_config_errors_are_short(tmp_path: Path, change, expected) -> None:
    _generic(tmp_path / "raw")
    config = {"results_dir": "results", "datasets": {"g": {"source": {"format": "generic", "path": "raw"},
                                                           "training": dict(TINY)}}}
    change(config)
    proc = snakemake(tmp_path, config, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for part in expected:
        assert part in out, out
    assert len(_lines(proc)) < 10, out
    assert "Failed validating" not in out and "Traceback" not in out


@pytest.mark.slow
def test_instance_labels_under_source_runs(tmp_path: Path) -> None:
    _generic(tmp_path / "raw", n=3)
    config = {"datasets": {"g": {"source": {"format": "generic", "path": "raw", "instance_labels": True},
                                 "split": {"test_fraction": 0.34}, "training": dict(TINY)}}}
    proc = snakemake(tmp_path, config, "-n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "convert g/c0 (instance ids kept)" in proc.stdout  # the rule that keeps the ids


def test_the_default_console_is_one_line_per_job_and_the_counts_agree(tmp_path: Path) -> None:
    config = {"datasets": {"syn": {"source": {"format": "synthetic", "n_cases": 3, "shape": [32, 32]},
                                   "split": {"test_fraction": 0.34}, "training": {"patch_size": [32, 32]}}}}
    proc = snakemake(tmp_path, config, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Using workflow specific profile" in out  # profiles/default
    total = int(re.search(r"^total\s+(\d+)$", out, re.M).group(1))
    jobs = re.findall(r"^\s*Job (\d+): \S", out, re.M)
    assert len(jobs) == len(set(jobs)) == total, out  # every job one line (a message), each once
    assert not re.search(r"^\s+(reason|input|output|jobid):", out, re.M), out  # no per-job blocks or reasons
    # the documented flag brings the reasons back
    verbose = snakemake(tmp_path, config, "-n", "--quiet", "host")
    assert re.search(r"^\s*Reason: ", verbose.stdout + verbose.stderr, re.M)


def test_given_gt_instances_need_instance_labels(tmp_path: Path) -> None:
    _generic(tmp_path / "raw", n=3)
    dataset = {"source": {"format": "generic", "path": "raw"}, "split": {"test_fraction": 0.34},
               "training": dict(TINY), "evaluation": {"gt_instances": "given", "matching": "one_to_one_iou"}}
    proc = snakemake(tmp_path, {"datasets": {"g": dataset}}, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "dataset 'g': evaluation.gt_instances is 'given' but the dataset does not keep instance ids" in out
    assert "instance_labels: true" in out and len(_lines(proc)) < 10, out
    # with the ids kept, both options are accepted and the conversion keeps the ids
    dataset["instance_labels"] = True
    proc = snakemake(tmp_path, {"datasets": {"g": dataset}}, "-n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "convert g/c0 (instance ids kept)" in proc.stdout


@pytest.mark.slow
def test_three_bad_cases_are_reported_in_one_message_before_any_conversion(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _generic(raw, n=5)
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 19), np.uint8), np.eye(4)), raw / "labels" / "c0.nii.gz")
    img = np.ones((40, 40, 20), np.float32)
    img[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(img, np.eye(4)), raw / "images" / "c2.nii.gz")
    (raw / "images" / "c4.nii.gz").write_bytes(b"\x1f\x8b truncated")
    config = {"datasets": {"g": {"source": {"format": "generic", "path": "raw"}, "split": {"test_fraction": 0.4},
                                 "training": dict(TINY)}}}
    proc = snakemake(tmp_path, config, "results/g/manifest.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "dataset 'g': 3 problem(s) in 3 of 5 case(s); nothing was converted" in out
    for part in ("case 'c0': label raw/labels/c0.nii.gz has shape (40, 40, 19)",
                 "case 'c2': image raw/images/c2.nii.gz holds 1 NaN",
                 "case 'c4': image: cannot read raw/images/c4.nii.gz"):
        assert out.count(part) == 1, out  # once: in the summary at the end of the run
    assert "Traceback" not in out
    assert len(_lines(proc)) < 45, out
    assert not (tmp_path / "results" / "g" / "data").exists()  # no case was converted
    log = (tmp_path / "results" / "logs" / "check" / "g.log").read_text()
    assert "Traceback" not in log and log.count("case 'c") == 3


def _cases_smaller_than_the_patch(tmp_path: Path) -> dict:
    """Three cases of shape (40, 24, 20) under raw/, and a config whose patch [32, 32, 16] they cannot hold."""
    _generic(tmp_path / "raw", n=3, shape=(40, 24, 20))
    return {"datasets": {"g": {"source": {"format": "generic", "path": "raw"}, "split": {"test_fraction": 0.34},
                               "training": dict(TINY)}}}


@pytest.mark.slow
def test_a_first_run_with_a_patch_larger_than_the_cases_stops_before_training(tmp_path: Path) -> None:
    config = _cases_smaller_than_the_patch(tmp_path)
    proc = snakemake(tmp_path, config)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "dataset 'g': 3 case(s) are smaller than the training patch" in out
    assert "case 'c0' has shape (40, 24, 20), smaller than training.patch_size [32, 32, 16] along axis 1" in out
    assert "Traceback" not in out and not (tmp_path / "results" / "g" / "train").exists()
    # the patch check starts as soon as the dataset check is done (priority): with 2 cores, beside at most
    # one conversion (kept for the next run), and the run stops there
    jobs = re.findall(r"^Job \d+: (check every case|check the training patch|convert)", out, re.M)
    assert jobs[0] == "check every case" and "check the training patch" in jobs[1:3], jobs
    assert jobs.count("convert") <= 1, jobs
    # asking for padding re-checks the patch only (the conversions are not redone)
    config["datasets"]["g"]["training"]["pad_to_patch"] = True
    proc = snakemake(tmp_path, config, "results/g/patch_check.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check every case of g" not in proc.stdout
    report = json.loads((tmp_path / "results" / "g" / "patch_check.json").read_text())
    assert report["padded"] == {f"c{i}": [1] for i in range(3)}
    assert "are zero-padded" in (tmp_path / "results" / "logs" / "check" / "g_patch.log").read_text()


@pytest.mark.slow
def test_patch_larger_than_the_cases_is_an_error_unless_padding_is_asked_for(tmp_path: Path) -> None:
    config = _cases_smaller_than_the_patch(tmp_path)
    report = tmp_path / "results" / "g" / "checks.json"  # a check report of an earlier run
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"cases": {f"c{i}": {"shape": [40, 24, 20]} for i in range(3)}}))
    proc = snakemake(tmp_path, config, "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "dataset 'g': 3 case(s) are smaller than the training patch" in out
    assert "case 'c0' has shape (40, 24, 20), smaller than datasets.g.training.patch_size [32, 32, 16] along axis 1" in out
    assert "training.pad_to_patch: true" in out and len(_lines(proc)) < 10
    config["datasets"]["g"]["training"]["pad_to_patch"] = True
    assert snakemake(tmp_path, config, "-n").returncode == 0
