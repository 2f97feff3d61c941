"""Figures of the study.

:func:`plot_blob_statistics` draws the blob-statistics figure (paper Fig. 4): blob count per case and
volume per blob as box plots, and the densities of the four shape features, one colour per dataset.

Results figures: :func:`detection_overlay` / :func:`plot_detection_comparison` (paper Fig. 5/6: maximum
intensity projections with TP/FP/FN blobs), :func:`pick_case` (the case where two settings differ most,
seed-averaged) and :func:`pick_seed` (the seed shown for it), :func:`plot_paired` (per-case scatter of two
settings, seed-averaged), :func:`plot_recall_by_size` (recall by ground-truth blob size beside false
positives by predicted blob size, seed mean and spread) and :func:`plot_training_curves`. Every results
figure's title names its dataset when one is given.

Figures are drawn on a plain :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot state, no
GUI backend needed) and written atomically (temporary file with the same extension in the same folder,
then ``os.replace``).
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = [
    "SHAPE_FEATURES",
    "VOLUME_UNITS",
    "blob_statistics_figure",
    "box_statistics",
    "dataset_palette",
    "plot_blob_statistics",
]

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


#: Units of the volume panel: voxel counts (the one unit every dataset shares) or physical volumes.
VOLUME_UNITS: tuple[str, ...] = ("voxels", "physical")


def _cut_at_percentile(frame: pd.DataFrame, column: str, percentile: float) -> float | None:
    """The axis limit of a box panel: the largest per-dataset ``percentile``-th percentile of ``column``.

    The values themselves are kept: the boxes are computed on all of them and the axis is cut here (the
    paper cuts its Fig. 4 box plots at the 95th percentile "for visualisation purposes"). None without
    finite values.
    """
    values = frame[["dataset", column]].replace([np.inf, -np.inf], np.nan).dropna()
    if values.empty:
        return None
    return float(values.groupby("dataset", sort=False)[column].apply(lambda v: np.percentile(v, percentile)).max())


def box_statistics(frame: pd.DataFrame, column: str, datasets: Sequence[str]) -> dict[str, dict]:
    """Box-plot statistics of ``column`` per dataset, computed on ALL finite values.

    Args:
        frame: Table with ``dataset`` and ``column``.
        column: The column to summarise.
        datasets: Datasets in display order; those without finite values are left out.

    Returns:
        ``{dataset: stats}`` as :func:`matplotlib.cbook.boxplot_stats` computes them (``q1``, ``med``,
        ``q3``, ``whislo``, ``whishi`` with whiskers at 1.5 IQR, quartiles as :func:`numpy.percentile`).

    Example:
        >>> frame = pd.DataFrame({"dataset": "a", "v": [1.0, 2.0, 3.0, 4.0, 100.0]})
        >>> s = box_statistics(frame, "v", ["a"])["a"]
        >>> float(s["q1"]), float(s["med"]), float(s["q3"])
        (2.0, 3.0, 4.0)
    """
    from matplotlib.cbook import boxplot_stats

    values = frame[["dataset", column]].replace([np.inf, -np.inf], np.nan).dropna()
    out = {}
    for dataset in datasets:
        data = values.loc[values["dataset"] == dataset, column].to_numpy(dtype=float)
        if data.size:
            (stats,) = boxplot_stats(data, whis=1.5)
            stats["label"] = dataset
            out[dataset] = stats
    return out


def _box_panel(
    ax: Axes,
    data: pd.DataFrame,
    column: str,
    datasets: list[str],
    colours: dict,
    title: str,
    ylabel: str,
    percentile: float,
) -> None:
    """Boxes from all values per dataset, the values on top, the y axis cut at the percentile."""
    stats = box_statistics(data, column, datasets)
    present = [d for d in datasets if d in stats]
    if present:
        artists = ax.bxp([stats[d] for d in present], positions=range(len(present)), widths=0.6,
                         showfliers=False, patch_artist=True, manage_ticks=False)
        for box, dataset in zip(artists["boxes"], present):
            box.set_facecolor(colours[dataset])
            box.set_alpha(0.8)
            box.set_gid(f"box:{dataset}")  # names the artists in SVG output (and for tests)
        for median, dataset in zip(artists["medians"], present):
            median.set_color("black")
            median.set_gid(f"median:{dataset}")
        # individual values on top (at most _MAX_POINTS per dataset) so that tiny datasets stay visible
        rng = np.random.default_rng(0)
        finite = data[["dataset", column]].replace([np.inf, -np.inf], np.nan).dropna()
        for i, dataset in enumerate(present):
            values = finite.loc[finite["dataset"] == dataset, column].to_numpy(dtype=float)
            if values.size > _MAX_POINTS:
                values = rng.choice(values, _MAX_POINTS, replace=False)
            x = i + rng.uniform(-0.15, 0.15, values.size)
            ax.scatter(x, values, s=9, color=colours[dataset], alpha=0.6, edgecolors="black", linewidths=0.3,
                       zorder=3)
        ax.set_xticks(range(len(present)), present)
        ax.set_xlim(-0.6, len(present) - 0.4)
        limit = _cut_at_percentile(finite, column, percentile)
        low = min(float(finite[column].min()), min(float(stats[d]["whislo"]) for d in present))
        if limit is not None and limit > low:
            ax.set_ylim(low - 0.03 * (limit - low), limit + 0.03 * (limit - low))
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("")
    ax.set_ylabel(ylabel)


def _volume_column(features: pd.DataFrame, volume_unit: str, units: Mapping[str, str] | None,
                   datasets: Sequence[str]) -> tuple[str, str]:
    """The column and the axis label of the volume panel, in one unit for the whole figure."""
    if volume_unit not in VOLUME_UNITS:
        raise ValueError(f"volume_unit={volume_unit!r} is not supported; use one of {list(VOLUME_UNITS)}.")
    if volume_unit == "voxels":
        if "n_voxels" not in features.columns:
            raise ValueError(
                "volume_unit='voxels' needs the features column 'n_voxels' (written by "
                "blobloss.stats.blob_features); pass those tables or volume_unit='physical'."
            )
        return "n_voxels", "volume per blob (voxels)"
    # physical: say the unit, and say so when the datasets' units differ
    named = {d: str(units[d]) for d in datasets if units and d in units}
    distinct = sorted(set(named.values()))
    if len(distinct) == 1 and len(named) == len(datasets):
        return "volume", f"volume per blob ({distinct[0]}^3)"
    if named:
        text = ", ".join(f"{d}: {u}^3" for d, u in named.items())
        return "volume", f"physical volume per blob; units differ ({text})"
    return "volume", "physical volume per blob (spacing unit^3 of each dataset)"


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


def blob_statistics_figure(
    features: pd.DataFrame,
    counts: pd.DataFrame,
    percentile: float = 95,
    volume_unit: str = "voxels",
    units: Mapping[str, str] | None = None,
) -> Figure:
    """The blob-statistics figure (paper Fig. 4) as a matplotlib Figure; see :func:`plot_blob_statistics`.

    Example:
        >>> feats = pd.DataFrame({"dataset": "a", "volume": [8.0, 27.0], "n_voxels": [8, 27], "compactness": 0.5,
        ...                       "sphereness": 0.8, "stringness": 0.2, "skewness": 0.1})
        >>> fig = blob_statistics_figure(feats, pd.DataFrame({"dataset": ["a"], "n_blobs": [2]}))
        >>> fig.axes[1].get_ylabel()
        'volume per blob (voxels)'
    """
    _require_columns(features, ("dataset", "volume", *SHAPE_FEATURES), "features")
    _require_columns(counts, ("dataset", "n_blobs"), "counts")
    if not 0 < float(percentile) <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}; e.g. 95 as in the paper.")
    datasets = list(dict.fromkeys([*counts["dataset"].astype(str), *features["dataset"].astype(str)]))
    if not datasets:
        raise ValueError("counts names no dataset; pass the per-case counts of at least one dataset.")
    volume_column, volume_label = _volume_column(features, volume_unit, units, datasets)
    features = features.assign(dataset=features["dataset"].astype(str))
    counts = counts.assign(dataset=counts["dataset"].astype(str))
    colours = dataset_palette(datasets)
    cut = f"axis cut at the {float(percentile):g}th percentile; boxes from all values"

    fig = Figure(figsize=(15, 9))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3, gridspec_kw={"left": 0.05, "right": 0.99, "top": 0.92, "bottom": 0.12,
                                           "wspace": 0.22, "hspace": 0.3})
    fig.suptitle(f"Blob statistics of {', '.join(datasets)}", fontsize=11)
    _box_panel(axes[0, 0], counts, "n_blobs", datasets, colours, f"blobs per case ({cut})", "blobs per case",
               percentile)
    _box_panel(axes[0, 1], features, volume_column, datasets, colours, f"volume per blob ({cut})", volume_label,
               percentile)
    for ax, column in zip((axes[0, 2], *axes[1]), SHAPE_FEATURES):
        _density_panel(ax, features, column, datasets, colours)

    n_cases = counts.groupby("dataset").size()
    n_blobs = counts.groupby("dataset")["n_blobs"].sum()
    handles = [
        Patch(color=colours[d], label=f"{d} (cases: {int(n_cases.get(d, 0))}, blobs: {int(n_blobs.get(d, 0))})")
        for d in datasets
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), frameon=False)
    return fig


def plot_blob_statistics(
    features: pd.DataFrame,
    counts: pd.DataFrame,
    out_png: str | PathLike[str],
    percentile: float = 95,
    volume_unit: str = "voxels",
    units: Mapping[str, str] | None = None,
    dpi: int = 150,
) -> Path:
    """Draw the blob-statistics figure (paper Fig. 4) and save it atomically.

    Panels: blob count per case and volume per blob as box plots, and kernel density estimates of
    compactness, sphereness, stringness and skewness; one colour per dataset in every panel, one legend.
    The boxes (quartiles, 1.5 IQR whiskers) are computed on ALL values of each dataset; the y axis is then
    cut at the ``percentile``-th percentile (the largest over the datasets), as the paper cuts its plots
    "for visualisation purposes" (dropping the values first would move the quartiles). The individual
    values are drawn on top (a random sample of at most 200 per dataset). Volumes are in one unit for the
    whole figure: voxel counts by default (every dataset has them), or physical volumes with
    ``volume_unit="physical"``, whose axis label names the unit, or says that the datasets' units differ.
    NaN features (single-voxel blobs) are dropped; a dataset with fewer than two distinct values of a
    feature gets no density in that panel; datasets without blobs still appear in the count panel.

    Args:
        features: Per-blob table with columns ``dataset``, ``volume``, ``n_voxels`` (for voxel units),
            ``compactness``, ``sphereness``, ``stringness``, ``skewness`` (e.g. concatenated outputs of
            :func:`blobloss.stats.dataset_features`); may be empty.
        counts: Per-case table with columns ``dataset``, ``n_blobs`` (from :func:`blobloss.stats.case_counts`).
        out_png: Output image; the format follows the extension (``.png``, ``.pdf``, ``.svg``).
        percentile: Where the box panels' axes are cut, in ``(0, 100]``.
        volume_unit: ``"voxels"`` (default) or ``"physical"`` (the ``volume`` column: voxel count times
            the voxel volume from the header).
        units: ``{dataset: spacing unit}`` (e.g. ``{"ms": "mm"}``) for the physical axis label.
        dpi: Resolution of raster output.

    Returns:
        The written path.

    Raises:
        ValueError: On missing columns, an out-of-range percentile, an unknown ``volume_unit``, or when
            ``counts`` names no dataset.

    Example:
        >>> plot_blob_statistics(features, counts, "results/figures/blob_statistics.png")  # doctest: +SKIP
    """
    from blobloss.io import atomic_path

    fig = blob_statistics_figure(features, counts, percentile=percentile, volume_unit=volume_unit, units=units)
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=out.suffix.lstrip(".").lower() or "png")
    return out


# ==================================================================================================
# Results figures: detection overlays (paper Fig. 5/6), paired per-case comparison, training curves
# ==================================================================================================

#: Colours of the detection overlay (RGB in [0, 1]).
DETECTION_COLOURS: dict[str, tuple[float, float, float]] = {
    "tp": (0.0, 0.8, 0.0),  # predicted blob that touches the ground truth
    "fp": (0.1, 0.3, 1.0),  # predicted blob that touches no ground truth
    "fn": (1.0, 0.0, 0.0),  # ground-truth blob that no prediction touches
    "gt": (1.0, 0.85, 0.0),  # ground truth in the reference panel
}
_DETECTION_LEGEND = {
    "tp": "TP: predicted blob touching the ground truth",
    "fp": "FP: predicted blob touching no ground truth",
    "fn": "FN: ground-truth blob missed",
    "gt": "ground truth",
}
METRIC_NAMES: dict[str, str] = {
    "dsc": "DSC",
    "sensitivity": "volumetric sensitivity",
    "precision": "volumetric precision",
    "surface_dice": "Surface Dice",
    "instance_sensitivity": "instance sensitivity",
    "instance_precision": "instance precision",
    "f1": "instance F1",
}

__all__ += [
    "DETECTION_COLOURS",
    "Detections",
    "classify_blobs",
    "detection_overlay",
    "plot_detection_comparison",
    "pick_case",
    "pick_seed",
    "plot_paired",
    "plot_recall_by_size",
    "plot_training_curves",
]


def _save_figure(fig: Figure, out_png: str | PathLike[str], dpi: int) -> Path:
    """Save ``fig`` atomically; the format follows the extension of ``out_png``."""
    from blobloss.io import atomic_path

    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=out.suffix.lstrip(".").lower() or "png")
    return out


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------------------------------
# detection overlay
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detections:
    """Blob-wise detection result of one case (docs/definitions.md section 5 rule).

    Attributes:
        tp: Voxels of predicted blobs that share at least one voxel with the ground truth, (*spatial) bool.
        fp: Voxels of predicted blobs that share none, (*spatial) bool.
        fn: Voxels of ground-truth blobs that share no voxel with the prediction, (*spatial) bool.
        n_tp: Number of TP predicted blobs.
        n_fp: Number of FP predicted blobs.
        n_fn: Number of FN ground-truth blobs.
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_tp: int
    n_fp: int
    n_fn: int


def classify_blobs(gt: np.ndarray, pred: np.ndarray, connectivity: int | None = None) -> Detections:
    """Split prediction and ground truth into TP, FP and FN blobs with the metrics' own matching.

    A thin view of :func:`blobloss.metrics.match_instances` (the one matching of the project, any overlap
    of one voxel is a hit), so the counts always equal those of :func:`blobloss.metrics.instance_metrics`.

    Args:
        gt: Ground truth, (Y, X) or (Z, Y, X), binary.
        pred: Prediction, same shape, binary.
        connectivity: 6/18/26 in 3D, 4/8 in 2D; None = 26 in 3D, 8 in 2D.

    Returns:
        The :class:`Detections` masks and counts.

    Raises:
        ValueError: On non-binary masks, different shapes or an unsupported connectivity.

    Example:
        >>> gt = np.zeros((1, 3, 7), bool); gt[0, 1, 0] = gt[0, 1, 3] = True
        >>> pred = np.zeros_like(gt); pred[0, 1, 0] = pred[0, 1, 6] = True
        >>> d = classify_blobs(gt, pred)
        >>> d.n_tp, d.n_fp, d.n_fn
        (1, 1, 1)
    """
    from blobloss.metrics import match_instances

    m = match_instances(pred, gt, connectivity=connectivity)
    pred_hit = np.concatenate([[False], m.pred_overlap])
    gt_missed = np.concatenate([[False], ~m.gt_overlap])
    pred_fg = m.pred_labels > 0
    tp = pred_hit[m.pred_labels]
    return Detections(tp=tp, fp=pred_fg & ~tp, fn=gt_missed[m.gt_labels], n_tp=m.tp, n_fp=m.fp, n_fn=m.fn)


def _spatial_image(image: np.ndarray, ndim: int, channel: int) -> np.ndarray:
    """The image as (*spatial) float: a (C, *spatial) image gives its channel ``channel``."""
    img = np.asarray(image, dtype=float)
    if img.ndim == ndim + 1:
        if not -img.shape[0] <= channel < img.shape[0]:
            raise ValueError(f"channel {channel} out of range for an image with {img.shape[0]} channels.")
        img = img[channel]
    if img.ndim != ndim:
        raise ValueError(
            f"image must be (*spatial) or (C, *spatial) matching the masks' {ndim} spatial axes, got shape "
            f"{np.shape(image)}."
        )
    return img


def _mip(array: np.ndarray, axis: int) -> np.ndarray:
    """Maximum intensity projection along ``axis`` for 3D arrays; 2D arrays are returned unchanged."""
    return array if array.ndim == 2 else array.max(axis=axis)


def _grey_rgb(image_mip: np.ndarray) -> np.ndarray:
    """(H, W) image -> (H, W, 3) grey in [0, 1] (min/max scaled; constant images are black)."""
    finite = np.where(np.isfinite(image_mip), image_mip, np.nan)
    lo, hi = np.nanmin(finite), np.nanmax(finite)
    scaled = np.zeros_like(image_mip, dtype=float) if not hi > lo else (np.nan_to_num(finite, nan=lo) - lo) / (hi - lo)
    return np.repeat(scaled[..., None], 3, axis=-1)


def _paint(rgb: np.ndarray, mask_mip: np.ndarray, colour: tuple[float, float, float], alpha: float) -> None:
    """Blend ``colour`` into ``rgb`` where ``mask_mip`` is set (in place)."""
    rgb[mask_mip] = (1.0 - alpha) * rgb[mask_mip] + alpha * np.asarray(colour)


def _check_alpha(alpha: float) -> float:
    if not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha (overlay opacity) must be in (0, 1], got {alpha!r}.")
    return float(alpha)


def _check_axis(axis: int, ndim: int) -> int:
    if ndim == 3 and not -3 <= axis < 3:
        raise ValueError(f"axis must be -3..2 for a 3D volume, got {axis}.")
    return axis


def detection_overlay(
    image: np.ndarray,
    gt: np.ndarray,
    pred: np.ndarray,
    connectivity: int | None = None,
    alpha: float = 0.7,
    axis: int = -1,
    channel: int = 0,
) -> np.ndarray:
    """Maximum intensity projection of an image with TP (green), FP (blue) and FN (red) blobs.

    The image MIP is drawn in grey (min/max scaled); each blob class (see :func:`classify_blobs`) is
    projected as the MIP of its mask and blended in its colour (:data:`DETECTION_COLOURS`), in the order
    TP, FP, FN, so a missed blob stays visible where projections overlap.

    Args:
        image: (*spatial) or (C, *spatial) float image (a channel is picked with ``channel``).
        gt: Ground truth, (*spatial) binary, 2D (Y, X) or 3D.
        pred: Prediction, same shape, binary.
        connectivity: Blob connectivity (as for the metrics).
        alpha: Opacity of the colours in (0, 1]; 1 paints pure colours.
        axis: Projection axis for 3D volumes (default: the last one); 2D images are shown as they are.
        channel: Channel of a (C, *spatial) image.

    Returns:
        RGB array (H, W, 3) of floats in [0, 1]: the spatial shape without ``axis`` (3D) or as is (2D).

    Raises:
        ValueError: On mismatched shapes, non-binary masks, bad connectivity, alpha or axis.

    Example:
        >>> gt = np.zeros((4, 4, 3), bool); gt[1, 1, 0] = True
        >>> rgb = detection_overlay(np.zeros((4, 4, 3)), gt, np.zeros_like(gt), alpha=1.0)
        >>> rgb.shape, rgb[1, 1].tolist()
        ((4, 4, 3), [1.0, 0.0, 0.0])
    """
    alpha = _check_alpha(alpha)
    detections = classify_blobs(gt, pred, connectivity)
    ndim = detections.tp.ndim
    axis = _check_axis(axis, ndim)
    img = _spatial_image(image, ndim, channel)
    if img.shape != detections.tp.shape:
        raise ValueError(f"image has spatial shape {img.shape} but the masks have {detections.tp.shape}.")
    return _overlay(img, detections, alpha, axis)


def _overlay(img: np.ndarray, detections: Detections, alpha: float, axis: int) -> np.ndarray:
    """Grey image MIP with the TP, FP and FN MIPs blended in, in that order."""
    rgb = _grey_rgb(_mip(img, axis))
    for kind in ("tp", "fp", "fn"):
        _paint(rgb, _mip(getattr(detections, kind), axis), DETECTION_COLOURS[kind], alpha)
    return rgb


def plot_detection_comparison(
    image: np.ndarray,
    gt: np.ndarray,
    preds: Mapping[str, np.ndarray],
    out_png: str | PathLike[str],
    title: str | None = None,
    connectivity: int | None = None,
    alpha: float = 0.7,
    axis: int = -1,
    spacing: Sequence[float] | None = None,
    dpi: int = 150,
) -> Path:
    """Draw the paper's Fig. 5/6-style panel: image MIP | ground truth | one detection overlay per prediction.

    Each overlay panel's title gives its TP/FP/FN blob counts; one legend explains the colours.

    Args:
        image: (*spatial) or (C, *spatial) image (channel 0 is shown).
        gt: Ground truth, (*spatial) binary.
        preds: ``{label: prediction}``, e.g. ``{"dice": p1, "blob dice": p2}``, in panel order.
        out_png: Output image (format from the extension).
        title: Figure title (e.g. the case id).
        connectivity: Blob connectivity.
        alpha: Opacity of the colours.
        axis: Projection axis for 3D volumes.
        spacing: Voxel size per spatial axis, to draw anisotropic voxels with the right aspect.
        dpi: Resolution.

    Returns:
        The written path.

    Raises:
        ValueError: On no predictions, shape mismatches or invalid masks.

    Example:
        >>> plot_detection_comparison(img, gt, {"dice": p1, "blob dice": p2}, "fig5.png")  # doctest: +SKIP
    """
    if not preds:
        raise ValueError("preds is empty; pass at least one prediction, e.g. {'dice': pred}.")
    alpha = _check_alpha(alpha)
    detections = {label: classify_blobs(gt, pred, connectivity) for label, pred in preds.items()}
    gt_b = np.asarray(gt).astype(bool)
    ndim = gt_b.ndim
    axis = _check_axis(axis, ndim)
    img = _spatial_image(image, ndim, 0)
    if img.shape != gt_b.shape:
        raise ValueError(f"image has spatial shape {img.shape} but the masks have {gt_b.shape}.")
    aspect = _aspect(spacing, ndim, axis)
    grey = _grey_rgb(_mip(img, axis))
    reference = grey.copy()
    _paint(reference, _mip(gt_b, axis), DETECTION_COLOURS["gt"], alpha)

    n_panels = 2 + len(preds)
    title_lines = title.count("\n") + 1 if title else 0
    height = 3.8 + 0.3 * max(title_lines - 1, 0)
    top = 1.0 - (0.18 * 3.8 + 0.3 * max(title_lines - 1, 0)) / height
    fig = _new_figure((max(3.2 * n_panels, 2.4 + 0.11 * max((len(t) for t in (title or "").splitlines()), default=0)),
                       height))
    axes = np.atleast_1d(fig.subplots(1, n_panels, gridspec_kw={"bottom": 0.17 * 3.8 / height, "top": top,
                                                                "wspace": 0.05}))
    _image_panel(axes[0], grey, "image (MIP)", aspect)
    _image_panel(axes[1], reference, "ground truth", aspect)
    for ax, (label, found) in zip(axes[2:], detections.items()):
        rgb = _overlay(img, found, alpha, axis)
        _image_panel(ax, rgb, f"{label}\nTP {found.n_tp}  FP {found.n_fp}  FN {found.n_fn}", aspect)
    handles = [Patch(color=DETECTION_COLOURS[k], label=_DETECTION_LEGEND[k]) for k in ("gt", "tp", "fp", "fn")]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save_figure(fig, out_png, dpi)


def _aspect(spacing: Sequence[float] | None, ndim: int, axis: int) -> float:
    """Pixel aspect (row spacing / column spacing) of the projected image."""
    if spacing is None:
        return 1.0
    values = [float(s) for s in spacing]
    if len(values) != ndim or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must have {ndim} positive entries (one per spatial axis), got {spacing!r}.")
    if ndim == 3:
        del values[axis]
    return values[0] / values[1]


def _image_panel(ax: Axes, rgb: np.ndarray, title: str, aspect: float) -> None:
    ax.imshow(rgb, interpolation="nearest", aspect=aspect)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


# --------------------------------------------------------------------------------------------------
# per-case comparison of two settings
# --------------------------------------------------------------------------------------------------
def _per_case_means(
    per_case: pd.DataFrame, settings: Sequence[str], checkpoint: str, metric: str, dataset: str | None
) -> pd.DataFrame:
    """Per-case means over seeds (NaN ignored) of ``metric``: index = case (sorted), one column per setting."""
    _require_columns(per_case, ("dataset", "setting", "checkpoint", "case", metric), "per_case")
    rows = per_case[(per_case["checkpoint"] == checkpoint) & per_case["setting"].isin(list(settings))]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    datasets = rows["dataset"].unique()
    if len(datasets) > 1:
        raise ValueError(f"settings {list(settings)} appear in several datasets {list(datasets)}; pass dataset=...")
    for setting in settings:
        if not (rows["setting"] == setting).any():
            raise ValueError(
                f"setting {setting!r} has no rows at checkpoint {checkpoint!r}"
                + (f" in dataset {dataset!r}" if dataset is not None else "")
                + f"; available settings: {sorted(per_case['setting'].astype(str).unique())}."
            )
    values = rows.assign(case=rows["case"].astype(str), _v=pd.to_numeric(rows[metric], errors="coerce"))
    table = values.pivot_table(index="case", columns="setting", values="_v", aggfunc="mean", dropna=False)
    return table.reindex(columns=list(settings)).sort_index()


def pick_case(
    per_case: pd.DataFrame,
    setting_a: str,
    setting_b: str,
    checkpoint: str = "last",
    metric: str = "f1",
    dataset: str | None = None,
) -> str:
    """The test case where two settings differ most in ``metric`` (per-case means over seeds).

    Args:
        per_case: Long per-case table (columns dataset, setting, checkpoint, case, ``metric``; seeds as rows).
        setting_a: First setting, e.g. ``"dice"``.
        setting_b: Second setting, e.g. ``"blob_dice"``.
        checkpoint: Which checkpoint.
        metric: Metric column (default instance F1).
        dataset: Dataset, needed when the settings exist in several.

    Returns:
        The case id with the largest absolute difference; ties go to the first case in sorted order.

    Raises:
        ValueError: On missing columns or settings, or when no case has a value for both settings.

    Example:
        >>> df = pd.DataFrame({"dataset": "ms", "checkpoint": "last", "setting": ["a", "b", "a", "b"],
        ...                    "case": ["c0", "c0", "c1", "c1"], "f1": [0.5, 0.6, 0.2, 0.9]})
        >>> pick_case(df, "a", "b")
        'c1'
    """
    table = _per_case_means(per_case, (setting_a, setting_b), checkpoint, metric, dataset)
    diff = (table[setting_a] - table[setting_b]).abs().round(12).dropna()  # round: float noise is no tie-break
    if diff.empty:
        raise ValueError(f"no case has a {metric!r} value for both {setting_a!r} and {setting_b!r}.")
    return str(diff.idxmax())


def pick_seed(
    per_case: pd.DataFrame,
    case: str,
    setting_a: str,
    setting_b: str,
    checkpoint: str = "last",
    metric: str = "f1",
    dataset: str | None = None,
) -> tuple[int, float, float]:
    """The seed to show for ``case``: the one whose difference b - a is closest to the seed average.

    Args:
        per_case: Long per-case table (columns dataset, setting, checkpoint, seed, case, ``metric``).
        case: The case (e.g. from :func:`pick_case`).
        setting_a: First setting (e.g. the baseline).
        setting_b: Second setting.
        checkpoint: Which checkpoint.
        metric: Metric column.
        dataset: Dataset, needed when the settings exist in several.

    Returns:
        ``(seed, difference at that seed, difference averaged over seeds)``. Among seeds equally close to
        the average (with two seeds, always both) the one with the larger absolute difference is shown,
        then the lowest seed.

    Raises:
        ValueError: When no seed has a value of ``metric`` for both settings on ``case``.

    Example:
        >>> df = pd.DataFrame({"dataset": "ms", "checkpoint": "last", "case": "c0", "seed": [0, 0, 1, 1, 2, 2],
        ...                    "setting": ["a", "b"] * 3, "f1": [0.5, 0.9, 0.5, 0.6, 0.5, 0.7]})
        >>> seed, at_seed, mean = pick_seed(df, "c0", "a", "b")
        >>> seed, round(at_seed, 3), round(mean, 3)
        (2, 0.2, 0.233)
    """
    _require_columns(per_case, ("dataset", "setting", "checkpoint", "seed", "case", metric), "per_case")
    rows = per_case[(per_case["checkpoint"] == checkpoint) & (per_case["case"].astype(str) == str(case))]
    if dataset is not None:
        rows = rows[rows["dataset"] == dataset]
    values = rows.assign(_v=pd.to_numeric(rows[metric], errors="coerce"))
    table = values.pivot_table(index="seed", columns="setting", values="_v", aggfunc="mean")
    table = table.reindex(columns=[setting_a, setting_b]).dropna()
    if table.empty:
        raise ValueError(f"case {case!r}: no seed has a {metric!r} value for both {setting_a!r} and {setting_b!r}.")
    diff = (table[setting_b] - table[setting_a]).sort_index()
    mean = float(diff.mean())
    distance = (diff - mean).abs().round(12)
    closest = diff[distance == distance.min()]
    # ties (e.g. two seeds, always equally far from their mean): the larger difference, then the lowest seed
    seed = closest.abs().round(12).sort_index().idxmax()
    return int(seed), float(diff[seed]), mean


def plot_paired(
    per_case: pd.DataFrame,
    setting_a: str,
    setting_b: str,
    out_png: str | PathLike[str],
    metrics: Sequence[str] = ("f1", "dsc"),
    checkpoint: str = "last",
    dataset: str | None = None,
    labels: tuple[str, str] | None = None,
    dpi: int = 150,
    title: str | None = None,
) -> Path:
    """Per-case comparison of two settings: one scatter panel per metric, setting a (x) vs setting b (y).

    Each point is one test case (mean over seeds, NaN ignored); points above the diagonal are cases where
    setting b scores higher. A scatter with the identity line stays readable for hundreds of cases,
    where lines joining paired points would not. Each panel's title counts the cases on either side; the
    figure title (default: the dataset) says how many seeds each point averages.

    Args:
        per_case: Long per-case table (columns dataset, setting, checkpoint, case and the metrics).
        setting_a: Setting on the x axis, e.g. ``"dice"``.
        setting_b: Setting on the y axis, e.g. ``"blob_dice"``.
        out_png: Output image.
        metrics: Metric columns, one panel each.
        checkpoint: Which checkpoint.
        dataset: Dataset, needed when the settings exist in several.
        labels: Axis labels for the two settings (default: the setting names).
        dpi: Resolution.
        title: Figure title; default ``"<dataset>: per-case values, mean over <n> seeds"``.

    Returns:
        The written path.

    Raises:
        ValueError: On no metrics, missing columns or settings.

    Example:
        >>> plot_paired(per_case, "dice", "blob_dice", "paired.png")  # doctest: +SKIP
    """
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty list of metric columns, got {metrics!r}.")
    name_a, name_b = labels if labels is not None else (setting_a, setting_b)
    fig = _new_figure((4.2 * len(metrics), 4.9))
    axes = np.atleast_1d(fig.subplots(1, len(metrics), gridspec_kw={"wspace": 0.3, "top": 0.8}))
    for ax, metric in zip(axes, metrics):
        table = _per_case_means(per_case, (setting_a, setting_b), checkpoint, metric, dataset).dropna()
        _paired_panel(ax, table[setting_a].to_numpy(), table[setting_b].to_numpy(), metric, name_a, name_b)
    if title is None:
        rows = per_case[per_case["setting"].isin([setting_a, setting_b]) & (per_case["checkpoint"] == checkpoint)]
        if dataset is not None:
            rows = rows[rows["dataset"] == dataset]
        names = ", ".join(map(str, dict.fromkeys(rows["dataset"].astype(str))))
        n_seeds = int(rows["seed"].nunique()) if "seed" in rows.columns else 1
        title = f"{names}: per-case values, mean over {n_seeds} seed{'s' if n_seeds != 1 else ''} ({checkpoint} checkpoint)"
    fig.suptitle(title, fontsize=10)
    return _save_figure(fig, out_png, dpi)


def _paired_panel(ax: Axes, a: np.ndarray, b: np.ndarray, metric: str, name_a: str, name_b: str) -> None:
    values = np.concatenate([a, b])
    lo = min(0.0, float(values.min())) if values.size else 0.0
    hi = max(1.0, float(values.max())) if values.size else 1.0
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, zorder=1)
    ax.scatter(a, b, s=18, alpha=0.7, edgecolor="black", linewidth=0.3, zorder=2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel(name_a)
    ax.set_ylabel(name_b)
    above, below = int((b > a).sum()), int((b < a).sum())
    ax.set_title(
        f"{METRIC_NAMES.get(metric, metric)} per case (n={a.size})\n{name_b} higher: {above}, "
        f"{name_a} higher: {below}",
        fontsize=9,
    )


# --------------------------------------------------------------------------------------------------
# training curves
# --------------------------------------------------------------------------------------------------
_LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "lr")


def plot_training_curves(
    logs: Mapping[str, pd.DataFrame],
    out_png: str | PathLike[str],
    dpi: int = 150,
    title: str | None = None,
) -> Path:
    """Training curves of several runs in one figure, one colour per run.

    Left: training loss (solid) and, where a log has one, validation loss (dashed) per epoch; the panel
    title mentions the validation loss only when some run logged it. Right: learning rate per epoch (log
    scale).

    Args:
        logs: ``{run label: log}``; each log has columns ``epoch, train_loss, val_loss, lr`` (and usually
            ``seconds``) as written by the training loop; ``val_loss`` may be empty/NaN.
        out_png: Output image.
        dpi: Resolution.
        title: Figure title (e.g. the dataset).

    Returns:
        The written path.

    Raises:
        ValueError: If ``logs`` is empty or a log lacks a column.

    Example:
        >>> plot_training_curves({"dice": log_a, "blob dice": log_b}, "curves.png")  # doctest: +SKIP
    """
    if not logs:
        raise ValueError("logs is empty; pass {run label: training log DataFrame}.")
    for name, log in logs.items():
        if not isinstance(log, pd.DataFrame):
            raise ValueError(f"log of run {name!r} must be a DataFrame, got {type(log).__name__}.")
        missing = [c for c in _LOG_COLUMNS if c not in log.columns]
        if missing:
            raise ValueError(
                f"log of run {name!r} lacks columns {missing} (has {list(log.columns)}); pass the training "
                "log.csv read with pandas.read_csv."
            )
    colours = dataset_palette(list(logs))
    fig = _new_figure((11, 4.2))
    ax_loss, ax_lr = fig.subplots(1, 2, gridspec_kw={"wspace": 0.25, "left": 0.07, "right": 0.8})
    positive_lr = True
    has_val = False
    for name, log in logs.items():
        numeric = log[list(_LOG_COLUMNS)].apply(pd.to_numeric, errors="coerce").sort_values("epoch")
        positive_lr &= bool((numeric["lr"].dropna() > 0).all())
        ax_loss.plot(numeric["epoch"], numeric["train_loss"], color=colours[name], label=f"{name} (train)")
        val = numeric.dropna(subset=["val_loss"])
        if not val.empty:
            has_val = True
            ax_loss.plot(val["epoch"], val["val_loss"], color=colours[name], linestyle="--", label=f"{name} (val)")
        lr = numeric.dropna(subset=["lr"])
        ax_lr.plot(lr["epoch"], lr["lr"], color=colours[name], label=name)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training (solid) and validation (dashed) loss" if has_val
                      else "training loss (no validation cases)", fontsize=10)
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    if ax_lr.has_data() and positive_lr:
        ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate", fontsize=10)
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(0.81, 0.5), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save_figure(fig, out_png, dpi)


# --------------------------------------------------------------------------------------------------
# detection by instance size
# --------------------------------------------------------------------------------------------------
_SIZE_COLUMNS = ("dataset", "setting", "checkpoint", "bin", "bin_low", "bin_high", "n_seeds", "recall",
                 "recall_sd", "fp_per_case", "fp_per_case_sd", "n_gt")


def _bin_tick(low: float, high: float) -> str:
    if low <= 0 and np.isinf(high):
        return "all"
    if low <= 0:
        return f"< {high:.3g}"
    if np.isinf(high):
        return f">= {low:.3g}"
    return f"{low:.3g}-{high:.3g}"


def plot_recall_by_size(
    table: pd.DataFrame,
    out_png: str | PathLike[str],
    dataset: str | None = None,
    checkpoint: str = "last",
    settings: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    size_label: str = "blob size (voxels x voxel volume)",
    dpi: int = 150,
) -> Path:
    """Recall by ground-truth blob size beside false positives per case by predicted blob size.

    One line per setting through the size bins (x: the bins, smallest first), at the seed mean, with
    error bars of one seed-to-seed standard deviation (none with a single seed). Left: recall of the
    ground-truth blobs in each bin (the bin's ground-truth count on the axis labels); right: false-positive
    predicted blobs per test case in each predicted-size bin.

    Args:
        table: The detection-by-size table (:func:`blobloss.study.detection_by_size`).
        out_png: Output image.
        dataset: The dataset to draw (required when the table holds several); named in the title.
        checkpoint: Which checkpoint.
        settings: Settings to draw, in legend order (default: all, in table order).
        labels: ``{setting: legend label}`` (default: the setting names).
        size_label: X axis label (say the unit).
        dpi: Resolution.

    Returns:
        The written path.

    Raises:
        ValueError: On missing columns, an ambiguous or unknown dataset, or no rows to draw.

    Example:
        >>> plot_recall_by_size(detection, "recall.png", dataset="ms")  # doctest: +SKIP
    """
    _require_columns(table, _SIZE_COLUMNS, "table")
    datasets = list(dict.fromkeys(table["dataset"].astype(str)))
    if dataset is None:
        if len(datasets) != 1:
            raise ValueError(f"the table holds several datasets {datasets}; name one with dataset=...")
        dataset = datasets[0]
    rows = table[(table["dataset"].astype(str) == str(dataset)) & (table["checkpoint"] == checkpoint)]
    if rows.empty:
        raise ValueError(
            f"no rows for dataset {dataset!r} at checkpoint {checkpoint!r} (datasets: {datasets}, checkpoints: "
            f"{sorted(table['checkpoint'].astype(str).unique())})."
        )
    order = list(settings) if settings is not None else list(dict.fromkeys(rows["setting"].astype(str)))
    unknown = [s for s in order if s not in set(rows["setting"].astype(str))]
    if unknown:
        raise ValueError(f"setting(s) {unknown} have no rows for dataset {dataset!r}; available: "
                         f"{list(dict.fromkeys(rows['setting'].astype(str)))}.")
    bins = rows.drop_duplicates("bin").sort_values("bin")
    ticks = [_bin_tick(lo, hi) for lo, hi in zip(bins["bin_low"].astype(float), bins["bin_high"].astype(float))]
    n_gt = bins["n_gt"].astype(float).round().astype(int).tolist()
    colours = dataset_palette(order)
    n = len(order)
    offsets = (np.arange(n) - (n - 1) / 2) * (0.5 / max(n, 1))
    fig = _new_figure((11, 4.6))
    ax_r, ax_fp = fig.subplots(1, 2, gridspec_kw={"wspace": 0.25, "left": 0.07, "right": 0.98, "top": 0.82,
                                                  "bottom": 0.2})
    n_seeds = int(rows["n_seeds"].max())
    for offset, setting in zip(offsets, order):
        mine = rows[rows["setting"].astype(str) == setting].set_index("bin").reindex(bins["bin"])
        x = np.arange(len(bins)) + offset
        label = (labels or {}).get(setting, setting)
        for ax, column in ((ax_r, "recall"), (ax_fp, "fp_per_case")):
            sd = mine[f"{column}_sd"].astype(float).fillna(0.0).to_numpy()
            ax.errorbar(x, mine[column].astype(float).to_numpy(), yerr=sd, marker="o", capsize=3,
                        color=colours[setting], label=label)
    ax_r.set_xticks(np.arange(len(bins)), [f"{t}\n(n={k})" for t, k in zip(ticks, n_gt)], fontsize=8)
    ax_fp.set_xticks(np.arange(len(bins)), ticks, fontsize=8)
    ax_r.set_ylim(-0.03, 1.03)
    ax_fp.set_ylim(bottom=0)
    ax_r.set_xlabel(f"ground-truth {size_label}")
    ax_fp.set_xlabel(f"predicted {size_label}")
    ax_r.set_ylabel("recall (detected / ground-truth blobs)")
    ax_fp.set_ylabel("false-positive blobs per case")
    spread = "mean ± sd over seeds" if n_seeds > 1 else "one seed"
    ax_r.set_title(f"recall by ground-truth blob size ({spread})", fontsize=10)
    ax_fp.set_title(f"false positives by predicted blob size ({spread})", fontsize=10)
    ax_r.legend(fontsize=8, frameon=False)
    fig.suptitle(f"{dataset}: detection by blob size, {n_seeds} seed{'s' if n_seeds != 1 else ''}, "
                 f"{checkpoint} checkpoint", fontsize=11)
    return _save_figure(fig, out_png, dpi)
