"""Every job of the pipeline: one function per Snakemake job, reading and writing that job's files.

Each rule script in ``scripts/`` unpacks ``snakemake.input/params/output`` and calls exactly one function
of this module, so every job is runnable and testable without Snakemake, and this module is the one place
that says what a job does. The work itself lives in the library modules (``blobloss.data``,
``blobloss.components``, ``blobloss.stats``, ``blobloss.training``, ``blobloss.inference``,
``blobloss.metrics``, ``blobloss.tables``, ``blobloss.study``, ``blobloss.plots``): every job imports
what it needs inside its function, so the workflow's rerun triggers (``workflow/lib/codedeps.py``, which
follows the imports of the functions a script uses) rerun a job only when code it runs changes; an edit
of the tables code never retrains a model.

Jobs, in pipeline order: :func:`check_dataset_job`, :func:`convert_case_job`, :func:`components_job`,
:func:`manifest_job`, :func:`blob_features_job`, :func:`blob_statistics_job`, :func:`train_job`,
:func:`predict_job`, :func:`metrics_job`, :func:`tables_job`, :func:`detection_by_size_job`,
:func:`comparison_job`, :func:`recall_figure_job`, :func:`detection_figure_job`, :func:`paired_figure_job`,
:func:`training_curves_job`.
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from blobloss.io import atomic_path, load_image

logger = logging.getLogger(__name__)

PathStr = str | PathLike[str]


# ---------------------------------------------------------------------------------------------------
# data: check, convert, instance maps, split and manifest, blob statistics
# ---------------------------------------------------------------------------------------------------
def check_dataset_job(
    dataset: Mapping[str, Any],
    cases: Mapping[str, Mapping[str, Any]],
    out_report: PathStr,
    threads: int = 1,
) -> dict[str, Any]:
    """Check every case of a dataset at once (:func:`blobloss.data.checks.check_dataset`), notes to the job
    log, the report as JSON.

    The report (per case: shape after any crop, spacing, channels, dtype, label voxels) lets the
    workflow check the training patch against every case when it is parsed, without reading an image.

    Raises:
        DataIntegrityError: Listing every problem of the dataset (nothing is written then).
    """
    from blobloss.data.checks import check_dataset
    from blobloss.io import write_json_atomic
    from blobloss.logs import progress

    report = check_dataset(dataset, cases, threads=threads)
    for note in report["notes"]:
        logger.warning("%s", note)
    write_json_atomic(out_report, report)
    progress("[%s] %d case(s) checked: no problem found", report["dataset"], report["n_cases"])
    return report


def check_patch_job(
    checks_json: PathStr,
    patch_size: Sequence[int],
    pad_to_patch: bool,
    out_json: PathStr,
) -> dict[str, list[int]]:
    """The training patch against every case of a dataset, from the dataset check's report (no image read).

    Runs right after the dataset check (a high priority in the workflow), so an oversized patch stops a
    first run before training; later runs check it when the workflow is parsed.

    Returns:
        ``{case: axes along which it is zero-padded}`` (written with the patch to ``out_json``).

    Raises:
        DataIntegrityError: Naming every case smaller than the patch, unless ``pad_to_patch``.
    """
    from blobloss.data.checks import check_patch_against_cases
    from blobloss.io import write_json_atomic

    report = json.loads(Path(checks_json).read_text(encoding="utf-8"))
    shapes = {case: facts["shape"] for case, facts in report["cases"].items()}
    padded = check_patch_against_cases(shapes, patch_size, pad=pad_to_patch, dataset=report.get("dataset", ""))
    if padded:
        logger.warning("%d case(s) are smaller than training.patch_size %s and are zero-padded "
                       "(training.pad_to_patch: true): %s", len(padded), list(patch_size), sorted(padded)[:10])
    write_json_atomic(out_json, {"patch_size": [int(p) for p in patch_size], "pad_to_patch": bool(pad_to_patch),
                                 "padded": padded})
    return padded


def convert_case_job(
    dataset: Mapping[str, Any],
    case: str,
    sources: Mapping[str, Any],
    out_image: PathStr,
    out_label: PathStr,
    out_meta: PathStr,
    out_instances: PathStr | None = None,
) -> dict[str, Any]:
    """Convert one case into the standard layout (:func:`blobloss.data.convert.convert_case`)."""
    from blobloss.data.convert import convert_case

    meta = convert_case(dataset, case, sources, out_image=out_image, out_label=out_label, out_meta=out_meta,
                        out_instances=out_instances)
    logger.info("converted %s: %s", case, meta)
    return meta


def components_job(
    case: str,
    label: PathStr,
    out_instances: PathStr,
    out_summary: PathStr,
    connectivity: int | None = None,
    given_instances: PathStr | None = None,
) -> dict[str, Any]:
    """The instance map of one case (:func:`blobloss.components.compute_instances`)."""
    from blobloss.components import compute_instances

    summary = compute_instances(label, out_instances, out_summary, connectivity=connectivity,
                                given_instances_path=given_instances or None)
    logger.info("%s: %s", case, summary)
    return summary


def manifest_job(
    split_params: Mapping[str, Any],
    metas: Sequence[PathStr],
    instances: Sequence[PathStr],
    out_split: PathStr,
    out_manifest: PathStr,
) -> pd.DataFrame:
    """The dataset's train/val/test split (:func:`blobloss.data.split.make_split`) and its manifest
    (:func:`blobloss.data.manifest.write_manifest`).

    Args:
        split_params: ``cases``, ``seed``, ``test_fraction``, ``val_fraction`` and ``file`` (a fixed split
            file or None).
        metas: Every case's ``meta.json``.
        instances: Every case's ``instances.json``, in the same order.
        out_split: The split (JSON).
        out_manifest: The manifest (CSV).
    """
    from blobloss.data.manifest import write_manifest
    from blobloss.data.split import make_split
    from blobloss.io import write_json_atomic

    p = split_params
    split = make_split(p["cases"], seed=p["seed"], test_fraction=p["test_fraction"],
                       val_fraction=p["val_fraction"], split_file=p["file"])
    write_json_atomic(out_split, split)
    manifest = write_manifest(metas, instances, split, out_manifest)
    logger.info("manifest of %d cases: %s", len(manifest), {k: len(v) for k, v in split.items()})
    return manifest


def blob_features_job(
    dataset: str,
    instances: Mapping[str, PathStr],
    out_features: PathStr,
    out_counts: PathStr,
    method: str = "paper",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Blob features and counts of one dataset (:func:`blobloss.stats.write_dataset_statistics`)."""
    from blobloss.stats import write_dataset_statistics

    features, counts = write_dataset_statistics(dict(instances), dataset, out_features, out_counts, method=method)
    logger.info("%d blobs in %d cases", len(features), len(counts))
    return features, counts


def blob_statistics_job(
    features_csvs: Sequence[PathStr],
    counts_csvs: Sequence[PathStr],
    out_png: PathStr,
    out_csv: PathStr,
    out_html: PathStr,
    percentile: float = 95.0,
) -> pd.DataFrame:
    """Fig. 4-style figure and the summary table of every dataset's blobs (CSV, and HTML for the report).

    Args:
        features_csvs: Per-dataset blob feature tables (``blob_features.csv``).
        counts_csvs: Per-dataset blob count tables (``blob_counts.csv``).
        out_png: The figure.
        out_csv: The summary table, full precision.
        out_html: The same table formatted for the report.
        percentile: The figure's axes end at this percentile (the boxes use every value).

    Returns:
        The summary table.
    """
    from blobloss.plots import plot_blob_statistics
    from blobloss.tables import blob_summary, write_table

    stem = Path(out_csv).with_suffix("")
    if Path(out_html) != stem.with_suffix(".html"):
        raise ValueError(f"out_csv {out_csv} and out_html {out_html} must share their name (one table, two formats)")
    features = pd.concat([pd.read_csv(p) for p in features_csvs], ignore_index=True)
    counts = pd.concat([pd.read_csv(p) for p in counts_csvs], ignore_index=True)
    plot_blob_statistics(features, counts, out_png, percentile=percentile)
    summary = blob_summary(features, counts)
    write_table(summary, stem, caption="Blob statistics per dataset", formats=("csv", "html"))
    return summary


# ---------------------------------------------------------------------------------------------------
# training and inference
# ---------------------------------------------------------------------------------------------------
def _publish(src: Path, dst: PathStr) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def train_job(
    cfg: Mapping[str, Any],
    train_cases: Sequence[Mapping[str, Any]],
    val_cases: Sequence[Mapping[str, Any]],
    work_dir: PathStr,
    out_model: PathStr,
    out_log: PathStr,
    threads: int | None = None,
    run: Mapping[str, Any] | None = None,
    progress_interval: float = 30.0,
) -> dict[str, Any]:
    """Train (or resume) one run in ``work_dir`` on ``cfg["gpus"]`` GPUs and publish model and log.

    Takes the run's GPUs first (:func:`blobloss.gpu.gpu_slot` with ``count = cfg["gpus"]``: all K at once,
    or none; a no-op under a scheduler or without GPUs, where ``gpus: K`` runs K CPU ranks). Checkpoints
    stay in ``work_dir`` (never a declared Snakemake output, so a killed, requeued or extended run resumes
    from ``work_dir/checkpoint_last.pt``); the published files are copies made once training has finished.
    One progress line per epoch (at most one per ``progress_interval`` seconds) goes to the process's
    original stderr, i.e. the terminal that runs snakemake, while the job log holds every epoch's line.

    Args:
        cfg: Training config (:func:`blobloss.training.loop.train`), with ``seed`` and ``gpus`` set.
        train_cases: ``[{"name", "image", "instances"}, ...]`` file paths of the training cases.
        val_cases: Validation cases in the same form (may be empty).
        work_dir: Folder of the run's checkpoints, ``log.csv`` and ``progress.json``.
        out_model: Where the final ``checkpoint_last.pt`` is published.
        out_log: Where ``log.csv`` is published.
        threads: CPU threads for torch, shared by the ranks (None: torch's default).
        run: ``{"dataset", "setting", "seed"}``: names the run in the progress lines and ``progress.json``.
        progress_interval: Minimum seconds between two progress lines on the terminal.

    Returns:
        The training summary of :func:`blobloss.training.loop.train`.
    """
    import sys

    import torch

    from blobloss.gpu import gpu_slot
    from blobloss.training.loop import train

    gpus = int(cfg.get("gpus", 1))
    if threads:
        torch.set_num_threads(int(threads))
    with gpu_slot(count=gpus) as devices:
        logger.info("CUDA_VISIBLE_DEVICES=%s, %d rank(s)", devices, gpus)
        summary = train(
            dict(cfg),
            list(train_cases),
            list(val_cases) or None,
            work_dir,
            run=run,
            progress_stream=sys.__stderr__,
            progress_interval=progress_interval,
        )
    work = Path(work_dir)
    _publish(work / "checkpoint_last.pt", out_model)
    _publish(work / "log.csv", out_log)
    logger.info("training finished: %s", summary)
    return summary


def predict_job(
    checkpoint: PathStr,
    images: Sequence[PathStr],
    out_probs: Sequence[PathStr],
    out_preds: Sequence[PathStr],
    inference: Mapping[str, Any],
    threads: int | None = None,
    run: str = "",
    every_s: float = 30.0,
) -> list[dict[str, Any]]:
    """Sliding-window TTA inference of every test case of one run from the pipeline's ``inference`` section,
    on one GPU (:func:`blobloss.gpu.gpu_slot`; a no-op under a scheduler or without GPUs).

    The network is loaded once. Plain progress lines go to the job log and the user's console
    (:func:`blobloss.logs.progress`): one when a case is done, and one at most every ``every_s`` seconds
    while a case's TTA variants run, e.g. ``[syn3d/dice/seed0/last] predict case 2/4 case_003: done in
    8.1 s (13 TTA variants)``.

    Args:
        checkpoint: Training checkpoint (``model_last.pt`` or ``work/checkpoint_best.pt``).
        images: Case images in the standard layout.
        out_probs: Probability map outputs (float32 NIfTI), one per image.
        out_preds: Binary prediction outputs (uint8 NIfTI, probability > 0.5), one per image.
        inference: ``tta`` (bool), ``flips``, ``noise_copies``, ``noise_std``, ``overlap``,
            ``sw_batch_size``, ``roi_size`` (None = training patch size).
        threads: CPU threads for torch (None: torch's default).
        run: Run label for the progress lines (``dataset/setting/seed<k>/<checkpoint>``).
        every_s: Least seconds between two progress lines while a case runs.

    Returns:
        The summaries of :func:`blobloss.inference.predict_files`, in case order.

    Raises:
        MissingFileError: If the checkpoint does not exist (naming it and what produces it).
    """
    import torch

    from blobloss.errors import MissingFileError
    from blobloss.gpu import gpu_slot
    from blobloss.inference import predict_files
    from blobloss.logs import ProgressTimer, progress

    if not Path(checkpoint).is_file():
        raise MissingFileError(
            f"checkpoint {checkpoint} does not exist; for the 'best' checkpoint the run needs validation "
            "cases (split.val_fraction > 0) and at least one validation epoch"
        )
    if threads:
        torch.set_num_threads(int(threads))
    tta = None
    if inference["tta"]:
        tta = {
            "flips": inference["flips"],
            "noise_copies": inference["noise_copies"],
            "noise_std": inference["noise_std"],
            "seed": 0,
        }
    prefix = f"[{run}] " if run else ""
    n = len(images)
    state: dict[str, Any] = {"case": 1, "timer": None}

    def case_name(image: PathStr) -> str:
        return Path(image).parent.name if Path(image).name == "image.nii.gz" else Path(image).name

    def on_variant(done: int, total: int) -> None:
        if state["timer"] is None:
            state["timer"] = ProgressTimer(total, every_s)
            state["timer"].due(0)
        if done < total and state["timer"].due(done):
            progress("%spredict case %d/%d %s: TTA variant %d/%d, %.0f s elapsed", prefix, state["case"], n,
                     case_name(images[state["case"] - 1]), done, total, state["timer"].elapsed)

    def on_case(i: int, total: int, image: str, seconds: float) -> None:
        variants = state["timer"].total if state["timer"] is not None else 1
        progress("%spredict case %d/%d %s: done in %.1f s (%d TTA variant(s))", prefix, i, total,
                 case_name(image), seconds, variants)
        state["case"], state["timer"] = i + 1, None

    with gpu_slot() as device:
        logger.info("CUDA_VISIBLE_DEVICES=%s", device)
        return predict_files(
            checkpoint,
            list(images),
            list(out_probs),
            list(out_preds),
            roi_size=inference.get("roi_size"),
            sw_batch_size=inference["sw_batch_size"],
            overlap=inference["overlap"],
            tta=tta,
            progress=False,
            on_variant=on_variant,
            on_case=on_case,
        )


# ---------------------------------------------------------------------------------------------------
# evaluation: metrics, tables, the paired comparison, figures
# ---------------------------------------------------------------------------------------------------
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


def read_blobs(paths: Sequence[PathStr]) -> pd.DataFrame:
    """Concatenate the per-blob tables (``blobs.csv``) written beside each run's ``metrics.csv``."""
    if not paths:
        raise ValueError("no per-blob tables given; the config needs at least one training run")
    frames = [pd.read_csv(p) for p in paths]
    return pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)


#: What the tables' numbers are (shown under the heading of each table's HTML page in the report).
SEED_NOTE = (
    "Each value is the mean over seeds of the seed's test-set mean (mean over the test cases, NaN ignored) "
    "± the standard deviation between seeds (no ± where only one seed has a value); n_seeds seeds, n_cases test "
    "cases. "
    "DSC, S, P, SDSC are volumetric; F1, IS, IP count blobs (a predicted blob touching the ground truth is "
    "a hit). 'paper X' columns give the paper's reported value where the run matches one of the paper's."
)
POOLED_NOTE = (
    "TP, FP and FN summed over every test case and seed, IS/IP/F1 computed from those sums, and how many "
    "evaluations (case x seed) had an empty ground truth, an empty prediction or both."
)
COMPARISON_NOTE = (
    "Setting against baseline on the same test cases. Each case's metric is first averaged over seeds; "
    "mean_diff = mean over cases of (setting - baseline); ci_low/ci_high = 95 % percentile bootstrap "
    "interval over cases (10,000 seeded resamples); p_value = two-sided Wilcoxon signed-rank test; "
    "p_holm = Holm-adjusted over the metrics of one pair; better/worse/tied = cases where the setting "
    "scores higher/lower/the same. small_recall = recall of the ground-truth blobs in the smallest size bin."
)
DETECTION_NOTE = (
    "Recall of the ground-truth blobs per size bin (pooled over the test cases of a seed) and false-positive "
    "predicted blobs per test case per predicted-size bin: mean ± standard deviation over seeds. Sizes are "
    "voxel count x voxel volume; the first bin also holds smaller blobs, the last larger ones."
)


def tables_job(
    metrics_csvs: Sequence[PathStr],
    out_dir: PathStr,
    table1_settings: Mapping[str, Sequence[str] | None],
    table2_settings: Mapping[str, Sequence[str]],
    paper_datasets: Mapping[str, str | None],
    best_datasets: Sequence[str] = (),
) -> dict[str, Any]:
    """Write the per-case table, the run summary, Table 1, Table 2 and the pooled counts.

    Every table gives per (dataset, setting, checkpoint) the mean over seeds of the test-set means, the
    seed-to-seed standard deviation (``X_sd``), ``n_seeds`` and ``n_cases``
    (:func:`blobloss.tables.summarize_runs`).

    Args:
        metrics_csvs: Per-case metrics of every run (every seed) and checkpoint.
        out_dir: Folder of ``per_case.csv``, ``summary.csv``, ``pooled.{csv,html}``,
            ``table1.{csv,md,tex,html}``, ``table1_best.*`` (when ``best_datasets``) and
            ``table2_<dataset>.*`` per dataset with an ablation.
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
    for name, frame in (("per_case", per_case), ("summary", summary)):
        with atomic_path(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)
        written[name] = out / f"{name}.csv"
    written["pooled"] = write_table(pooled_table(summary), out / "pooled", formats=("csv", "html"),
                                    caption="Pooled instance counts", note=POOLED_NOTE)
    settings1 = {ds: (list(s) if s else sorted(per_case.loc[per_case["dataset"] == ds, "setting"].unique()))
                 for ds, s in table1_settings.items()}
    written["table1"] = write_table(
        table1(summary, settings1, checkpoint="last", paper_datasets=paper), out / "table1",
        caption="Table 1: test-set means over seeds, last checkpoint", note=SEED_NOTE,
    )
    if best_datasets:
        written["table1_best"] = write_table(
            table1(summary, {ds: settings1[ds] for ds in best_datasets}, checkpoint="best", paper_datasets=paper),
            out / "table1_best",
            caption="Table 1 at the checkpoint with the lowest validation loss", note=SEED_NOTE,
        )
    for ds, settings in table2_settings.items():
        if settings:
            written[f"table2_{ds}"] = write_table(
                table2(summary, list(settings), checkpoint="last", paper_datasets=paper, dataset=ds),
                out / f"table2_{ds}",
                caption=f"Table 2: alpha/beta ablation on {ds}", note=SEED_NOTE,
            )
    logger.info("tables written: %s", sorted(written))
    return written


def detection_by_size_job(
    metrics_csvs: Sequence[PathStr],
    blobs_csvs: Sequence[PathStr],
    size_bins: Mapping[str, Any],
    out_stem: PathStr,
    small_recall_csv: PathStr,
) -> pd.DataFrame:
    """Detection by instance size of every run, and each case's small-instance recall.

    Bins are fixed per dataset (docs/definitions.md section 8): ``size_bins[dataset]`` is a number of
    log-spaced bins between the dataset's smallest and largest ground-truth blob, or the edges.

    Args:
        metrics_csvs: Per-case metrics of every run (they name the evaluated cases).
        blobs_csvs: The per-blob tables of the same runs.
        size_bins: ``{dataset: number of bins | [edges]}``.
        out_stem: Output stem: ``<stem>.csv`` (:data:`blobloss.study.DETECTION_COLUMNS`), ``.md``, ``.html``.
        small_recall_csv: Per (dataset, setting, seed, checkpoint, case): ``n_small`` and ``small_recall``.

    Returns:
        The detection-by-size table.
    """
    from blobloss.study import dataset_edges, detection_by_size, small_recall
    from blobloss.tables import write_table

    per_case = read_metrics(metrics_csvs)
    blobs = read_blobs(blobs_csvs)
    edges = dataset_edges(blobs, dict(size_bins))
    for dataset, e in edges.items():
        logger.info("%s: size-bin edges %s", dataset, [float(f"{x:.6g}") for x in e])
    table = detection_by_size(blobs, per_case, edges)
    write_table(table, out_stem, formats=("csv", "md", "html"), caption="Detection by blob size",
                note=DETECTION_NOTE)
    with atomic_path(small_recall_csv) as tmp:
        small_recall(blobs, per_case, edges).to_csv(tmp, index=False)
    return table


def comparison_job(
    metrics_csvs: Sequence[PathStr],
    small_recall_csv: PathStr | None,
    comparisons: Mapping[str, Sequence[Sequence[str]]],
    out_stem: PathStr,
    n_resamples: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The paired comparison table ``<stem>.{csv,md,tex,html}`` (docs/definitions.md section 8).

    Args:
        metrics_csvs: Per-case metrics of every run (every seed) and checkpoint.
        small_recall_csv: Per-case small-instance recall (:func:`detection_by_size_job`), or None.
        comparisons: ``{dataset: [[setting, baseline], ...]}``; datasets without pairs are skipped.
        out_stem: Output path without extension, e.g. ``results/tables/comparison``.
        n_resamples: Bootstrap resamples (default :data:`blobloss.study.N_RESAMPLES`).
        seed: Bootstrap seed.

    Returns:
        The comparison table (:data:`blobloss.study.COMPARISON_COLUMNS`).
    """
    from blobloss.study import N_RESAMPLES, compare_settings
    from blobloss.tables import write_table

    per_case = read_metrics(metrics_csvs)
    if small_recall_csv is not None:
        keys = ["dataset", "setting", "seed", "checkpoint", "case"]
        small = pd.read_csv(small_recall_csv)[[*keys, "small_recall"]]
        per_case = per_case.merge(small, on=keys, how="left")
    pairs = {ds: [tuple(p) for p in pairs] for ds, pairs in comparisons.items() if pairs}
    table = compare_settings(per_case, pairs, n_resamples=n_resamples or N_RESAMPLES, seed=seed)
    write_table(table, out_stem, caption="Paired comparison: setting against baseline", note=COMPARISON_NOTE)
    logger.info("comparison: %d rows for %d pairs", len(table), sum(len(p) for p in pairs.values()))
    return table


def recall_figure_job(
    detection_csv: PathStr,
    dataset: str,
    out_png: PathStr,
    settings: Sequence[str] | None = None,
    size_unit: str | None = None,
    checks_json: PathStr | None = None,
) -> None:
    """The recall-by-size figure of one dataset (:func:`blobloss.plots.plot_recall_by_size`).

    Args:
        detection_csv: The detection-by-size table (:func:`detection_by_size_job`).
        dataset: The dataset shown.
        out_png: The figure.
        settings: The settings shown, in legend order (None: every setting of the dataset).
        size_unit: The spacing unit (``mm``, ``um``); the size axis shows it squared (2D) or cubed (3D).
        checks_json: The dataset check's report (:func:`check_dataset_job`), which gives the number of
            spatial axes; without it the unit is shown as given.
    """
    from blobloss.plots import plot_recall_by_size
    from blobloss.tables import loss_label

    table = pd.read_csv(detection_csv)
    rows = table[table["dataset"].astype(str) == str(dataset)]
    labels = _setting_labels(rows, loss_label)
    unit = f", {size_unit}" if size_unit else ""
    if size_unit and checks_json is not None:
        cases = json.loads(Path(checks_json).read_text()).get("cases") or {}
        ndim = len(next(iter(cases.values()))["spacing"]) if cases else None
        unit += {2: "\u00b2", 3: "\u00b3"}.get(ndim, "")
    plot_recall_by_size(table, out_png, dataset=dataset, settings=settings, labels=labels,
                        size_label=f"blob size (voxels x voxel volume{unit})")


def _setting_labels(rows: pd.DataFrame, loss_label: Any) -> dict[str, str]:
    """Legend label per setting: the loss name, with the setting name where it differs."""
    if "loss" not in rows.columns:
        return {}
    out = {}
    for setting, loss in rows.drop_duplicates("setting")[["setting", "loss"]].itertuples(index=False):
        label = loss_label(loss)
        out[str(setting)] = label if str(setting) == str(loss) else f"{label} ({setting})"
    return out


def detection_figure_job(
    metrics_csvs: Sequence[PathStr],
    setting_a: str,
    setting_b: str,
    images: Mapping[str, PathStr],
    labels: Mapping[str, PathStr],
    preds_a: Mapping[int, Mapping[str, PathStr]],
    preds_b: Mapping[int, Mapping[str, PathStr]],
    out_png: PathStr,
    connectivity: int | None = None,
    dataset: str | None = None,
) -> tuple[str, int]:
    """Fig. 5/6: detections of two settings on the test case where their seed-averaged F1 differs most.

    The case is the one with the largest absolute difference of the per-case F1 averaged over seeds
    (:func:`blobloss.plots.pick_case`); the seed shown is the one whose difference on that case is
    closest to the seed average (:func:`blobloss.plots.pick_seed`); the title names both.

    Args:
        metrics_csvs: Per-case metrics of the two settings, every seed, last checkpoint.
        setting_a, setting_b: The settings compared (baseline first, e.g. dice and blob dice).
        images, labels: Case -> image / label path of the test cases.
        preds_a, preds_b: Seed -> case -> binary prediction path of each setting.
        out_png: The figure.
        connectivity: Instance connectivity (None: 26 in 3D, 8 in 2D).
        dataset: The dataset (named in the title).

    Returns:
        The chosen case and seed.
    """
    from blobloss.components import resolve_connectivity
    from blobloss.io import load_case_image
    from blobloss.plots import pick_case, pick_seed, plot_detection_comparison
    from blobloss.tables import loss_label

    per_case = read_metrics(metrics_csvs)
    case = pick_case(per_case, setting_a, setting_b, checkpoint="last", metric="f1", dataset=dataset)
    seed, at_seed, mean = pick_seed(per_case, case, setting_a, setting_b, checkpoint="last", metric="f1",
                                    dataset=dataset)
    seeds = sorted({int(s) for s in per_case["seed"]})
    image, spacing = load_case_image(images[case])
    gt = np.asarray(load_image(labels[case]).array) > 0
    conn = resolve_connectivity(gt.ndim, connectivity)
    names = _setting_labels(per_case, loss_label)
    preds = {
        names.get(s, s): np.asarray(load_image(_seed_paths(p, seed)[case]).array) > 0
        for s, p in ((setting_a, preds_a), (setting_b, preds_b))
    }
    name_a, name_b = names.get(setting_a, setting_a), names.get(setting_b, setting_b)
    title = (
        f"{dataset + ': ' if dataset else ''}case {case} (largest seed-averaged F1 difference), shown at seed "
        f"{seed} of seeds {', '.join(map(str, seeds))}\n"
        f"F1 {name_b} - {name_a}: {mean:+.3f} averaged over seeds, {at_seed:+.3f} at the seed shown"
    )
    plot_detection_comparison(image, gt, preds, out_png, title=title, connectivity=conn, spacing=spacing)
    return case, seed


def _seed_paths(paths: Mapping[Any, Mapping[str, PathStr]], seed: int) -> Mapping[str, PathStr]:
    for key, value in paths.items():
        if int(key) == int(seed):
            return value
    raise ValueError(f"no predictions of seed {seed} given (seeds: {sorted(paths)}).")


def paired_figure_job(
    metrics_csvs: Sequence[PathStr], setting_a: str, setting_b: str, out_png: PathStr, dataset: str | None = None
) -> None:
    """Per-case F1 and DSC of two settings, each case averaged over seeds (:func:`blobloss.plots.plot_paired`)."""
    from blobloss.plots import plot_paired
    from blobloss.tables import loss_label

    per_case = read_metrics(metrics_csvs)
    names = _setting_labels(per_case, loss_label)
    plot_paired(per_case, setting_a, setting_b, out_png, dataset=dataset,
                labels=(names.get(setting_a, setting_a), names.get(setting_b, setting_b)))


def training_curves_job(logs: Mapping[str, PathStr], out_png: PathStr, dataset: str | None = None) -> None:
    """One figure with the training curves of one or several runs (run name -> ``log.csv``).

    Both the per-run curve (``<run>/curve.png``) and a dataset's figure of all its runs are drawn here from
    the published logs, never by the training loop, so a figure edit never retrains a model.
    """
    from blobloss.plots import plot_training_curves

    plot_training_curves({name: pd.read_csv(path) for name, path in logs.items()}, out_png,
                         title=f"{dataset}: training curves" if dataset else None)
