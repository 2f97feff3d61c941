"""Tests for blobloss.data.checks: every integrity error names the case, the file and the fix.

Most errors are triggered end to end through discover_cases / convert_case on tiny files, and each test
also checks that nothing was written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blobloss.data import checks
from blobloss.data.checks import DataIntegrityError
from blobloss.data.convert import convert_case, discover_cases
from blobloss.io import save_nifti, save_tiff

SHAPE = (5, 4, 3)


def cfg(root: Path, **source: Any) -> dict[str, Any]:
    src = {"format": "generic", "path": str(root), "image_glob": "images/*.nii.gz", "label_glob": "labels/*.nii.gz"}
    src.update(source)
    return {"name": "t", "source": src, "normalization": {"method": "minmax"}}


def good_image() -> np.ndarray:
    return np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)


def good_label() -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[1, 1, 1] = 1
    return lab


def convert(dataset: dict[str, Any], case: str, out: Path) -> dict[str, Any]:
    sources = discover_cases(dataset)[case]
    return convert_case(dataset, case, sources, out / "image.nii.gz", out / "label.nii.gz", out / "meta.json")


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} missing from: {message}"


# ---------------------------------------------------------------- end to end, one test per error


def test_shape_mismatch(tmp_path):
    save_nifti(tmp_path / "images" / "c1.nii.gz", good_image())
    save_nifti(tmp_path / "labels" / "c1.nii.gz", np.zeros((5, 4, 2), np.uint8))
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", "labels/c1.nii.gz", "images/c1.nii.gz", "(5, 4, 2)", "(5, 4, 3)", "resample")
    assert not (tmp_path / "out").exists()


def test_4d_image_shape_mismatch_reports_spatial_shapes(tmp_path):
    save_nifti(tmp_path / "images" / "c1.nii.gz", np.zeros((5, 4, 2, 3), np.float32))
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path, channels_last=True), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", "labels/c1.nii.gz", "(5, 4, 3) but image", "has (5, 4, 2)")


@pytest.mark.parametrize(
    ("image_shape", "label_shape", "expect"),
    [
        # a 4D image beside a 3D label: channels only where declared, never silently
        ((5, 4, 3, 3), (5, 4, 3), ["images/c1.nii.gz", "(5, 4, 3, 3)", "one axis more", "source.channels_last: true",
                                   "source.channel_suffixes", "time series"]),
        # a 4D image beside a 4D label: the label is not 2D/3D
        ((5, 4, 3, 2), (5, 4, 3, 2), ["labels/c1.nii.gz", "4 axes", "2D or 3D", "argmax", "time point"]),
        # a 5D image beside a 3D label
        ((5, 4, 3, 2, 2), (5, 4, 3), ["images/c1.nii.gz", "5 axes", "2D or 3D"]),
    ],
)
def test_4d_files_get_a_clear_error_naming_the_file_and_the_channel_options(tmp_path, image_shape, label_shape, expect):
    save_nifti(tmp_path / "images" / "c1.nii.gz", np.zeros(image_shape, np.float32))
    save_nifti(tmp_path / "labels" / "c1.nii.gz", np.zeros(label_shape, np.uint8))
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", *expect)
    assert len(str(exc.value).replace(str(tmp_path), "")) < 330  # one short message
    assert not (tmp_path / "out").exists()


def test_4d_image_with_declared_channels_last_is_read_as_channels(tmp_path):
    save_nifti(tmp_path / "images" / "c1.nii.gz", np.random.default_rng(0).random((5, 4, 3, 2)).astype(np.float32))
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    meta = convert(cfg(tmp_path, channels_last=True), "c1", tmp_path / "out")
    assert meta["channels"] == 2 and meta["shape"] == [5, 4, 3]


def test_spacing_mismatch(tmp_path):
    save_nifti(tmp_path / "images" / "c1.nii.gz", good_image(), spacing=(1.0, 1.0, 3.0))
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label(), spacing=(1.0, 1.0, 3.01))
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", "labels/c1.nii.gz", "images/c1.nii.gz", "3.01", "spacing")
    assert not (tmp_path / "out").exists()


def test_spacing_within_tolerance_passes_and_override_skips_check(tmp_path):
    save_nifti(tmp_path / "images" / "c1.nii.gz", good_image(), spacing=(1.0, 1.0, 3.0))
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label(), spacing=(1.0, 1.0, 3.002))
    assert convert(cfg(tmp_path), "c1", tmp_path / "a")["spacing"] == [1.0, 1.0, 3.0]
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label(), spacing=(1.0, 1.0, 5.0))
    dataset = {**cfg(tmp_path), "spacing": [1.0, 1.0, 4.0]}
    assert convert(dataset, "c1", tmp_path / "b")["spacing"] == [1.0, 1.0, 4.0]


def test_channel_shape_mismatch(tmp_path):
    save_nifti(tmp_path / "images" / "c1_0000.nii.gz", good_image())
    save_nifti(tmp_path / "images" / "c1_0001.nii.gz", np.zeros((5, 4, 4), np.float32))
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path, channel_suffixes=["_0000", "_0001"]), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", "c1_0000.nii.gz", "c1_0001.nii.gz", "(5, 4, 4)", "resample")
    assert not (tmp_path / "out").exists()


def test_channel_spacing_mismatch(tmp_path):
    save_nifti(tmp_path / "images" / "c1_0000.nii.gz", good_image(), spacing=(1.0, 1.0, 1.0))
    save_nifti(tmp_path / "images" / "c1_0001.nii.gz", good_image(), spacing=(1.0, 1.0, 2.0))
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path, channel_suffixes=["_0000", "_0001"]), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", "channel image", "c1_0001.nii.gz", "c1_0000.nii.gz")


@pytest.mark.parametrize(
    ("label", "expect"),
    [
        (np.where(good_label() > 0, 0.5, 0.0).astype(np.float32), "non-integer values (e.g. 0.5)"),
        (np.where(good_label() > 0, -1, 0).astype(np.int16), "negative values (minimum -1)"),
        (np.where(good_label() > 0, -2.0, 0.0).astype(np.float32), "negative values (minimum -2)"),
        (np.where(good_label() > 0, np.nan, 0.0).astype(np.float32), "NaN/Inf"),
    ],
    ids=["fractional", "negative-int", "negative-float", "nan"],
)
def test_bad_label_values(tmp_path, label, expect):
    save_nifti(tmp_path / "images" / "c1.nii.gz", good_image())
    save_nifti(tmp_path / "labels" / "c1.nii.gz", label)
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", "labels/c1.nii.gz", expect)
    assert not (tmp_path / "out").exists()


def test_float_label_with_integral_values_is_accepted(tmp_path):
    save_nifti(tmp_path / "images" / "c1.nii.gz", good_image())
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label().astype(np.float32))
    assert convert(cfg(tmp_path), "c1", tmp_path / "out")["label_voxels"] == 1


@pytest.mark.parametrize(("bad", "expect"), [(np.nan, "1 NaN and 0 Inf"), (np.inf, "0 NaN and 1 Inf")])
def test_nonfinite_intensities(tmp_path, bad, expect):
    img = good_image()
    img[0, 0, 0] = bad
    save_nifti(tmp_path / "images" / "c1.nii.gz", img)
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", "images/c1.nii.gz", expect)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("which", ["images", "labels"])
def test_corrupt_file(tmp_path, which):
    save_nifti(tmp_path / "images" / "c1.nii.gz", good_image())
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    bad = tmp_path / which / "c1.nii.gz"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DataIntegrityError) as exc:
        convert(cfg(tmp_path), "c1", tmp_path / "out")
    assert_names(str(exc.value), "case 'c1'", f"{which}/c1.nii.gz", "corrupt")
    assert not (tmp_path / "out").exists()


def test_missing_pairs_listed_both_ways(tmp_path):
    for case in ("a", "b"):
        save_nifti(tmp_path / "images" / f"{case}.nii.gz", good_image())
    for case in ("b", "c"):
        save_nifti(tmp_path / "labels" / f"{case}.nii.gz", good_label())
    with pytest.raises(DataIntegrityError) as exc:
        discover_cases(cfg(tmp_path))
    msg = str(exc.value)
    assert_names(msg, "images without a label: case 'a'", "images/a.nii.gz", "labels without an image: case 'c'",
                 "labels/c.nii.gz", "glob")
    assert "'b'" not in msg


def test_missing_channel_file(tmp_path):
    save_nifti(tmp_path / "images" / "c1_0000.nii.gz", good_image())
    save_nifti(tmp_path / "images" / "c2_0000.nii.gz", good_image())
    save_nifti(tmp_path / "images" / "c2_0001.nii.gz", good_image())
    for case in ("c1", "c2"):
        save_nifti(tmp_path / "labels" / f"{case}.nii.gz", good_label())
    with pytest.raises(DataIntegrityError) as exc:
        discover_cases(cfg(tmp_path, channel_suffixes=["_0000", "_0001"]))
    assert_names(str(exc.value), "case 'c1'", "['_0001']", "c1_0000.nii.gz", "channel_suffixes")
    assert "'c2'" not in str(exc.value)


def test_nnunet_missing_channel_file(tmp_path):
    (tmp_path / "dataset.json").write_text('{"channel_names": {"0": "T1", "1": "T2"}, "file_ending": ".nii.gz"}')
    save_nifti(tmp_path / "imagesTr" / "x_001_0000.nii.gz", good_image())
    save_nifti(tmp_path / "labelsTr" / "x_001.nii.gz", good_label())
    with pytest.raises(DataIntegrityError) as exc:
        discover_cases({"name": "t", "source": {"format": "nnunet", "path": str(tmp_path)}})
    assert_names(str(exc.value), "case 'x_001'", "x_001_0001.nii.gz", "2 channel(s)")


def test_file_without_channel_suffix(tmp_path):
    save_nifti(tmp_path / "images" / "c1_0000.nii.gz", good_image())
    save_nifti(tmp_path / "images" / "stray.nii.gz", good_image())
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    with pytest.raises(DataIntegrityError, match=r"stray\.nii\.gz.*channel_suffixes"):
        discover_cases(cfg(tmp_path, channel_suffixes=["_0000"]))


def test_label_without_label_suffix(tmp_path):
    save_nifti(tmp_path / "images" / "c1.nii.gz", good_image())
    save_nifti(tmp_path / "labels" / "c1.nii.gz", good_label())
    with pytest.raises(DataIntegrityError, match=r"labels/c1\.nii\.gz.*label_suffix '_seg'"):
        discover_cases(cfg(tmp_path, label_suffix="_seg"))


def test_tiff_without_spacing_needs_config_spacing(tmp_path):
    save_tiff(tmp_path / "images" / "s1.tif", good_image().astype(np.uint16))
    save_tiff(tmp_path / "labels" / "s1.tif", good_label())
    dataset = cfg(tmp_path, format="lightsheet", image_glob="images/*.tif", label_glob="labels/*.tif")
    with pytest.raises(DataIntegrityError) as exc:
        convert(dataset, "s1", tmp_path / "out")
    assert_names(str(exc.value), "case 's1'", "images/s1.tif", "set `spacing`")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the check functions directly


@pytest.mark.parametrize(
    ("call", "ok"),
    [
        (lambda: checks.check_shapes("c", (2, 3), (2, 3), "i", "l"), True),
        (lambda: checks.check_shapes("c", (2, 3), (3, 2), "i", "l"), False),
        (lambda: checks.check_spacing("c", (1.0, 2.0), (1.0005, 2.0), "i", "l"), True),
        (lambda: checks.check_spacing("c", (1.0, 2.0), (1.0, 2.01), "i", "l"), False),
        (lambda: checks.check_spacing("c", (1.0, 2.0), (1.0, 2.0, 1.0), "i", "l"), False),
        (lambda: checks.check_channel_shapes("c", [(2, 2), (2, 2)], ["a", "b"]), True),
        (lambda: checks.check_channel_shapes("c", [(2, 2), (2, 3)], ["a", "b"]), False),
        (lambda: checks.check_label_values("c", np.array([0, 1, 255], np.uint8), "l"), True),
        (lambda: checks.check_label_values("c", np.array([True, False]), "l"), True),
        (lambda: checks.check_label_values("c", np.array([0.0, 3.0]), "l"), True),
        (lambda: checks.check_label_values("c", np.array([0.0, 1e-3]), "l"), False),
        (lambda: checks.check_label_values("c", np.array(["a"]), "l"), False),
        (lambda: checks.check_finite("c", np.zeros(3, np.int16), "i"), True),
        (lambda: checks.check_finite("c", np.array([0.0, -np.inf]), "i"), False),
        (lambda: checks.check_spacing_given("c", (1.0, 0.5), "i"), True),
        (lambda: checks.check_spacing_given("c", None, "i"), False),
        (lambda: checks.check_spacing_given("c", (1.0, 0.0), "i"), False),
        (lambda: checks.check_pairs({"a": "x"}, {"a": "y"}), True),
        (lambda: checks.check_pairs({"a": "x"}, {}), False),
    ],
)
def test_check_table(call, ok):
    if ok:
        call()
    else:
        with pytest.raises(DataIntegrityError, match=re.escape("case 'c'") + "|images without"):
            call()


def test_error_is_a_value_error():
    assert issubclass(DataIntegrityError, ValueError)


# ---------------------------------------------------------------- the patch-size rule, in one place


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patch_size": [40, 32, 16]}, "ConfigError", "multiples of 16"),
        ({"patch_size": [16, 16, 16]}, "ConfigError", "too small"),
        ({"patch_size": [32]}, "ConfigError", "2 or 3 entries"),
        ({"patch_size": [32, 32], "shape": (40, 30), "case": "c1"}, "DataIntegrityError",
         r"case 'c1' has shape \(40, 30\), smaller than training.patch_size \[32, 32\] along axis 1; .*pad_to_patch: true"),
        ({"patch_size": [32, 32], "shape": (40, 30, 2)}, "DataIntegrityError", "3 spatial axes"),
    ],
)
def test_patch_size_rule_errors(kwargs, error, match):
    from blobloss import errors

    with pytest.raises(getattr(errors, error), match=match):
        checks.check_patch_size(**kwargs)


def test_patch_size_fits_or_pads_with_a_warning():
    from blobloss.errors import PatchPaddingWarning

    assert checks.check_patch_size([32, 32], (32, 40)) == []
    with pytest.warns(PatchPaddingWarning, match="zero-padded"):
        assert checks.check_patch_size([32, 32, 16], (20, 40, 8), pad=True) == [0, 2]


# ---------------------------------------------------------------- every case of a dataset at once


def _dataset_of(tmp_path, n=4, shape=SHAPE):
    for i in range(n):
        save_nifti(tmp_path / "images" / f"c{i}.nii.gz", np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
        lab = np.zeros(shape, np.uint8)
        lab[1, 1, 1] = 1
        save_nifti(tmp_path / "labels" / f"c{i}.nii.gz", lab)
    return cfg(tmp_path)


def test_check_dataset_reports_every_bad_case_at_once(tmp_path):
    ds = _dataset_of(tmp_path, n=5)
    save_nifti(tmp_path / "labels" / "c0.nii.gz", np.zeros((5, 4, 2), np.uint8))
    img = good_image()
    img[0, 0, 0] = np.inf
    save_nifti(tmp_path / "images" / "c2.nii.gz", img)
    save_nifti(tmp_path / "labels" / "c3.nii.gz", np.full(SHAPE, -1, np.int16))
    with pytest.raises(DataIntegrityError) as exc:
        checks.check_dataset(ds, discover_cases(ds), threads=2)
    msg = str(exc.value)
    assert msg.startswith("dataset 't': 3 problem(s) in 3 of 5 case(s); nothing was converted")
    lines = msg.splitlines()
    assert [ln.split(":")[0].strip() for ln in lines[1:]] == ["case 'c0'", "case 'c2'", "case 'c3'"]
    assert_names(msg, "(5, 4, 2)", "1 Inf", "negative")


def test_check_dataset_checks_channels_across_cases_patch_and_empty_labels(tmp_path):
    ds = _dataset_of(tmp_path, n=3)
    cases = discover_cases(ds)
    report = checks.check_dataset(ds, cases)
    assert report["n_cases"] == 3 and report["cases"]["c1"]["shape"] == list(SHAPE)
    assert report["cases"]["c1"]["label_voxels"] == 1 and report["empty"] == []
    with pytest.raises(DataIntegrityError, match=r"(?s)3 problem\(s\) in 3 of 3.*smaller than training.patch_size"):
        checks.check_dataset(ds, cases, patch_size=[32, 32, 16])
    assert checks.check_dataset(ds, cases, patch_size=[32, 32, 16], pad_to_patch=True)["padded"]["c0"] == [0, 1, 2]
    for i in range(3):
        save_nifti(tmp_path / "labels" / f"c{i}.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(DataIntegrityError, match=r"(?s)1 problem\(s\) of the dataset as a whole \(3 case\(s\) checked\)"
                       ".*every label of the dataset is empty"):
        checks.check_dataset(ds, cases)


def test_check_dataset_reports_cases_with_other_channels(tmp_path):
    ds = _dataset_of(tmp_path, n=3)
    ds["source"]["channels_last"] = True
    save_nifti(tmp_path / "images" / "c2.nii.gz", np.zeros(SHAPE + (2,), np.float32))
    with pytest.raises(DataIntegrityError, match=r"case\(s\) \['c2'\] have 2 channel\(s\) but 2 other case\(s\) have 1"):
        checks.check_dataset(ds, discover_cases(ds))


def test_check_dataset_notes_binarized_labels_once(tmp_path):
    ds = _dataset_of(tmp_path, n=2)
    lab = np.zeros(SHAPE, np.uint8)
    lab[1, 1, 1] = 255
    save_nifti(tmp_path / "labels" / "c1.nii.gz", lab)
    report = checks.check_dataset(ds, discover_cases(ds))
    assert report["binarized"] == ["c1"]
    assert [n for n in report["notes"] if "binarized" in n] == [
        "1 case(s) have labels with values other than 0/1 (e.g. c1: [0, 255]); they are binarized (foreground = "
        "every value > 0)"]


# ---------------------------------------------------------------- the manifest's last checks before training


@pytest.mark.parametrize(
    ("split", "empty", "match"),
    [
        (["train", "test"], [True, True], "every label is empty"),
        (["train", "train", "test"], [True, True, False], "every training case has an empty label"),
        (["train", "val"], [False, False], "no test case"),
    ],
)
def test_manifest_rejects_a_dataset_that_cannot_train_or_evaluate(split, empty, match):
    import pandas as pd

    from blobloss.data.manifest import check_manifest

    m = pd.DataFrame({"case": [f"c{i}" for i in range(len(split))], "split": split, "empty": empty,
                      "binarized": False})
    with pytest.raises(DataIntegrityError, match=match):
        check_manifest(m, "d")


def test_the_patch_against_every_case_of_a_check_report(tmp_path):
    from blobloss.jobs import check_patch_job

    shapes = {"a": [40, 40, 20], "b": [40, 24, 20], "c": [16, 24, 20]}
    with pytest.raises(DataIntegrityError) as err:
        checks.check_patch_against_cases(shapes, [32, 32, 16], dataset="d")
    msg = str(err.value)
    assert msg.startswith("dataset 'd': 2 case(s) are smaller than the training patch:")
    assert "case 'b' has shape (40, 24, 20)" in msg and "case 'c' has shape (16, 24, 20)" in msg
    assert "case 'a'" not in msg and "training.pad_to_patch: true" in msg
    assert checks.check_patch_against_cases(shapes, [32, 32, 16], pad=True) == {"b": [1], "c": [0, 1]}
    # the job: from the dataset check's report, all cases at once; the padded cases written
    report = tmp_path / "checks.json"
    report.write_text(json.dumps({"dataset": "d", "cases": {k: {"shape": v} for k, v in shapes.items()}}))
    with pytest.raises(DataIntegrityError, match="2 case"):
        check_patch_job(report, [32, 32, 16], False, tmp_path / "patch.json")
    assert not (tmp_path / "patch.json").exists()
    assert check_patch_job(report, [16, 16, 32], True, tmp_path / "patch.json") == {k: [2] for k in shapes}
    assert check_patch_job(report, [16, 32, 16], True, tmp_path / "patch.json") == {"b": [1], "c": [1]}
    assert json.loads((tmp_path / "patch.json").read_text()) == {"patch_size": [16, 32, 16], "pad_to_patch": True,
                                                                  "padded": {"b": [1], "c": [1]}}
