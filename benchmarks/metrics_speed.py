"""Benchmark blobloss.metrics on a 300^3 volume with 1000 blobs.

The ground truth holds 1000 random balls (radius 2-5 voxels); the prediction is the ground truth
perturbed: 10 % of the balls dropped, 20 % shifted by 1-3 voxels, 100 extra balls added. Times
``instance_metrics`` (target: under 0.5 s on a 2-core machine) and ``volumetric_metrics`` and writes
``benchmarks/results/metrics_speed.json`` with the machine description.

Usage:
    python3 benchmarks/metrics_speed.py [--repeats 5] [--size 300] [--blobs 1000] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import cc3d
import numpy as np

from blobloss.metrics import instance_metrics, volumetric_metrics

RESULT_PATH = Path(__file__).resolve().parent / "results" / "metrics_speed.json"


def _paint_ball(volume: np.ndarray, centre: np.ndarray, radius: int) -> None:
    """Set a ball of ``radius`` voxels around ``centre`` (clipped at the volume border)."""
    lo = np.maximum(centre - radius, 0)
    hi = np.minimum(centre + radius + 1, volume.shape)
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    dist2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    volume[tuple(slice(a, b) for a, b in zip(lo, hi))] |= dist2 <= radius**2


def make_case(size: int = 300, n_blobs: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth with ``n_blobs`` balls and a perturbed prediction, both bool (size, size, size)."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(6, size - 6, size=(n_blobs, 3))
    radii = rng.integers(2, 6, size=n_blobs)
    gt = np.zeros((size,) * 3, dtype=bool)
    pred = np.zeros_like(gt)
    fate = rng.random(n_blobs)  # < 0.1: dropped, < 0.3: shifted, else kept
    for centre, radius, f in zip(centres, radii, fate):
        _paint_ball(gt, centre, int(radius))
        if f < 0.1:
            continue
        if f < 0.3:
            centre = np.clip(centre + rng.integers(-3, 4, size=3), 0, size - 1)
        _paint_ball(pred, centre, int(radius))
    for centre, radius in zip(rng.integers(6, size - 6, size=(n_blobs // 10, 3)), rng.integers(2, 6, n_blobs // 10)):
        _paint_ball(pred, centre, int(radius))
    return pred, gt


def _time(func: Callable[[], object], repeats: int) -> tuple[list[float], list[float], object]:
    """Wall-clock and process CPU seconds of ``repeats`` calls, and the last result."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        result = func()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu, result


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _summary(wall: list[float], cpu: list[float]) -> dict[str, object]:
    """First, median and min wall time; CPU time (less sensitive to other jobs on a shared machine)."""
    return {
        "first_s": round(wall[0], 4),
        "median_s": round(statistics.median(wall), 4),
        "min_s": round(min(wall), 4),
        "median_cpu_s": round(statistics.median(cpu), 4),
        "all_s": [round(t, 4) for t in wall],
    }


def main() -> None:
    """Run the benchmark and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--blobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--volumetric-repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    pred, gt = make_case(args.size, args.blobs)
    n_gt = cc3d.connected_components(gt, connectivity=26, return_N=True)[1]
    n_pred = cc3d.connected_components(pred, connectivity=26, return_N=True)[1]

    inst_wall, inst_cpu, inst = _time(lambda: instance_metrics(pred, gt, connectivity=26), args.repeats)
    inst6_wall, inst6_cpu, inst6 = _time(lambda: instance_metrics(pred, gt, connectivity=6), args.repeats)
    vol_wall, vol_cpu, vol = _time(lambda: volumetric_metrics(pred, gt, spacing=(1.0,) * 3), args.volumetric_repeats)

    result = {
        "benchmark": "blobloss.metrics speed",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": _cpu_model(),
            "cpu_cores_visible": os.cpu_count(),
            "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
            "load_average_1_5_15_at_start": load_at_start,
            "platform": platform.platform(),
            "python": platform.python_version(),
            **{name: version(name) for name in ("numpy", "scipy", "connected-components-3d", "pymia", "SimpleITK")},
        },
        "case": {
            "shape": list(gt.shape),
            "gt_voxels": int(gt.sum()),
            "pred_voxels": int(pred.sum()),
            "gt_blobs_conn26": int(n_gt),
            "pred_blobs_conn26": int(n_pred),
            "perturbation": "10% of GT balls dropped, 20% shifted by 1-3 voxels, 10% extra balls added",
        },
        "instance_metrics_conn26": {**_summary(inst_wall, inst_cpu), "target_s": 0.5, "result": inst},
        "instance_metrics_conn6": {**_summary(inst6_wall, inst6_cpu), "result": inst6},
        "volumetric_metrics": {
            **_summary(vol_wall, vol_cpu),
            "note": "dominated by pymia's Distances: two full-bounding-box Euclidean distance transforms",
            "result": vol,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
