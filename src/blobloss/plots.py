"""Figures of the study.

:func:`plot_blob_statistics` draws the blob-statistics figure (paper Fig. 4): blob count per case and
volume per blob as box plots, and the densities of the four shape features, one colour per dataset.

Figures are drawn on a plain :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot state, no
GUI backend needed) and written atomically (temporary file with the same extension in the same folder,
then ``os.replace``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = ["SHAPE_FEATURES", "dataset_palette", "plot_blob_statistics"]

#: The shape features plotted as densities, in panel order.
SHAPE_FEATURES: tuple[str, ...] = ("compactness", "sphereness", "stringness", "skewness")
_MAX_POINTS = 200  # points per dataset drawn over a box plot


def dataset_palette(datasets: Sequence[str], palette: str = "colorblind") -> dict[str, tuple[float, float, float]]:
    """One colour per dataset, stable for a given dataset order.

    Args:
        datasets: Dataset names in display order.
        palette: A seaborn palette name.

    Returns:
        ``{dataset: RGB tuple}``.

    Example:
        >>> sorted(dataset_palette(["MS", "LiTS"]))
        ['LiTS', 'MS']
    """
    colours = sns.color_palette(palette, n_colors=max(len(datasets), 1))
    return {d: tuple(colours[i]) for i, d in enumerate(datasets)}


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} lacks columns {missing} (has {list(frame.columns)}); pass the tables from "
            "blobloss.stats.dataset_statistics (features: dataset, case, volume, shape features; "
            "counts: dataset, case, n_blobs)."
        )


def _cut_at_percentile(frame: pd.DataFrame, column: str, percentile: float) -> pd.DataFrame:
    """Rows whose ``column`` is at most the ``percentile``-th percentile of their dataset (NaN dropped)."""
    values = frame[["dataset", column]].dropna()
    if values.empty:
        return values
    limits = values.groupby("dataset", sort=False)[column].transform(lambda v: np.percentile(v, percentile))
    return values[values[column] <= limits]


def _box_panel(
    ax: Axes, data: pd.DataFrame, column: str, datasets: list[str], colours: dict, title: str, ylabel: str
) -> None:
    present = [d for d in datasets if d in set(data["dataset"])]
    if present:
        palette = {d: colours[d] for d in present}
        common = {"x": "dataset", "y": column, "hue": "dataset", "order": present, "hue_order": present}
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated `vert`
            warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
            sns.boxplot(data=data, **common, palette=palette, showfliers=False, legend=False, ax=ax)
        # individual values on top (at most _MAX_POINTS per dataset) so that tiny datasets stay visible
        sample = data.sample(frac=1.0, random_state=0).groupby("dataset", sort=False).head(_MAX_POINTS)
        sns.stripplot(
            data=sample, **common, palette=palette, size=3, alpha=0.6, edgecolor="black", linewidth=0.3,
            legend=False, ax=ax,
        )
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)


def _density_panel(ax: Axes, features: pd.DataFrame, column: str, datasets: list[str], colours: dict) -> None:
    values = features[["dataset", column]].replace([np.inf, -np.inf], np.nan).dropna()
    distinct = values.groupby("dataset")[column].nunique()
    kept = [d for d in datasets if distinct.get(d, 0) >= 2]  # a KDE needs at least two distinct values
    if kept:
        sns.kdeplot(
            data=values[values["dataset"].isin(kept)],
            x=column,
            hue="dataset",
            hue_order=kept,
            palette={d: colours[d] for d in kept},
            common_norm=False,
            fill=True,
            alpha=0.25,
            cut=0,
            warn_singular=False,
            legend=False,
            ax=ax,
        )
    else:
        ax.text(0.5, 0.5, "too few blobs for a density", ha="center", va="center", transform=ax.transAxes)
    skipped = [d for d in datasets if d not in kept]
    note = f" (no density: {', '.join(skipped)})" if skipped and kept else ""
    ax.set_title(f"{column}{note}", fontsize=10)
    ax.set_xlabel(column)
    ax.set_ylabel("density")


def plot_blob_statistics(
    features: pd.DataFrame,
    counts: pd.DataFrame,
    out_png: str | PathLike[str],
    percentile: float = 95,
    volume_label: str = "volume per blob (voxels x spacing)",
    dpi: int = 150,
) -> Path:
    """Draw the blob-statistics figure (paper Fig. 4) and save it atomically.

    Panels: blob count per case and volume per blob as box plots, each cut at the ``percentile``-th
    percentile of its dataset (values above it are dropped from the box plot; the panel titles say so),
    with the individual values drawn on top (a random sample of at most 200 per dataset), and kernel
    density estimates of compactness, sphereness, stringness and skewness. One colour per
    dataset in every panel, one legend. NaN features (single-voxel blobs) are dropped; a dataset with fewer
    than two distinct values of a feature gets no density in that panel; datasets without blobs still
    appear in the count panel.

    Args:
        features: Per-blob table with columns ``dataset``, ``volume``, ``compactness``, ``sphereness``,
            ``stringness``, ``skewness`` (e.g. concatenated outputs of
            :func:`blobloss.stats.dataset_features`); may be empty.
        counts: Per-case table with columns ``dataset``, ``n_blobs`` (from :func:`blobloss.stats.case_counts`).
        out_png: Output image; the format follows the extension (``.png``, ``.pdf``, ``.svg``).
        percentile: Cut-off percentile for the box plots, in ``(0, 100]``.
        volume_label: Y axis label of the volume panel (say the unit).
        dpi: Resolution of raster output.

    Returns:
        The written path.

    Raises:
        ValueError: On missing columns, an out-of-range percentile, or when ``counts`` names no dataset.

    Example:
        >>> plot_blob_statistics(features, counts, "results/figures/blob_statistics.png")  # doctest: +SKIP
    """
    from blobloss.io import atomic_path

    _require_columns(features, ("dataset", "volume", *SHAPE_FEATURES), "features")
    _require_columns(counts, ("dataset", "n_blobs"), "counts")
    if not 0 < float(percentile) <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}; e.g. 95 as in the paper.")
    datasets = list(dict.fromkeys([*counts["dataset"].astype(str), *features["dataset"].astype(str)]))
    if not datasets:
        raise ValueError("counts names no dataset; pass the per-case counts of at least one dataset.")
    features = features.assign(dataset=features["dataset"].astype(str))
    counts = counts.assign(dataset=counts["dataset"].astype(str))
    colours = dataset_palette(datasets)
    pct = f"{float(percentile):g}th percentile"

    fig = Figure(figsize=(15, 9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3, gridspec_kw={"left": 0.05, "right": 0.99, "top": 0.96, "bottom": 0.12,
                                           "wspace": 0.22, "hspace": 0.3})
    _box_panel(
        axes[0, 0],
        _cut_at_percentile(counts, "n_blobs", percentile),
        "n_blobs",
        datasets,
        colours,
        f"blobs per case (values > {pct} of each dataset dropped)",
        "blobs per case",
    )
    _box_panel(
        axes[0, 1],
        _cut_at_percentile(features, "volume", percentile),
        "volume",
        datasets,
        colours,
        f"volume per blob (values > {pct} of each dataset dropped)",
        volume_label,
    )
    for ax, column in zip((axes[0, 2], *axes[1]), SHAPE_FEATURES):
        _density_panel(ax, features, column, datasets, colours)

    n_cases = counts.groupby("dataset").size()
    n_blobs = counts.groupby("dataset")["n_blobs"].sum()
    handles = [
        Patch(color=colours[d], label=f"{d} (cases: {int(n_cases.get(d, 0))}, blobs: {int(n_blobs.get(d, 0))})")
        for d in datasets
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), frameon=False)

    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=out.suffix.lstrip(".").lower() or "png")
    return out
