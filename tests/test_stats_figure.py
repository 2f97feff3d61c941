"""Fig. 4 box plots: boxes from all values, the axis cut at the percentile, volumes in one unit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blobloss.plots import blob_statistics_figure, box_statistics

FEATURES = ("compactness", "sphereness", "stringness", "skewness")


def _features(dataset: str, volumes: np.ndarray, voxel_volume: float = 1.0) -> pd.DataFrame:
    n = len(volumes)
    return pd.DataFrame({
        "dataset": dataset, "case": [f"c{i % 4}" for i in range(n)], "n_voxels": volumes.astype(int),
        "volume": volumes.astype(int) * voxel_volume, **{f: np.linspace(0.1, 0.9, n) for f in FEATURES},
    })


def _counts(dataset: str, values) -> pd.DataFrame:
    return pd.DataFrame({"dataset": dataset, "case": [f"c{i}" for i in range(len(values))], "n_blobs": values})


def _drawn_boxes(ax) -> list[tuple[float, float, float]]:
    """(q1, median, q3) of every box drawn on ``ax``, read back from the artists."""
    boxes = [p for p in ax.patches if str(p.get_gid()).startswith("box:")]
    medians = {line.get_gid()[len("median:"):]: line for line in ax.lines if str(line.get_gid()).startswith("median:")}
    out = []
    for box in boxes:
        y = box.get_path().vertices[:, 1]
        median = medians[box.get_gid()[len("box:"):]]
        out.append((float(y.min()), float(median.get_ydata()[0]), float(y.max())))
    return out


def test_quartiles_are_those_of_all_values_and_the_axis_is_cut() -> None:
    rng = np.random.default_rng(0)
    volumes = np.round(rng.lognormal(3.0, 1.2, 400)) + 1
    features = _features("a", volumes)
    counts = _counts("a", [100, 100, 100, 100])
    fig = blob_statistics_figure(features, counts, percentile=95)
    ax = fig.axes[1]  # volume per blob
    expected = np.percentile(volumes.astype(int), [25, 50, 75])
    ((q1, med, q3),) = _drawn_boxes(ax)
    assert (q1, med, q3) == pytest.approx(tuple(expected))
    # dropping the values above the 95th percentile first (the old figure) moves the quartiles
    p95 = np.percentile(volumes.astype(int), 95)
    cut = volumes.astype(int)[volumes.astype(int) <= p95]
    assert np.percentile(cut, 75) < expected[2] - 1
    # the axis, not the data, is cut at the 95th percentile (3 % padding)
    low, high = ax.get_ylim()
    assert high == pytest.approx(p95 + 0.03 * (p95 - low / 1.0), rel=0.05)
    assert "axis cut at the 95th percentile; boxes from all values" in ax.get_title()
    assert fig._suptitle.get_text() == "Blob statistics of a"  # the title names the dataset(s)


def test_box_statistics_table() -> None:
    frame = pd.DataFrame({"dataset": ["a"] * 5 + ["b"] * 4, "v": [1, 2, 3, 4, 100, 10, 10, 10, np.nan]})
    stats = box_statistics(frame, "v", ["b", "a", "empty"])
    assert list(stats) == ["b", "a"]  # display order; no box without values
    a = stats["a"]
    assert (a["q1"], a["med"], a["q3"]) == (2.0, 3.0, 4.0)
    assert a["whishi"] == 4.0  # 100 lies beyond 1.5 IQR: not a whisker, still counted in the quartiles
    assert (stats["b"]["q1"], stats["b"]["q3"]) == (10.0, 10.0)  # NaN ignored


def test_axis_limit_is_the_largest_dataset_percentile() -> None:
    small = _features("small", np.arange(1, 101, dtype=float))
    large = _features("large", np.arange(1, 101, dtype=float) * 10)
    fig = blob_statistics_figure(pd.concat([small, large]), pd.concat([_counts("small", [50]), _counts("large", [50])]))
    _, high = fig.axes[1].get_ylim()
    p95_large = np.percentile(np.arange(1, 101) * 10, 95)
    assert p95_large <= high <= p95_large * 1.05
    boxes = _drawn_boxes(fig.axes[1])
    assert [b[1] for b in boxes] == pytest.approx([50.5, 505.0])


@pytest.mark.parametrize(
    ("volume_unit", "units", "label"),
    [
        ("voxels", None, "volume per blob (voxels)"),
        ("physical", {"ms": "mm", "ls": "mm"}, "volume per blob (mm^3)"),
        ("physical", {"ms": "mm", "ls": "um"}, "physical volume per blob; units differ (ms: mm^3, ls: um^3)"),
        ("physical", None, "physical volume per blob (spacing unit^3 of each dataset)"),
    ],
)
def test_volumes_in_one_unit_per_figure(volume_unit, units, label) -> None:
    volumes = np.arange(1, 41, dtype=float)
    features = pd.concat([_features("ms", volumes, voxel_volume=1.0), _features("ls", volumes, voxel_volume=8.0)])
    counts = pd.concat([_counts("ms", [40]), _counts("ls", [40])])
    fig = blob_statistics_figure(features, counts, volume_unit=volume_unit, units=units)
    assert fig.axes[1].get_ylabel() == label
    medians = [b[1] for b in _drawn_boxes(fig.axes[1])]
    factor = 8.0 if volume_unit == "physical" else 1.0
    assert medians == pytest.approx([20.5, 20.5 * factor])


def test_volume_unit_errors() -> None:
    features = _features("a", np.arange(1, 5, dtype=float))
    counts = _counts("a", [4])
    with pytest.raises(ValueError, match=r"volume_unit='litres' is not supported; use one of \['voxels', 'physical'\]"):
        blob_statistics_figure(features, counts, volume_unit="litres")
    with pytest.raises(ValueError, match="needs the features column 'n_voxels'"):
        blob_statistics_figure(features.drop(columns="n_voxels"), counts)
    fig = blob_statistics_figure(features.drop(columns="n_voxels"), counts, volume_unit="physical")
    assert fig.axes[1].get_ylabel().startswith("physical volume")
