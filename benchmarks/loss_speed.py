"""Speed and peak memory of the blob loss against plain MONAI Dice, for N instances per crop.

Measures forward + backward of:

* ``monai_dice``: ``monai.losses.DiceLoss(sigmoid=True)(logits, target)`` (the baseline);
* ``blob_dice_fused``: ``BlobLoss("dice")`` (alpha 2, beta 1; fused scatter-add implementation);
* ``blob_dice_loop``: ``BlobLoss("dice", implementation="loop")`` (one criterion call per instance),
  skipped where it would take too long (``--loop-max-instances``);
* ``blob_dice_fused_compiled`` with ``--compile``: the fused path through ``torch.compile``.

Time: median over ``--repeats`` runs after ``--warmup`` runs (CUDA: CUDA events around each run, with
synchronisation). Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one forward + backward,
minus the memory allocated before it (inputs); on CPU the peak resident memory (VmHWM, reset through
``/proc/self/clear_refs``) during one forward + backward minus the resident memory before it, in a fresh
subprocess with inputs allocated and a warm-up on a small input done, and glibc's mmap threshold fixed
so freed tensors are returned to the OS.

Usage::

    python benchmarks/loss_speed.py --device cpu --out benchmarks/results/loss_speed_cpu.json
    python benchmarks/loss_speed.py --device cuda --out benchmarks/results/loss_speed_cuda.json

GPU defaults: 8 crops of 192x192x32; CPU defaults: 2 crops of 96x96x32.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceLoss

from blobloss.losses import BlobLoss

METHODS = ("monai_dice", "blob_dice_fused", "blob_dice_loop", "blob_dice_fused_compiled")
TARGETS = {"cuda": {"time_ratio": 1.5, "memory_ratio": 2.0}, "cpu": {"time_ratio": 3.0, "memory_ratio": 2.0}}


# ----------------------------------------------------------------------------------------- inputs
def make_instances(batch: int, shape: tuple[int, int, int], n: int, seed: int = 0) -> np.ndarray:
    """Instance map (batch, 1, *shape) int32 with ``n`` cube-shaped instances per crop (ids 1..n).

    Cubes of side ``s`` are placed at random positions; ``s`` is chosen so that the instances cover about
    5 % of the crop (at least 2 voxels per side). Later cubes may cover earlier ones in part; the
    instances actually present are counted in the results.
    """
    rng = np.random.default_rng(seed)
    voxels = int(np.prod(shape))
    side = max(2, round((0.05 * voxels / max(n, 1)) ** (1 / 3)))
    side = min(side, *shape)
    out = np.zeros((batch, 1, *shape), dtype=np.int32)
    for b in range(batch):
        corners = [rng.integers(0, dim - side + 1, size=n) for dim in shape]
        for i in range(n):
            x, y, z = (int(c[i]) for c in corners)
            out[b, 0, x : x + side, y : y + side, z : z + side] = i + 1
    return out


def make_inputs(
    batch: int, shape: tuple[int, int, int], n: int, device: torch.device, instance_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (requires grad), instance map and binary float target on ``device``."""
    inst = torch.from_numpy(make_instances(batch, shape, n)).to(device=device, dtype=instance_dtype)
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn((batch, 1, *shape), generator=gen).to(device).requires_grad_(True)
    target = (inst > 0).float()
    return logits, inst, target


def make_step(method: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """One forward + backward of ``method``."""
    if method == "monai_dice":
        dice = DiceLoss(sigmoid=True)

        def step(logits: torch.Tensor, inst: torch.Tensor, target: torch.Tensor) -> None:
            logits.grad = None
            dice(logits, target).backward()

        return step
    loss = {
        "blob_dice_fused": lambda: BlobLoss("dice"),
        "blob_dice_loop": lambda: BlobLoss("dice", implementation="loop"),
        "blob_dice_fused_compiled": lambda: BlobLoss("dice", compile=True),
    }[method]()

    def blob_step(logits: torch.Tensor, inst: torch.Tensor, target: torch.Tensor) -> None:
        logits.grad = None
        loss(logits, inst).backward()

    return blob_step


# ---------------------------------------------------------------------------------------- measuring
def _time_once(step: Callable[[], None], device: torch.device) -> float:
    """Milliseconds of one run (CUDA: events around it, synchronised)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    step()
    return (time.perf_counter() - t0) * 1e3


def time_methods(
    steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Run times (ms) of each step: ``warmup`` runs each, then ``repeats`` rounds that run every step once.

    Interleaving the methods round by round exposes them to the same machine load, which keeps their
    ratios meaningful on a shared machine.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(_time_once(step, device))
    return times


def cuda_peak_mib(step: Callable[[], None], device: torch.device) -> float:
    """Extra CUDA memory (MiB) at the peak of one run, beyond what was allocated before it."""
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _proc_status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux: write 5 to /proc/self/clear_refs); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_peak_probe(args: argparse.Namespace) -> None:
    """(Subprocess) print the peak-RSS increase (MiB) of one forward + backward as JSON.

    The peak RSS (VmHWM) is reset right before the run, so the result is the peak resident memory during
    the run minus the resident memory before it (inputs allocated, warm-up done).
    """
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    step = make_step(args.probe_method)
    small = make_inputs(1, (8, 8, 8), 4, device, getattr(torch, args.instance_dtype))
    step(*small)  # warm-up: lazy initialisation, code paths
    dtype = getattr(torch, args.instance_dtype)
    logits, inst, target = make_inputs(args.batch, tuple(args.shape), args.probe_n, device, dtype)
    if not _reset_peak_rss():
        raise SystemExit("cannot reset the peak RSS (/proc/self/clear_refs); run with --skip-memory")
    before = _proc_status_mib("VmRSS")
    step(logits, inst, target)
    peak = _proc_status_mib("VmHWM")
    assert before is not None and peak is not None
    print(json.dumps({"peak_mib": peak - before, "rss_before_mib": before}))


def cpu_peak_mib(args: argparse.Namespace, method: str, n: int) -> float:
    """Run :func:`cpu_peak_probe` in a fresh process (peak RSS is a process-wide high-water mark)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--probe-method",
        method,
        "--probe-n",
        str(n),
        "--device",
        "cpu",
        "--batch",
        str(args.batch),
        "--shape",
        *map(str, args.shape),
        "--threads",
        str(args.threads),
        "--instance-dtype",
        args.instance_dtype,
    ]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


# ------------------------------------------------------------------------------------------ machine
def machine_info(device: torch.device) -> dict[str, object]:
    cpu_model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import monai

    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model,
    }
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


# ------------------------------------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> dict[str, object]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False.")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    instance_dtype = getattr(torch, args.instance_dtype)
    methods = ["monai_dice", "blob_dice_fused", "blob_dice_loop"]
    if args.compile:
        methods.append("blob_dice_fused_compiled")
    rows = []
    for n in args.instances:
        logits, inst, target = make_inputs(args.batch, tuple(args.shape), n, device, instance_dtype)
        present = [int(torch.unique(inst[b]).numel() - int((inst[b] == 0).any())) for b in range(args.batch)]
        row: dict[str, object] = {
            "instances_requested": n,
            "instances_present_per_crop": present,
            "foreground_fraction": float((inst > 0).float().mean()),
            "methods": {},
        }
        steps: dict[str, Callable[[], None]] = {}
        for method in methods:
            if method == "blob_dice_loop" and n > args.loop_max_instances:
                row["methods"][method] = {  # type: ignore[index]
                    "skipped": f"loop not run for N > {args.loop_max_instances} instances per crop "
                    "(--loop-max-instances): its time grows linearly with N"
                }
                continue
            step_fn = make_step(method)
            steps[method] = lambda step_fn=step_fn: step_fn(logits, inst, target)
        loop_step = steps.pop("blob_dice_loop", None)
        timings = time_methods(steps, device, args.warmup, args.repeats)
        if loop_step is not None:  # slow: fewer repeats, not interleaved
            loop_repeats = max(3, min(args.repeats, 5))
            timings["blob_dice_loop"] = time_methods({"loop": loop_step}, device, 1, loop_repeats)["loop"]
        for method in methods:
            if method not in timings:
                continue
            times = timings[method]
            entry = {"median_ms": statistics.median(times), "min_ms": min(times), "repeats": len(times)}
            step = steps.get(method, loop_step)
            if device.type == "cuda":
                entry["peak_mib"] = cuda_peak_mib(step, device)
            elif not args.skip_memory:
                entry["peak_mib"] = cpu_peak_mib(args, method, n)
            row["methods"][method] = entry  # type: ignore[index]
            print(
                f"N={n:5d} {method:26s} {entry['median_ms']:9.2f} ms  "
                f"peak {entry.get('peak_mib', float('nan')):8.2f} MiB",
                flush=True,
            )
        base = row["methods"]["monai_dice"]  # type: ignore[index]
        for method, entry in row["methods"].items():  # type: ignore[union-attr]
            if "median_ms" in entry:
                entry["time_ratio_to_monai_dice"] = entry["median_ms"] / base["median_ms"]
                entry["min_time_ratio_to_monai_dice"] = entry["min_ms"] / base["min_ms"]
                if "peak_mib" in entry and base.get("peak_mib", 0) > 0:
                    entry["memory_ratio_to_monai_dice"] = entry["peak_mib"] / base["peak_mib"]
        rows.append(row)

    target = TARGETS[device.type]
    fused = [r["methods"]["blob_dice_fused"] for r in rows]  # type: ignore[index]
    summary = {
        "targets": target,
        "fused_time_ratio_max": max(e["time_ratio_to_monai_dice"] for e in fused),
        "fused_time_target_holds": all(e["time_ratio_to_monai_dice"] <= target["time_ratio"] for e in fused),
        "fused_min_time_ratio_max": max(e["min_time_ratio_to_monai_dice"] for e in fused),
    }
    if all("memory_ratio_to_monai_dice" in e for e in fused):
        summary["fused_memory_ratio_max"] = max(e["memory_ratio_to_monai_dice"] for e in fused)
        summary["fused_memory_target_holds"] = all(
            e["memory_ratio_to_monai_dice"] <= target["memory_ratio"] for e in fused
        )
    memory_note = (
        "torch.cuda.max_memory_allocated during one forward+backward minus the memory allocated before it"
        if device.type == "cuda"
        else "peak resident memory (VmHWM, reset via /proc/self/clear_refs) during one forward+backward minus "
        "the resident memory before it, in a fresh process with inputs allocated and a warm-up on a small input "
        "done, glibc MALLOC_MMAP_THRESHOLD_=128 KiB so that freed tensors return to the OS; includes allocator "
        "overheads and any memory the first run at this size allocates"
    )
    return {
        "benchmark": "forward+backward of plain MONAI DiceLoss(sigmoid=True) vs BlobLoss('dice') (alpha 2, beta 1)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "config": {
            "batch": args.batch,
            "shape": list(args.shape),
            "instances": list(args.instances),
            "instance_dtype": args.instance_dtype,
            "warmup": args.warmup,
            "torch_threads": args.threads if device.type == "cpu" else None,
            "repeats": args.repeats,
            "loop_max_instances": args.loop_max_instances,
            "instance_layout": "cubes placed at random, about 5 % foreground per crop",
        },
        "time_note": "median of repeats after warm-up, milliseconds; the methods run interleaved round by round"
        + (" (CUDA events, synchronised)" if device.type == "cuda" else " (wall clock)"),
        "memory_note": memory_note,
        "results": rows,
        "summary": summary,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--batch", type=int, help="crops per batch (default: 8 on cuda, 2 on cpu)")
    parser.add_argument("--shape", type=int, nargs=3, help="crop shape (default: 192 192 32 on cuda, 96 96 32 on cpu)")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 10, 100, 1000], help="instances per crop")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--loop-max-instances", type=int, help="skip the loop above this N (default: 1000 cuda, 100 cpu)"
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="CPU threads (torch.set_num_threads)"
    )
    parser.add_argument("--instance-dtype", default="int32", choices=["int32", "int64", "uint8", "int16"])
    parser.add_argument("--compile", action="store_true", help="also time BlobLoss(compile=True)")
    parser.add_argument("--skip-memory", action="store_true", help="CPU: skip the peak-memory subprocesses")
    parser.add_argument("--probe-method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--probe-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gpu = args.device == "cuda"
    args.batch = args.batch or (8 if gpu else 2)
    args.shape = args.shape or ([192, 192, 32] if gpu else [96, 96, 32])
    if args.loop_max_instances is None:
        args.loop_max_instances = 1000 if gpu else 100
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.probe_method:
        cpu_peak_probe(args)
        return
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
