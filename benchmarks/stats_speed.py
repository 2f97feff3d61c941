"""Benchmark: connected components and blob features on a large volume with many blobs.

Generates ``--blobs`` ellipsoids of varied size and elongation (from single voxels and thin lines/plates to
balls of radius ~13) in a ``--size``^3 volume, one per cell of a regular grid so that they do not touch,
then times:

* ``label_instances`` (cc3d, 26-connectivity) on the binary volume,
* ``blob_features(method="paper")`` and ``blob_features(method="exact")`` on the instance map,
* for reference, a naive per-label full-volume scan (``np.argwhere(instances == k)``), measured on a
  few labels and extrapolated to all of them.

Writes the timings (best and median over ``--repeats``) with the machine description to
``benchmarks/results/stats_speed.json``.

Example:
    python3 benchmarks/stats_speed.py                   # 1000 blobs in 300^3, 3 repeats
    python3 benchmarks/stats_speed.py --size 100 --blobs 64 --repeats 1 --out /tmp/quick.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from blobloss.components import label_instances
from blobloss.io import write_json_atomic
from blobloss.stats import blob_features


def make_blobs(size: int, n_blobs: int, seed: int = 0) -> np.ndarray:
    """Binary ``(size,)*3`` volume with ``n_blobs`` non-touching ellipsoids of varied size and shape.

    Each blob sits in its own cell of a ``k^3`` grid (``k = ceil(n_blobs^(1/3))``); semi-axes are drawn
    log-uniformly from ``[0.5, cell/2 - 1]`` per axis, so the set spans single voxels, lines, plates and
    balls.
    """
    rng = np.random.default_rng(seed)
    k = math.ceil(n_blobs ** (1 / 3))
    cell = size // k
    vol = np.zeros((size, size, size), dtype=np.uint8)
    cells = rng.permutation(k**3)[:n_blobs]
    r_max = cell / 2 - 1
    for c in cells:
        origin = np.array(np.unravel_index(c, (k, k, k))) * cell
        radii = np.exp(rng.uniform(math.log(0.5), math.log(r_max), 3))
        centre = cell / 2 + rng.uniform(-0.5, 0.5, 3)
        g = np.ogrid[0:cell, 0:cell, 0:cell]
        inside = sum(((g[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1.0
        if not inside.any():
            inside[tuple(np.round(centre).astype(int))] = True
        vol[origin[0] : origin[0] + cell, origin[1] : origin[1] + cell, origin[2] : origin[2] + cell] |= inside
    return vol


def time_call(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Run ``fn`` ``repeats`` times; return the wall times (s) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def machine() -> dict[str, Any]:
    """CPU model, core count, load, Python / library versions and the date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import cc3d  # noqa: F401
    import pandas
    import scipy

    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores_visible": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pandas.__version__,
        "cc3d": version("connected-components-3d"),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def summary(times: list[float]) -> dict[str, float]:
    return {"best_s": round(min(times), 4), "median_s": round(statistics.median(times), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=300, help="edge length of the cubic volume")
    parser.add_argument("--blobs", type=int, default=1000, help="number of blobs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-labels", type=int, default=5, help="labels timed for the naive estimate")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "stats_speed.json"))
    args = parser.parse_args()

    info = machine()
    vol = make_blobs(args.size, args.blobs)
    t_cc, (instances, n) = time_call(lambda: label_instances(vol), args.repeats)
    t_paper, paper = time_call(lambda: blob_features(instances, method="paper"), args.repeats)
    t_exact, exact = time_call(lambda: blob_features(instances, method="exact"), args.repeats)

    labels = np.linspace(1, n, min(args.naive_labels, n)).astype(int)
    t0 = time.perf_counter()
    for k in labels:
        np.argwhere(instances == k)
    naive_per_label = (time.perf_counter() - t0) / len(labels)

    result = {
        "benchmark": "stats_speed",
        "machine": info,
        "data": {
            "shape": list(vol.shape),
            "n_blobs": int(n),
            "foreground_voxels": int(np.count_nonzero(vol)),
            "blob_voxels_min_median_max": [
                int(paper["n_voxels"].min()),
                float(paper["n_voxels"].median()),
                int(paper["n_voxels"].max()),
            ],
            "single_voxel_blobs": int((paper["n_voxels"] == 1).sum()),
        },
        "repeats": args.repeats,
        "label_instances_cc3d_26": summary(t_cc),
        "blob_features_paper": summary(t_paper),
        "blob_features_exact": summary(t_exact),
        "naive_per_label_scan_estimate_s": round(naive_per_label * n, 2),
        "check_exact_D_ge_paper_D": bool((exact["D"] >= paper["D"] - 1e-9).all()),
    }
    write_json_atomic(args.out, result)
    for key in ("label_instances_cc3d_26", "blob_features_paper", "blob_features_exact"):
        print(f"{key:26s} best {result[key]['best_s']:.3f} s  median {result[key]['median_s']:.3f} s")
    print(f"naive per-label scan (est.) {result['naive_per_label_scan_estimate_s']} s; {n} blobs -> {args.out}")


if __name__ == "__main__":
    main()
