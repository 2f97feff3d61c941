"""The Python steps of benchmarks/gpu_check.sh: training-step benchmark and a 1-GPU DDP run.

``train-steps``: one training step (forward, loss, backward, Ranger21 step) of the paper's BasicUNet on
the MS patch (2 channels, 192x192x32; ``batch_size`` 4 cases x 2 crops = 8 crops, as MS trains), with
soft Dice and with blob Dice (fused), in float32 and under bf16 autocast: median step time after warm-up
and peak GPU memory.

``ddp``: :func:`blobloss.training.train` through the multi-rank path (forked rank, process group, DDP;
NCCL on a GPU) with one rank, a few steps on synthetic 3D cases; records the summary.

Usage (gpu_check.sh calls these)::

    python benchmarks/gpu_check.py train-steps --out benchmarks/results/train_step_cuda.json
    python benchmarks/gpu_check.py ddp --out benchmarks/results/ddp_cuda.json
    python benchmarks/gpu_check.py train-steps --quick --out /tmp/x.json   # tiny, runs on the CPU too
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _meta(dev: torch.device) -> dict:
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _instances(batch: int, shape: tuple[int, ...], n: int, seed: int = 0) -> torch.Tensor:
    """(batch, 1, *shape) int32 with about ``n`` small cubes per crop (ids 1..n)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((batch, 1) + tuple(shape), np.int32)
    side = max(2, round((0.03 * np.prod(shape) / max(n, 1)) ** (1 / len(shape))))
    for b in range(batch):
        for k in range(1, n + 1):
            c = [int(rng.integers(0, max(s - side, 1))) for s in shape]
            out[(b, 0) + tuple(slice(x, x + side) for x in c)] = k
    return torch.from_numpy(out)


def train_steps(args: argparse.Namespace) -> dict:
    from blobloss.training import build_loss, build_model, build_optimizer

    dev = _device()
    quick = args.quick
    shape = (32, 32, 16) if quick else (192, 192, 32)
    crops = 2 if quick else 8  # MS: batch_size 4 cases x crops_per_case 2
    features = (4, 4, 8, 8, 16, 4) if quick else (32, 32, 64, 128, 256, 32)
    warmup, repeats = (1, 2) if quick else (3, 10)
    image = torch.randn((crops, 2) + shape, device=dev)
    instances = _instances(crops, shape, 20 if quick else 50).to(dev)
    rows = []
    for loss_name in ("dice", "blob_dice"):
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and dev.type != "cuda":
                continue
            torch.manual_seed(0)
            model = build_model("basicunet", 3, 2, 1, features=features).to(dev)
            opt = build_optimizer(model.parameters(), "ranger21", lr=1e-2, num_iterations=1000)
            loss_fn = build_loss(loss_name, max_instance_id=int(instances.max())).to(dev)
            times = []
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for i in range(warmup + repeats):
                _sync(dev)
                t0 = time.perf_counter()
                ctx = torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else torch.enable_grad()
                with ctx:
                    logits = model(image)
                loss = loss_fn(logits.float(), instances)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                _sync(dev)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
            peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
            rows.append({"loss": loss_name, "precision": precision, "median_s": statistics.median(times),
                         "min_s": min(times), "peak_mib": peak, "final_loss": float(loss.detach())})
            print(f"train step {loss_name:9s} {precision}: {statistics.median(times) * 1e3:8.1f} ms"
                  + (f", peak {peak:.0f} MiB" if peak else ""), flush=True)
            del model, opt, loss_fn
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    by = {(r["loss"], r["precision"]): r["median_s"] for r in rows}
    summary = {f"blob_over_dice_{p}": by[("blob_dice", p)] / by[("dice", p)]
               for p in ("fp32", "bf16") if ("dice", p) in by}
    if ("dice", "bf16") in by:
        summary["bf16_speedup_dice"] = by[("dice", "fp32")] / by[("dice", "bf16")]
        summary["bf16_speedup_blob_dice"] = by[("blob_dice", "fp32")] / by[("blob_dice", "bf16")]
    return {**_meta(dev), "benchmark": "train_step", "quick": quick, "crops": crops, "channels": 2,
            "patch": list(shape), "features": list(features), "rows": rows, "summary": summary}


def ddp(args: argparse.Namespace) -> dict:
    from blobloss.training import read_log, train

    # no CUDA call in this process before the ranks are forked (CUDA does not survive a fork)
    rng = np.random.default_rng(0)
    shape = (32, 32, 32) if args.quick else (64, 64, 64)
    cases = []
    for i in range(4):
        inst = np.zeros(shape, np.uint32)
        for k in range(1, 6):
            c = rng.integers(2, shape[0] - 6, size=3)
            inst[c[0]:c[0] + 4, c[1]:c[1] + 4, c[2]:c[2] + 4] = k
        img = (inst > 0).astype(np.float32) + 0.2 * rng.standard_normal(shape).astype(np.float32)
        cases.append({"image": img[None], "instances": inst, "name": f"c{i}"})
    features = [4, 4, 8, 8, 16, 4] if args.quick else [8, 8, 16, 32, 64, 8]
    cfg = {"model": {"features": features}, "patch_size": [32, 32, 32], "batch_size": 2,
           "crops_per_case": 2, "epochs": 2 if args.quick else 5, "num_workers": 0, "progress": True,
           "loss": {"name": "blob_dice"}, "gpus": 1}
    out = Path(tempfile.mkdtemp(prefix="gpu-check-ddp-"))
    t0 = time.perf_counter()
    summary = train(cfg, cases[:3], cases[3:], out, device=None, force_distributed=True, progress_interval=0)
    seconds = time.perf_counter() - t0
    log = read_log(out / "log.csv")
    dev = _device()
    print(f"DDP run: {summary['epochs']} epochs on {summary['device']} (world size {summary['world_size']}) "
          f"in {seconds:.1f} s", flush=True)
    return {**_meta(dev), "benchmark": "ddp_one_rank", "quick": args.quick, "seconds": seconds,
            "train_device": summary["device"], "world_size": summary["world_size"],
            "epochs": summary["epochs"], "log": log}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["train-steps", "ddp"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check of the script, CPU too)")
    args = parser.parse_args(argv)
    result = train_steps(args) if args.step == "train-steps" else ddp(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
