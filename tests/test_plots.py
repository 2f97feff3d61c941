"""Tests for blobloss.plots.plot_blob_statistics (paper Fig. 4 style figure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blobloss.plots import dataset_palette, plot_blob_statistics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _features(dataset: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sph = rng.uniform(0.2, 1.0, n)
    return pd.DataFrame(
        {
            "dataset": dataset,
            "case": [f"c{i % 3}" for i in range(n)],
            "label": np.arange(1, n + 1),
            "volume": rng.lognormal(3, 1, n),
            "n_voxels": rng.integers(1, 500, n),
            "compactness": sph**3,
            "sphereness": sph,
            "stringness": 1 - sph,
            "skewness": rng.uniform(0, 1, n),
        }
    )


def _counts(dataset: str, values: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"dataset": dataset, "case": [f"c{i}" for i in range(len(values))], "n_blobs": values})


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_two_datasets(tmp_path) -> None:
    feats = pd.concat([_features("MS", 60, 0), _features("LiTS", 25, 1)], ignore_index=True)
    feats.loc[[0, 5], ["compactness", "sphereness", "stringness", "skewness"]] = np.nan  # single voxels
    counts = pd.concat([_counts("MS", [20, 20, 20]), _counts("LiTS", [10, 15, 0])], ignore_index=True)
    out = plot_blob_statistics(feats, counts, tmp_path / "fig" / "blob_statistics.png")
    assert out == tmp_path / "fig" / "blob_statistics.png"
    _assert_png(out)


@pytest.mark.parametrize(
    ("features", "counts"),
    [
        # one dataset with a single blob, one with zero blobs
        (_features("one", 1, 2), pd.concat([_counts("one", [1]), _counts("none", [0, 0])], ignore_index=True)),
        # no blobs at all
        (_features("x", 0, 3), _counts("x", [0, 0, 0])),
        # only single-voxel blobs: every shape feature NaN
        (_features("nan", 4, 4).assign(compactness=np.nan, sphereness=np.nan, stringness=np.nan, skewness=np.nan),
         _counts("nan", [4])),
        # identical blobs: zero variance
        (_features("same", 5, 5).assign(volume=8.0, compactness=0.5, sphereness=0.5 ** (1 / 3)),
         _counts("same", [5])),
    ],
    ids=["single-and-zero", "no-blobs", "all-nan", "constant"],
)
def test_degenerate_inputs_still_write_png(tmp_path, features: pd.DataFrame, counts: pd.DataFrame) -> None:
    out = plot_blob_statistics(features, counts, tmp_path / "f.png", dpi=40)
    _assert_png(out)


def test_palette_is_consistent_and_distinct() -> None:
    pal = dataset_palette(["a", "b", "c"])
    assert list(pal) == ["a", "b", "c"]
    assert len(set(pal.values())) == 3
    assert dataset_palette(["a", "b", "c"]) == pal


@pytest.mark.parametrize(
    ("features", "counts", "kwargs", "match"),
    [
        (
            _features("a", 3, 0).drop(columns="skewness"),
            _counts("a", [3]),
            {},
            r"features lacks columns \['skewness'\]",
        ),
        (_features("a", 3, 0), _counts("a", [3]).drop(columns="n_blobs"), {}, r"counts lacks columns \['n_blobs'\]"),
        (_features("a", 3, 0), _counts("a", [3]), {"percentile": 0}, r"percentile must be in \(0, 100\], got 0"),
        (_features("a", 3, 0), _counts("a", [3]), {"percentile": 101}, "got 101"),
        (_features("a", 0, 0), _counts("a", []), {}, "names no dataset"),
    ],
)
def test_errors(tmp_path, features, counts, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        plot_blob_statistics(features, counts, tmp_path / "f.png", **kwargs)
    assert not (tmp_path / "f.png").exists()
