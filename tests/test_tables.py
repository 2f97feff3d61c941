"""Tests for the results tables in blobloss.tables (summaries, paper Tables 1 and 2, writing)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from blobloss.tables import (
    BASE_CASE_COLUMNS,
    PAPER_RESULTS,
    format_table,
    format_lr,
    paper_values,
    pooled_table,
    summarize_runs,
    table1,
    table2,
    write_table,
)

NAN = float("nan")
SETTINGS = {
    # setting: (loss, lr, alpha, beta, model)
    "blob_dice": ("blob_dice", 0.01, 2.0, 1.0, "basicunet"),
    "dice": ("dice", 0.01, NAN, NAN, "basicunet"),
    "blob_dice_a3_b1": ("blob_dice", 0.01, 3.0, 1.0, "basicunet"),
    "blob_dice_unetr": ("blob_dice", 0.001, 2.0, 1.0, "unetr"),
}


def _row(setting: str, seed: int, case: str, checkpoint: str = "last", dataset: str = "toy", **metrics) -> dict:
    loss, lr, alpha, beta, model = SETTINGS[setting]
    row = dict(dataset=dataset, setting=setting, loss=loss, lr=lr, alpha=alpha, beta=beta, model=model,
               seed=seed, checkpoint=checkpoint, case=case)
    defaults = dict(dsc=0.5, sensitivity=0.5, precision=0.5, surface_dice=0.5, tp=1, fp=1, fn=0,
                    instance_sensitivity=1.0, instance_precision=0.5, f1=2 / 3, gt_empty=False, pred_empty=False)
    defaults.update(metrics)
    row.update({c: defaults[c] for c in BASE_CASE_COLUMNS})
    row.update({k: v for k, v in metrics.items() if k not in BASE_CASE_COLUMNS})  # optional extra metrics
    return row


@pytest.fixture()
def per_case() -> pd.DataFrame:
    rows = [
        # blob_dice: 2 seeds x 2 cases; case c1 has an empty GT (S and IS NaN)
        _row("blob_dice", 0, "c0", dsc=0.8, sensitivity=0.6, f1=0.9, tp=3, fp=0, fn=1),
        _row("blob_dice", 0, "c1", dsc=0.0, sensitivity=NAN, precision=0.0, instance_sensitivity=NAN,
             instance_precision=0.0, f1=0.0, tp=0, fp=2, fn=0, gt_empty=True),
        _row("blob_dice", 1, "c0", dsc=0.6, sensitivity=0.8, f1=0.7, tp=2, fp=1, fn=2),
        _row("blob_dice", 1, "c1", dsc=1.0, sensitivity=NAN, precision=NAN, instance_sensitivity=1.0,
             instance_precision=1.0, f1=1.0, tp=0, fp=0, fn=0, gt_empty=True, pred_empty=True),
        _row("dice", 0, "c0", dsc=0.4, f1=0.2),
        _row("dice", 0, "c1", dsc=0.2, f1=0.6),
        _row("blob_dice_a3_b1", 0, "c0", dsc=0.3),
        _row("blob_dice_a3_b1", 0, "c1", dsc=0.5),
        _row("blob_dice_unetr", 0, "c0", dsc=0.1),
        _row("blob_dice_unetr", 0, "c1", dsc=0.3),
        _row("blob_dice", 0, "c0", checkpoint="best", dsc=0.9),
        _row("blob_dice", 0, "c1", checkpoint="best", dsc=0.7),
    ]
    return pd.DataFrame(rows)


@pytest.fixture()
def summary(per_case: pd.DataFrame) -> pd.DataFrame:
    return summarize_runs(per_case)


# --------------------------------------------------------------------------------------------------
# summarize_runs / pooled_table
# --------------------------------------------------------------------------------------------------
def test_summary_seed_means_ignore_nan_and_pool_counts(summary: pd.DataFrame) -> None:
    assert len(summary) == 5  # 4 settings at last + blob_dice at best
    row = summary[(summary["setting"] == "blob_dice") & (summary["checkpoint"] == "last")].iloc[0]
    assert row["n_seeds"] == 2 and row["n_cases"] == 2 and row["n_evaluations"] == 4
    # seed 0: (0.8 + 0.0) / 2 = 0.4, seed 1: (0.6 + 1.0) / 2 = 0.8
    assert row["dsc"] == pytest.approx(0.6)
    assert row["dsc_sd"] == pytest.approx(np.std([0.4, 0.8], ddof=1))
    assert row["sensitivity"] == pytest.approx((0.6 + 0.8) / 2)  # NaN of the empty-GT cases ignored
    assert math.isnan(row["sensitivity_sd"]) is False
    # precision: seed 0 mean (0.5 + 0.0) / 2, seed 1 mean 0.5 (its c1 is NaN): the mean of seed means,
    # not the mean over the three non-NaN evaluations (1/3)
    assert row["precision"] == pytest.approx((0.25 + 0.5) / 2)
    assert row["f1"] == pytest.approx(((0.9 + 0.0) / 2 + (0.7 + 1.0) / 2) / 2)
    assert (row["tp"], row["fp"], row["fn"]) == (5, 3, 3)
    assert row["pooled_instance_sensitivity"] == pytest.approx(5 / 8)
    assert row["pooled_instance_precision"] == pytest.approx(5 / 8)
    assert (row["gt_empty"], row["pred_empty"], row["both_empty"]) == (2, 1, 1)
    assert row["loss"] == "blob_dice" and row["alpha"] == 2.0 and row["model"] == "basicunet"


def test_summary_keeps_nan_alpha(summary: pd.DataFrame) -> None:
    dice = summary[summary["setting"] == "dice"].iloc[0]
    assert math.isnan(dice["alpha"]) and math.isnan(dice["beta"])
    assert dice["dsc"] == pytest.approx(0.3)
    assert dice["n_seeds"] == 1 and math.isnan(dice["dsc_sd"])  # one seed: no spread


def test_summary_averages_extra_metrics_where_present(per_case: pd.DataFrame) -> None:
    assert "cc_dice" not in summarize_runs(per_case).columns
    with_cc = per_case.assign(cc_dice=np.where(per_case["seed"] == 0, 0.2, 0.6))
    row = summarize_runs(with_cc).iloc[0]  # blob_dice, last
    assert row["cc_dice"] == pytest.approx(0.4)
    assert row["cc_dice_sd"] == pytest.approx(np.std([0.2, 0.6], ddof=1))


def test_every_extra_metric_of_the_metrics_job_reaches_the_summary_and_table1(per_case: pd.DataFrame) -> None:
    # The names the metrics job writes (blobloss.metrics.case), not a hand-kept copy of them.
    from blobloss.metrics.case import AGGREGATE_EXTRA_MEAN_COLUMNS

    values = {c: 0.1 * (i + 1) for i, c in enumerate(AGGREGATE_EXTRA_MEAN_COLUMNS)}
    summary = summarize_runs(per_case.assign(**values))
    for column, value in values.items():
        assert summary.loc[0, column] == pytest.approx(value), column
        assert f"{column}_sd" in summary.columns
    t = table1(summary, ["blob_dice", "dice"], paper_datasets={"toy": "MS"})
    columns = list(t.columns)
    assert columns[columns.index("IP_sd") + 1:columns.index("paper DSC")] == [
        "cc_dice", "cc_dice_sd", "cc_surface_dice", "cc_surface_dice_sd", "IS_gt", "IS_gt_sd",
        "F1_iou", "F1_iou_sd", "IS_iou", "IS_iou_sd", "IP_iou", "IP_iou_sd"]
    assert t.loc[0, "IS_gt"] == pytest.approx(values["instance_sensitivity_gt"])
    assert t.loc[0, "F1_iou"] == pytest.approx(values["f1_iou"])
    # The paper's columns stay the paper's: IS is still the any-overlap mean.
    assert t.loc[0, "IS"] == pytest.approx(summary.loc[0, "instance_sensitivity"])


def test_summary_errors(per_case: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="lacks the column"):
        summarize_runs(per_case.drop(columns="seed"))
    with pytest.raises(ValueError, match="no rows"):
        summarize_runs(per_case.iloc[:0])
    with pytest.raises(ValueError, match="more than once"):
        summarize_runs(pd.concat([per_case, per_case.iloc[:1]]))
    changed = per_case.copy()
    changed.loc[0, "lr"] = 0.5
    with pytest.raises(ValueError, match="several values of 'lr'"):
        summarize_runs(changed)


def test_pooled_table(summary: pd.DataFrame) -> None:
    pooled = pooled_table(summary)
    assert list(pooled.columns[:3]) == ["dataset", "setting", "checkpoint"]
    assert "dsc" not in pooled.columns
    first = pooled.iloc[0]
    assert (first["setting"], first["tp"], first["fp"], first["fn"], first["both_empty"]) == ("blob_dice", 5, 3, 3, 1)
    with pytest.raises(ValueError, match="summarize_runs"):
        pooled_table(summary.drop(columns="tp"))


# --------------------------------------------------------------------------------------------------
# table1
# --------------------------------------------------------------------------------------------------
def test_table1_order_labels_and_means(summary: pd.DataFrame) -> None:
    order = ["dice", "blob_dice", "blob_dice_a3_b1", "blob_dice_unetr"]
    t = table1(summary, order, paper=False)
    assert list(t.columns) == ["dataset", "loss", "lr", "n_seeds", "n_cases", "DSC", "DSC_sd", "SDSC", "SDSC_sd",
                               "F1", "F1_sd", "IS", "IS_sd", "IP", "IP_sd"]
    assert list(t["loss"]) == ["dice", "blob dice (2,1)", "blob dice (3,1)", "blob dice UNETR"]
    assert t["DSC"].tolist() == pytest.approx([0.3, 0.6, 0.4, 0.2])
    assert t["n_seeds"].tolist() == [1, 2, 1, 1] and t["n_cases"].tolist() == [2, 2, 2, 2]
    assert t.loc[1, "DSC_sd"] == pytest.approx(np.std([0.4, 0.8], ddof=1))
    assert t.loc[[0, 2, 3], "DSC_sd"].isna().all()
    assert t.loc[1, "IS"] == pytest.approx(1.0)  # NaN IS of the empty GT ignored


def test_table1_per_component_columns_after_the_papers_metrics(per_case: pd.DataFrame) -> None:
    summary = summarize_runs(per_case.assign(cc_dice=0.5, cc_surface_dice=0.7))
    t = table1(summary, ["blob_dice", "dice"], paper_datasets={"toy": "MS"})
    columns = list(t.columns)
    assert columns[columns.index("IP_sd") + 1:columns.index("paper DSC")] == [
        "cc_dice", "cc_dice_sd", "cc_surface_dice", "cc_surface_dice_sd"]
    assert t["cc_surface_dice"].tolist() == pytest.approx([0.7, 0.7])


def test_table1_plain_labels_when_unambiguous(summary: pd.DataFrame) -> None:
    t = table1(summary, ["blob_dice", "dice"], paper=False)
    assert list(t["loss"]) == ["blob dice", "dice"]
    assert list(t["lr"]) == [0.01, 0.01]


def test_table1_best_checkpoint_and_paper_columns(summary: pd.DataFrame) -> None:
    t = table1(summary, ["blob_dice"], checkpoint="best", paper_datasets={"toy": "MS"})
    assert t.loc[0, "DSC"] == pytest.approx(0.8)
    assert t.loc[0, "paper DSC"] == pytest.approx(0.678)  # MS best-validation checkpoint, blob dice


def test_table1_paper_columns_ms(summary: pd.DataFrame) -> None:
    t = table1(summary, ["blob_dice", "dice", "blob_dice_a3_b1", "blob_dice_unetr"], paper_datasets={"toy": "MS"})
    paper_columns = [c for c in t.columns if c.startswith("paper")]
    assert paper_columns == ["paper DSC", "paper SDSC", "paper F1", "paper IS", "paper IP"]
    assert t["paper DSC"].tolist() == pytest.approx([0.680, 0.660, 0.674, 0.632])
    assert t["paper IP"].tolist() == pytest.approx([0.828, 0.711, 0.815, 0.600])


def test_table1_paper_columns_absent_or_nan(summary: pd.DataFrame) -> None:
    assert not any(c.startswith("paper") for c in table1(summary, ["dice"]).columns)  # no mapping
    t = table1(summary, ["dice"], paper_datasets={"toy": "LiTS"})
    assert t.loc[0, "paper DSC"] == pytest.approx(0.659)
    t = table1(summary, ["blob_dice_unetr"], paper_datasets={"toy": "LiTS"})  # the paper has no such run
    assert t[["paper DSC", "paper F1"]].isna().all(axis=None)


def test_table1_several_datasets(per_case: pd.DataFrame) -> None:
    other = per_case[per_case["setting"] == "dice"].assign(dataset="other", dsc=0.9)
    summary = summarize_runs(pd.concat([per_case, other], ignore_index=True))
    t = table1(summary, {"other": ["dice"], "toy": ["blob_dice", "dice"]}, paper=False)
    assert list(zip(t["dataset"], t["loss"])) == [("toy", "blob dice"), ("toy", "dice"), ("other", "dice")]
    assert t.loc[2, "DSC"] == pytest.approx(0.9)
    assert len(table1(summary, ["dice"], paper=False)) == 2


def test_table1_errors(summary: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no runs"):
        table1(summary, ["nope"])
    with pytest.raises(ValueError, match="checkpoint 'middle'"):
        table1(summary, ["dice"], checkpoint="middle")
    with pytest.raises(ValueError, match="unknown paper dataset"):
        table1(summary, ["dice"], paper_datasets={"toy": "Brats"})
    with pytest.raises(ValueError, match="list of setting names"):
        table1(summary, "dice")


# --------------------------------------------------------------------------------------------------
# table2
# --------------------------------------------------------------------------------------------------
def test_table2_columns_alpha_beta_and_paper(summary: pd.DataFrame) -> None:
    t = table2(summary, ["blob_dice_a3_b1", "blob_dice", "dice"], paper_datasets={"toy": "MS"})
    assert list(t.columns[:19]) == ["loss", "alpha", "beta", "n_seeds", "n_cases", "DSC", "DSC_sd", "S", "S_sd", "P",
                                    "P_sd", "SDSC", "SDSC_sd", "F1", "F1_sd", "IS", "IS_sd", "IP", "IP_sd"]
    assert list(t["loss"]) == ["blob dice", "blob dice", "dice"]
    assert t[["alpha", "beta"]].values.tolist() == [[3.0, 1.0], [2.0, 1.0], [1.0, 0.0]]  # dice = (1,0)
    assert t["paper S"].tolist() == pytest.approx([0.629, 0.626, 0.704])
    assert t.loc[1, "S"] == pytest.approx(0.7)


def test_table2_needs_dataset_when_several(per_case: pd.DataFrame) -> None:
    summary = summarize_runs(pd.concat([per_case, per_case.assign(dataset="b")], ignore_index=True))
    with pytest.raises(ValueError, match="several datasets"):
        table2(summary, ["dice"])
    assert len(table2(summary, ["dice"], dataset="b", paper=False)) == 1
    with pytest.raises(ValueError, match="not in the summary"):
        table2(summary, ["dice"], dataset="c")


def test_paper_constant_is_data() -> None:
    assert len(PAPER_RESULTS) == 28
    assert not PAPER_RESULTS.duplicated(["paper_dataset", "loss", "lr", "alpha", "beta", "model", "checkpoint"]).any()
    row = PAPER_RESULTS[(PAPER_RESULTS["paper_dataset"] == "DISCO-MS") & np.isclose(PAPER_RESULTS["lr"], 3e-4)]
    assert row["F1"].tolist() == [0.379]
    rows = pd.DataFrame([dict(dataset="x", loss="blob_dice_nomask", lr=0.01, alpha=2, beta=1, model="basicunet",
                              checkpoint="last")])
    assert paper_values(rows, {"x": "MS"}, ["DSC"]).iloc[0, 0] == pytest.approx(0.358)


# --------------------------------------------------------------------------------------------------
# write_table
# --------------------------------------------------------------------------------------------------
def test_write_table_four_files_with_seed_spread(summary: pd.DataFrame, tmp_path) -> None:
    t = table1(summary, ["blob_dice", "dice", "blob_dice_unetr"], paper_datasets={"toy": "LiTS"})
    paths = write_table(t, tmp_path / "tables" / "table1", caption="Table 1 (toy)", note="seed means")
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        "table1.csv", "table1.html", "table1.md", "table1.tex"]
    back = pd.read_csv(paths["csv"])
    assert back["DSC"].tolist() == pytest.approx(t["DSC"].tolist())  # full precision
    assert back["DSC_sd"].tolist()[0] == pytest.approx(t.loc[0, "DSC_sd"])  # spread as its own column
    md = paths["md"].read_text(encoding="utf-8")
    assert md.startswith("| dataset")
    header = md.splitlines()[0]
    assert "DSC_sd" not in header and "n_seeds" in header and "n_cases" in header
    assert "| blob dice" in md and "0.600 ± 0.283" in md and "1e-2" in md and "1e-3" in md
    dice_row = [c.strip() for c in md.splitlines()[3].split("|")[1:-1]]
    assert dice_row[1] == "dice" and dice_row[5] == "0.300"  # one seed: the mean alone, no "±"
    assert "--" in md  # the UNETR row has no paper value
    tex = paths["tex"].read_text(encoding="utf-8")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "0.600 $\\pm$ 0.283" in tex and "±" not in tex
    assert "--" in tex and "nan" not in tex.lower()
    assert "paper DSC" in tex
    html = paths["html"].read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert "<h1>Table 1 (toy)</h1>" in html and "seed means" in html
    assert '<td class="num">0.600 ± 0.283</td>' in html and '<td class="text">blob dice</td>' in html
    assert "DSC_sd" not in html and "0.6000000" not in html


@pytest.mark.parametrize(
    ("mean", "sd", "expected"),
    [(0.8123, 0.0131, "0.812 ± 0.013"), (0.5, float("nan"), "0.500"), (float("nan"), 0.1, "--")],
)
def test_format_table_merges_sd(mean: float, sd: float, expected: str) -> None:
    text = format_table(pd.DataFrame({"F1": [mean], "n_cases": [3], "F1_sd": [sd]}))
    assert list(text.columns) == ["F1", "n_cases"]
    assert text.iloc[0, 0] == expected


def test_format_table_p_values() -> None:
    text = format_table(pd.DataFrame({"p_value": [0.04321, 1e-5, float("nan")], "p_holm": [0.5, 0.9999, 1.0]}))
    assert text.values.tolist() == [["0.0432", "0.5"], ["<0.001", "1"], ["--", "1"]]


def test_write_table_escapes_and_errors(tmp_path) -> None:
    df = pd.DataFrame({"setting": ["blob_dice"], "lr": [0.0003], "DSC": [1 / 3]})
    paths = write_table(df, tmp_path / "t", float_format="{:.2f}")
    assert "blob\\_dice" in paths["tex"].read_text()
    assert "3e-4" in paths["md"].read_text() and "0.33 |" in paths["md"].read_text()
    assert format_lr(0.01) == "1e-2"
    with pytest.raises(ValueError, match="DataFrame"):
        write_table([1, 2], tmp_path / "u")
    with pytest.raises(ValueError, match="float_format"):
        write_table(df, tmp_path / "u", float_format="{:.3q}")
    with pytest.raises(ValueError, match="unknown table format"):
        write_table(df, tmp_path / "u", formats=("csv", "xlsx"))
    assert sorted(write_table(df, tmp_path / "v", formats=("html",))) == ["html"]
