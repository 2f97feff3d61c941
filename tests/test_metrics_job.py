"""The metrics job of the pipeline: metrics.csv and blobs.csv from NIfTI files, given instances, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blobloss.jobs import metrics_job
from blobloss.io import save_nifti
from blobloss.metrics import BLOB_COLUMNS, CASE_COLUMNS, EXTRA_CASE_COLUMNS

RUN = {"dataset": "toy", "setting": "dice", "seed": 0, "checkpoint": "last"}


@pytest.fixture()
def files(tmp_path):
    """Two 3D cases: c0 with two touching given nuclei (one component), c1 with an extra predicted blob."""
    spacing = (2.0, 1.0, 0.5)
    instances = np.zeros((4, 6, 8), np.uint16)
    instances[1:3, 1:3, 1:3] = 1
    instances[1:3, 1:3, 3:5] = 2
    pred0 = np.zeros((4, 6, 8), np.uint8)
    pred0[1:3, 1:3, 1:3] = 1
    label1 = np.zeros((4, 6, 8), np.uint8)
    label1[0:2, 0:2, 0:2] = 1
    pred1 = label1.copy()
    pred1[3, 5, 7] = 1
    paths = {}
    for name, arr, dtype in (("l0", instances > 0, np.uint8), ("i0", instances, np.uint16), ("p0", pred0, np.uint8),
                             ("l1", label1, np.uint8), ("i1", label1, np.uint16), ("p1", pred1, np.uint8)):
        paths[name] = tmp_path / f"{name}.nii.gz"
        save_nifti(paths[name], arr, spacing=spacing, dtype=dtype)
    return paths


def test_metrics_and_blob_tables(files, tmp_path):
    out, blobs = tmp_path / "eval" / "metrics.csv", tmp_path / "eval" / "blobs.csv"
    table = metrics_job(["c0", "c1"], [files["p0"], files["p1"]], [files["l0"], files["l1"]], out,
                        run=RUN, blobs_csv=blobs)
    written = pd.read_csv(out)
    assert list(written.columns) == [*RUN, "case", *CASE_COLUMNS, *EXTRA_CASE_COLUMNS]
    assert written["case"].tolist() == ["c0", "c1"] and len(table) == 2
    assert written.loc[0, "gt_blobs"] == 1 and written.loc[0, "fn"] == 0          # touching nuclei merge
    assert (written.loc[1, "tp"], written.loc[1, "fp"]) == (1, 1)
    b = pd.read_csv(blobs)
    assert list(b.columns) == [*RUN, "case", *BLOB_COLUMNS, "matching"]
    gt0 = b[(b.case == "c0") & (b.kind == "gt")]
    assert gt0["volume_voxels"].tolist() == [16] and gt0["volume_physical"].tolist() == [16.0]    # 2 x 1 x 0.5 per voxel
    pred1 = b[(b.case == "c1") & (b.kind == "pred")]
    assert pred1["outcome"].tolist() == ["TP", "FP"] and set(b["matching"]) == {"any_overlap"}
    assert set(b["setting"]) == {"dice"}


def test_given_instances_and_iou_matching(files, tmp_path):
    out, blobs = tmp_path / "metrics.csv", tmp_path / "blobs.csv"
    metrics_job(["c0", "c1"], [files["p0"], files["p1"]], [files["l0"], files["l1"]], out, run=RUN,
                blobs_csv=blobs, instance_paths=[files["i0"], files["i1"]], gt_instances="given",
                matching="one_to_one_iou")
    written = pd.read_csv(out)
    assert written.loc[0, "gt_blobs"] == 2 and written.loc[0, "fn"] == 1
    assert written.loc[0, "instance_sensitivity_gt"] == 0.5 and written.loc[0, "cc_dice"] == pytest.approx(0.5)
    b = pd.read_csv(blobs)
    assert b.loc[(b.case == "c0") & (b.kind == "gt"), "detected"].tolist() == [True, False]
    assert set(b["matching"]) == {"one_to_one_iou"}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(gt_instances="given"), "needs one instance map per case"),
        (dict(gt_instances="instances"), "gt_instances must be 'components' or 'given'"),
        (dict(matching="iou"), "matching must be one of"),
        (dict(connectivity=8), r"connectivity=8 is not valid for a 3D label"),
    ],
)
def test_errors(files, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics_job(["c0"], [files["p0"]], [files["l0"]], tmp_path / "m.csv", **kwargs)
    assert not (tmp_path / "m.csv").exists()


def test_given_instances_that_do_not_cover_the_label_name_the_case(files, tmp_path):
    with pytest.raises(ValueError, match=r"case 'c1'.*disagree on"):
        metrics_job(["c1"], [files["p1"]], [files["l1"]], tmp_path / "m.csv", instance_paths=[files["i0"]],
                    gt_instances="given")
