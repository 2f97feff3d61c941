"""Tests for blobloss.stats: blob shape features (docs/definitions.md section 4) and per-case tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist

from blobloss.io import save_nifti
from blobloss.stats import (
    EXTRA_COLUMNS,
    FEATURE_COLUMNS,
    FeatureMethod,
    blob_features,
    case_counts,
    dataset_features,
    dataset_statistics,
    write_dataset_statistics,
)

SHAPE_COLS = ["compactness", "sphereness", "stringness", "skewness"]


def _pad(mask: np.ndarray, label: int = 1) -> np.ndarray:
    return np.pad(mask.astype(np.uint32) * label, 2)


def _ball() -> np.ndarray:
    g = np.mgrid[-10:11, -10:11, -10:11]
    return _pad((g**2).sum(0) <= 100)


SHAPES = {
    "ball": _ball,
    "cube": lambda: _pad(np.ones((10, 10, 10), bool)),
    "line": lambda: _pad(np.ones((20, 1, 1), bool)),
    "plate": lambda: _pad(np.ones((10, 10, 1), bool)),
    "two voxels": lambda: _pad(np.ones((2, 1, 1), bool)),
}

# docs/definitions.md section 4 table: V, D, compactness, sphereness, stringness, skewness (paper method, voxel units)
SHAPE_TABLE = [
    ("ball", 4169, 20.0, 0.9953, 0.9984, 0.0016, 0.0),
    ("cube", 1000, 15.5885, 0.5042, 0.7959, 0.2041, 0.1111),
    ("line", 20, 19.0, 0.0056, 0.1773, 0.8227, 0.0526),
    ("plate", 100, 12.7279, 0.0926, 0.4525, 0.5475, 0.1111),
    ("two voxels", 2, 1.0, 1.0, 1.0, 0.0, 1.0),
]


def _reference_paper(points: np.ndarray) -> tuple[float, float]:
    """Straightforward per-blob paper method (points in C order) -> (D, r_far)."""
    c = np.round(points.mean(axis=0))
    d = np.sqrt(((points - c) ** 2).sum(1))
    mop = points[np.argmax(d)]  # np.argmax: first maximum
    return float(np.sqrt(((points - mop) ** 2).sum(1)).max()), float(d.max())


def _random_blobs(seed: int, shape=(24, 24, 24), n: int = 8) -> np.ndarray:
    """Random (not necessarily connected) blobs with ids 1..n, made of random voxels around centres."""
    rng = np.random.default_rng(seed)
    inst = np.zeros(shape, np.uint32)
    for k in range(1, n + 1):
        centre = rng.integers(3, np.array(shape) - 3)
        count = int(rng.integers(2, 60))
        pts = centre + np.round(rng.normal(scale=rng.uniform(0.5, 3.0, 3), size=(count, 3))).astype(int)
        pts = np.clip(pts, 0, np.array(shape) - 1)
        inst[tuple(pts.T)] = k
    return inst


@pytest.mark.parametrize(("name", "volume", "diameter", "comp", "sph", "string", "skew"), SHAPE_TABLE)
def test_spec_table_paper_method(name, volume, diameter, comp, sph, string, skew) -> None:
    df = blob_features(SHAPES[name]())
    assert len(df) == 1
    row = df.iloc[0]
    assert row["label"] == 1
    assert row["volume"] == volume
    assert row["n_voxels"] == volume
    assert round(row["D"], 4) == diameter
    assert round(row["compactness"], 4) == comp
    assert round(row["sphereness"], 4) == sph
    assert round(row["stringness"], 4) == string
    assert round(row["skewness"], 4) == skew


@pytest.mark.parametrize(("name", "volume", "diameter", "comp", "sph", "string", "skew"), SHAPE_TABLE)
def test_spec_table_exact_method(name, volume, diameter, comp, sph, string, skew) -> None:
    row = blob_features(SHAPES[name](), method="exact").iloc[0]
    # the reference shapes have their true diameter between two voxels the paper method finds
    assert round(row["D"], 4) == diameter
    assert round(row["compactness"], 4) == comp
    assert round(row["sphereness"], 4) == sph
    assert round(row["skewness"], 4) == 0.0  # r_far from the unrounded centroid is exactly D / 2 here


def test_columns_first_six_exact_order() -> None:
    df = blob_features(SHAPES["cube"]())
    assert tuple(df.columns[:6]) == FEATURE_COLUMNS
    assert tuple(df.columns) == FEATURE_COLUMNS + EXTRA_COLUMNS
    assert FEATURE_COLUMNS == ("label", "volume", "compactness", "sphereness", "stringness", "skewness")


def test_paper_method_tie_takes_first_voxel_in_c_order() -> None:
    # centroid rounds to (2, 2); (1,1), (1,3), (3,1) are tied farthest; the first, (1,1), gives D = sqrt(5)
    # (the others would give sqrt(8)).
    inst = np.zeros((5, 5), np.uint8)
    for p in [(1, 1), (1, 2), (1, 3), (2, 3), (3, 1), (3, 2)]:
        inst[p] = 1
    row = blob_features(inst).iloc[0]
    assert row["D"] == pytest.approx(math.sqrt(5))
    assert row["r_far"] == pytest.approx(math.sqrt(2))
    assert row["skewness"] == pytest.approx(2 * (math.sqrt(2) / math.sqrt(5) - 0.5))


def test_paper_centroid_rounds_half_to_even() -> None:
    # voxels at x = 1, 4, 6, 7 (one instance id; blob_features does not require connectivity):
    # centroid 4.5 -> 4 (half to even) -> farthest voxels x = 1 and 7 tie at 3 -> MOP x = 1, r_far = 3.
    # Rounding half up (to 5) would give r_far = 4.
    inst = np.zeros((9, 1, 1), np.uint8)
    inst[[1, 4, 6, 7]] = 1
    row = blob_features(inst).iloc[0]
    assert row["r_far"] == 3.0
    assert row["D"] == 6.0
    assert row["skewness"] == 0.0


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compactness_is_sphereness_cubed(method: str, seed: int) -> None:
    df = blob_features(_random_blobs(seed), method=method).dropna()
    assert len(df) >= 5
    np.testing.assert_allclose(df["compactness"], df["sphereness"] ** 3, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(df["stringness"], 1 - df["sphereness"], rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_methods_match_per_blob_references(seed: int) -> None:
    inst = _random_blobs(seed)
    paper = blob_features(inst, method="paper").set_index("label")
    exact = blob_features(inst, method="exact").set_index("label")
    for k in range(1, int(inst.max()) + 1):
        pts = np.argwhere(inst == k).astype(float)  # C order
        if len(pts) < 2:
            continue
        d_ref, r_ref = _reference_paper(pts)
        assert paper.loc[k, "D"] == pytest.approx(d_ref)
        assert paper.loc[k, "r_far"] == pytest.approx(r_ref)
        assert exact.loc[k, "D"] == pytest.approx(pdist(pts).max())
        assert exact.loc[k, "r_far"] == pytest.approx(np.sqrt(((pts - pts.mean(0)) ** 2).sum(1)).max())
        assert exact.loc[k, "D"] >= paper.loc[k, "D"] - 1e-9


def _brute_diameter(inst: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> float:
    return float(pdist(np.argwhere(inst > 0) * np.asarray(spacing)).max())


# large enough to use the convex-hull path (> 400 boundary points), including degenerate hulls
DEGENERATE = {
    "plate 30x30x1": lambda: _pad(np.ones((30, 30, 1), bool)),
    "plate 1x300x2": lambda: _pad(np.ones((1, 300, 2), bool)),
    "line 600": lambda: _pad(np.ones((1, 600, 1), bool)),
    "diagonal line": lambda: _pad(np.eye(450, dtype=bool)[:, :, None]),
    "tilted plane": lambda: _pad(np.fromfunction(lambda i, j, k: k == (i + j) // 2, (25, 25, 25), dtype=int)),
    "hollow sphere": lambda: _pad(np.abs(np.sqrt((np.mgrid[-12:13, -12:13, -12:13] ** 2).sum(0)) - 11) < 0.5),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_exact_method_degenerate_shapes(name: str) -> None:
    inst = DEGENERATE[name]()
    row = blob_features(inst, method="exact").iloc[0]
    assert row["D"] == pytest.approx(_brute_diameter(inst))
    assert np.isfinite(row[SHAPE_COLS].astype(float)).all()


def test_exact_method_with_spacing_matches_brute_force() -> None:
    inst = _random_blobs(5, n=1)
    inst |= _pad(np.ones((20, 20, 20), bool))[:24, :24, :24].astype(np.uint32)  # big enough for the hull
    spacing = (0.7, 1.9, 3.1)
    row = blob_features(inst > 0, spacing=spacing, method="exact").iloc[0]
    assert row["D"] == pytest.approx(_brute_diameter(inst, spacing))


@pytest.mark.parametrize("method", list(FeatureMethod))
def test_single_voxel_blob(method: FeatureMethod) -> None:
    inst = np.zeros((3, 3, 3), np.uint16)
    inst[1, 1, 1] = 5
    row = blob_features(inst, method=method).iloc[0]
    assert row["label"] == 5 and row["volume"] == 1.0 and row["n_voxels"] == 1
    assert row["D"] == 0.0
    assert row[SHAPE_COLS].isna().all()
    row = blob_features(inst, spacing=(2.0, 3.0, 0.5), method=method).iloc[0]
    assert row["volume"] == 3.0
    assert row[SHAPE_COLS].isna().all()


def test_several_blobs_one_row_each_with_their_labels() -> None:
    inst = np.zeros((40, 12, 12), np.uint32)
    inst[1:11, 1:11, 1:11] = 7  # cube
    inst[15:35, 5, 5] = 3  # line of 20
    inst[38, 0, 0] = 12  # single voxel
    inst[36:38, 11, 11] = 40  # two voxels
    df = blob_features(inst)
    assert df["label"].tolist() == [3, 7, 12, 40]
    assert df["n_voxels"].tolist() == [20, 1000, 1, 2]
    by = df.set_index("label")
    assert round(by.loc[7, "skewness"], 4) == 0.1111
    assert round(by.loc[3, "D"], 4) == 19.0
    assert np.isnan(by.loc[12, "sphereness"])
    assert by.loc[40, "skewness"] == 1.0
    # each blob alone gives the same row
    for k in (3, 7, 40):
        alone = blob_features(np.where(inst == k, inst, 0)).iloc[0]
        cols = ["volume", "D", "r_far", *SHAPE_COLS]
        np.testing.assert_allclose(alone[cols].astype(float), by.loc[k, cols].astype(float))


def test_isotropic_spacing_scales_units_not_shape() -> None:
    inst = SHAPES["cube"]()
    base = blob_features(inst).iloc[0]
    scaled = blob_features(inst, spacing=(2.0, 2.0, 2.0)).iloc[0]
    assert scaled["volume"] == 8 * base["volume"]
    assert scaled["D"] == pytest.approx(2 * base["D"])
    assert scaled["d_eq"] == pytest.approx(2 * base["d_eq"])
    for col in SHAPE_COLS:
        assert scaled[col] == pytest.approx(base[col])


def test_anisotropic_spacing_hand_checked() -> None:
    # plate 10x10x1 with spacing (1, 2, 5): centroid -> (4, 4); farthest (physical) voxel is (9, 9):
    # d^2 = 5^2 + (5*2)^2 = 125; D^2 from (9, 9) to (0, 0) = 9^2 + 18^2 = 405; volume = 100 * 10.
    inst = np.zeros((10, 10, 1), np.uint8)
    inst[:] = 1
    row = blob_features(inst, spacing=(1.0, 2.0, 5.0)).iloc[0]
    assert row["volume"] == 1000.0
    assert row["r_far"] == pytest.approx(math.sqrt(125))
    assert row["D"] == pytest.approx(math.sqrt(405))
    d_eq = 2 * (3 * 1000 / (4 * math.pi)) ** (1 / 3)
    assert row["sphereness"] == pytest.approx(min(d_eq / math.sqrt(405), 1.0))
    assert row["skewness"] == pytest.approx(2 * (math.sqrt(125) / math.sqrt(405) - 0.5))
    # a line of 20 along the last axis with spacing 2 there
    line = np.zeros((1, 1, 20), np.uint8) + 1
    row = blob_features(line, spacing=(1.0, 1.0, 2.0)).iloc[0]
    assert (row["volume"], row["D"], row["r_far"]) == (40.0, 38.0, 20.0)


@pytest.mark.parametrize("method", ["paper", "exact"])
def test_2d_map_equals_single_slice_3d(method: str) -> None:
    inst2d = np.zeros((14, 9), np.uint8)
    inst2d[1:11, 1:8] = 1
    inst2d[12, 2:6] = 2
    f2 = blob_features(inst2d, spacing=(0.5, 2.0), method=method)
    f3 = blob_features(inst2d[:, :, None], spacing=(0.5, 2.0, 1.0), method=method)
    pd.testing.assert_frame_equal(f2, f3)
    assert f2["volume"].tolist() == [70 * 1.0, 4 * 1.0]
    assert blob_features(SHAPES["plate"]()[:, :, 2], method=method).iloc[0]["D"] == pytest.approx(12.7279, abs=1e-4)


def test_empty_map_gives_empty_frame_with_columns() -> None:
    df = blob_features(np.zeros((4, 4, 4), np.uint32), method="exact")
    assert df.empty
    assert tuple(df.columns) == FEATURE_COLUMNS + EXTRA_COLUMNS
    assert df["label"].dtype == np.int64


def test_method_accepts_enum_and_string_and_rejects_others() -> None:
    inst = SHAPES["line"]()
    pd.testing.assert_frame_equal(blob_features(inst, method=FeatureMethod.EXACT), blob_features(inst, method="exact"))
    with pytest.raises(ValueError, match=r"method='fast'.*'paper', 'exact'"):
        blob_features(inst, method="fast")


def test_float_maps_with_integer_ids_are_accepted() -> None:
    inst = SHAPES["cube"]()
    pd.testing.assert_frame_equal(blob_features(inst.astype(np.float32)), blob_features(inst))


@pytest.mark.parametrize(
    ("instances", "spacing", "error", "match"),
    [
        (np.zeros((3, 3, 3), np.int32) - 1, None, ValueError, "non-negative"),
        (np.full((3, 3), 1.5), None, TypeError, "integer ids"),
        (np.zeros((2, 3, 3, 3), np.uint8), None, ValueError, r"2D or 3D.*\(2, 3, 3, 3\)"),
        (np.zeros(5, np.uint8), None, ValueError, "2D or 3D"),
        (np.array([["a"]]), None, TypeError, "integer array"),
        (np.ones((3, 3, 3), np.uint8), (1.0, 1.0), ValueError, r"spacing.*3 for this map.*\(1.0, 1.0\)"),
        (np.ones((3, 3), np.uint8), (1.0, 1.0, 1.0), ValueError, "2 for this map"),
        (np.ones((3, 3, 3), np.uint8), (1.0, 0.0, 1.0), ValueError, "positive finite"),
        (np.ones((3, 3, 3), np.uint8), (1.0, float("nan"), 1.0), ValueError, "positive finite"),
    ],
)
def test_blob_features_errors(instances, spacing, error, match) -> None:
    with pytest.raises(error, match=match):
        blob_features(instances, spacing=spacing)


# ---------------------------------------------------------------------------------------------- files


def _write_cases(tmp_path) -> dict[str, object]:
    a = np.zeros((12, 12, 4), np.uint32)
    a[1:11, 1:11, 1] = 1  # plate
    a[0, 0, 3] = 2  # single voxel
    empty = np.zeros((5, 5, 5), np.uint32)
    b = np.zeros((22, 3, 3), np.uint32)
    b[1:21, 1, 1] = 1  # line
    paths = {}
    for case, arr, sp in (("a", a, (1.0, 1.0, 1.0)), ("empty", empty, (1.0, 1.0, 1.0)), ("b", b, (2.0, 1.0, 1.0))):
        paths[case] = tmp_path / case / "instances.nii.gz"
        save_nifti(paths[case], arr, spacing=sp, dtype=np.uint32)
    return paths


def test_dataset_features_and_counts(tmp_path) -> None:
    paths = _write_cases(tmp_path)
    feats = dataset_features(paths, "demo")
    assert list(feats.columns[:8]) == ["dataset", "case", *FEATURE_COLUMNS]
    assert feats["case"].tolist() == ["a", "a", "b"]
    assert (feats["dataset"] == "demo").all()
    line = feats[feats["case"] == "b"].iloc[0]
    assert (line["volume"], line["D"]) == (40.0, 38.0)  # spacing 2 from the file header
    assert round(feats.iloc[0]["skewness"], 4) == 0.1111

    counts = case_counts(feats, list(paths), "demo")
    assert counts.to_dict("list") == {"dataset": ["demo"] * 3, "case": ["a", "empty", "b"], "n_blobs": [2, 0, 1]}

    f2, c2 = dataset_statistics(paths, "demo", method="exact")
    assert round(f2.iloc[0]["skewness"], 4) == 0.0
    pd.testing.assert_frame_equal(c2, counts)


def test_write_dataset_statistics(tmp_path) -> None:
    paths = _write_cases(tmp_path)
    out_f, out_c = tmp_path / "stats" / "features.csv", tmp_path / "stats" / "counts.csv"
    feats, counts = write_dataset_statistics(paths, "demo", out_f, out_c)
    read_f = pd.read_csv(out_f)
    assert list(read_f.columns) == list(feats.columns)
    assert len(read_f) == 3
    assert pd.read_csv(out_c)["n_blobs"].tolist() == [2, 0, 1]
    assert sorted(p.name for p in out_f.parent.iterdir()) == ["counts.csv", "features.csv"]  # no temp left


def test_dataset_features_no_cases() -> None:
    feats = dataset_features({}, "demo")
    assert feats.empty and list(feats.columns[:3]) == ["dataset", "case", "label"]
    assert case_counts(feats, [], "demo").empty


def test_case_counts_filters_dataset_and_validates() -> None:
    feats = pd.DataFrame({"dataset": ["x", "x", "y"], "case": ["c1", "c1", "c9"], "label": [1, 2, 1]})
    assert case_counts(feats, ["c0", "c1"], "x")["n_blobs"].tolist() == [0, 2]
    with pytest.raises(ValueError, match=r"cases \['c9'\] that are not in the case list"):
        case_counts(feats, ["c1"], "y")
    with pytest.raises(ValueError, match=r"duplicates \['c1'\]"):
        case_counts(feats, ["c1", "c1"], "x")
    with pytest.raises(ValueError, match="needs a 'case' column"):
        case_counts(feats.drop(columns="case"), ["c1"], "x")


def test_exact_method_falls_back_to_brute_force_when_qhull_fails(monkeypatch) -> None:
    import blobloss.stats as stats_mod

    def failing_hull(points):
        raise stats_mod.QhullError("simulated Qhull failure")

    monkeypatch.setattr(stats_mod, "ConvexHull", failing_hull)
    inst = DEGENERATE["hollow sphere"]()
    assert blob_features(inst, method="exact").iloc[0]["D"] == pytest.approx(_brute_diameter(inst))
