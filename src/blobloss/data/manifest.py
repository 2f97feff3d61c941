"""The per-dataset manifest: one row per converted case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike

import pandas as pd

from blobloss.io import atomic_path, read_json

MANIFEST_COLUMNS = [
    "case",
    "split",
    "shape",
    "spacing",
    "spacing_unit",
    "channels",
    "label_voxels",
    "empty",
    "n_instances",
]


def build_manifest(
    metas: Sequence[Mapping],
    instance_summaries: Sequence[Mapping],
    split: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """Join the per-case conversion metadata, instance counts and split into one table.

    Args:
        metas: ``meta.json`` contents of the converted cases (keys ``case``, ``shape``, ``spacing``,
            ``spacing_unit``, ``channels``, ``label_voxels``, ``empty``).
        instance_summaries: ``instances.json`` contents, in the same order as ``metas``
            (key ``n_instances``).
        split: ``{"train": [...], "val": [...], "test": [...]}``.

    Returns:
        A DataFrame with the columns of ``MANIFEST_COLUMNS``, one row per case, sorted by case.
        Shapes and spacings are written as ``x``-joined strings (``64x64x32``) to keep the CSV flat.

    Raises:
        ValueError: if the lists differ in length, or a case is missing from the split.

    Example:
        >>> m = build_manifest([{"case": "a", "shape": [4, 4], "spacing": [1.0, 1.0], "spacing_unit": "mm",
        ...                      "channels": 1, "label_voxels": 3, "empty": False}],
        ...                    [{"n_instances": 2}], {"train": ["a"], "val": [], "test": []})
        >>> str(m.loc[0, "split"]), int(m.loc[0, "n_instances"])
        ('train', 2)
    """
    if len(metas) != len(instance_summaries):
        raise ValueError(
            f"got {len(metas)} case metadata files but {len(instance_summaries)} instance summaries; "
            "pass one instances.json per meta.json, in the same order"
        )
    split_of = {case: name for name, cases in split.items() for case in cases}
    rows = []
    for meta, inst in zip(metas, instance_summaries):
        case = meta["case"]
        if case not in split_of:
            raise ValueError(f"case {case!r} is in no split (train/val/test); regenerate the split")
        rows.append(
            {
                "case": case,
                "split": split_of[case],
                "shape": "x".join(str(int(s)) for s in meta["shape"]),
                "spacing": "x".join(f"{float(s):g}" for s in meta["spacing"]),
                "spacing_unit": meta.get("spacing_unit", ""),
                "channels": int(meta["channels"]),
                "label_voxels": int(meta["label_voxels"]),
                "empty": bool(meta["empty"]),
                "n_instances": int(inst["n_instances"]),
            }
        )
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("case", ignore_index=True)


def write_manifest(
    meta_paths: Sequence[str | PathLike[str]],
    instance_json_paths: Sequence[str | PathLike[str]],
    split: Mapping[str, Sequence[str]],
    out_csv: str | PathLike[str],
) -> pd.DataFrame:
    """Read the per-case JSON files, build the manifest and write it atomically as CSV."""
    manifest = build_manifest(
        [read_json(p) for p in meta_paths], [read_json(p) for p in instance_json_paths], split
    )
    with atomic_path(out_csv) as tmp:
        manifest.to_csv(tmp, index=False)
    return manifest
