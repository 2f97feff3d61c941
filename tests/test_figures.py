"""Tests for the results figures in blobloss.plots (detection overlays, paired plot, training curves)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blobloss.metrics import instance_metrics
from blobloss.plots import (
    DETECTION_COLOURS,
    classify_blobs,
    detection_overlay,
    pick_case,
    plot_detection_comparison,
    plot_paired,
    plot_training_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_plot_paired(per_case: pd.DataFrame, tmp_path) -> None:
    out = plot_paired(per_case, "dice", "blob_dice", tmp_path / "paired.png", labels=("dice", "blob dice"))
    _assert_png(out)
    with pytest.raises(ValueError, match="metrics"):
        plot_paired(per_case, "dice", "blob_dice", tmp_path / "x.png", metrics=())
    with pytest.raises(ValueError, match="lacks columns"):
        plot_paired(per_case, "dice", "blob_dice", tmp_path / "x.png", metrics=("surface_dice",))


# --------------------------------------------------------------------------------------------------
# training curves
# --------------------------------------------------------------------------------------------------
def test_plot_training_curves(tmp_path) -> None:
    epochs = np.arange(1, 6)
    with_val = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "val_loss": 1.2 / epochs,
                             "lr": 0.01, "seconds": 1.0})
    without_val = pd.DataFrame({"epoch": epochs, "train_loss": 0.8 / epochs, "val_loss": [None] * 5,
                                "lr": 0.001, "seconds": 1.0})
    out = plot_training_curves({"dice": with_val, "blob dice": without_val}, tmp_path / "curves.png")
    _assert_png(out)
    with pytest.raises(ValueError, match="logs is empty"):
        plot_training_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="lacks columns"):
        plot_training_curves({"dice": with_val.drop(columns="lr")}, tmp_path / "x.png")
