"""Source format ``synthetic``: the built-in generator (:mod:`blobloss.data.synthetic`), in memory.

Case ``case_<i>`` uses the seed ``case_seed(source.seed, i)``; spacing 1.0 unless ``spacing`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blobloss.data.sources._common import RawCase

__all__ = ["discover", "read"]


def discover(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from blobloss.data.synthetic import _check_shape, case_seed

    n = int(src["n_cases"])
    if n < 1:
        raise ValueError(f"dataset {dataset.get('name', '?')!r}: source.n_cases must be >= 1, got {n}")
    shape = list(_check_shape(src["shape"]))
    width = max(3, len(str(n - 1)))
    return {
        f"case_{i:0{width}d}": {"seed": case_seed(int(src["seed"]), i), "shape": shape, "index": i}
        for i in range(n)
    }



def read(dataset: Mapping[str, Any], src: Mapping[str, Any], case_id: str, sources: Mapping[str, Any]) -> RawCase:
    """Generate one case from its seed and shape (see :func:`blobloss.data.synthetic.generate_case`)."""
    from blobloss.data.synthetic import generate_case

    if "seed" not in sources or "shape" not in sources:
        raise ValueError(f"case {case_id!r}: synthetic sources need 'seed' and 'shape', got {dict(sources)}")
    image, label, instances = generate_case(int(sources["seed"]), tuple(sources["shape"]))
    return RawCase(
        case_id, image, label, None, None, [], "<generated>", ["synthetic"], None, instances,
        extra={"seed": int(sources["seed"]), "shape": [int(s) for s in sources["shape"]]},
    )
