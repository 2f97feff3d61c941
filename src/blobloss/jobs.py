"""Job-level entry points of the pipeline: each reads and writes the files of one Snakemake job.

The rule scripts in ``scripts/`` only unpack ``snakemake.input/params/output`` and call one function here
(or one library function directly), so every job is runnable and testable without Snakemake.
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

import logging
import shutil
import time
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
    images: Sequence[PathStr],
    out_probs: Sequence[PathStr],
    out_preds: Sequence[PathStr],
    inference: Mapping[str, Any],
    threads: int | None = None,
    run: str = "",
    every_s: float = 30.0,
) -> list[dict[str, Any]]:
    """Sliding-window TTA inference of every test case of one run from the pipeline's ``inference`` section.

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
