"""Benchmark blobloss.metrics on a 300^3 volume with 1000 blobs: ours against pymia, side by side.

The ground truth holds 1000 random balls (radius 2-5 voxels); the prediction is the ground truth
perturbed: 10 % of the balls dropped, 20 % shifted by 1-3 voxels, 100 extra balls added. Each round times,
one after the other in the same process, ``volumetric_metrics`` (ours; target <= 1 s),
``reference_volumetric_metrics`` (pymia 0.3.4, the definition), ``instance_metrics``,
``component_metrics`` and ``case_metrics`` (everything of one metrics.csv row). Rounds are interleaved so
that a change in machine load hits both implementations alike; the minimum over rounds is reported (wall
and process CPU time). Our volumetric path is single-threaded NumPy; the per-component metrics query a
k-d tree with all cores (``workers=-1``). The JSON names the machine, its load and the thread settings.

Usage:
    python3 benchmarks/metrics_speed.py [--rounds 3] [--size 300] [--blobs 1000] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import cc3d
import numpy as np

from blobloss.metrics import (
    case_metrics,
    component_metrics,
    instance_metrics,
    reference_volumetric_metrics,
    volumetric_metrics,
)

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


def _timed(func: Callable[[], object]) -> tuple[float, float, object]:
    """Wall-clock and process CPU seconds of one call, and its result."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    result = func()
    return time.perf_counter() - start_wall, time.process_time() - start_cpu, result


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
    return {
        "min_s": round(min(wall), 4),
        "min_cpu_s": round(min(cpu), 4),
        "all_s": [round(t, 4) for t in wall],
        "all_cpu_s": [round(t, 4) for t in cpu],
    }


def main() -> None:
    """Run the benchmark and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--blobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULT_PATH)
    args = parser.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    pred, gt = make_case(args.size, args.blobs)
    spacing = (1.0, 1.0, 1.0)
    n_gt = cc3d.connected_components(gt, connectivity=26, return_N=True)[1]
    n_pred = cc3d.connected_components(pred, connectivity=26, return_N=True)[1]
    volumetric_metrics(pred[:8], gt[:8])  # one-time imports and the area table, outside the timings

    tasks: dict[str, Callable[[], object]] = {
        "volumetric_ours": lambda: volumetric_metrics(pred, gt, spacing=spacing),
        "volumetric_pymia": lambda: reference_volumetric_metrics(pred, gt, spacing=spacing),
        "instance_metrics": lambda: instance_metrics(pred, gt, connectivity=26),
        "component_metrics": lambda: component_metrics(pred, gt, spacing=spacing),
        "case_metrics": lambda: case_metrics(pred, gt, spacing=spacing),
    }
    wall: dict[str, list[float]] = {name: [] for name in tasks}
    cpu: dict[str, list[float]] = {name: [] for name in tasks}
    results: dict[str, object] = {}
    for _ in range(args.rounds):
        for name, task in tasks.items():
            w, c, results[name] = _timed(task)
            wall[name].append(w)
            cpu[name].append(c)

    ours, ref = results["volumetric_ours"], results["volumetric_pymia"]
    max_diff = max(abs(ours[k] - ref[k]) for k in ours)
    result = {
        "benchmark": "blobloss.metrics speed: ours vs pymia 0.3.4, interleaved rounds, minimum over rounds",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "description": f"{os.cpu_count()}-core {_cpu_model()}, no GPU, shared with other jobs (see load)",
            "cpu_model": _cpu_model(),
            "cpu_cores_visible": os.cpu_count(),
            "load_average_1_5_15_at_start": load_at_start,
            "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
            "threads": {
                "volumetric_ours": "1 (NumPy)",
                "volumetric_pymia": "1 (SciPy distance transforms)",
                "component_metrics": "k-d tree queries with workers=-1 (all cores)",
                **{var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
            },
            "platform": platform.platform(),
            "python": platform.python_version(),
            **{name: version(name) for name in ("numpy", "scipy", "connected-components-3d", "pymia", "SimpleITK")},
        },
        "case": {
            "shape": list(gt.shape),
            "spacing": list(spacing),
            "gt_voxels": int(gt.sum()),
            "pred_voxels": int(pred.sum()),
            "gt_blobs_conn26": int(n_gt),
            "pred_blobs_conn26": int(n_pred),
            "perturbation": "10% of GT balls dropped, 20% shifted by 1-3 voxels, 10% extra balls added",
        },
        "rounds": args.rounds,
        "target_volumetric_s": 1.0,
        "volumetric_max_abs_difference_ours_vs_pymia": max_diff,
        "speedup_volumetric_min_wall": round(min(wall["volumetric_pymia"]) / min(wall["volumetric_ours"]), 1),
        "timings": {name: {**_summary(wall[name], cpu[name]), "result": results[name]} for name in tasks},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
