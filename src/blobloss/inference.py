"""Inference: sliding-window prediction with test-time augmentation (docs/definitions.md section 6).

:func:`predict_case` runs MONAI ``sliding_window_inference`` over a whole ``(C, *spatial)`` volume and
averages the sigmoid probabilities over the test-time-augmentation (TTA) variants:

* the original image;
* every other combination of flips along the spatial axes (7 in 3D, 3 in 2D); each prediction is flipped
  back before averaging;
* ``noise_copies`` copies with additive Gaussian noise of standard deviation ``noise_std`` (default 5 copies,
  0.01 on the normalized intensities). The noise is drawn on the CPU from a ``torch.Generator`` seeded with
  ``seed``, one ``(C, *spatial)`` draw per copy in order, so predictions are reproducible on any device.

The default TTA therefore averages 13 variants in 3D (9 in 2D). ``tta=None`` (or
``{"flips": False, "noise_copies": 0}``) predicts the original only. The prediction is
``probability > 0.5`` (:data:`THRESHOLD`).

:func:`predict_file` loads a network from a training checkpoint, predicts one case image file and writes the
probability map (float32) and the binary prediction (uint8) as NIfTI with the input's geometry, atomically;
:func:`predict_files` does the same for several cases with the network loaded once (the pipeline predicts
every test case of a run in one job).
"""

from __future__ import annotations

from blobloss._optional import require_extra

require_extra("pipeline", __name__)  # a clear ImportError naming the extra when it is not installed

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from tqdm.auto import tqdm

from blobloss.io import load_case_image, load_image, save_nifti

__all__ = [
    "DEFAULT_TTA",
    "THRESHOLD",
    "load_model",
    "predict_case",
    "predict_file",
    "predict_files",
    "tta_variants",
]

PathLike = str | os.PathLike[str]

#: The paper's TTA: original + all flip combinations + 5 noisy copies (docs/definitions.md section 6).
DEFAULT_TTA: dict[str, Any] = {"flips": True, "noise_copies": 5, "noise_std": 0.01, "seed": 0}

#: Probability threshold of the binary prediction.
THRESHOLD = 0.5


def _resolve_tta(tta: Mapping[str, Any] | None) -> dict[str, Any]:
    if tta is None:
        return {"flips": False, "noise_copies": 0, "noise_std": 0.0, "seed": 0}
    unknown = set(tta) - set(DEFAULT_TTA)
    if unknown:
        raise ValueError(f"Unknown TTA keys {sorted(unknown)}; allowed: {sorted(DEFAULT_TTA)} (or tta=None).")
    out = {**DEFAULT_TTA, **dict(tta)}
    if not isinstance(out["noise_copies"], (int, np.integer)) or out["noise_copies"] < 0:
        raise ValueError(f"tta 'noise_copies' must be an integer >= 0, got {out['noise_copies']!r}.")
    if not float(out["noise_std"]) >= 0:
        raise ValueError(f"tta 'noise_std' must be >= 0, got {out['noise_std']!r}.")
    return out


def tta_variants(spatial_dims: int, tta: Mapping[str, Any] | None = DEFAULT_TTA) -> list[tuple[tuple[int, ...], int | None]]:
    """List the TTA variants as ``(flipped spatial axes, noise copy index or None)``.

    Args:
        spatial_dims: 2 or 3.
        tta: TTA settings (see :data:`DEFAULT_TTA`) or ``None`` for no TTA.

    Returns:
        The original ``((), None)`` first, then the flip combinations (by number of axes, then axis
        order), then ``((), k)`` for noise copy ``k``.

    Example:
        >>> tta_variants(2, {"flips": True, "noise_copies": 1})
        [((), None), ((0,), None), ((1,), None), ((0, 1), None), ((), 0)]
        >>> len(tta_variants(3))
        13
    """
    cfg = _resolve_tta(tta)
    variants: list[tuple[tuple[int, ...], int | None]] = [((), None)]
    if cfg["flips"]:
        for k in range(1, spatial_dims + 1):
            variants += [(axes, None) for axes in itertools.combinations(range(spatial_dims), k)]
    variants += [((), i) for i in range(int(cfg["noise_copies"]))]
    return variants


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def predict_case(
    model: torch.nn.Module,
    image: np.ndarray,
    roi_size: Sequence[int],
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    tta: Mapping[str, Any] | None = DEFAULT_TTA,
    device: str | torch.device | None = None,
    progress: bool = True,
    mode: str = "gaussian",
    amp: str | None = None,
    on_variant: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Predict the foreground probability of one volume with sliding windows and TTA.

    Args:
        model: Network mapping ``(B, C, *roi_size)`` to logits ``(B, 1, *roi_size)``; moved to ``device`` and
            set to eval mode here.
        image: ``(C, *spatial)`` normalized image (2 or 3 spatial axes).
        roi_size: Window size (the training patch size; UNETR needs exactly its ``img_size``). Volumes
            smaller than the window are padded by MONAI and cropped back.
        sw_batch_size: Windows per forward pass. The TTA variants are stacked ``sw_batch_size`` at a time
            into one sliding-window pass (MONAI batches their windows together), which is about twice as fast
            as one variant at a time for small volumes and needs memory for ``sw_batch_size`` outputs.
        overlap: Window overlap fraction in [0, 1).
        tta: TTA settings (keys ``flips``, ``noise_copies``, ``noise_std``, ``seed``; missing keys take
            :data:`DEFAULT_TTA`), or ``None`` to predict the original only.
        device: Device for the network and the stitched output; ``None``: CUDA when available.
        progress: Show a progress bar over the TTA variants.
        mode: Window blending, ``"gaussian"`` (default) or ``"constant"`` (MONAI's options).
        amp: ``"bf16"`` for bfloat16 autocast on CUDA, else ``None`` (float32).
        on_variant: Called as ``on_variant(done, total)`` after each pass of TTA variants (plain progress
            lines for pipeline jobs, instead of the bar).

    Returns:
        ``(*spatial)`` float32 probabilities in [0, 1], the mean of the sigmoid over the variants.

    Raises:
        ValueError: On a wrong image or roi shape, a bad overlap, batch size or TTA setting.

    Example:
        >>> net = torch.nn.Conv2d(1, 1, 1)
        >>> prob = predict_case(net, np.zeros((1, 20, 30), np.float32), (16, 16), device="cpu", progress=False)
        >>> prob.shape, prob.dtype
        ((20, 30), dtype('float32'))
    """
    img = np.asarray(image)
    if img.ndim not in (3, 4):
        raise ValueError(
            f"image must be (C, *spatial) with 2 or 3 spatial axes, got shape {img.shape}; add a channel axis "
            "with image[None] for single-channel volumes."
        )
    spatial_dims = img.ndim - 1
    roi = tuple(int(r) for r in roi_size)
    if len(roi) != spatial_dims or min(roi) < 1:
        raise ValueError(f"roi_size {tuple(roi_size)} needs {spatial_dims} positive entries for image {img.shape}.")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap!r}.")
    if int(sw_batch_size) < 1:
        raise ValueError(f"sw_batch_size must be >= 1, got {sw_batch_size!r}.")
    if amp not in (None, "bf16"):
        raise ValueError(f"amp must be 'bf16' or None, got {amp!r}.")
    cfg = _resolve_tta(tta)
    dev = _device(device)
    model = model.to(dev).eval()

    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None]  # (1, C, *spatial), CPU
    noise_gen = torch.Generator().manual_seed(int(cfg["seed"]))
    use_amp = amp == "bf16" and dev.type == "cuda"
    variants = tta_variants(spatial_dims, tta)
    total = torch.zeros(img.shape[1:], dtype=torch.float32, device=dev)
    chunk = int(sw_batch_size)  # windows per forward, and TTA variants stacked into one sliding-window pass
    with torch.inference_mode():
        bar = tqdm(total=len(variants), desc="TTA", unit="variant", disable=not progress, leave=False)
        for start in range(0, len(variants), chunk):
            group = variants[start:start + chunk]
            flips = [tuple(a + 2 for a in axes) for axes, _ in group]  # flipped tensor dims of each variant
            inputs = []
            for dims, (_, noise_index) in zip(flips, group):
                inp = x
                if noise_index is not None:
                    inp = x + float(cfg["noise_std"]) * torch.randn(x.shape, generator=noise_gen)
                inputs.append(torch.flip(inp, dims) if dims else inp)
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
            with ctx:
                logits = sliding_window_inference(
                    torch.cat(inputs).to(dev, non_blocking=True),
                    roi_size=roi,
                    sw_batch_size=chunk,
                    predictor=model,
                    overlap=float(overlap),
                    mode=mode,
                    device=dev,
                )
            if logits.shape[1] != 1:
                raise ValueError(f"model must output one (sigmoid) channel, got logits {tuple(logits.shape)}.")
            prob = torch.sigmoid(logits.float())
            for k, dims in enumerate(flips):
                total += (torch.flip(prob[k:k + 1], dims) if dims else prob[k:k + 1])[0, 0]
            bar.update(len(group))
            if on_variant is not None:
                on_variant(start + len(group), len(variants))
        bar.close()
    return (total / len(variants)).cpu().numpy().astype(np.float32, copy=False)


def load_model(checkpoint_path: PathLike, device: str | torch.device | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the network of a training checkpoint and load its weights (eval mode).

    Args:
        checkpoint_path: ``checkpoint_last.pt`` or ``checkpoint_best.pt`` written by
            :func:`blobloss.training.train`.
        device: Target device (``None``: CUDA when available).

    Returns:
        ``(model, checkpoint)``; the checkpoint dict holds ``cfg``, ``epoch``, ``spatial_dims``,
        ``in_channels``.

    Raises:
        ValueError: If the checkpoint lacks the model description (not written by blobloss).
    """
    from blobloss.training.checkpoint import load_checkpoint
    from blobloss.training.model import build_model_from_config

    ckpt = load_checkpoint(checkpoint_path)
    missing = [k for k in ("cfg", "model", "spatial_dims", "in_channels") if k not in ckpt]
    if missing:
        raise ValueError(
            f"checkpoint {checkpoint_path} lacks {missing}; it was not written by blobloss.training.train."
        )
    cfg = ckpt["cfg"]
    model = build_model_from_config(cfg["model"], ckpt["spatial_dims"], ckpt["in_channels"], cfg["patch_size"])
    model.load_state_dict(ckpt["model"])
    return model.to(_device(device)).eval(), ckpt


def predict_file(
    checkpoint_path: PathLike,
    image_path: PathLike,
    out_prob: PathLike,
    out_pred: PathLike,
    roi_size: Sequence[int] | None = None,
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    tta: Mapping[str, Any] | None = DEFAULT_TTA,
    device: str | torch.device | None = None,
    progress: bool = True,
    mode: str = "gaussian",
    amp: str | None = None,
    on_variant: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Predict one case image file with a trained checkpoint and write probability and prediction NIfTIs.

    Args:
        checkpoint_path: Training checkpoint (see :func:`load_model`).
        image_path: Case image in the standard layout (read with :func:`blobloss.io.load_case_image`).
        out_prob: Output probability map, ``(*spatial)`` float32 NIfTI.
        out_pred: Output binary prediction ``probability > 0.5``, ``(*spatial)`` uint8 NIfTI.
        roi_size: Window size; default: the checkpoint's training ``patch_size``.
        sw_batch_size, overlap, tta, device, progress, mode, amp, on_variant: See :func:`predict_case`.

    Returns:
        ``{"variants", "shape", "spacing", "foreground_voxels", "epoch", "prob", "pred"}``.

    Raises:
        ValueError: If the image's channel count or dimensionality differs from the network's.
    """
    return predict_files(
        checkpoint_path, [image_path], [out_prob], [out_pred], roi_size=roi_size, sw_batch_size=sw_batch_size,
        overlap=overlap, tta=tta, device=device, progress=progress, mode=mode, amp=amp, on_variant=on_variant,
    )[0]


def predict_files(
    checkpoint_path: PathLike,
    image_paths: Sequence[PathLike],
    out_probs: Sequence[PathLike],
    out_preds: Sequence[PathLike],
    roi_size: Sequence[int] | None = None,
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    tta: Mapping[str, Any] | None = DEFAULT_TTA,
    device: str | torch.device | None = None,
    progress: bool = True,
    mode: str = "gaussian",
    amp: str | None = None,
    on_variant: Callable[[int, int], None] | None = None,
    on_case: Callable[[int, int, str, float], None] | None = None,
) -> list[dict[str, Any]]:
    """Predict several case image files with one checkpoint (loaded once), as :func:`predict_file` does.

    Args:
        checkpoint_path: Training checkpoint (see :func:`load_model`).
        image_paths: Case images in the standard layout.
        out_probs: One probability-map output per image.
        out_preds: One binary-prediction output per image.
        roi_size, sw_batch_size, overlap, tta, device, progress, mode, amp: See :func:`predict_file`.
        on_variant: Called after each pass of TTA variants of a case as ``on_variant(done, total)``.
        on_case: Called after each case as ``on_case(i, n, image_path, seconds)`` (``i`` counts from 1),
            e.g. to report progress.

    Returns:
        One summary per image (see :func:`predict_file`), in order.

    Raises:
        ValueError: If the three path lists differ in length, or an image's channel count or dimensionality
            differs from the network's.
    """
    if not (len(image_paths) == len(out_probs) == len(out_preds)):
        raise ValueError(
            f"got {len(image_paths)} images, {len(out_probs)} probability outputs and {len(out_preds)} "
            "prediction outputs; pass one of each per case"
        )
    model, ckpt = load_model(checkpoint_path, device)
    roi = tuple(roi_size) if roi_size is not None else tuple(ckpt["cfg"]["patch_size"])
    summaries = []
    for i, (image_path, out_prob, out_pred) in enumerate(zip(image_paths, out_probs, out_preds), start=1):
        start = time.perf_counter()
        image, spacing = load_case_image(image_path)
        affine = load_image(image_path).affine
        if image.shape[0] != ckpt["in_channels"] or image.ndim - 1 != ckpt["spatial_dims"]:
            raise ValueError(
                f"image {image_path} has shape {image.shape} (C, *spatial) but the network of {checkpoint_path} "
                f"expects {ckpt['in_channels']} channel(s) and {ckpt['spatial_dims']} spatial axes."
            )
        prob = predict_case(model, image, roi, sw_batch_size, overlap, tta, device, progress, mode, amp,
                            on_variant)
        pred = (prob > THRESHOLD).astype(np.uint8)
        save_nifti(out_prob, prob, spacing=spacing, affine=affine, dtype=np.float32)
        save_nifti(out_pred, pred, spacing=spacing, affine=affine, dtype=np.uint8)
        summaries.append({
            "variants": len(tta_variants(image.ndim - 1, tta)),
            "shape": tuple(prob.shape),
            "spacing": tuple(spacing),
            "foreground_voxels": int(pred.sum()),
            "epoch": ckpt.get("epoch"),
            "prob": str(Path(out_prob)),
            "pred": str(Path(out_pred)),
        })
        if on_case is not None:
            on_case(i, len(image_paths), str(image_path), time.perf_counter() - start)
    return summaries
