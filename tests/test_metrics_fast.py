"""The fast volumetric metrics against pymia 0.3.4 (the definition), and the surfel machinery itself."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import blobloss.metrics.surface as surface
from blobloss.metrics import case_metrics, reference_volumetric_metrics, volumetric_metrics
from blobloss.metrics.surface import (
    extract_surfel_pair,
    extract_surfels,
    surfel_area_table,
    surfels_within,
    tolerance_offsets,
)

DATA = Path(__file__).resolve().parent / "data"
with open(DATA / "metrics_cases.json", encoding="utf-8") as fh:
    REF_CASES: dict = json.load(fh)["cases"]
with np.load(DATA / "metrics_cases.npz") as npz:
    REF_ARRAYS = {key: npz[key] for key in npz.files}

KEYS = ("dsc", "sensitivity", "precision", "surface_dice")


def _assert_same(got: dict, expected: dict, tol: float = 1e-9) -> None:
    for key in KEYS:
        a, b = got[key], expected[key]
        if np.isnan(b):
            assert np.isnan(a), (key, a, b)
        else:
            assert abs(a - b) <= tol, (key, a, b, abs(a - b))


def _random_case(seed: int):
    """A random pair of 2D or 3D masks with an anisotropic spacing and a tolerance (both non-empty)."""
    rng = np.random.default_rng(seed)
    ndim = 2 if seed % 3 == 0 else 3
    shape = tuple(int(n) for n in rng.integers(4, 13, size=ndim))
    gt = rng.random(shape) < rng.uniform(0.05, 0.5)
    pred = rng.random(shape) < rng.uniform(0.05, 0.5)
    gt.flat[0] = pred.flat[-1] = True
    spacing = tuple(float(s) for s in rng.choice([0.3, 0.5, 0.7, 1.0, 1.3, 2.0, 2.5], size=ndim))
    tolerance = float(rng.choice([0.0, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0]))
    return pred, gt, spacing, tolerance


# --------------------------------------------------------------------------------------------------
# ours == pymia
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REF_CASES))
@pytest.mark.parametrize("tolerance", [1.0, 2.0, 0.5])
def test_reference_cases_equal_pymia(name, tolerance):
    pred, gt, spacing = (REF_ARRAYS[f"{name}__{k}"] for k in ("pred", "gt", "spacing"))
    _assert_same(volumetric_metrics(pred, gt, spacing, tolerance),
                 reference_volumetric_metrics(pred, gt, spacing, tolerance))


@pytest.mark.parametrize("path", ["lookup", "tree"])
@pytest.mark.parametrize("seed", range(24))
def test_random_anisotropic_cases_equal_pymia(seed, path, monkeypatch):
    """Both ways of matching surfels (offset lookup, k-d tree) give pymia's numbers to 1e-9."""
    if path == "tree":
        monkeypatch.setattr(surface, "_MAX_OFFSETS", 0)
    pred, gt, spacing, tolerance = _random_case(seed)
    _assert_same(volumetric_metrics(pred, gt, spacing, tolerance),
                 reference_volumetric_metrics(pred, gt, spacing, tolerance))


def test_large_tolerance_uses_the_tree_and_equals_pymia():
    """A tolerance of many voxels exceeds the offset limit (k-d tree path without monkeypatching)."""
    rng = np.random.default_rng(7)
    gt = rng.random((10, 12, 14)) < 0.05
    pred = rng.random((10, 12, 14)) < 0.05
    spacing, tolerance = (0.5, 0.4, 0.3), 3.0
    assert tolerance_offsets(spacing, tolerance, limit=surface._MAX_OFFSETS) is None
    _assert_same(volumetric_metrics(pred, gt, spacing, tolerance),
                 reference_volumetric_metrics(pred, gt, spacing, tolerance))


def test_blobs_in_a_larger_volume_equal_pymia():
    """Many small balls, some shifted, some missed, extra ones: the benchmark's kind of case, small."""
    rng = np.random.default_rng(3)
    shape = (40, 48, 44)
    grid = np.indices(shape)
    gt, pred = np.zeros(shape, bool), np.zeros(shape, bool)
    for _ in range(30):
        centre, radius = rng.integers(3, np.array(shape) - 3), int(rng.integers(1, 4))
        ball = ((grid - centre[:, None, None, None]) ** 2).sum(0) <= radius**2
        gt |= ball
        if rng.random() < 0.8:
            pred |= np.roll(ball, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 3)))
    spacing = (1.5, 0.8, 0.8)
    _assert_same(volumetric_metrics(pred, gt, spacing, 1.0), reference_volumetric_metrics(pred, gt, spacing, 1.0))


def test_no_np_in1d_on_our_path(monkeypatch):
    """NumPy 2.4 removed np.in1d; nothing the pipeline calls may need it."""
    monkeypatch.delattr(np, "in1d", raising=False)
    pred, gt, spacing, tolerance = _random_case(4)
    row = case_metrics(pred, gt, spacing=spacing, tolerance=tolerance)
    assert abs(row["surface_dice"] - reference_volumetric_metrics(pred, gt, spacing, tolerance)["surface_dice"]) < 1e-9


def test_volumetric_path_never_imports_pymia_metrics_classes(monkeypatch):
    """Only the area table comes from pymia; the metric classes (and SimpleITK) are not used."""
    import pymia.evaluation.metric as pymia_metric

    def fail(*args, **kwargs):
        raise AssertionError("pymia metric class called on the fast path")

    for name in ("Distances", "SurfaceDiceOverlap", "ConfusionMatrix", "DiceCoefficient"):
        monkeypatch.setattr(pymia_metric, name, fail)
    surfel_area_table((1.0, 1.0, 1.0))
    pred, gt, spacing, tolerance = _random_case(5)
    volumetric_metrics(pred, gt, spacing, tolerance)


# --------------------------------------------------------------------------------------------------
# the pieces
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spacing,tolerance,count",
    [
        ((1.0, 1.0, 1.0), 0.0, 1),            # only the corner itself
        ((1.0, 1.0, 1.0), 0.99, 1),
        ((1.0, 1.0, 1.0), 1.0, 7),            # + 6 face neighbours
        ((1.0, 1.0, 1.0), 2.0 ** 0.5, 19),    # + 12 edge neighbours (sqrt(2) exactly at the boundary)
        ((1.0, 1.0, 1.0), 3.0 ** 0.5, 27),    # + 8 vertex neighbours
        ((2.0, 1.0, 1.0), 1.0, 5),            # no step along the 2.0 axis
        ((0.5, 1.0, 1.0), 1.0, 9),            # two steps along the 0.5 axis
    ],
)
def test_tolerance_offsets_counts(spacing, tolerance, count):
    offsets = tolerance_offsets(spacing, tolerance)
    assert len(offsets) == count
    assert offsets[0].tolist() == [0, 0, 0]
    assert tolerance_offsets(spacing, tolerance, limit=count - 1) is None or count == 1


def test_area_table_equals_pymia():
    spacing = (0.7, 1.3, 2.1)
    ours = surfel_area_table(spacing)
    assert ours.shape == (256,) and ours[0] == 0.0 and ours[255] == 0.0
    # pymia: one voxel, its 8 corners carry codes 1, 2, 4, ..., 128 -> total area from the table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pymia.evaluation.metric.base import Distances

        voxel = np.zeros((3, 3, 3), np.uint8)
        voxel[1, 1, 1] = 1
        d = Distances(voxel, voxel, spacing)
    assert np.sum(d.surfel_areas_gt) == pytest.approx(ours[[1 << k for k in range(8)]].sum(), rel=1e-15)


def test_single_voxel_surfels():
    voxel = np.zeros((3, 4, 5), bool)
    voxel[1, 2, 3] = True
    s = extract_surfels(voxel, (1.0, 1.0, 1.0))
    assert len(s.corner) == 8
    assert sorted(s.coordinates().tolist()) == [[z, y, x] for z in (1, 2) for y in (2, 3) for x in (3, 4)]
    assert s.area.sum() == pytest.approx(8 * np.sqrt(3) / 8)  # eight corner triangles of side sqrt(2)/2


def test_surfel_pair_equals_separate_extraction():
    rng = np.random.default_rng(0)
    gt, pred = rng.random((6, 7, 8)) < 0.3, rng.random((6, 7, 8)) < 0.3
    for single, paired in zip((extract_surfels(gt, (1.0, 2.0, 0.5)), extract_surfels(pred, (1.0, 2.0, 0.5))),
                              extract_surfel_pair(gt, pred, (1.0, 2.0, 0.5))):
        assert np.array_equal(single.corner, paired.corner)
        assert np.array_equal(single.area, paired.area)


def test_label_map_surfels_are_per_label():
    """Two touching labels each keep their own closed surface (as masks labels == k)."""
    labels = np.zeros((3, 3, 4), np.uint16)
    labels[1, 1, 1] = 1
    labels[1, 1, 2] = 2
    s = extract_surfels(labels, (1.0, 1.0, 1.0))
    for k in (1, 2):
        alone = extract_surfels(labels == k, (1.0, 1.0, 1.0))
        assert np.array_equal(s.corner[s.label == k], alone.corner)
        assert np.allclose(s.area[s.label == k], alone.area)
    # the shared face: 4 corners belong to both labels
    assert len(s.corner) == 8 + 8 and len(np.unique(s.corner)) == 12


@pytest.mark.parametrize("path", ["lookup", "tree"])
@pytest.mark.parametrize("tolerance,hits", [(0.99, 0), (1.0, 4), (2.0, 8)])
def test_surfels_within_respects_labels(path, tolerance, hits, monkeypatch):
    """A surfel only matches surfels of its own label, even when another label's surfel sits on it.

    ``a``: label 1 at x = 1 (corners x = 1, 2). ``b``: label 2 at x = 1 (the same corners, other label)
    and label 1 at x = 3 (corners x = 3, 4): a's x = 2 corners are 1 away, its x = 1 corners 2 away.
    """
    if path == "tree":
        monkeypatch.setattr(surface, "_MAX_OFFSETS", 0)
    a_map = np.zeros((3, 3, 5), np.uint16)
    a_map[1, 1, 1] = 1
    b_map = np.zeros_like(a_map)
    b_map[1, 1, 1] = 2
    b_map[1, 1, 3] = 1
    a, b = extract_surfels(a_map, (1.0,) * 3), extract_surfels(b_map, (1.0,) * 3)
    assert int(surfels_within(a, b, (1.0,) * 3, tolerance).sum()) == hits


def test_two_dimensional_masks_are_slabs():
    """2D masks follow pymia: a one-voxel-thick volume (its faces count as surface)."""
    gt = np.zeros((6, 6), bool)
    gt[1:4, 1:4] = True
    pred = np.roll(gt, 1, axis=1)
    got = volumetric_metrics(pred, gt, spacing=(1.0, 3.0), tolerance=1.0)
    assert got["surface_dice"] == pytest.approx(
        reference_volumetric_metrics(pred, gt, spacing=(1.0, 3.0), tolerance=1.0)["surface_dice"], abs=1e-12)
    assert 0.0 < got["surface_dice"] < 1.0
