"""What the instance maps cost inside nnU-Net's data loading, per batch of the default 3D patch, one CPU worker.

nnU-Net 2.8's loader crops each sample at the initial (rotation-padded) patch size and runs the training
transforms on it (spatial augmentation to the patch size, intensity augmentation, mirroring, label
clean-up, deep-supervision downsampling), one sample after the other, in each worker process. The blob
trainers add one step, :class:`~blobloss.integrations.nnunet.transforms.InstanceMapTransform` (cc3d on the
augmented patch), before the downsampling. This measures, per batch, with one torch thread (one worker):

* ``nnunet_transforms_ms``: nnU-Net's own training transforms (``nnUNetTrainer.get_training_transforms``);
* ``blob_transforms_ms``: the blob trainers' transforms (the same plus the instance maps);
* ``instance_maps_ms``: the instance-map step alone, on the augmented patches.

Methods run interleaved round by round on the same seeded samples (the same load for all); the median
over rounds is reported. The cases are the project's synthetic volumes (``blobloss.data.synthetic``) at
``--volume`` voxels, which have hundreds of small blobs: a dense case for cc3d.

Usage::

    python benchmarks/nnunet_loader.py --out benchmarks/results/nnunet_loader_cpu.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from blobloss.data.synthetic import case_seed, generate_case
from blobloss.integrations.nnunet.transforms import InstanceMapTransform, with_instance_maps


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _crop(volume: torch.Tensor, size: list[int], rng: np.random.Generator, pad: int) -> torch.Tensor:
    """A random crop of ``size`` (padded with ``pad`` beyond the volume, as nnU-Net's loader pads)."""
    spatial = volume.shape[1:]
    out = torch.full((volume.shape[0], *size), pad, dtype=volume.dtype)
    starts = [int(rng.integers(min(0, s - c), max(0, s - c) + 1)) for s, c in zip(spatial, size)]
    src = tuple(slice(max(0, a), min(s, a + c)) for a, s, c in zip(starts, spatial, size))
    dst = tuple(slice(max(0, -a), max(0, -a) + (sl.stop - sl.start)) for a, sl in zip(starts, src))
    out[(slice(None), *dst)] = volume[(slice(None), *src)]
    return out


def run(patch: list[int], batch: int, volume: list[int], rounds: int, warmup: int, seed: int) -> dict:
    torch.set_num_threads(1)
    rotation = (-30.0 / 360 * 2.0 * np.pi, 30.0 / 360 * 2.0 * np.pi)  # nnU-Net's 3D default
    initial = [int(s) for s in get_patch_size(patch, rotation, rotation, rotation, (0.85, 1.25))]
    pools = [[1, 1, 1]] + [[2, 2, 2]] * 5  # nnU-Net's 3d_fullres for a 128^3 patch: 6 stages
    ds_scales = [list(s) for s in 1 / np.cumprod(np.vstack(pools), axis=0)][:-1]
    args = (patch, rotation, ds_scales, (0, 1, 2), False)
    nnunet = nnUNetTrainer.get_training_transforms(*args, foreground_labels=(1,))
    blob = with_instance_maps(nnUNetTrainer.get_training_transforms(*args, foreground_labels=(1,)))
    instance_step = InstanceMapTransform()

    cases = []
    for i in range(2):
        image, label, instances = generate_case(case_seed(seed, i), volume)
        cases.append((torch.from_numpy(image), torch.from_numpy(label[None].astype(np.int16)), int(instances.max())))

    def samples(round_seed: int):
        rng = np.random.default_rng(round_seed)
        out = []
        for b in range(batch):
            image, label, _ = cases[b % len(cases)]
            state = rng.integers(1 << 30)
            crop_rng = np.random.default_rng(state)
            img = _crop(image, initial, crop_rng, 0)
            seg = _crop(label, initial, np.random.default_rng(state), -1)
            out.append((img, seg))
        return out

    def time_pipeline(pipe, round_seed: int) -> tuple[float, list]:
        torch.manual_seed(round_seed)
        np.random.seed(round_seed % (1 << 32))
        batch_samples = samples(round_seed)
        start = time.perf_counter()
        outs = [pipe(image=img, segmentation=seg) for img, seg in batch_samples]
        return (time.perf_counter() - start) * 1e3, outs

    times: dict[str, list[float]] = {"nnunet_transforms_ms": [], "blob_transforms_ms": [], "instance_maps_ms": []}
    ids_per_patch: list[int] = []
    for r in range(warmup + rounds):
        t_nn, outs = time_pipeline(nnunet, r)
        t_blob, blob_outs = time_pipeline(blob, r)
        # the instance step alone, on the same augmented full-resolution patches nnU-Net produced
        segs = [o["segmentation"][0] for o in outs]
        start = time.perf_counter()
        for s in segs:
            instance_step(segmentation=s)
        t_inst = (time.perf_counter() - start) * 1e3
        if r >= warmup:
            times["nnunet_transforms_ms"].append(t_nn)
            times["blob_transforms_ms"].append(t_blob)
            times["instance_maps_ms"].append(t_inst)
            ids_per_patch += [int(o["segmentation"][0][1].max()) for o in blob_outs]
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "config": {
            "patch_size": patch,
            "initial_patch_size": initial,
            "batch_size": batch,
            "deep_supervision_scales": len(ds_scales),
            "volume": volume,
            "blobs_per_volume": [c[2] for c in cases],
            "rounds": rounds,
            "warmup": warmup,
            "torch_threads": 1,
            "seed": seed,
        },
        "median_ms_per_batch": {k: round(v, 1) for k, v in med.items()},
        "min_ms_per_batch": {k: round(min(v), 1) for k, v in times.items()},
        "instance_maps_share_of_blob_transforms": round(med["instance_maps_ms"] / med["blob_transforms_ms"], 3),
        "instances_per_patch_median": statistics.median(ids_per_patch),
        "all_ms": {k: [round(x, 1) for x in v] for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, nargs=3, default=[128, 128, 128], help="patch size (nnU-Net 3d_fullres default)")
    parser.add_argument("--batch", type=int, default=2, help="batch size (nnU-Net's default 2)")
    parser.add_argument("--volume", type=int, nargs=3, default=[192, 192, 160], help="synthetic case size")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args()
    load = os.getloadavg()
    result = {
        "benchmark": "nnU-Net 2.8 training transforms per batch with and without the blob trainers' instance maps",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_at_start": [round(x, 2) for x in load],
        },
        **run(list(args.patch), args.batch, list(args.volume), args.rounds, args.warmup, args.seed),
        "note": "one worker = one process with one torch thread; wall-clock milliseconds per batch; the methods run "
        "interleaved on the same samples, so a busy machine slows all of them alike",
    }
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
