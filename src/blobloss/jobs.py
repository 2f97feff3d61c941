"""Job-level entry points of the pipeline: each reads and writes the files of one Snakemake job.

The rule scripts in ``scripts/`` only unpack ``snakemake.input/params/output`` and call one function here
(or one library function directly), so every job is runnable and testable without Snakemake.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any


from blobloss.io import atomic_path

logger = logging.getLogger(__name__)

PathStr = str | PathLike[str]


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
    out_curve: PathStr,
    threads: int | None = None,
    run: Mapping[str, Any] | None = None,
    progress_interval: float = 30.0,
) -> dict[str, Any]:
    """Train (or resume) one run in ``work_dir`` on ``cfg["gpus"]`` GPUs and publish model, log and curve.

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
        work_dir: Folder of the run's checkpoints, ``log.csv``, ``curve.png`` and ``progress.json``.
        out_model: Where the final ``checkpoint_last.pt`` is published.
        out_log: Where ``log.csv`` is published.
        out_curve: Where ``curve.png`` is published.
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
    _publish(work / "curve.png", out_curve)
    logger.info("training finished: %s", summary)
    return summary


def predict_job(
    checkpoint: PathStr,
    image: PathStr,
    out_prob: PathStr,
    out_pred: PathStr,
    inference: Mapping[str, Any],
    threads: int | None = None,
) -> dict[str, Any]:
    """Sliding-window TTA inference of one case from the pipeline's ``inference`` config section.

    Args:
        checkpoint: Training checkpoint (``model_last.pt`` or ``work/checkpoint_best.pt``).
        image: Case image in the standard layout.
        out_prob: Probability map output (float32 NIfTI).
        out_pred: Binary prediction output (uint8 NIfTI, probability > 0.5).
        inference: ``tta`` (bool), ``flips``, ``noise_copies``, ``noise_std``, ``overlap``,
            ``sw_batch_size``, ``roi_size`` (None = training patch size).
        threads: CPU threads for torch (None: torch's default).

    Returns:
        The summary of :func:`blobloss.inference.predict_file`.
    """
    import torch

    from blobloss.inference import predict_file

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(
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
    return predict_file(
        checkpoint,
        image,
        out_prob,
        out_pred,
        roi_size=inference.get("roi_size"),
        sw_batch_size=inference["sw_batch_size"],
        overlap=inference["overlap"],
        tta=tta,
    )
