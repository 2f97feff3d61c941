"""Tests for blobloss.study: seeds, paired comparisons (Wilcoxon, bootstrap, Holm), detection by size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from blobloss.study import (
    COMPARISON_COLUMNS,
    DETECTION_COLUMNS,
    N_RESAMPLES,
    bin_labels,
    bootstrap_ci,
    case_means,
    compare_settings,
    dataset_edges,
    default_comparisons,
    detection_by_size,
    holm,
    paired_stats,
    seed_summary,
    size_bin_edges,
    small_recall,
    validate_comparisons,
    wilcoxon_p,
)

NAN = float("nan")


# --------------------------------------------------------------------------------------------------
# Wilcoxon, bootstrap, Holm
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "baseline"),
    [
        ([0.5, 0.7, 0.9, 0.6], [0.4, 0.5, 0.6, 0.65]),  # exact distribution, n = 4
        ([0.8, 0.6, 0.9, 0.7, 0.75, 0.6], [0.7, 0.6, 0.5, 0.72, 0.7, 0.4]),  # a zero difference (dropped)
        ([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 3.0, 2.0, 3.0, 6.0]),  # tied absolute differences
        (list(np.linspace(0, 1, 30)), list(np.linspace(0, 1, 30)[::-1])),  # n = 30
        ([0.2, 0.3], [0.1, 0.1]),  # two cases
        ([0.2, 0.3, 0.4], [0.2, 0.3, 0.1]),  # a single non-zero difference: scipy's value, not NaN
    ],
)
def test_wilcoxon_p_equals_scipy(setting: list[float], baseline: list[float]) -> None:
    expected = stats.wilcoxon(setting, baseline).pvalue
    assert wilcoxon_p(setting, baseline) == pytest.approx(expected, rel=1e-12, abs=0)


def test_wilcoxon_p_hand_value() -> None:
    # 4 positive differences with distinct ranks: the exact two-sided p-value is 2 / 2**4
    assert wilcoxon_p([1.0, 2.0, 3.0, 4.0], [0.9, 1.7, 2.6, 3.5]) == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("setting", "baseline"),
    [([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]), ([0.5], [0.1]), ([], [])],
)
def test_wilcoxon_p_nan_when_all_zero_or_too_few(setting: list[float], baseline: list[float]) -> None:
    assert math.isnan(wilcoxon_p(setting, baseline))


def test_wilcoxon_p_shape_error() -> None:
    with pytest.raises(ValueError, match="equal length"):
        wilcoxon_p([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("pvalues", "expected"),
    [
        ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),  # 3*0.01, max(2*0.03, 0.03), max(1*0.04, 0.06)
        ([0.01, 0.04, NAN, 0.03], [0.03, 0.06, NAN, 0.06]),  # NaN neither counts nor changes
        ([0.5, 0.6], [1.0, 1.0]),  # capped at 1
        ([0.04], [0.04]),
        ([0.02, 0.02], [0.04, 0.04]),  # ties
        ([], []),
    ],
)
def test_holm_table(pvalues: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(holm(pvalues), expected, rtol=0, atol=1e-12)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    d = np.random.default_rng(0).normal(0.1, 0.2, 25)
    a = bootstrap_ci(d, seed=3)
    assert a == bootstrap_ci(d, seed=3)
    assert a != bootstrap_ci(d, seed=4)
    assert a[0] < d.mean() < a[1]
    # the percentile interval of scipy with the same generator
    res = stats.bootstrap((d,), np.mean, n_resamples=N_RESAMPLES, method="percentile", vectorized=True,
                          rng=np.random.default_rng(3))
    assert a == pytest.approx((res.confidence_interval.low, res.confidence_interval.high))


def test_bootstrap_ci_degenerate_cases_and_errors() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci([0.3]))
    assert bootstrap_ci([0.2, 0.2, 0.2]) == (0.2, 0.2)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.1, NAN])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.1, 0.2], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([0.1, 0.2], n_resamples=0)


def test_bootstrap_interval_covers_the_true_difference_at_about_the_nominal_rate() -> None:
    """300 synthetic paired samples (40 cases each) with a known mean difference of 0.05."""
    rng = np.random.default_rng(2024)
    true_diff, n_sim, n_cases = 0.05, 300, 40
    covered = 0
    for i in range(n_sim):
        baseline = rng.uniform(0.3, 0.9, n_cases)
        setting = baseline + true_diff + rng.normal(0, 0.1, n_cases)
        low, high = bootstrap_ci(setting - baseline, n_resamples=2000, seed=i)
        covered += low <= true_diff <= high
    rate = covered / n_sim
    # nominal 0.95; the percentile bootstrap runs slightly narrow for small n (binomial SE here ~0.013)
    assert 0.91 <= rate <= 0.98, rate


def test_paired_stats_drops_nan_pairs_and_counts() -> None:
    s = paired_stats([0.5, 0.7, NAN, 0.4, 0.9], [0.4, 0.7, 0.1, 0.6, NAN], n_resamples=500)
    assert s["n_cases"] == 3
    assert (s["better"], s["worse"], s["tied"]) == (1, 1, 1)
    assert s["setting_mean"] == pytest.approx((0.5 + 0.7 + 0.4) / 3)
    assert s["baseline_mean"] == pytest.approx((0.4 + 0.7 + 0.6) / 3)
    assert s["mean_diff"] == pytest.approx((0.1 + 0.0 - 0.2) / 3)
    assert s["p_value"] == pytest.approx(stats.wilcoxon([0.5, 0.7, 0.4], [0.4, 0.7, 0.6]).pvalue)
    empty = paired_stats([NAN], [0.2])
    assert empty["n_cases"] == 0 and math.isnan(empty["mean_diff"]) and math.isnan(empty["p_value"])


# --------------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------------
def _per_case(values: dict[tuple[str, int], list[float]], cases=("a", "b", "c"), dataset="d",
              checkpoint="last", column="f1") -> pd.DataFrame:
    rows = []
    for (setting, seed), vals in values.items():
        for case, v in zip(cases, vals):
            rows.append(dict(dataset=dataset, setting=setting, loss=setting, seed=seed, checkpoint=checkpoint,
                             case=case, **{column: v}))
    return pd.DataFrame(rows)


def test_seed_summary_mean_of_seed_means_and_sd() -> None:
    df = _per_case({("s", 0): [0.2, 0.4, NAN], ("s", 1): [0.6, 0.6, 0.9], ("s", 2): [NAN, NAN, NAN]})
    row = seed_summary(df, ["f1"]).iloc[0]
    seed_means = [0.3, 0.7]  # seed 2 has no value at all and is left out
    assert row["n_seeds"] == 3 and row["n_cases"] == 3
    assert row["f1"] == pytest.approx(np.mean(seed_means))
    assert row["f1_sd"] == pytest.approx(np.std(seed_means, ddof=1))


def test_case_means_average_over_seeds() -> None:
    df = _per_case({("s", 0): [0.2, 0.4, NAN], ("s", 1): [0.6, NAN, 0.9]})
    out = case_means(df, "f1").set_index("case")
    assert out.loc["a", "f1"] == pytest.approx(0.4)
    assert out.loc["b", "f1"] == pytest.approx(0.4) and out.loc["c", "f1"] == pytest.approx(0.9)
    assert out["n_seeds"].tolist() == [2, 2, 2]


# --------------------------------------------------------------------------------------------------
# comparison table
# --------------------------------------------------------------------------------------------------
def _study() -> pd.DataFrame:
    """blob (setting) vs plain (baseline), 2 seeds x 4 cases, F1 and DSC; cc_dice absent."""
    f1 = _per_case({("blob", 0): [0.9, 0.5, 0.7, 0.4], ("blob", 1): [0.7, 0.5, 0.9, 0.6],
                    ("plain", 0): [0.6, 0.5, 0.8, 0.6], ("plain", 1): [0.6, 0.5, 0.6, 0.6]},
                   cases=("a", "b", "c", "d"))
    f1["dsc"] = f1["f1"] / 2
    for column in ("surface_dice", "instance_sensitivity", "instance_precision"):
        f1[column] = 0.5
    return f1


def test_compare_settings_columns_seed_averaging_and_counts() -> None:
    t = compare_settings(_study(), {"d": [("blob", "plain")]})
    assert tuple(t.columns) == COMPARISON_COLUMNS
    assert t["metric"].tolist() == ["DSC", "SDSC", "F1", "IS", "IP"]  # absent metrics skipped
    f1 = t.set_index("metric").loc["F1"]
    # per case, seed means: blob (0.8, 0.5, 0.8, 0.5), plain (0.6, 0.5, 0.7, 0.6); d = (0.2, 0, 0.1, -0.1)
    d = np.array([0.2, 0.0, 0.1, -0.1])
    assert (f1["n_cases"], f1["n_seeds"], f1["better"], f1["worse"], f1["tied"]) == (4, 2, 2, 1, 1)
    assert f1["setting_mean"] == pytest.approx(0.65) and f1["baseline_mean"] == pytest.approx(0.6)
    assert f1["mean_diff"] == pytest.approx(d.mean())
    assert f1["p_value"] == pytest.approx(stats.wilcoxon([0.8, 0.5, 0.8, 0.5], [0.6, 0.5, 0.7, 0.6]).pvalue)
    low, high = bootstrap_ci(np.array([0.8, 0.5, 0.8, 0.5]) - np.array([0.6, 0.5, 0.7, 0.6]), N_RESAMPLES, seed=0)
    assert (f1["ci_low"], f1["ci_high"]) == pytest.approx((low, high))
    # every difference zero: NaN p-value, ties only, a zero-width interval
    sdsc = t.set_index("metric").loc["SDSC"]
    assert math.isnan(sdsc["p_value"]) and math.isnan(sdsc["p_holm"]) and sdsc["tied"] == 4
    assert (sdsc["ci_low"], sdsc["ci_high"]) == (0.0, 0.0)


def test_compare_settings_holm_over_the_metrics_of_one_pair() -> None:
    t = compare_settings(_study(), {"d": [("blob", "plain")]}, n_resamples=200)
    np.testing.assert_allclose(t["p_holm"], holm(t["p_value"].to_numpy()), rtol=0, atol=1e-15)
    # two valid p-values (DSC and F1 share their sign pattern): each doubled
    valid = t.dropna(subset=["p_value"])
    assert len(valid) == 2
    np.testing.assert_allclose(valid["p_holm"], np.minimum(1, 2 * valid["p_value"]))


def test_compare_settings_small_recall_and_optional_metrics_and_checkpoints() -> None:
    df = _study()
    df["small_recall"] = np.where(df["setting"] == "blob", 1.0, 0.5)
    df.loc[df["case"] == "d", "small_recall"] = NAN  # case d has no small blob: left out
    df["cc_dice"] = 0.3
    best = df.assign(checkpoint="best")
    t = compare_settings(pd.concat([df, best]), {"d": [("blob", "plain")]}, metrics=["small_recall", "cc_dice"],
                         n_resamples=200)
    assert t[["checkpoint", "metric"]].values.tolist() == [
        ["last", "small_recall"], ["last", "cc_dice"], ["best", "small_recall"], ["best", "cc_dice"]]
    row = t.iloc[0]
    assert row["n_cases"] == 3 and row["mean_diff"] == pytest.approx(0.5) and row["better"] == 3


def test_compare_settings_errors() -> None:
    df = _study()
    with pytest.raises(ValueError, match="'nope'.*no evaluated runs"):
        compare_settings(df, {"d": [("blob", "nope")]})
    with pytest.raises(ValueError, match="dataset 'x' has no rows"):
        compare_settings(df, {"x": [("blob", "plain")]})
    with pytest.raises(ValueError, match="unknown metric"):
        compare_settings(df, {"d": [("blob", "plain")]}, metrics=["AUC"])
    with pytest.raises(ValueError, match="no column for metric"):
        compare_settings(df, {"d": [("blob", "plain")]}, metrics=["cc_dice"])
    with pytest.raises(ValueError, match="lacks the column"):
        compare_settings(df.drop(columns="seed"), {"d": [("blob", "plain")]})


# --------------------------------------------------------------------------------------------------
# pairs
# --------------------------------------------------------------------------------------------------
MS_LOSSES = [
    {"name": "blob_dice", "loss": "blob_dice"},
    {"name": "dice", "loss": "dice"},
    {"name": "iw", "loss": "iw"},
    {"name": "blob_tversky", "loss": "blob_tversky"},
    {"name": "tversky", "loss": "tversky"},
    {"name": "blob_dice_a3_b1", "loss": "blob_dice", "alpha": 3, "beta": 1},
    {"name": "blob_dice_nomask", "loss": "blob_dice_nomask"},
    {"name": "dice_unetr", "loss": "dice", "model": "unetr", "lr": 0.001},
    {"name": "blob_dice_unetr", "loss": "blob_dice", "model": "unetr", "lr": 0.001},
    {"name": "blob_dice_lr3", "loss": "blob_dice", "lr": 0.001},  # no dice at 1e-3 with basicunet
]


def test_default_comparisons_pair_blob_x_with_x_at_the_same_lr_and_model() -> None:
    assert default_comparisons(MS_LOSSES, default_lr=0.01, default_model="basicunet") == [
        ("blob_dice", "dice"), ("blob_tversky", "tversky"), ("blob_dice_a3_b1", "dice"),
        ("blob_dice_unetr", "dice_unetr")]
    # an explicit lr equal to the default matches a setting without one
    losses = [{"name": "d", "loss": "dice"}, {"name": "b", "loss": "blob_dice", "lr": 0.01}]
    assert default_comparisons(losses, default_lr=0.01) == [("b", "d")]
    assert default_comparisons([{"name": "d", "loss": "dice"}]) == []


def test_validate_comparisons() -> None:
    names = ["dice", "blob_dice", "tversky"]
    assert validate_comparisons([["blob_dice", "dice"], ("tversky", "dice")], names, "ms") == [
        ("blob_dice", "dice"), ("tversky", "dice")]
    assert validate_comparisons([], names, "ms") == []
    for bad, message in [
        ([["blob_dice", "dcie"]], r"dataset 'ms': comparisons\[0\].*\['dcie'\].*training.losses"),
        ([["blob_dice"]], r"comparisons\[0\] must be a pair"),
        ([["dice", "dice"]], "with itself"),
        ([["blob_dice", "dice"], ["blob_dice", "dice"]], "twice"),
        ("blob_dice", "must be a list"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_comparisons(bad, names, "ms")


# --------------------------------------------------------------------------------------------------
# size bins, detection by size, small-instance recall
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("volumes", "bins", "expected"),
    [
        ([1, 10, 100, 1000], 3, [1, 10, 100, 1000]),
        ([1000, 1, 37], 1, [1, 1000]),
        ([4, 4, 4], 3, [4, 4]),  # one distinct size: one bin
        ([2, 8, 0, NAN], 2, [2, 4, 8]),  # zero/NaN volumes ignored
        ([], [0, 50, 500], [0, 50, 500]),  # user edges need no volumes
        ([5], [10.0, float("inf")], [10, float("inf")]),
    ],
)
def test_size_bin_edges(volumes, bins, expected) -> None:
    np.testing.assert_allclose(size_bin_edges(volumes, bins), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("bins", "message"),
    [(0, "positive number"), ([5], "at least two"), ([0, 50, 50], "strictly increasing"), ([-1, 3], "non-negative"),
     ("4", "number of bins or a list")],
)
def test_size_bin_edges_errors(bins, message) -> None:
    with pytest.raises(ValueError, match=message):
        size_bin_edges([1.0, 2.0], bins)
    with pytest.raises(ValueError, match="no ground-truth blob"):
        size_bin_edges([], 4)


def test_bin_labels() -> None:
    assert bin_labels([1, 10, 100, 1000]) == ["< 10", "10-100", ">= 100"]
    assert bin_labels([1.0, 5.0]) == ["all"]


def _blob(setting, seed, case, kind, blob_id, volume, flag, dataset="d", checkpoint="last"):
    return dict(dataset=dataset, setting=setting, loss=setting, seed=seed, checkpoint=checkpoint, case=case,
                kind=kind, id=blob_id, volume_voxels=volume, volume_physical=volume * 0.5,
                detected=flag if kind == "gt" else None, tp=flag if kind == "pred" else None)


@pytest.fixture()
def blobs_and_cases() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One setting, 2 seeds, cases a (blobs), b (blobs) and e (no blob at all). Physical = voxels / 2."""
    gt = [("a", 1, 2), ("a", 2, 6), ("a", 3, 400), ("b", 1, 4), ("b", 2, 3000)]  # physical 1, 3, 200, 2, 1500
    rows = []
    detected = {0: {("a", 1): True, ("a", 2): False, ("a", 3): True, ("b", 1): False, ("b", 2): True},
                1: {("a", 1): True, ("a", 2): True, ("a", 3): True, ("b", 1): False, ("b", 2): True}}
    for seed in (0, 1):
        for case, blob_id, vox in gt:
            rows.append(_blob("s", seed, case, "gt", blob_id, vox, detected[seed][(case, blob_id)]))
    # predictions: seed 0: a small FP speck in a (physical 0.5: below every edge) and a TP; seed 1: a large FP
    rows += [_blob("s", 0, "a", "pred", 1, 1, False), _blob("s", 0, "a", "pred", 2, 400, True),
             _blob("s", 1, "b", "pred", 1, 9000, False), _blob("s", 1, "b", "pred", 2, 3000, True)]
    cases = pd.DataFrame([dict(dataset="d", setting="s", loss="s", seed=seed, checkpoint="last", case=c)
                          for seed in (0, 1) for c in ("a", "b", "e")])
    return pd.DataFrame(rows), cases


def test_dataset_edges_count_each_gt_blob_once(blobs_and_cases) -> None:
    blobs, _ = blobs_and_cases
    edges = dataset_edges(blobs, {"d": 2})["d"]
    np.testing.assert_allclose(edges, [1.0, math.sqrt(1500.0), 1500.0])
    np.testing.assert_allclose(dataset_edges(blobs, [0, 10, 100])["d"], [0, 10, 100])
    with pytest.raises(ValueError, match="dataset 'd'.*no ground-truth blob"):
        dataset_edges(blobs[blobs["kind"] == "pred"], 3)


def test_detection_by_size_recall_fp_per_case_and_seed_spread(blobs_and_cases) -> None:
    blobs, cases = blobs_and_cases
    edges = {"d": np.array([1.0, 10.0, 1000.0, 5000.0])}  # bins: < 10, 10-1000, >= 1000
    t = detection_by_size(blobs, cases, edges)
    assert tuple(t.columns) == DETECTION_COLUMNS
    assert t["bin"].tolist() == [0, 1, 2]
    assert t["bin_low"].tolist() == [0.0, 10.0, 1000.0] and t["bin_high"].tolist() == [10.0, 1000.0, math.inf]
    assert t["n_cases"].tolist() == [3, 3, 3] and t["n_seeds"].tolist() == [2, 2, 2]
    assert t["n_gt"].tolist() == [3, 1, 1]
    # smallest bin (physical 1, 3, 2): seed 0 detects 1 of 3, seed 1 detects 2 of 3
    assert t.loc[0, "recall"] == pytest.approx(0.5)
    assert t.loc[0, "recall_sd"] == pytest.approx(np.std([1 / 3, 2 / 3], ddof=1))
    assert t.loc[1, "recall"] == pytest.approx(1.0) and t.loc[1, "recall_sd"] == pytest.approx(0.0)
    # FP per case: the speck below the first edge is in bin 0 (seed 0: 1 FP / 3 cases, seed 1: 0);
    # the 4500 FP of seed 1 is above the last edge and counts in the last bin
    assert t.loc[0, "fp_per_case"] == pytest.approx(1 / 6)
    assert t.loc[2, "fp_per_case"] == pytest.approx(1 / 6)
    assert t.loc[1, "fp_per_case"] == pytest.approx(0.0)
    assert t["n_pred"].tolist() == pytest.approx([0.5, 0.5, 1.0])


def test_small_recall_per_case(blobs_and_cases) -> None:
    blobs, cases = blobs_and_cases
    out = small_recall(blobs, cases, {"d": np.array([1.0, 10.0, 1000.0])})
    out = out.set_index(["seed", "case"])
    assert out.loc[(0, "a"), "small_recall"] == pytest.approx(0.5)  # physical 1 found, 3 missed
    assert out.loc[(0, "b"), "small_recall"] == pytest.approx(0.0)
    assert out.loc[(1, "a"), "small_recall"] == pytest.approx(1.0)
    assert out.loc[(0, "a"), "n_small"] == 2
    assert math.isnan(out.loc[(0, "e"), "small_recall"]) and out.loc[(0, "e"), "n_small"] == 0
    assert len(out) == len(cases)


def test_detection_by_size_reads_csv_flags(blobs_and_cases, tmp_path) -> None:
    blobs, cases = blobs_and_cases
    blobs.to_csv(tmp_path / "blobs.csv", index=False)
    back = pd.read_csv(tmp_path / "blobs.csv")  # detected/tp become object columns with NaN
    edges = {"d": np.array([1.0, 10.0, 1000.0, 5000.0])}
    pd.testing.assert_frame_equal(detection_by_size(back, cases, edges), detection_by_size(blobs, cases, edges))


def test_detection_by_size_errors(blobs_and_cases) -> None:
    blobs, cases = blobs_and_cases
    with pytest.raises(ValueError, match="lacks the column"):
        detection_by_size(blobs.drop(columns="tp"), cases, {"d": np.array([1.0, 2.0])})
    with pytest.raises(ValueError, match="no size bins for dataset 'd'"):
        detection_by_size(blobs, cases, {})
    with pytest.raises(ValueError, match="no size bins for dataset 'd'"):
        small_recall(blobs, cases, {})


# --------------------------------------------------------------------------------------------------
# the pipeline's jobs (blobloss.jobs) on small CSVs
# --------------------------------------------------------------------------------------------------
def _write_runs(tmp_path, blobs: pd.DataFrame) -> tuple[list, list]:
    """Per-run metrics.csv and blobs.csv files for blobs_and_cases-like data of settings 's' and 'b'."""
    metrics_paths, blob_paths = [], []
    rng = np.random.default_rng(0)
    for setting in ("s", "b"):
        for seed in (0, 1):
            run = dict(dataset="d", setting=setting, loss="dice" if setting == "s" else "blob_dice", lr=0.01,
                       alpha=NAN if setting == "s" else 2.0, beta=NAN if setting == "s" else 1.0,
                       model="basicunet", seed=seed, checkpoint="last")
            rows = [dict(run, case=c, dsc=rng.uniform(), sensitivity=0.5, precision=0.5, surface_dice=0.5,
                         tp=1, fp=0, fn=0, instance_sensitivity=1.0, instance_precision=1.0,
                         f1=rng.uniform(), gt_empty=False, pred_empty=False)
                    for c in ("a", "b", "e")]
            folder = tmp_path / setting / f"seed{seed}"
            folder.mkdir(parents=True)
            pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
            mine = blobs[blobs["seed"] == seed].assign(setting=setting, loss=run["loss"])
            mine.to_csv(folder / "blobs.csv", index=False)
            metrics_paths.append(folder / "metrics.csv")
            blob_paths.append(folder / "blobs.csv")
    return metrics_paths, blob_paths


def test_detection_and_comparison_jobs(blobs_and_cases, tmp_path) -> None:
    from blobloss.jobs import comparison_job, detection_by_size_job

    blobs, _ = blobs_and_cases
    metrics_paths, blob_paths = _write_runs(tmp_path, blobs)
    out = tmp_path / "tables"
    table = detection_by_size_job(metrics_paths, blob_paths, {"d": [1.0, 10.0, 1000.0]}, out / "detection_by_size",
                                  out / "small_recall.csv")
    assert sorted(p.name for p in out.iterdir()) == [
        "detection_by_size.csv", "detection_by_size.html", "detection_by_size.md", "small_recall.csv"]
    assert tuple(pd.read_csv(out / "detection_by_size.csv").columns) == DETECTION_COLUMNS
    assert table["setting"].tolist() == ["s", "s", "b", "b"] and table["loss"].tolist()[-1] == "blob_dice"
    small = pd.read_csv(out / "small_recall.csv")
    assert len(small) == 2 * 2 * 3 and small["small_recall"].isna().sum() == 4  # case e has no blob

    comparison = comparison_job(metrics_paths, out / "small_recall.csv", {"d": [["b", "s"]], "other": []},
                                out / "comparison", n_resamples=500)
    back = pd.read_csv(out / "comparison.csv")
    assert list(back.columns) == list(COMPARISON_COLUMNS)
    assert back["metric"].tolist() == ["DSC", "SDSC", "F1", "IS", "IP", "small_recall"]
    row = back.set_index("metric").loc["small_recall"]
    assert row["n_cases"] == 2 and row["mean_diff"] == pytest.approx(0.0) and row["tied"] == 2
    assert len(comparison) == 6
    for ext in ("md", "tex", "html"):
        assert (out / f"comparison.{ext}").stat().st_size > 0
    assert "<h1>Paired comparison" in (out / "comparison.html").read_text(encoding="utf-8")


def test_tables_job_writes_seed_tables_and_html(tmp_path) -> None:
    from blobloss.jobs import tables_job

    blobs = pd.DataFrame(columns=["dataset", "setting", "seed", "checkpoint", "case", "kind", "id",
                                  "volume_physical", "detected", "tp"])
    metrics_paths, _ = _write_runs(tmp_path, blobs)
    written = tables_job(metrics_paths, tmp_path / "tables", {"d": ["b", "s"]}, {"d": []}, {"d": None})
    t1 = pd.read_csv(written["table1"]["csv"])
    assert t1["n_seeds"].tolist() == [2, 2] and t1["n_cases"].tolist() == [3, 3]
    assert t1["DSC_sd"].notna().all()
    assert sorted(written["table1"]) == ["csv", "html", "md", "tex"]
    assert sorted(written["pooled"]) == ["csv", "html"]
    html = written["table1"]["html"].read_text(encoding="utf-8")
    assert " ± " in html and "mean over seeds" in html
