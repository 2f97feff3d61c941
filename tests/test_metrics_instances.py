"""Instance matching: the paper's rule, IS per ground-truth blob, one-to-one IoU, given instances, blob table."""

from __future__ import annotations

import math

import cc3d
import numpy as np
import pandas as pd
import pytest

from blobloss.metrics import (
    BLOB_COLUMNS,
    blob_table,
    case_metrics,
    evaluate_case,
    instance_metrics,
    match_instances,
)

S = slice


def _mask(shape, *slices) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for sl in slices:
        out[sl] = True
    return out


# one ground-truth blob split into five predicted pieces, three other ground-truth blobs missed
FRAGMENTED_GT = _mask((1, 5, 40), (0, S(1, 4), S(1, 12)), (0, S(1, 4), S(15, 18)), (0, S(1, 4), S(22, 25)),
                      (0, S(1, 4), S(30, 33)))
FRAGMENTED_PRED = _mask((1, 5, 40), *[(0, S(2, 3), S(x, x + 1)) for x in (1, 3, 5, 7, 9)])


def test_fragmented_prediction_raises_paper_is_but_not_is_per_gt_blob():
    """The paper's rule counts TPs on the predicted side: 5 TPs, 3 FNs -> IS 0.625; per GT blob 1/4."""
    row = case_metrics(FRAGMENTED_PRED, FRAGMENTED_GT)
    assert (row["tp"], row["fp"], row["fn"], row["gt_blobs"], row["pred_blobs"]) == (5, 0, 3, 4, 5)
    assert row["instance_sensitivity"] == pytest.approx(0.625)
    assert row["instance_sensitivity_gt"] == pytest.approx(0.25)
    # no piece reaches IoU 0.5 with the 33-voxel blob
    assert (row["tp_iou"], row["fp_iou"], row["fn_iou"]) == (0, 5, 4)
    assert (row["instance_sensitivity_iou"], row["instance_precision_iou"], row["f1_iou"]) == (0.0, 0.0, 0.0)


# (id, gt, pred, tp_iou, fp_iou, fn_iou): IoU = |g & p| / |g | p|
IOU_CASES = [
    ("identical", _mask((4, 8), (S(0, 2), S(0, 2))), _mask((4, 8), (S(0, 2), S(0, 2))), 1, 0, 0),
    ("IoU exactly 0.5 matches", _mask((4, 8), (S(0, 1), S(0, 4))), _mask((4, 8), (S(0, 1), S(0, 2))), 1, 0, 0),
    ("IoU 3/7 does not", _mask((4, 8), (S(0, 1), S(0, 5))), _mask((4, 8), (S(0, 1), S(2, 7))), 0, 1, 1),
    ("one pred over two gt", _mask((3, 9), (S(1, 2), S(0, 3)), (S(1, 2), S(5, 8))), _mask((3, 9), (S(1, 2), S(0, 8))),
     0, 1, 2),
    ("shifted by one of four", _mask((4, 8), (S(0, 1), S(0, 4))), _mask((4, 8), (S(0, 1), S(1, 5))), 1, 0, 0),
    ("two good, one missed, one extra",
     _mask((6, 12), (S(0, 2), S(0, 2)), (S(0, 2), S(4, 6)), (S(4, 6), S(0, 2))),
     _mask((6, 12), (S(0, 2), S(0, 2)), (S(0, 2), S(4, 6)), (S(4, 6), S(9, 11))), 2, 1, 1),
]


@pytest.mark.parametrize("case_id,gt,pred,tp,fp,fn", IOU_CASES, ids=[c[0] for c in IOU_CASES])
def test_one_to_one_iou_hand_cases(case_id, gt, pred, tp, fp, fn):
    row = case_metrics(pred, gt)
    assert (row["tp_iou"], row["fp_iou"], row["fn_iou"]) == (tp, fp, fn)
    sens, prec = tp / (tp + fn), tp / (tp + fp)
    assert row["instance_sensitivity_iou"] == pytest.approx(sens)
    assert row["instance_precision_iou"] == pytest.approx(prec)
    assert row["f1_iou"] == pytest.approx(0.0 if tp == 0 else 2 * sens * prec / (sens + prec))


def test_iou_tie_at_one_half_is_settled_one_to_one():
    """Given instances can make one prediction reach IoU 0.5 with two blobs; it matches one of them."""
    instances = np.zeros((1, 2, 4), np.uint16)
    instances[0, :, 0:2] = 1
    instances[0, :, 2:4] = 2     # two touching given nuclei of 4 voxels each
    pred = np.ones((1, 2, 4), bool)
    m = match_instances(pred, instances > 0, gt_instances=instances)
    assert m.n_gt == 2 and m.n_pred == 1
    assert m.gt_iou.tolist() == [0.5, 0.5]
    assert m.gt_match.tolist() == [1, 0] and m.pred_match.tolist() == [1]  # the smaller gt id wins the tie
    assert (m.tp, m.fp, m.fn, m.tp_iou) == (1, 0, 0, 1)


def test_given_instances_keep_touching_nuclei_apart():
    instances = np.zeros((6, 10), np.int32)
    instances[1:4, 1:4] = 7
    instances[1:4, 4:7] = 3      # touches the first: one connected component
    gt = instances > 0
    pred = np.zeros_like(gt)
    pred[2, 2] = True            # finds only the first nucleus
    as_components = case_metrics(pred, gt)
    given = case_metrics(pred, gt, gt_instances=instances)
    assert (as_components["gt_blobs"], as_components["fn"], as_components["instance_sensitivity_gt"]) == (1, 0, 1.0)
    assert (given["gt_blobs"], given["fn"], given["instance_sensitivity_gt"]) == (2, 1, 0.5)
    # ids are renumbered in order (3 -> 1, 7 -> 2)
    m = match_instances(pred, gt, gt_instances=instances)
    assert m.gt_labels[2, 2] == 2 and m.gt_labels[2, 5] == 1


@pytest.mark.parametrize(
    "instances,match",
    [
        (np.zeros((6, 10), np.int32), "disagree on 18 foreground voxels"),
        (np.zeros((6, 9), np.int32), r"shape of gt.*\(6, 9\).*\(6, 10\)"),
        (np.zeros((6, 10), np.float32), "integer instance ids"),
    ],
)
def test_given_instances_errors(instances, match):
    gt = np.zeros((6, 10), bool)
    gt[1:4, 1:4] = gt[1:4, 5:8] = True
    with pytest.raises(ValueError, match=match):
        match_instances(gt, gt, gt_instances=instances)


def _brute_force(pred, gt, connectivity):
    lp, n_pred = cc3d.connected_components(pred, connectivity=connectivity, return_N=True)
    lg, n_gt = cc3d.connected_components(gt, connectivity=connectivity, return_N=True)
    iou = np.zeros((n_gt, n_pred))
    for g in range(1, n_gt + 1):
        for p in range(1, n_pred + 1):
            inter = np.sum((lg == g) & (lp == p))
            iou[g - 1, p - 1] = inter / np.sum((lg == g) | (lp == p))
    return lp, lg, iou


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("connectivity", [6, 26])
def test_matching_equals_brute_force(seed, connectivity):
    rng = np.random.default_rng(seed)
    gt = rng.random((6, 10, 10)) < 0.15
    pred = gt ^ (rng.random((6, 10, 10)) < 0.08)
    m = match_instances(pred, gt, connectivity=connectivity)
    lp, lg, iou = _brute_force(pred, gt, connectivity)
    assert np.array_equal(m.pred_labels, lp) and np.array_equal(m.gt_labels, lg)
    assert np.allclose(m.gt_iou, iou.max(axis=1, initial=0)) and np.allclose(m.pred_iou, iou.max(axis=0, initial=0))
    assert np.array_equal(m.gt_overlap, (iou > 0).any(axis=1)) and np.array_equal(m.pred_overlap, (iou > 0).any(axis=0))
    assert np.array_equal(m.gt_voxels, np.bincount(lg.ravel())[1:]) and np.array_equal(m.pred_voxels, np.bincount(lp.ravel())[1:])
    # with components on both sides, IoU >= 0.5 pairs are one-to-one by themselves
    expected = {(g + 1, p + 1) for g, p in zip(*np.nonzero(iou >= 0.5))}
    assert {(g + 1, int(p)) for g, p in enumerate(m.gt_match) if p} == expected
    assert instance_metrics(pred, gt, connectivity)["tp"] == m.tp


# empty conventions of the extra columns: (gt empty, pred empty) -> IS per gt blob, IS/IP/F1 by IoU
EMPTY = {
    (True, True): (1.0, 1.0, 1.0, 1.0),
    (True, False): (math.nan, math.nan, 0.0, 0.0),
    (False, True): (0.0, 0.0, math.nan, 0.0),
}


@pytest.mark.parametrize("key", list(EMPTY))
def test_extra_columns_empty_conventions(key):
    blob = _mask((5, 5), (S(1, 3), S(1, 3)))
    gt = np.zeros_like(blob) if key[0] else blob
    pred = np.zeros_like(blob) if key[1] else blob
    row = case_metrics(pred, gt)
    got = (row["instance_sensitivity_gt"], row["instance_sensitivity_iou"], row["instance_precision_iou"], row["f1_iou"])
    for a, b in zip(got, EMPTY[key]):
        assert (math.isnan(a) and math.isnan(b)) or a == b, (got, EMPTY[key])


def test_blob_table_columns_volumes_and_outcomes():
    gt = _mask((2, 4, 10), (S(0, 2), S(0, 2), S(0, 2)), (S(0, 1), S(0, 1), S(6, 8)))   # 8 and 2 voxels
    pred = _mask((2, 4, 10), (S(0, 2), S(0, 2), S(0, 1)), (S(1, 2), S(3, 4), S(9, 10)))  # 4 (IoU 0.5) and 1 (FP)
    m = match_instances(pred, gt)
    table = blob_table(m, spacing=(2.0, 0.5, 1.0))
    assert tuple(table.columns) == BLOB_COLUMNS
    gt_rows, pred_rows = table[table.kind == "gt"], table[table.kind == "pred"]
    assert gt_rows["id"].tolist() == [1, 2] and pred_rows["id"].tolist() == [1, 2]
    assert gt_rows["volume_voxels"].tolist() == [8, 2] and gt_rows["volume_physical"].tolist() == [8.0, 2.0]
    assert pred_rows["volume_voxels"].tolist() == [4, 1] and pred_rows["volume_physical"].tolist() == [4.0, 1.0]
    assert gt_rows["outcome"].tolist() == ["TP", "FN"] and pred_rows["outcome"].tolist() == ["TP", "FP"]
    assert gt_rows["iou"].tolist() == [0.5, 0.0] and gt_rows["iou_match"].tolist() == [True, False]
    strict = blob_table(m, matching="one_to_one_iou")
    assert strict["detected"].tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="matching must be one of"):
        blob_table(m, matching="iou")


def test_blob_table_of_an_empty_case():
    empty = np.zeros((4, 4), bool)
    table = blob_table(match_instances(empty, empty))
    assert len(table) == 0 and tuple(table.columns) == BLOB_COLUMNS


def test_evaluate_case_blob_table_agrees_with_row():
    rng = np.random.default_rng(11)
    gt = rng.random((8, 12, 12)) < 0.1
    pred = rng.random((8, 12, 12)) < 0.1
    row, blobs = evaluate_case(pred, gt, spacing=(2.0, 1.0, 1.0))
    assert isinstance(blobs, pd.DataFrame)
    assert (blobs.kind == "gt").sum() == row["gt_blobs"] and (blobs.kind == "pred").sum() == row["pred_blobs"]
    assert ((blobs.kind == "pred") & (blobs.outcome == "TP")).sum() == row["tp"]
    assert ((blobs.kind == "gt") & (blobs.outcome == "FN")).sum() == row["fn"]
    assert blobs.loc[blobs.kind == "gt", "volume_physical"].sum() == pytest.approx(2.0 * gt.sum())
    with pytest.raises(ValueError, match="matching must be one of"):
        evaluate_case(pred, gt, matching="overlap")


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = set(zip(a[a > 0].tolist(), b[b > 0].tolist()))
    return len(pairs) == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


@pytest.mark.parametrize("ndim,connectivity", [(2, 4), (2, 8), (3, 6), (3, 18), (3, 26)])
def test_labelling_equals_scipy_on_random_and_tiny_masks(ndim, connectivity):
    """Blob labels equal scipy.ndimage.label's (cc3d 4.1.1 alone fails this on some 2D and tiny masks)."""
    from scipy import ndimage

    rank = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}[connectivity]
    rng = np.random.default_rng(connectivity)
    for _ in range(150):
        shape = tuple(int(n) for n in rng.integers(1, 9 if ndim == 3 else 40, size=ndim))
        mask = rng.random(shape) < rng.uniform(0.05, 0.6)
        expected, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(ndim, rank))
        m = match_instances(mask, mask, connectivity=connectivity)
        assert m.n_gt == n and _same_partition(m.gt_labels, expected), shape
        assert np.array_equal(np.unique(m.gt_labels[mask]), np.arange(1, n + 1)), shape
