"""Tests for blobloss.data.synthetic: seeded determinism, instance imbalance, 2D/3D, instances == cc3d."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from blobloss.data.synthetic import case_seed, generate_case, write_synthetic_raw
from blobloss.io import load_image

SEEDS = [case_seed(0, i) for i in range(4)]


@pytest.fixture(scope="module")
def cases_3d():
    return [generate_case(s, (64, 64, 32)) for s in SEEDS]


@pytest.fixture(scope="module")
def cases_2d():
    return [generate_case(s, (128, 128)) for s in SEEDS]


def sizes(instances: np.ndarray) -> np.ndarray:
    return np.bincount(instances.ravel())[1:]


def test_types_and_shapes(cases_3d, cases_2d):
    for (img, lab, inst), shape in [(cases_3d[0], (64, 64, 32)), (cases_2d[0], (128, 128))]:
        assert img.shape == (1, *shape) and img.dtype == np.float32
        assert lab.shape == shape and lab.dtype == np.uint8
        assert inst.shape == shape and inst.dtype == np.uint32
        assert set(np.unique(lab)) == {0, 1}
        assert np.isfinite(img).all()


def test_seeded_determinism():
    a = generate_case(7, (32, 32, 16))
    b = generate_case(7, (32, 32, 16))
    c = generate_case(8, (32, 32, 16))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("which", ["3d", "2d"])
def test_instances_are_cc3d_components_of_label(cases_3d, cases_2d, which):
    cases, conn = (cases_3d, 26) if which == "3d" else (cases_2d, 8)
    for _, lab, inst in cases:
        np.testing.assert_array_equal(inst > 0, lab > 0)
        ref = cc3d.connected_components(lab, connectivity=conn)
        assert int(inst.max()) == int(ref.max())
        # same partition: every instance maps to exactly one reference component and vice versa
        pairs = np.unique(np.stack([inst[lab > 0], ref[lab > 0]]), axis=1)
        assert pairs.shape[1] == int(inst.max())
        # consecutive ids 1..N, each non-empty
        assert (sizes(inst) > 0).all()


def test_instance_imbalance_3d(cases_3d):
    for _, _, inst in cases_3d:
        s = sizes(inst)
        assert 15 <= len(s) <= 100  # many blobs
        assert 1 <= int((s >= 500).sum()) <= 4  # a few large structures
        assert s.max() >= 1000  # thousands of voxels
        assert np.median(s) <= 40  # most are small
        assert s.min() <= 5  # down to a couple of voxels
        assert s.max() / np.median(s) >= 30


def test_instance_imbalance_2d(cases_2d):
    for _, _, inst in cases_2d:
        s = sizes(inst)
        assert len(s) >= 12
        assert s.max() / np.median(s) >= 10
        assert s.min() >= 2


def test_some_blobs_are_faint_and_background_is_textured(cases_3d):
    img, lab, inst = cases_3d[0]
    x = img[0]
    bg = x[ndimage.binary_dilation(lab > 0, iterations=3) == 0]
    noise = float(bg.std())
    assert noise > 0.05  # noisy background
    means = np.asarray(ndimage.mean(x, inst, index=np.arange(1, int(inst.max()) + 1)))
    contrast = (means - float(bg.mean())) / noise
    assert (contrast < 2.5).sum() >= 2  # faint blobs barely above the noise
    assert (contrast > 4).sum() >= 5  # and clearly visible ones
    # smoothed (spatially correlated) background noise: neighbours correlate
    a, b = x[:-1][lab[:-1] + lab[1:] == 0], x[1:][lab[:-1] + lab[1:] == 0]
    assert np.corrcoef(a, b)[0, 1] > 0.3


def test_elongated_blobs_exist(cases_3d):
    _, _, inst = cases_3d[1]
    objs = ndimage.find_objects(inst)
    extents = np.array([[s.stop - s.start for s in o] for o in objs])
    elongation = extents.max(axis=1) / extents.min(axis=1)
    assert (elongation >= 3).sum() >= 2


@pytest.mark.parametrize("shape", [(8, 8), (12, 10, 8), (16, 16, 8)])
def test_small_shapes_work(shape):
    img, lab, inst = generate_case(1, shape)
    assert img.shape == (1, *shape) and lab.any() and inst.max() >= 1


@pytest.mark.parametrize("shape", [(64,), (4, 4, 4), (8, 8, 8, 8), "abc", 5])
def test_bad_shapes(shape):
    with pytest.raises(ValueError, match="shape"):
        generate_case(0, shape)


def test_case_seed():
    assert case_seed(0, 0) == case_seed(0, 0)
    assert len({case_seed(s, i) for s in range(3) for i in range(5)}) == 15


def test_write_synthetic_raw(tmp_path):
    paths = write_synthetic_raw(tmp_path, n_cases=2, shape=(12, 12, 8), seed=3, spacing=(1.0, 1.0, 2.0))
    assert [p.name for p in paths] == ["case_000.nii.gz", "case_001.nii.gz"]
    lab = load_image(tmp_path / "labels" / "case_001.nii.gz")
    np.testing.assert_array_equal(lab.array, generate_case(case_seed(3, 1), (12, 12, 8))[1])
    assert lab.spacing == (1.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="n_cases"):
        write_synthetic_raw(tmp_path, n_cases=0)
