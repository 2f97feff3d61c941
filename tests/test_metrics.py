"""Tests for blobloss.metrics (docs/definitions.md section 5): reference cases, hand-checkable cases,
conventions, errors."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from pymia.evaluation import metric as pymia_metric

from blobloss.metrics import (
    AGGREGATE_MEAN_COLUMNS,
    CASE_COLUMNS,
    EXTRA_CASE_COLUMNS,
    aggregate,
    case_metrics,
    instance_metrics,
    to_sitk_image,
    volumetric_metrics,
)

NAN = float("nan")


# --------------------------------------------------------------------------------------------------
# reference data
# --------------------------------------------------------------------------------------------------
def _reference_dir() -> Path:
    local = Path(__file__).resolve().parent / "data"
    if (local / "metrics_cases.json").is_file() and (local / "metrics_cases.npz").is_file():
        return local
    return Path(__file__).resolve().parents[2] / "shared" / "reference"


REF_DIR = _reference_dir()
with open(REF_DIR / "metrics_cases.json", encoding="utf-8") as fh:
    REF_CASES: dict = json.load(fh)["cases"]
with np.load(REF_DIR / "metrics_cases.npz") as _npz:
    REF_ARRAYS = {key: _npz[key] for key in _npz.files}

EMPTY_REF = {"both_empty", "empty_pred", "empty_gt"}
NONEMPTY_REF = sorted(set(REF_CASES) - EMPTY_REF)


def _ref(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return REF_ARRAYS[f"{name}__pred"], REF_ARRAYS[f"{name}__gt"], REF_ARRAYS[f"{name}__spacing"]


def _same(actual: float, expected: float, tol: float = 1e-6) -> bool:
    """Equality that treats NaN == NaN."""
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    return actual == pytest.approx(expected, abs=tol)


def _box(shape, *slices) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for sl in slices:
        out[sl] = True
    return out


def test_reference_files_present():
    assert len(REF_CASES) == 10
    assert set(EMPTY_REF) <= set(REF_CASES)
    for name in REF_CASES:
        pred, gt, spacing = _ref(name)
        assert pred.shape == gt.shape and spacing.shape == (pred.ndim,)


# --------------------------------------------------------------------------------------------------
# reference cases (values from pymia with spacing on SimpleITK images; counts by the definition)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NONEMPTY_REF)
def test_volumetric_matches_reference(name):
    pred, gt, spacing = _ref(name)
    expected = REF_CASES[name]["volumetric_with_spacing"]
    got = volumetric_metrics(pred, gt, spacing=spacing, tolerance=1.0)
    assert got["dsc"] == pytest.approx(expected["DICE"], abs=1e-6)
    assert got["sensitivity"] == pytest.approx(expected["SNSVTY"], abs=1e-6)
    assert got["precision"] == pytest.approx(expected["PRCISON"], abs=1e-6)
    assert got["surface_dice"] == pytest.approx(expected["SURFDICE"], abs=1e-6)
    got2 = volumetric_metrics(pred, gt, spacing=spacing, tolerance=2.0)
    assert got2["surface_dice"] == pytest.approx(expected["SURFDICE_2mm"], abs=1e-6)


@pytest.mark.parametrize("connectivity", [26, 6])
@pytest.mark.parametrize("name", NONEMPTY_REF)
def test_instance_matches_reference(name, connectivity):
    pred, gt, _ = _ref(name)
    expected = REF_CASES[name][f"instance_conn{connectivity}"]
    got = instance_metrics(pred, gt, connectivity=connectivity)
    assert (got["tp"], got["fp"], got["fn"]) == (expected["tp"], expected["fp"], expected["fn"])
    assert got["instance_sensitivity"] == pytest.approx(expected["S"], abs=1e-6)
    assert got["instance_precision"] == pytest.approx(expected["P"], abs=1e-6)
    assert got["f1"] == pytest.approx(expected["F1"], abs=1e-6)


@pytest.mark.parametrize("name", sorted(EMPTY_REF))
def test_reference_empty_cases_counts_and_conventions(name):
    """The JSON's empty rows hold pymia's raw sentinels; the counts still hold, the scores follow docs/definitions.md section 5."""
    pred, gt, spacing = _ref(name)
    expected = REF_CASES[name]["instance_conn26"]
    row = case_metrics(pred, gt, spacing=spacing)
    assert (row["tp"], row["fp"], row["fn"]) == (expected["tp"], expected["fp"], expected["fn"])
    key = (bool(row["gt_empty"]), bool(row["pred_empty"]))
    for column, value in EMPTY_CASE_TABLE[key].items():
        assert _same(row[column], value), (name, column, row[column], value)
    # and never pymia's sentinels
    assert not any(isinstance(v, float) and math.isinf(v) for v in row.values())


# --------------------------------------------------------------------------------------------------
# docs/definitions.md section 5 empty-case table, 2D and 3D
# --------------------------------------------------------------------------------------------------
EMPTY_CASE_TABLE = {
    # (gt_empty, pred_empty): values
    (True, True): dict(dsc=1.0, sensitivity=NAN, precision=NAN, surface_dice=1.0,
                       instance_sensitivity=1.0, instance_precision=1.0, f1=1.0),
    (True, False): dict(dsc=0.0, sensitivity=NAN, precision=0.0, surface_dice=0.0,
                        instance_sensitivity=NAN, instance_precision=0.0, f1=0.0),
    (False, True): dict(dsc=0.0, sensitivity=0.0, precision=NAN, surface_dice=0.0,
                        instance_sensitivity=0.0, instance_precision=NAN, f1=0.0),
}


@pytest.mark.parametrize("shape", [(6, 7), (5, 6, 7)])
@pytest.mark.parametrize("key", list(EMPTY_CASE_TABLE))
def test_empty_case_conventions(shape, key):
    gt_empty, pred_empty = key
    blob = np.zeros(shape, dtype=bool)
    blob[(slice(1, 3),) * len(shape)] = True
    gt = np.zeros(shape, bool) if gt_empty else blob
    pred = np.zeros(shape, bool) if pred_empty else blob
    row = case_metrics(pred, gt)
    assert row["gt_empty"] is gt_empty and row["pred_empty"] is pred_empty
    for column, value in EMPTY_CASE_TABLE[key].items():
        assert _same(row[column], value), (column, row[column], value)


def test_no_warnings_from_pymia_or_scipy():
    """Empty cases must not trigger pymia's NotComputableMetricWarning; SciPy deprecations are silenced."""
    pred, gt, spacing = _ref("spheres_iso")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        volumetric_metrics(pred, gt, spacing=spacing)
        for name in EMPTY_REF:
            p, g, s = _ref(name)
            volumetric_metrics(p, g, spacing=s)


# --------------------------------------------------------------------------------------------------
# instance rule, hand-checkable
# --------------------------------------------------------------------------------------------------
S = slice
INSTANCE_CASES = [
    # id, gt, pred, connectivity, (tp, fp, fn)
    ("one pred over two gt (3D)",
     _box((3, 5, 9), (S(1, 2), S(1, 4), S(1, 4)), (S(1, 2), S(1, 4), S(5, 8))),
     _box((3, 5, 9), (S(1, 2), S(2, 3), S(2, 7))), 26, (1, 0, 0)),
    ("one pred over two gt (2D)",
     _box((5, 9), (S(1, 4), S(1, 4)), (S(1, 4), S(5, 8))),
     _box((5, 9), (S(2, 3), S(2, 7))), 8, (1, 0, 0)),
    ("two pred over one gt", _box((1, 4, 10), (S(0, 1), S(1, 3), S(1, 9))),
     _box((1, 4, 10), (S(0, 1), S(1, 3), S(1, 3)), (S(0, 1), S(1, 3), S(6, 8))), 26, (2, 0, 0)),
    ("missed gt blob and extra pred blob",
     _box((4, 12), (S(0, 2), S(0, 2)), (S(0, 2), S(5, 7))),
     _box((4, 12), (S(1, 2), S(1, 2)), (S(3, 4), S(10, 12))), 8, (1, 1, 1)),
    ("no overlap at all", _box((4, 8), (S(0, 2), S(0, 2))), _box((4, 8), (S(2, 4), S(5, 8))), 8, (0, 1, 1)),
    ("identical", _box((6, 6, 6), (S(1, 3), S(1, 3), S(1, 3)), (S(4, 6), S(4, 6), S(4, 6))),
     _box((6, 6, 6), (S(1, 3), S(1, 3), S(1, 3)), (S(4, 6), S(4, 6), S(4, 6))), 6, (2, 0, 0)),
]


@pytest.mark.parametrize("case_id,gt,pred,connectivity,counts", INSTANCE_CASES, ids=[c[0] for c in INSTANCE_CASES])
def test_instance_hand_cases(case_id, gt, pred, connectivity, counts):
    got = instance_metrics(pred, gt, connectivity=connectivity)
    assert (got["tp"], got["fp"], got["fn"]) == counts
    tp, fp, fn = counts
    sens, prec = tp / (tp + fn), tp / (tp + fp)
    assert got["instance_sensitivity"] == pytest.approx(sens)
    assert got["instance_precision"] == pytest.approx(prec)
    assert got["f1"] == pytest.approx(0.0 if tp == 0 else 2 * sens * prec / (sens + prec))
    assert isinstance(got["tp"], int) and isinstance(got["f1"], float)


# two diagonal pixels in 2D: one blob at 8-connectivity (the 2D default), two at 4.
DIAG_GT = _box((4, 4), (S(1, 2), S(1, 2)), (S(2, 3), S(2, 3)))
DIAG_PRED = _box((4, 4), (S(1, 2), S(1, 2)))


@pytest.mark.parametrize("connectivity,fn", [(8, 0), (None, 0), (4, 1)])
def test_connectivity_2d(connectivity, fn):
    got = instance_metrics(DIAG_PRED, DIAG_GT, connectivity=connectivity)
    assert (got["tp"], got["fp"], got["fn"]) == (1, 0, fn)


@pytest.mark.parametrize("connectivity", [26, 18, 6])
def test_3d_connectivity_on_2d_mask_is_an_error(connectivity):
    """One connectivity rule for the project (blobloss.components.resolve_connectivity): 4/8 in 2D."""
    with pytest.raises(ValueError, match=rf"connectivity={connectivity} is not valid for a 2D label.*\[4, 8\]"):
        instance_metrics(DIAG_PRED, DIAG_GT, connectivity=connectivity)


def test_plots_shim_maps_3d_connectivity_onto_2d():
    """blobloss.plots.classify_blobs still passes 26 for 2D masks; the shim maps it, then validates."""
    from blobloss.metrics import _resolve_connectivity

    assert [_resolve_connectivity(c, 2) for c in (26, 18, 6, 8, 4, None)] == [8, 8, 4, 8, 4, 8]
    assert [_resolve_connectivity(c, 3) for c in (26, 18, 6, None)] == [26, 18, 6, 26]
    with pytest.raises(ValueError, match="not valid for a 3D label"):
        _resolve_connectivity(8, 3)


# two voxels sharing only a corner (26 only), an edge (18, 26), a face (all) in 3D
@pytest.mark.parametrize(
    "second,expected_fn",
    [((1, 1, 1), {26: 0, 18: 1, 6: 1}), ((1, 1, 0), {26: 0, 18: 0, 6: 1}), ((1, 0, 0), {26: 0, 18: 0, 6: 0})],
)
def test_connectivity_3d(second, expected_fn):
    gt = np.zeros((3, 3, 3), bool)
    gt[0, 0, 0] = gt[second] = True
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = True
    for connectivity, fn in expected_fn.items():
        assert instance_metrics(pred, gt, connectivity=connectivity)["fn"] == fn


def _brute_force_counts(pred: np.ndarray, gt: np.ndarray, connectivity: int) -> tuple[int, int, int]:
    """The definition written out per blob (slow, obviously right)."""
    lp, n_pred = cc3d.connected_components(pred, connectivity=connectivity, return_N=True)
    lg, n_gt = cc3d.connected_components(gt, connectivity=connectivity, return_N=True)
    tp = sum(bool(np.any(gt[lp == i])) for i in range(1, n_pred + 1))
    fn = sum(not np.any(pred[lg == j]) for j in range(1, n_gt + 1))
    return tp, n_pred - tp, fn


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("connectivity", [6, 26])
def test_instance_matches_brute_force_on_random_masks(seed, connectivity):
    rng = np.random.default_rng(seed)
    gt = rng.random((8, 12, 12)) < 0.12
    pred = rng.random((8, 12, 12)) < 0.12
    got = instance_metrics(pred, gt, connectivity=connectivity)
    expected = _brute_force_counts(pred, gt, connectivity)
    assert sum(expected) > 0
    assert (got["tp"], got["fp"], got["fn"]) == expected


def test_tp_zero_gives_f1_zero_not_nan():
    got = instance_metrics(_box((4, 8), (S(0, 1), S(0, 1))), _box((4, 8), (S(3, 4), S(7, 8))))
    assert (got["tp"], got["instance_sensitivity"], got["instance_precision"], got["f1"]) == (0, 0.0, 0.0, 0.0)


# --------------------------------------------------------------------------------------------------
# volumetric: spacing, axis order, 2D
# --------------------------------------------------------------------------------------------------
def _shifted_cube_pair(shape=(12, 12, 12)) -> tuple[np.ndarray, np.ndarray]:
    gt = _box(shape, (S(3, 8), S(3, 8), S(3, 8)))
    pred = np.roll(gt, 1, axis=0)  # shifted by one voxel along the first array axis (z)
    return pred, gt


@pytest.mark.parametrize(
    "spacing,sdsc_is_one",
    [((1.0, 1.0, 1.0), True), ((1.0, 1.0, 2.0), True), ((1.0, 2.0, 1.0), True), ((2.0, 1.0, 1.0), False)],
)
def test_anisotropic_spacing_changes_surface_dice_not_dice(spacing, sdsc_is_one):
    """A 1-voxel shift along z is within tolerance 1 unless the z spacing (first entry) is 2."""
    pred, gt = _shifted_cube_pair()
    got = volumetric_metrics(pred, gt, spacing=spacing, tolerance=1.0)
    assert got["dsc"] == pytest.approx(0.8)  # 2 * 100 / 250, independent of spacing
    assert got["sensitivity"] == pytest.approx(0.8) and got["precision"] == pytest.approx(0.8)
    if sdsc_is_one:
        assert got["surface_dice"] == pytest.approx(1.0)
    else:
        assert got["surface_dice"] < 0.95
        assert volumetric_metrics(pred, gt, spacing=spacing, tolerance=2.0)["surface_dice"] == pytest.approx(1.0)


def test_spacing_reaches_pymia_in_array_axis_order():
    pred, gt = _shifted_cube_pair()  # not symmetric under reversing the axes
    spacing = (2.5, 1.0, 0.7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pymia uses deprecated scipy.ndimage namespaces
        distances = pymia_metric.Distances(pred.astype(np.uint8), gt.astype(np.uint8), spacing)
    sdsc = pymia_metric.SurfaceDiceOverlap(tolerance=1.5)
    sdsc.distances = distances
    got = volumetric_metrics(pred, gt, spacing=spacing, tolerance=1.5)["surface_dice"]
    assert got == pytest.approx(sdsc.calculate(), abs=1e-12)
    assert got != pytest.approx(volumetric_metrics(pred, gt, spacing=spacing[::-1], tolerance=1.5)["surface_dice"])


def test_to_sitk_image_reverses_axes():
    image = to_sitk_image(np.zeros((4, 5, 6), dtype=np.uint8), spacing=(3.0, 2.0, 1.0))
    assert image.GetSize() == (6, 5, 4)
    assert image.GetSpacing() == (1.0, 2.0, 3.0)
    assert sitk.GetArrayViewFromImage(image).shape == (4, 5, 6)


def test_matches_pymia_segmentation_evaluator(monkeypatch):
    """Same numbers as pymia's own evaluator fed SimpleITK images.

    That evaluator calls ``np.in1d``, which NumPy 2.4 removed; on such a NumPy the test gives it NumPy's own
    replacement (``np.isin(a, b).ravel()``, what ``in1d`` returned) so the comparison runs on every NumPy.
    """
    if not hasattr(np, "in1d"):
        monkeypatch.setattr(np, "in1d", lambda a, b, *args, **kw: np.isin(a, b, *args, **kw).ravel(), raising=False)
    from pymia.evaluation.evaluator import SegmentationEvaluator

    pred, gt, _ = _ref("spheres_iso")
    spacing = (2.0, 1.0, 0.5)
    evaluator = SegmentationEvaluator(
        [pymia_metric.DiceCoefficient(), pymia_metric.Sensitivity(), pymia_metric.Precision(),
         pymia_metric.SurfaceDiceOverlap(tolerance=1.0)],
        {1: "fg"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        evaluator.evaluate(to_sitk_image(pred, spacing), to_sitk_image(gt, spacing), "case")
    raw = {r.metric: r.value for r in evaluator.results}
    got = volumetric_metrics(pred, gt, spacing=spacing)
    assert got["dsc"] == pytest.approx(raw["DICE"])
    assert got["sensitivity"] == pytest.approx(raw["SNSVTY"])
    assert got["precision"] == pytest.approx(raw["PRCISON"])
    assert got["surface_dice"] == pytest.approx(raw["SURFDICE"])


def test_works_without_np_in1d(monkeypatch):
    """NumPy 2.4 removed np.in1d, which pymia's evaluator calls; our path must not depend on it."""
    from pymia.evaluation.evaluator import SegmentationEvaluator

    monkeypatch.delattr(np, "in1d", raising=False)
    pred, gt, spacing = _ref("merge")
    with pytest.raises(AttributeError, match="in1d"):  # the premise: pymia's evaluator path now fails
        SegmentationEvaluator([pymia_metric.DiceCoefficient()], {1: "fg"}).evaluate(pred, gt, "case")
    row = case_metrics(pred, gt, spacing=spacing)
    assert row["dsc"] == pytest.approx(REF_CASES["merge"]["volumetric_with_spacing"]["DICE"], abs=1e-6)
    assert row["surface_dice"] == pytest.approx(REF_CASES["merge"]["volumetric_with_spacing"]["SURFDICE"], abs=1e-6)


@pytest.mark.parametrize("spacing,sdsc_is_one", [((1.0, 1.0), True), ((1.0, 2.0), True), ((2.0, 1.0), False)])
def test_volumetric_2d(spacing, sdsc_is_one):
    gt = _box((10, 10), (S(2, 6), S(2, 6)))
    pred = np.roll(gt, 1, axis=0)
    got = volumetric_metrics(pred.astype(np.uint8), gt.astype(np.int64), spacing=spacing)
    assert got["dsc"] == pytest.approx(0.75)  # 2 * 12 / 32
    assert got["sensitivity"] == pytest.approx(0.75) and got["precision"] == pytest.approx(0.75)
    assert (got["surface_dice"] == pytest.approx(1.0)) is sdsc_is_one


def test_perfect_prediction():
    pred, gt, spacing = _ref("merge")
    row = case_metrics(gt.copy(), gt, spacing=spacing)
    assert [row[c] for c in ("dsc", "sensitivity", "precision", "surface_dice", "f1")] == [1.0] * 5
    assert (row["tp"], row["fp"], row["fn"]) == (2, 0, 0)


# --------------------------------------------------------------------------------------------------
# case_metrics and aggregate
# --------------------------------------------------------------------------------------------------
def test_case_metrics_columns_and_values():
    pred, gt, spacing = _ref("extra_fp")
    row = case_metrics(pred, gt, spacing=spacing)
    assert tuple(row) == CASE_COLUMNS + EXTRA_CASE_COLUMNS
    assert row["dsc"] == pytest.approx(0.904594, abs=1e-6)
    assert row["surface_dice"] == pytest.approx(0.883788, abs=1e-6)
    assert (row["tp"], row["fp"], row["fn"]) == (2, 1, 0)
    assert row["f1"] == pytest.approx(0.8)
    assert row["gt_empty"] is False and row["pred_empty"] is False


def _row(**kw) -> dict:
    base = dict(dsc=1.0, sensitivity=1.0, precision=1.0, surface_dice=1.0, tp=1, fp=0, fn=0,
                instance_sensitivity=1.0, instance_precision=1.0, f1=1.0, gt_empty=False, pred_empty=False)
    base.update(kw)
    return base


AGG_TABLE = pd.DataFrame([
    _row(dsc=0.5, sensitivity=0.4, precision=0.6, surface_dice=0.7, tp=3, fp=1, fn=1,
         instance_sensitivity=0.75, instance_precision=0.75, f1=0.75),
    _row(dsc=0.0, sensitivity=NAN, precision=0.0, surface_dice=0.0, tp=0, fp=2, fn=0,
         instance_sensitivity=NAN, instance_precision=0.0, f1=0.0, gt_empty=True),
    _row(dsc=0.0, sensitivity=0.0, precision=NAN, surface_dice=0.0, tp=0, fp=0, fn=4,
         instance_sensitivity=0.0, instance_precision=NAN, f1=0.0, pred_empty=True),
    _row(sensitivity=NAN, precision=NAN, tp=0, fp=0, fn=0, gt_empty=True, pred_empty=True),
])


def test_aggregate_hand_table():
    s = aggregate(AGG_TABLE)
    assert s["n_cases"] == 4
    assert s["dsc"] == pytest.approx((0.5 + 0 + 0 + 1) / 4)
    assert s["sensitivity"] == pytest.approx((0.4 + 0.0) / 2)  # NaN ignored
    assert s["precision"] == pytest.approx((0.6 + 0.0) / 2)
    assert s["surface_dice"] == pytest.approx((0.7 + 0 + 0 + 1) / 4)
    assert s["instance_sensitivity"] == pytest.approx((0.75 + 0 + 1) / 3)
    assert s["instance_precision"] == pytest.approx((0.75 + 0 + 1) / 3)
    assert s["f1"] == pytest.approx((0.75 + 0 + 0 + 1) / 4)
    assert (s["tp"], s["fp"], s["fn"]) == (3, 3, 5)
    assert s["pooled_instance_sensitivity"] == pytest.approx(3 / 8)
    assert s["pooled_instance_precision"] == pytest.approx(3 / 6)
    assert s["pooled_f1"] == pytest.approx(2 * (3 / 8) * (3 / 6) / (3 / 8 + 3 / 6))
    assert (s["gt_empty"], s["pred_empty"], s["both_empty"]) == (2, 2, 1)
    assert set(AGGREGATE_MEAN_COLUMNS) <= set(s)


def test_aggregate_survives_csv_round_trip(tmp_path):
    path = tmp_path / "cases.csv"
    AGG_TABLE.assign(case=[f"c{i}" for i in range(4)]).to_csv(path, index=False)
    again = aggregate(pd.read_csv(path))
    first = aggregate(AGG_TABLE)
    assert again.keys() == first.keys()
    assert all(_same(again[k], float(first[k])) for k in first)


def test_aggregate_all_nan_column_and_pooled_both_empty():
    df = pd.DataFrame([_row(sensitivity=NAN, precision=NAN, tp=0, fp=0, fn=0, gt_empty=True, pred_empty=True)] * 2)
    s = aggregate(df)
    assert math.isnan(s["sensitivity"]) and math.isnan(s["precision"])
    assert (s["pooled_instance_sensitivity"], s["pooled_instance_precision"], s["pooled_f1"]) == (1.0, 1.0, 1.0)
    assert s["both_empty"] == 2


def test_aggregate_of_real_rows():
    rows = [case_metrics(*_ref(name)[:2]) for name in ("merge", "extra_fp", "empty_gt", "empty_pred")]
    s = aggregate(pd.DataFrame(rows))
    assert (s["tp"], s["fp"], s["fn"]) == (1 + 2, 0 + 1 + 1, 0 + 0 + 2)
    assert (s["gt_empty"], s["pred_empty"], s["both_empty"]) == (1, 1, 0)


@pytest.mark.parametrize(
    "df,match",
    [
        (AGG_TABLE.drop(columns=["f1", "tp"]), r"lacks the column\(s\) \['tp', 'f1'\]"),
        (AGG_TABLE.iloc[0:0], "no rows"),
        ([{"dsc": 1.0}], "pandas DataFrame"),
    ],
)
def test_aggregate_errors(df, match):
    with pytest.raises(ValueError, match=match):
        aggregate(df)


# --------------------------------------------------------------------------------------------------
# validation errors
# --------------------------------------------------------------------------------------------------
A3 = np.zeros((4, 5, 6), bool)


@pytest.mark.parametrize("func", [volumetric_metrics, instance_metrics, case_metrics])
@pytest.mark.parametrize(
    "pred,gt,match",
    [
        (np.zeros((4, 5, 7), bool), A3, r"same shape.*\(4, 5, 7\).*\(4, 5, 6\)"),
        (np.zeros((4, 5), bool), A3, r"same shape"),
        (np.full((4, 5, 6), 0.7), A3, r"binary.*0\.7.*prob > 0\.5"),
        (A3, np.full((4, 5, 6), 2, np.uint8), r"gt must be binary.*value 2.*labels > 0"),
        (A3, -np.ones((4, 5, 6), np.int32), r"gt must be binary.*-1"),
        (np.zeros(6, bool), np.zeros(6, bool), r"2D \(Y, X\) or 3D .*shape \(6,\)"),
        (np.zeros((1, 4, 5, 6), bool), np.zeros((1, 4, 5, 6), bool), r"ndim 4.*pred\[0\]"),
        (np.zeros((0, 5, 6), bool), np.zeros((0, 5, 6), bool), r"is empty"),
        (np.full((4, 5, 6), "a"), A3, r"dtype"),
    ],
)
def test_input_errors(func, pred, gt, match):
    with pytest.raises(ValueError, match=match):
        func(pred, gt)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(spacing=(1.0, 1.0)), r"one entry per array axis \(3.*got \(1\.0, 1\.0\)"),
        (dict(spacing=(1.0, 0.0, 1.0)), r"> 0.*\(1\.0, 0\.0, 1\.0\)"),
        (dict(spacing=(1.0, float("nan"), 1.0)), r"finite"),
        (dict(tolerance=-1.0), r"tolerance.*>= 0.*-1\.0"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        volumetric_metrics(A3, A3, **kwargs)


@pytest.mark.parametrize("shape,connectivity", [((4, 5, 6), 8), ((4, 5, 6), 4), ((4, 5), 5), ((4, 5, 6), 27)])
def test_connectivity_errors(shape, connectivity):
    mask = np.zeros(shape, bool)
    with pytest.raises(ValueError, match=rf"connectivity={connectivity} is not valid for a {len(shape)}D label"):
        instance_metrics(mask, mask, connectivity=connectivity)


def test_float_zero_one_masks_accepted():
    pred, gt, _ = _ref("split")
    assert instance_metrics(pred.astype(np.float32), gt.astype(np.float64)) == instance_metrics(pred, gt)
