"""Tests for the results figures in blobloss.plots (detection overlays, paired plot, recall by size, training
curves) and the figure jobs of blobloss.jobs."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import blobloss.plots as plots
from blobloss.metrics import instance_metrics
from blobloss.plots import (
    DETECTION_COLOURS,
    classify_blobs,
    detection_overlay,
    pick_case,
    pick_seed,
    plot_detection_comparison,
    plot_paired,
    plot_recall_by_size,
    plot_training_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def figures(monkeypatch) -> list:
    """The matplotlib figures the plotting functions save (to read their titles)."""
    saved = []
    original = plots._save_figure

    def capture(fig, out_png, dpi):
        saved.append(fig)
        return original(fig, out_png, dpi)

    monkeypatch.setattr(plots, "_save_figure", capture)
    return saved


def _titles(fig) -> list[str]:
    texts = [ax.get_title() for ax in fig.axes]
    if fig._suptitle is not None:
        texts.insert(0, fig._suptitle.get_text())
    return texts


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 3_000
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.fixture()
def case3d() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10x10x4 volume: one TP blob at (1:3, 1:3), one FP blob at (6:8, 1:3), one FN blob at (1:3, 6:8)."""
    image = np.zeros((10, 10, 4), np.float32)
    image[..., 2] = np.linspace(0, 1, 100).reshape(10, 10)
    gt = np.zeros((10, 10, 4), bool)
    pred = np.zeros_like(gt)
    gt[1:3, 1:3, 1:3] = True  # detected
    pred[1:3, 1:3, 2:4] = True  # overlaps the GT blob at z = 2 -> TP
    pred[6:8, 1:3, 0] = True  # no GT there -> FP
    gt[1:3, 6:8, 3] = True  # nothing predicted there -> FN
    return image, gt, pred


# --------------------------------------------------------------------------------------------------
# detection overlay
# --------------------------------------------------------------------------------------------------
def test_classify_blobs_matches_instance_metrics(case3d) -> None:
    _, gt, pred = case3d
    d = classify_blobs(gt, pred)
    assert (d.n_tp, d.n_fp, d.n_fn) == (1, 1, 1)
    m = instance_metrics(pred, gt)
    assert (m["tp"], m["fp"], m["fn"]) == (d.n_tp, d.n_fp, d.n_fn)
    assert d.tp.sum() == 8 and d.fp.sum() == 4 and d.fn.sum() == 4
    assert not (d.tp & d.fp).any()


def test_overlay_colours_3d(case3d) -> None:
    image, gt, pred = case3d
    rgb = detection_overlay(image, gt, pred, alpha=1.0)
    assert rgb.shape == (10, 10, 3)
    assert rgb[1, 1].tolist() == pytest.approx(DETECTION_COLOURS["tp"])
    assert rgb[6, 2].tolist() == pytest.approx(DETECTION_COLOURS["fp"])
    assert rgb[2, 7].tolist() == pytest.approx(DETECTION_COLOURS["fn"])
    # background: grey MIP of the image (R = G = B), min/max scaled to [0, 1]
    assert rgb[9, 9].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert rgb[0, 0].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert rgb[5, 5, 0] == rgb[5, 5, 1] == rgb[5, 5, 2]


def test_overlay_blends_and_takes_channel(case3d) -> None:
    image, gt, pred = case3d
    rgb = detection_overlay(np.stack([image, -image]), gt, pred, alpha=0.5)  # (C, *spatial), channel 0
    grey = 11 / 99  # image value at (1, 1) after min/max scaling
    assert rgb[1, 1].tolist() == pytest.approx([0.5 * grey, 0.5 * grey + 0.4, 0.5 * grey])
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0


def test_overlay_2d() -> None:
    image = np.ones((5, 6))
    gt = np.zeros((5, 6), bool)
    pred = np.zeros_like(gt)
    gt[0, 0] = pred[0, 0] = True
    pred[4, 5] = True
    gt[2, 3] = True
    rgb = detection_overlay(image, gt, pred, alpha=1.0)
    assert rgb.shape == (5, 6, 3)
    assert rgb[0, 0].tolist() == pytest.approx(DETECTION_COLOURS["tp"])
    assert rgb[4, 5].tolist() == pytest.approx(DETECTION_COLOURS["fp"])
    assert rgb[2, 3].tolist() == pytest.approx(DETECTION_COLOURS["fn"])
    assert rgb[1, 1].tolist() == [0.0, 0.0, 0.0]  # constant image -> black


def test_overlay_errors(case3d) -> None:
    image, gt, pred = case3d
    with pytest.raises(ValueError, match="same shape"):
        detection_overlay(image, gt, pred[:5])
    with pytest.raises(ValueError, match="spatial shape"):
        detection_overlay(image[:5], gt, pred)
    with pytest.raises(ValueError, match="alpha"):
        detection_overlay(image, gt, pred, alpha=0)
    with pytest.raises(ValueError, match="binary"):
        detection_overlay(image, gt.astype(int) * 2, pred)


def test_plot_detection_comparison(case3d, tmp_path) -> None:
    image, gt, pred = case3d
    out = plot_detection_comparison(
        image, gt, {"dice": pred, "blob dice": gt}, tmp_path / "fig" / "case.png", title="case c0",
        spacing=(1.0, 1.0, 3.0),
    )
    assert out == tmp_path / "fig" / "case.png"
    _assert_png(out)
    with pytest.raises(ValueError, match="preds is empty"):
        plot_detection_comparison(image, gt, {}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="spacing"):
        plot_detection_comparison(image, gt, {"dice": pred}, tmp_path / "x.png", spacing=(1.0, 1.0))


# --------------------------------------------------------------------------------------------------
# pick_case / plot_paired
# --------------------------------------------------------------------------------------------------
@pytest.fixture()
def per_case() -> pd.DataFrame:
    rows = []
    # f1 per (setting, seed, case); dice's c1 averages over seeds: (0.25 + 0.75) / 2 = 0.5
    values = {
        ("dice", 0): {"c3": 0.0, "c0": 0.5, "c1": 0.25, "c2": 0.75},
        ("dice", 1): {"c3": 0.0, "c0": 0.5, "c1": 0.75, "c2": 0.75},
        ("blob_dice", 0): {"c3": 0.5, "c0": 0.625, "c1": 1.0, "c2": 0.25},
        ("blob_dice", 1): {"c3": float("nan"), "c0": 0.625, "c1": 1.0, "c2": 0.25},
    }
    for (setting, seed), cases in values.items():
        for case, f1 in cases.items():
            rows.append(dict(dataset="toy", setting=setting, seed=seed, checkpoint="last", case=case,
                             f1=f1, dsc=f1 / 2))
    rows.append(dict(dataset="toy", setting="dice", seed=0, checkpoint="best", case="c0", f1=0.0, dsc=0.0))
    return pd.DataFrame(rows)


def test_pick_case(per_case: pd.DataFrame) -> None:
    # |differences|: c0 0.125, c1 0.5, c2 0.5, c3 0.5 (NaN of seed 1 ignored) -> tie, first sorted is c1
    assert pick_case(per_case, "dice", "blob_dice") == "c1"
    changed = per_case.copy()
    changed.loc[(changed["case"] == "c2") & (changed["setting"] == "blob_dice"), "f1"] = 0.125
    assert pick_case(changed, "dice", "blob_dice") == "c2"
    assert pick_case(per_case, "dice", "blob_dice", metric="dsc") == "c1"


def test_pick_case_errors(per_case: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'tversky' has no rows"):
        pick_case(per_case, "dice", "tversky")
    with pytest.raises(ValueError, match="no case has"):
        pick_case(per_case.assign(f1=float("nan")), "dice", "blob_dice")
    with pytest.raises(ValueError, match="'blob_dice' has no rows at checkpoint 'best'"):
        pick_case(per_case, "dice", "blob_dice", checkpoint="best")
    with pytest.raises(ValueError, match="several datasets"):
        pick_case(pd.concat([per_case, per_case.assign(dataset="b")]), "dice", "blob_dice")
    assert pick_case(pd.concat([per_case, per_case.assign(dataset="b")]), "dice", "blob_dice", dataset="b") == "c1"


def test_pick_seed_closest_to_the_seed_average(per_case: pd.DataFrame) -> None:
    three = pd.concat([per_case, per_case[per_case["seed"] == 0].assign(seed=2)], ignore_index=True)
    three.loc[(three["seed"] == 2) & (three["case"] == "c0") & (three["setting"] == "blob_dice"), "f1"] = 0.9
    # c0 differences (blob_dice - dice): seeds 0, 1: 0.125; seed 2: 0.4; mean 0.2167 -> seed 0 (tie with 1)
    seed, at_seed, mean = pick_seed(three, "c0", "dice", "blob_dice")
    assert seed == 0 and at_seed == pytest.approx(0.125) and mean == pytest.approx((0.125 * 2 + 0.4) / 3)
    # two seeds are always equally far from their mean: the larger difference is shown (c1: 0.75 vs 0.25)
    assert pick_seed(per_case, "c1", "dice", "blob_dice") == (0, 0.75, 0.5)
    # a seed without a value for one setting is left out: c3 only has seed 0 for blob_dice
    assert pick_seed(per_case, "c3", "dice", "blob_dice") == (0, 0.5, 0.5)
    with pytest.raises(ValueError, match="no seed has"):
        pick_seed(per_case, "c9", "dice", "blob_dice")


def test_plot_paired(per_case: pd.DataFrame, tmp_path, figures) -> None:
    out = plot_paired(per_case, "dice", "blob_dice", tmp_path / "paired.png", labels=("dice", "blob dice"))
    _assert_png(out)
    titles = _titles(figures[-1])
    assert titles[0] == "toy: per-case values, mean over 2 seeds (last checkpoint)"
    assert "instance F1 per case (n=4)" in titles[1]
    with pytest.raises(ValueError, match="metrics"):
        plot_paired(per_case, "dice", "blob_dice", tmp_path / "x.png", metrics=())
    with pytest.raises(ValueError, match="lacks columns"):
        plot_paired(per_case, "dice", "blob_dice", tmp_path / "x.png", metrics=("surface_dice",))


# --------------------------------------------------------------------------------------------------
# training curves
# --------------------------------------------------------------------------------------------------
def test_plot_training_curves(tmp_path, figures) -> None:
    epochs = np.arange(1, 6)
    with_val = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1.2 / epochs,
                             "lr": 0.01, "seconds": 1.0})
    without_val = pd.DataFrame({"epoch": epochs, "train_loss": 0.8 / epochs, "val_loss": [None] * 5,
                                "lr": 0.001, "seconds": 1.0})
    out = plot_training_curves({"dice": with_val, "blob dice": without_val}, tmp_path / "curves.png",
                               title="syn: training curves")
    _assert_png(out)
    titles = _titles(figures[-1])
    assert titles[0] == "syn: training curves"
    assert "validation (dashed)" in titles[1]
    labels = figures[-1].legends[0].get_texts()
    assert [t.get_text() for t in labels] == ["dice (train)", "dice (val)", "blob dice (train)"]
    # no run logged a validation loss: the panel promises none
    plot_training_curves({"blob dice": without_val}, tmp_path / "curves2.png")
    assert _titles(figures[-1])[0] == "training loss (no validation cases)"
    with pytest.raises(ValueError, match="logs is empty"):
        plot_training_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="lacks columns"):
        plot_training_curves({"dice": with_val.drop(columns="lr")}, tmp_path / "x.png")


# --------------------------------------------------------------------------------------------------
# recall by size
# --------------------------------------------------------------------------------------------------
def _detection_table(n_seeds: int = 3) -> pd.DataFrame:
    rows = []
    for setting, recall in (("dice", [0.2, 0.6, 0.9]), ("blob_dice", [0.4, 0.7, 0.9])):
        for k, (low, high) in enumerate([(0.0, 10.0), (10.0, 100.0), (100.0, math.inf)]):
            rows.append(dict(dataset="syn", setting=setting, loss=setting, checkpoint="last", bin=k, bin_low=low,
                             bin_high=high, n_seeds=n_seeds, n_cases=10, n_gt=[30, 12, 4][k], recall=recall[k],
                             recall_sd=0.05 if n_seeds > 1 else float("nan"), n_pred=20.0,
                             fp_per_case=[1.5, 0.2, 0.0][k], fp_per_case_sd=0.1 if n_seeds > 1 else float("nan")))
    return pd.DataFrame(rows)


def test_plot_recall_by_size(tmp_path, figures) -> None:
    out = plot_recall_by_size(_detection_table(), tmp_path / "syn_recall_by_size.png", labels={"blob_dice": "blob dice"})
    _assert_png(out)
    fig = figures[-1]
    titles = _titles(fig)
    assert titles[0] == "syn: detection by blob size, 3 seeds, last checkpoint"
    assert "mean ± sd over seeds" in titles[1] and "false positives" in titles[2]
    ax_r, ax_fp = fig.axes
    assert [t.get_text() for t in ax_r.get_xticklabels()] == ["< 10\n(n=30)", "10-100\n(n=12)", ">= 100\n(n=4)"]
    assert [t.get_text() for t in ax_r.get_legend().get_texts()] == ["dice", "blob dice"]
    recall_lines = [line.get_ydata().tolist() for line in ax_r.get_lines() if len(line.get_ydata()) == 3]
    assert [0.2, 0.6, 0.9] in recall_lines and [0.4, 0.7, 0.9] in recall_lines
    # one seed: no spread promised
    plot_recall_by_size(_detection_table(1), tmp_path / "one.png")
    assert "one seed" in _titles(figures[-1])[1]


def test_plot_recall_by_size_errors(tmp_path) -> None:
    table = _detection_table()
    with pytest.raises(ValueError, match="several datasets"):
        plot_recall_by_size(pd.concat([table, table.assign(dataset="b")]), tmp_path / "x.png")
    with pytest.raises(ValueError, match="no rows for dataset 'syn' at checkpoint 'best'"):
        plot_recall_by_size(table, tmp_path / "x.png", checkpoint="best")
    with pytest.raises(ValueError, match="'tversky'"):
        plot_recall_by_size(table, tmp_path / "x.png", settings=["tversky"])
    with pytest.raises(ValueError, match="lacks columns"):
        plot_recall_by_size(table.drop(columns="recall_sd"), tmp_path / "x.png")


# --------------------------------------------------------------------------------------------------
# figure jobs (blobloss.jobs)
# --------------------------------------------------------------------------------------------------
def _save_nifti(path, array) -> str:
    nib.save(nib.Nifti1Image(np.asarray(array, dtype=np.float32 if array.dtype.kind == "f" else np.uint8), np.eye(4)),
             str(path))
    return str(path)


def test_detection_figure_job_names_dataset_case_and_seed(case3d, tmp_path, figures) -> None:
    from blobloss.jobs import detection_figure_job

    image, gt, pred = case3d
    rows = []
    # case c0: F1 of blob_dice - dice per seed: 0.6, 0.2, 0.4 -> mean 0.4, seed 2 is closest
    for seed, (fa, fb) in enumerate([(0.2, 0.8), (0.5, 0.7), (0.3, 0.7)]):
        for setting, f1 in (("dice", fa), ("blob_dice", fb)):
            rows.append(dict(dataset="syn", setting=setting, loss=setting, seed=seed, checkpoint="last",
                             case="c0", f1=f1, dsc=0.5))
            rows.append(dict(dataset="syn", setting=setting, loss=setting, seed=seed, checkpoint="last",
                             case="c1", f1=0.5, dsc=0.5))
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    files = {name: _save_nifti(tmp_path / f"{name}.nii.gz", arr) for name, arr in
             (("image", image), ("gt", gt.astype(np.uint8)), ("pred", pred.astype(np.uint8)))}
    preds = {seed: {"c0": files["pred"], "c1": files["pred"]} for seed in range(3)}
    case, seed = detection_figure_job(
        [tmp_path / "metrics.csv"], "dice", "blob_dice", images={"c0": files["image"], "c1": files["image"]},
        labels={"c0": files["gt"], "c1": files["gt"]}, preds_a=preds, preds_b=preds,
        out_png=tmp_path / "syn_detection.png", dataset="syn")
    assert (case, seed) == ("c0", 2)
    _assert_png(tmp_path / "syn_detection.png")
    title = _titles(figures[-1])[0]
    assert title.startswith("syn: case c0 (largest seed-averaged F1 difference), shown at seed 2 of seeds 0, 1, 2")
    assert "+0.400 averaged over seeds" in title and "+0.400 at the seed shown" in title


def test_paired_and_curves_jobs_name_the_dataset(per_case: pd.DataFrame, tmp_path, figures) -> None:
    from blobloss.jobs import paired_figure_job, training_curves_job

    per_case.assign(loss=per_case["setting"]).to_csv(tmp_path / "m.csv", index=False)
    paired_figure_job([tmp_path / "m.csv"], "dice", "blob_dice", tmp_path / "p.png", dataset="toy")
    fig = figures[-1]
    assert _titles(fig)[0].startswith("toy: per-case values, mean over 2 seeds")
    assert fig.axes[0].get_ylabel() == "blob dice"
    log = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [None, None], "lr": [0.01, 0.01]})
    log.to_csv(tmp_path / "log.csv", index=False)
    training_curves_job({"dice seed 0": tmp_path / "log.csv"}, tmp_path / "c.png", dataset="toy")
    assert _titles(figures[-1])[:2] == ["toy: training curves", "training loss (no validation cases)"]


def test_recall_figure_job(tmp_path, figures) -> None:
    from blobloss.jobs import recall_figure_job

    _detection_table().to_csv(tmp_path / "detection_by_size.csv", index=False)
    checks = tmp_path / "checks.json"
    checks.write_text('{"cases": {"c1": {"shape": [8, 8, 4], "spacing": [1.0, 1.0, 2.0]}}}')
    recall_figure_job(tmp_path / "detection_by_size.csv", "syn", tmp_path / "r.png", settings=["blob_dice", "dice"],
                      size_unit="mm", checks_json=checks)
    fig = figures[-1]
    assert [ax.get_xlabel() for ax in fig.axes][:2] == ["ground-truth blob size (voxels x voxel volume, mm\u00b3)",
                                                        "predicted blob size (voxels x voxel volume, mm\u00b3)"]
    assert _titles(fig)[0].startswith("syn: detection by blob size")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["blob dice", "dice"]
    # without the dataset check's report the unit is shown as given
    recall_figure_job(tmp_path / "detection_by_size.csv", "syn", tmp_path / "r2.png", size_unit="mm")
    assert figures[-1].axes[0].get_xlabel() == "ground-truth blob size (voxels x voxel volume, mm)"
