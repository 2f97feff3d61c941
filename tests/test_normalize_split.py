"""Tests for blobloss.data.normalize and blobloss.data.split on hand-checkable inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blobloss.data.checks import DataIntegrityError
from blobloss.data.normalize import NormalizationMethod, ct_window_bounds, normalize, normalize_from_config
from blobloss.data.split import make_split

# ---------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    ("image", "method", "params", "expected"),
    [
        ([[0.0, 5.0, 10.0]], "minmax", {}, [[0.0, 0.5, 1.0]]),
        ([[-4.0, 0.0, 4.0], [10.0, 20.0, 30.0]], "minmax", {}, [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]),  # per channel
        ([[3.0, 3.0, 3.0]], "minmax", {}, [[0.0, 0.0, 0.0]]),  # constant -> zeros
        ([[1.0, 2.0]], "none", {}, [[1.0, 2.0]]),
        # percentile: 0..100 ramp of 101 values, 10th/90th percentiles are 10 and 90
        (np.arange(101.0)[None], "percentile", {"lower": 10, "upper": 90}, (np.clip(np.arange(101.0), 10, 90) - 10)[None] / 80),
        ([[7.0, 7.0]], "percentile", {"lower": 0, "upper": 100}, [[0.0, 0.0]]),
        # CT window: centre 30, width 150, +20 % -> [-60, 120]
        ([[-1000.0, -60.0, 30.0, 120.0, 3000.0]], "ct_window", {"center": 30, "width": 150, "tolerance": 0.2},
         [[0.0, 0.0, 0.5, 1.0, 1.0]]),
        ([[0.0, 50.0, 100.0]], "ct_window", {"center": 50, "width": 100, "tolerance": 0.0}, [[0.0, 0.5, 1.0]]),
        # CT window is the same for all channels (not per channel)
        ([[0.0, 50.0], [25.0, 75.0]], "ct_window", {"center": 50, "width": 100, "tolerance": 0.0}, [[0.0, 0.5], [0.25, 0.75]]),
    ],
)
def test_normalize_table(image, method, params, expected):
    out = normalize(np.asarray(image), method, **params)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(expected), atol=1e-6)


def test_percentile_default_bounds_clip_outliers():
    x = np.zeros((1, 1000))
    x[0, :] = np.linspace(0, 1, 1000)
    x[0, 0], x[0, -1] = -1e6, 1e6
    out = normalize(x, "percentile")  # 0.5 / 99.5
    assert out.min() == 0.0 and out.max() == 1.0
    assert 0.4 < float(np.median(out)) < 0.6  # the outliers do not squash the range


def test_normalize_3d_shape_and_input_untouched():
    x = np.arange(24, dtype=np.int16).reshape(1, 2, 3, 4)
    out = normalize(x, NormalizationMethod.MINMAX)
    assert out.shape == x.shape and out[0, 0, 0, 0] == 0.0 and out[0, -1, -1, -1] == 1.0
    assert x.dtype == np.int16 and x.max() == 23


def test_normalize_from_config_ignores_other_methods_params():
    cfg = {"method": "ct_window", "lower": 0.5, "upper": 99.5, "center": 0, "width": 2, "tolerance": 0.0}
    np.testing.assert_allclose(normalize_from_config(np.array([[-1.0, 0.0, 1.0]]), cfg), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(normalize_from_config(np.array([[2.0, 4.0]]), None), [[0.0, 1.0]])


@pytest.mark.parametrize(
    ("image", "method", "params", "match"),
    [
        ([[1.0]], "zscore", {}, "unknown normalization method 'zscore'.*'minmax'.*'ct_window'"),
        ([[1.0]], "minmax", {"gamma": 2}, r"unknown parameter\(s\) \['gamma'\]"),
        ([1.0, 2.0], "minmax", {}, "channel axis"),
        ([[1.0, np.nan]], "minmax", {}, "NaN"),
        ([[1.0]], "percentile", {"lower": 50, "upper": 10}, "lower < upper"),
        ([[1.0]], "percentile", {"lower": -1, "upper": 10}, "0 <= lower"),
        ([[1.0]], "ct_window", {"width": 0}, "width"),
        ([[1.0]], "ct_window", {"tolerance": -1}, "tolerance"),
    ],
)
def test_normalize_errors(image, method, params, match):
    with pytest.raises(ValueError, match=match):
        normalize(np.asarray(image), method, **params)


def test_ct_window_bounds():
    assert ct_window_bounds(30, 150, 0.2) == (-60.0, 120.0)
    assert ct_window_bounds(40, 400) == (-160.0, 240.0)


def test_method_enum_values():
    assert [m.value for m in NormalizationMethod] == ["none", "minmax", "percentile", "ct_window"]
    assert NormalizationMethod.parse("percentile") is NormalizationMethod.PERCENTILE


# ---------------------------------------------------------------- splits

IDS = [f"case_{i:03d}" for i in range(10)]


@pytest.mark.parametrize(
    ("n", "test_fraction", "val_fraction", "sizes"),
    [
        (10, 0.2, 0.0, (8, 0, 2)),
        (10, 0.2, 0.1, (7, 1, 2)),
        (131, 0.2, 0.0, (105, 0, 26)),
        (8, 0.2, 0.0, (6, 0, 2)),  # 1.6 -> 2
        (3, 0.2, 0.0, (2, 0, 1)),  # 0.6 -> 1
        (2, 0.2, 0.0, (1, 0, 1)),  # 0.4 -> 0, raised to 1 (train still 1)
        (1, 0.2, 0.0, (1, 0, 0)),  # a single case is for training
        (2, 0.3, 0.3, (1, 0, 1)),  # val dropped first to keep one training case
        (5, 0.0, 0.0, (5, 0, 0)),
    ],
)
def test_split_sizes(n, test_fraction, val_fraction, sizes):
    ids = [f"c{i}" for i in range(n)]
    s = make_split(ids, seed=0, test_fraction=test_fraction, val_fraction=val_fraction)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == sizes
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(ids)
    for k in ("train", "val", "test"):
        assert s[k] == sorted(s[k])


def test_split_deterministic_and_order_independent():
    a = make_split(IDS, seed=3, val_fraction=0.2)
    b = make_split(list(reversed(IDS)), seed=3, val_fraction=0.2)
    assert a == b
    others = [make_split(IDS, seed=s, val_fraction=0.2)["test"] for s in range(4, 8)]
    assert any(o != a["test"] for o in others)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"case_ids": []}, "no case ids"),
        ({"case_ids": ["a", "a", "b"]}, r"duplicate case ids \['a'\]"),
        ({"case_ids": IDS, "test_fraction": 1.0}, "test_fraction must be in"),
        ({"case_ids": IDS, "val_fraction": -0.1}, "val_fraction must be in"),
        ({"case_ids": IDS, "test_fraction": 0.5, "val_fraction": 0.5}, "must be < 1"),
    ],
)
def test_split_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_split(**kwargs)


def test_split_file_json_and_yaml(tmp_path):
    js = tmp_path / "split.json"
    js.write_text(json.dumps({"train": ["c", "a"], "val": ["b"], "test": ["d"]}))
    assert make_split(["a", "b", "c", "d"], split_file=js) == {"train": ["a", "c"], "val": ["b"], "test": ["d"]}
    ym = tmp_path / "split.yaml"
    ym.write_text("train: [a, b, c]\ntest:\n  - d\n")
    assert make_split(["a", "b", "c", "d"], seed=99, split_file=ym) == {"train": ["a", "b", "c"], "val": [], "test": ["d"]}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("train: [a, b, c]\ntest: [d, zz]\n", r"unknown case id\(s\) \['zz'\]"),
        ("train: [a, b, c]\ntest: [c, d]\n", r"more than once: 'c' in \['train', 'test'\]"),
        ("train: [a, b]\ntest: [d]\n", r"unassigned: \['c'\]"),
        ("train: []\ntest: [a, b, c, d]\n", "no training case"),
        ("train: [a, b, c]\ntesting: [d]\n", r"unknown key\(s\) \['testing'\]"),
        ("- a\n- b\n", "must hold a mapping"),
        ("train: a\n", "must be a list"),
        ("train: [a, b\n", "not valid JSON/YAML"),
    ],
)
def test_split_file_errors(tmp_path, content, match):
    p = tmp_path / "my_split.yaml"
    p.write_text(content)
    with pytest.raises(DataIntegrityError, match=match) as exc:
        make_split(["a", "b", "c", "d"], split_file=p)
    assert "my_split.yaml" in str(exc.value)


def test_split_file_missing(tmp_path):
    with pytest.raises(DataIntegrityError, match="cannot read split file"):
        make_split(["a"], split_file=tmp_path / "nope.json")
