"""Evaluation jobs of the pipeline: per-case metrics of a run, the results tables and figures.

Each function reads and writes the files of one Snakemake job, so the rule scripts stay thin and every
job is runnable without Snakemake.
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

import logging
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from blobloss.io import atomic_path, load_image

logger = logging.getLogger(__name__)

PathStr = str | PathLike[str]


def metrics_job(
    cases: Sequence[str],
    pred_paths: Sequence[PathStr],
    label_paths: Sequence[PathStr],
    out_csv: PathStr,
    connectivity: int | None = None,
    tolerance: float = 1.0,
    run: Mapping[str, Any] | None = None,
    blobs_csv: PathStr | None = None,
    instance_paths: Sequence[PathStr] | None = None,
    gt_instances: str = "components",
    matching: str = "any_overlap",
) -> pd.DataFrame:
    """Per-case metrics of one run (docs/definitions.md sections 5 and 9), written as CSV, and the
    per-blob table.

    Args:
        cases: Case ids, in the order of ``pred_paths`` and ``label_paths``.
        pred_paths: Binary predictions (NIfTI).
        label_paths: Ground-truth labels (NIfTI); their header spacing is used.
        out_csv: Output CSV: the ``run`` columns, ``case``, then :data:`blobloss.metrics.CASE_COLUMNS` and
            :data:`blobloss.metrics.EXTRA_CASE_COLUMNS`.
        connectivity: Instance connectivity (None: 26 in 3D, 8 in 2D).
        tolerance: Surface Dice tolerance in the spacing unit.
        run: Columns identifying the run (dataset, setting, loss, lr, alpha, beta, model, seed, checkpoint).
        blobs_csv: Output per-blob CSV (None: not written): the ``run`` columns, ``case``, then
            :data:`blobloss.metrics.BLOB_COLUMNS` (``kind`` gt|pred, blob id, voxels, physical volume,
            detected/TP flags), and ``matching``.
        instance_paths: Per case, the ground-truth instance map (NIfTI); needed for ``gt_instances="given"``.
        gt_instances: "components" (ground-truth blobs = connected components of the label) or "given"
            (the instance ids in ``instance_paths``).
        matching: Rule behind the per-blob table's ``detected``/``outcome``: "any_overlap" (the paper's)
            or "one_to_one_iou"; ``metrics.csv`` always holds both rules' columns.

    Returns:
        The per-case table.

    Raises:
        ValueError: On mismatched list lengths, an unknown ``gt_instances`` or ``matching``, given
            instances without ``instance_paths``, or a prediction whose shape differs from its label.
    """
    from blobloss.components import resolve_connectivity
    from blobloss.metrics import MATCHING_RULES, evaluate_case

    if not (len(cases) == len(pred_paths) == len(label_paths)):
        raise ValueError(
            f"got {len(cases)} cases, {len(pred_paths)} predictions and {len(label_paths)} labels; "
            "pass one prediction and one label per case"
        )
    if gt_instances not in ("components", "given"):
        raise ValueError(f"evaluation.gt_instances must be 'components' or 'given', got {gt_instances!r}")
    if matching not in MATCHING_RULES:
        raise ValueError(f"evaluation.matching must be one of {list(MATCHING_RULES)}, got {matching!r}")
    if gt_instances == "given" and (instance_paths is None or len(instance_paths) != len(cases)):
        raise ValueError(
            "evaluation.gt_instances 'given' needs one instance map per case (instance_paths); the dataset "
            "must set instance_labels: true so that its instance ids are kept"
        )
    rows, blob_frames = [], []
    for i, (case, pred_path, label_path) in enumerate(zip(cases, pred_paths, label_paths)):
        gt = load_image(label_path)
        pred = load_image(pred_path)
        if pred.array.shape != gt.array.shape:
            raise ValueError(
                f"case {case!r}: prediction {pred_path} has shape {pred.array.shape} but label {label_path} "
                f"has {gt.array.shape}; rerun the prediction of this case"
            )
        given = None
        if gt_instances == "given":
            given = np.asarray(load_image(instance_paths[i]).array)
        gt_mask = np.asarray(gt.array) > 0
        try:
            values, blobs = evaluate_case(
                np.asarray(pred.array) > 0,
                gt_mask,
                spacing=gt.spacing,
                connectivity=resolve_connectivity(gt_mask.ndim, connectivity),
                tolerance=tolerance,
                gt_instances=given,
                matching=matching,
            )
        except ValueError as err:
            raise ValueError(f"case {case!r} ({label_path}): {err}") from err
        rows.append({**(run or {}), "case": case, **values})
        blob_frames.append(blobs.assign(matching=matching).assign(**(run or {}), case=case))
    table = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    if blobs_csv is not None:
        from blobloss.metrics import BLOB_COLUMNS

        columns = [*(run or {}), "case", *BLOB_COLUMNS, "matching"]
        blobs_table = pd.concat(blob_frames, ignore_index=True) if blob_frames else pd.DataFrame()
        blobs_table = blobs_table.reindex(columns=columns)
        with atomic_path(blobs_csv) as tmp:
            blobs_table.to_csv(tmp, index=False)
    return table


def read_metrics(paths: Sequence[PathStr]) -> pd.DataFrame:
    """Concatenate per-case metrics CSVs written by :func:`metrics_job`."""
    if not paths:
        raise ValueError("no metrics files given; the config needs at least one training run")
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def tables_job(
    metrics_csvs: Sequence[PathStr],
    out_dir: PathStr,
    table1_settings: Mapping[str, Sequence[str] | None],
    table2_settings: Mapping[str, Sequence[str]],
    paper_datasets: Mapping[str, str | None],
    best_datasets: Sequence[str] = (),
) -> dict[str, Any]:
    """Write the per-case table, the run summary, Table 1, Table 2 and the pooled counts.

    Args:
        metrics_csvs: Per-case metrics of every run and checkpoint.
        out_dir: Folder of ``per_case.csv``, ``summary.csv``, ``pooled.csv``, ``table1.{csv,md,tex}``,
            ``table1_best.*`` (when ``best_datasets``) and ``table2_<dataset>.*`` per dataset with an ablation.
        table1_settings: Per dataset, the settings of Table 1 (None: every setting).
        table2_settings: Per dataset, the settings of its Table 2 (empty: none).
        paper_datasets: Per dataset, the paper's dataset name (MS, LiTS, ...) or None.
        best_datasets: Datasets evaluated at the lowest-validation-loss checkpoint too.

    Returns:
        The written paths by table name.
    """
    from blobloss.tables import pooled_table, summarize_runs, table1, table2, write_table

    out = Path(out_dir)
    per_case = read_metrics(metrics_csvs)
    summary = summarize_runs(per_case)
    paper = {ds: name for ds, name in paper_datasets.items() if name}
    written: dict[str, Any] = {}
    for name, frame in (("per_case", per_case), ("summary", summary), ("pooled", pooled_table(summary))):
        with atomic_path(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)
        written[name] = out / f"{name}.csv"
    settings1 = {ds: (list(s) if s else sorted(per_case.loc[per_case["dataset"] == ds, "setting"].unique()))
                 for ds, s in table1_settings.items()}
    written["table1"] = write_table(
        table1(summary, settings1, checkpoint="last", paper_datasets=paper), out / "table1",
        caption="Table 1: test-set means, last checkpoint",
    )
    if best_datasets:
        written["table1_best"] = write_table(
            table1(summary, {ds: settings1[ds] for ds in best_datasets}, checkpoint="best", paper_datasets=paper),
            out / "table1_best",
            caption="Table 1 at the checkpoint with the lowest validation loss",
        )
    for ds, settings in table2_settings.items():
        if settings:
            written[f"table2_{ds}"] = write_table(
                table2(summary, list(settings), checkpoint="last", paper_datasets=paper, dataset=ds),
                out / f"table2_{ds}",
                caption=f"Table 2: alpha/beta ablation on {ds}",
            )
    logger.info("tables written: %s", sorted(written))
    return written


def detection_figure_job(
    metrics_csvs: Sequence[PathStr],
    setting_a: str,
    setting_b: str,
    images: Mapping[str, PathStr],
    labels: Mapping[str, PathStr],
    preds_a: Mapping[str, PathStr],
    preds_b: Mapping[str, PathStr],
    out_png: PathStr,
    connectivity: int | None = None,
) -> str:
    """Fig. 5/6: detections of two settings on the test case where their F1 differs most.

    Args:
        metrics_csvs: Per-case metrics of the two settings (seed and checkpoint as the predictions).
        setting_a, setting_b: The settings compared (e.g. dice and blob dice).
        images, labels: Case -> image / label path of the test cases.
        preds_a, preds_b: Case -> binary prediction path of each setting.
        out_png: The figure.
        connectivity: Instance connectivity (None: 26 in 3D, 8 in 2D).

    Returns:
        The chosen case.
    """
    from blobloss.io import load_case_image
    from blobloss.plots import pick_case, plot_detection_comparison
    from blobloss.tables import loss_label

    per_case = read_metrics(metrics_csvs)
    case = pick_case(per_case, setting_a, setting_b, checkpoint="last", metric="f1")
    image, spacing = load_case_image(images[case])
    gt = np.asarray(load_image(labels[case]).array) > 0
    conn = connectivity if connectivity is not None else (26 if gt.ndim == 3 else 8)
    loss_of = per_case.drop_duplicates("setting").set_index("setting")["loss"]
    def title(setting: str) -> str:
        label = loss_label(loss_of[setting])
        return label if setting == loss_of[setting] else f"{label} ({setting})"

    preds = {
        title(s): np.asarray(load_image(p[case]).array) > 0 for s, p in ((setting_a, preds_a), (setting_b, preds_b))
    }
    plot_detection_comparison(
        image, gt, preds, out_png, title=f"{case}: largest F1 difference", connectivity=conn, spacing=spacing
    )
    return case


def training_curves_job(logs: Mapping[str, PathStr], out_png: PathStr) -> None:
    """One figure with the training curves of several runs (run name -> ``log.csv``)."""
    from blobloss.plots import plot_training_curves

    plot_training_curves({name: pd.read_csv(path) for name, path in logs.items()}, out_png)
