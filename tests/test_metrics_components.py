"""Per-component metrics (docs/definitions.md section 9): hand cases, brute force, and ccmetrics 0.0.3."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest

from blobloss.metrics import case_metrics, component_metrics, nearest_component, reference_volumetric_metrics

S = slice


def _mask(shape, *slices) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for sl in slices:
        out[sl] = True
    return out


def _brute_nearest(labels: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: the smallest id among the nearest labelled voxels, and whether other ids tie with it."""
    seeds = np.argwhere(labels > 0)
    seed_ids = labels[labels > 0].astype(np.int64)  # NumPy >= 2.5 will not mix uint16 and the int64 sentinel
    points = np.argwhere(np.ones(labels.shape, bool))
    d2 = (((points[:, None, :] - seeds[None]) * np.asarray(spacing)) ** 2).sum(-1)
    nearest = d2 <= d2.min(axis=1, keepdims=True) * (1 + 1e-12)
    ids = np.where(nearest, seed_ids[None], np.iinfo(np.int64).max)
    smallest = ids.min(axis=1)
    tie = (nearest & (seed_ids[None] != smallest[:, None])).any(axis=1)
    return smallest.reshape(labels.shape), tie.reshape(labels.shape)


def _balls(shape, n, rng, rmax=3) -> np.ndarray:
    grid = np.indices(shape)
    out = np.zeros(shape, bool)
    for _ in range(n):
        centre, radius = rng.integers(0, shape), int(rng.integers(1, rmax + 1))
        out |= ((grid - centre.reshape(-1, *([1] * len(shape)))) ** 2).sum(0) <= radius**2
    return out


# --------------------------------------------------------------------------------------------------
# hand-checkable cases
# --------------------------------------------------------------------------------------------------
ROW = (1, 10)
HAND_CASES = [
    # id, gt, pred, spacing, cc_dice, cc_surface_dice
    ("perfect", _mask((4, 9), (S(0, 2), S(0, 2)), (S(0, 2), S(6, 8))),
     _mask((4, 9), (S(0, 2), S(0, 2)), (S(0, 2), S(6, 8))), None, 1.0, 1.0),
    ("one found, one missed", _mask((4, 9), (S(0, 2), S(0, 2)), (S(0, 2), S(6, 8))),
     _mask((4, 9), (S(0, 2), S(0, 2))), None, 0.5, 0.5),
    # gt at x = 0..1 and 8..9; pred x = 0..4: x <= 4 is nearer the first (x = 4: 3 vs 4 away)
    # -> first region: 2 TP, 3 FP -> 4/7; second: missed -> 0
    ("prediction spills towards a missed component", _mask(ROW, (0, S(0, 2)), (0, S(8, 10))),
     _mask(ROW, (0, S(0, 5))), None, 2 / 7, None),
    # the spilled voxel (2, 0): 2 from A at (0, 0), sqrt(10) from B at (3, 3) -> region A (dice 2/3, B 0);
    # with spacing (5, 1) it is 10 from A and sqrt(34) from B -> region B (A exact: 1, B 0)
    ("spacing moves a voxel to another region (isotropic)", _mask((4, 4), (0, 0), (3, 3)),
     _mask((4, 4), (0, 0), (2, 0)), (1.0, 1.0), (2 / 3 + 0) / 2, None),
    ("spacing moves a voxel to another region (anisotropic)", _mask((4, 4), (0, 0), (3, 3)),
     _mask((4, 4), (0, 0), (2, 0)), (5.0, 1.0), (1 + 0) / 2, None),
    ("empty ground truth, empty prediction", np.zeros((3, 3), bool), np.zeros((3, 3), bool), None, 1.0, 1.0),
    ("empty ground truth, prediction not", np.zeros((3, 3), bool), _mask((3, 3), (1, 1)), None, 0.0, 0.0),
    ("prediction empty", _mask((3, 3), (1, 1)), np.zeros((3, 3), bool), None, 0.0, 0.0),
]


@pytest.mark.parametrize("case_id,gt,pred,spacing,cc_dice,cc_sdsc", HAND_CASES, ids=[c[0] for c in HAND_CASES])
def test_hand_cases(case_id, gt, pred, spacing, cc_dice, cc_sdsc):
    got = component_metrics(pred, gt, spacing=spacing)
    assert got["cc_dice"] == pytest.approx(cc_dice, abs=1e-12)
    if cc_sdsc is not None:
        assert got["cc_surface_dice"] == pytest.approx(cc_sdsc, abs=1e-12)
    row = case_metrics(pred, gt, spacing=spacing)
    assert (row["cc_dice"], row["cc_surface_dice"]) == (got["cc_dice"], got["cc_surface_dice"])


def test_connectivity_decides_the_components():
    gt = _mask((3, 3, 3), (0, 0, 0), (1, 1, 1))       # touch at a corner: one component at 26, two at 6
    pred = _mask((3, 3, 3), (0, 0, 0))
    assert component_metrics(pred, gt, connectivity=26)["n_components"] == 1
    assert component_metrics(pred, gt, connectivity=26)["cc_dice"] == pytest.approx(2 / 3)
    got6 = component_metrics(pred, gt, connectivity=6)
    assert got6["n_components"] == 2 and got6["cc_dice"] == pytest.approx(0.5)


def test_given_instances_are_the_components():
    instances = np.zeros((1, 2, 4), np.uint8)
    instances[0, :, :2], instances[0, :, 2:] = 1, 2
    pred = np.zeros((1, 2, 4), bool)
    pred[0, :, :2] = True
    assert component_metrics(pred, instances > 0)["cc_dice"] == pytest.approx(2 * 4 / (4 + 8))
    assert component_metrics(pred, instances > 0, gt_instances=instances)["cc_dice"] == pytest.approx(0.5)


def test_nearest_component_ties_go_to_the_smaller_id():
    labels = np.zeros((1, 7), np.uint32)
    labels[0, 0], labels[0, 6] = 2, 1
    assert nearest_component(labels, np.arange(7)).tolist() == [2, 2, 2, 1, 1, 1, 1]   # x = 3 is a tie
    assert nearest_component(labels, np.arange(7), spacing=(1.0, 1.0)).tolist() == [2, 2, 2, 1, 1, 1, 1]
    assert nearest_component(np.zeros((2, 2), np.uint32), np.arange(4)).tolist() == [0, 0, 0, 0]


# --------------------------------------------------------------------------------------------------
# brute force: the regions, and Surface Dice per region with pymia
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_nearest_component_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    ndim = 2 + seed % 2
    shape = (9, 11, 7)[:ndim] if ndim == 3 else (13, 15)
    labels = cc3d.connected_components(rng.random(shape) < 0.06, connectivity=26 if ndim == 3 else 8)
    spacing = tuple(rng.choice([0.5, 1.0, 1.7, 3.0], size=ndim))
    expected, _ = _brute_nearest(labels, spacing)
    got = nearest_component(labels, np.arange(labels.size), spacing=spacing)
    assert np.array_equal(got.reshape(shape), expected)


@pytest.mark.parametrize("seed", range(4))
def test_component_metrics_equal_per_region_pymia(seed):
    """Each region scored on its own with pymia (prediction & region vs the component), then averaged."""
    rng = np.random.default_rng(100 + seed)
    shape = (10, 12, 12)
    gt = _balls(shape, 4, rng, rmax=2)
    pred = _balls(shape, 4, rng, rmax=2) | (gt & (rng.random(shape) < 0.6))
    spacing = tuple(float(s) for s in rng.choice([0.6, 1.0, 1.5], size=3))
    labels, n = cc3d.connected_components(gt, connectivity=26, return_N=True)
    region, _ = _brute_nearest(labels, spacing)
    dice, sdsc = [], []
    for k in range(1, n + 1):
        ref = reference_volumetric_metrics(pred & (region == k), labels == k, spacing=spacing, tolerance=1.0)
        dice.append(ref["dsc"])
        sdsc.append(ref["surface_dice"])
    got = component_metrics(pred, gt, spacing=spacing, tolerance=1.0)
    assert got["n_components"] == n
    assert got["cc_dice"] == pytest.approx(np.mean(dice), abs=1e-9)
    assert got["cc_surface_dice"] == pytest.approx(np.mean(sdsc), abs=1e-9)


# --------------------------------------------------------------------------------------------------
# ccmetrics 0.0.3 (the reference implementation of Jaus et al.)
# --------------------------------------------------------------------------------------------------
def _ccmetrics_cc_dice(pred: np.ndarray, gt: np.ndarray) -> float:
    import torch

    grad = torch.is_grad_enabled()
    ccmetrics = pytest.importorskip(
        "CCMetrics", reason="ccmetrics 0.0.3 is not installed (pip install -e '.[test]'); "
                            "the hand-case and brute-force tests above still check cc_dice"
    )
    torch.set_grad_enabled(grad)  # ccmetrics switches autograd off for the whole process when imported
    metric = ccmetrics.CCDiceMetric(cc_reduction="patient")

    def onehot(mask):
        return np.stack([~mask, mask])[None].astype(np.float32)

    metric(onehot(pred), onehot(gt))
    return float(metric.cc_aggregate().mean())


@pytest.mark.parametrize("seed", [8, 21, 27, 31, 33, 35])
def test_cc_dice_equals_ccmetrics_on_isotropic_cases(seed):
    """Isotropic spacing, no predicted voxel on a tie between two components: equal to 1e-6."""
    rng = np.random.default_rng(seed)
    shape = (16, 18, 20)
    gt = _balls(shape, 5, rng)
    pred = _balls(shape, 5, rng) | (gt & (rng.random(shape) < 0.7))
    labels = cc3d.connected_components(gt, connectivity=26)
    _, tie = _brute_nearest(labels, (1.0, 1.0, 1.0))
    assert not (tie & pred & ~gt).any(), "precondition: no predicted voxel equidistant from two components"
    assert labels.max() >= 2
    ours = component_metrics(pred, gt)["cc_dice"]
    assert ours == pytest.approx(_ccmetrics_cc_dice(pred, gt), abs=1e-6)


def test_ccmetrics_differs_only_on_ties():
    """Where a predicted voxel is equidistant from two components, SciPy's scan order (ccmetrics) and our
    smaller-id rule may choose differently; the hand-computed value follows our rule."""
    gt = _mask((1, 1, 9), (0, 0, 0), (0, 0, 8))
    pred = _mask((1, 1, 9), (0, 0, S(0, 5)))      # x = 4 is equidistant from both
    ours = component_metrics(pred, gt)["cc_dice"]
    # our rule: x = 4 -> component 1: region 1 has 1 TP, 4 FP -> 2/6; component 2 missed -> 0
    assert ours == pytest.approx((2 / 6 + 0) / 2)
    theirs = _ccmetrics_cc_dice(pred, gt)
    assert theirs in (pytest.approx(ours), pytest.approx((2 / 5 + 0) / 2))  # x = 4 to component 2: 2/5
