"""The per-dataset manifest: one row per converted case, and the last checks before training.

Columns: ``case, split, shape, spacing, spacing_unit, channels, label_voxels, empty, binarized,
n_instances``; ``binarized`` is True where the raw label held values other than 0 and 1 (e.g. 0/255) and
was binarized (foreground = every value > 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike

import pandas as pd

import logging

from blobloss.errors import DataIntegrityError
from blobloss.io import atomic_path, read_json

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "case",
    "split",
    "shape",
    "spacing",
    "spacing_unit",
    "channels",
    "label_voxels",
    "empty",
    "binarized",
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
                "binarized": bool(meta.get("binarized", False)),
                "n_instances": int(inst["n_instances"]),
            }
        )
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("case", ignore_index=True)


def check_manifest(manifest: pd.DataFrame, dataset: str | None = None) -> None:
    """The dataset-level checks before training: labels not all empty, training labels not all empty, a test set.

    Also logs once how many labels were binarized.

    Raises:
        DataIntegrityError: Naming the dataset, the cases and the fix.

    Example:
        >>> m = pd.DataFrame({"case": ["a", "b"], "split": ["train", "test"], "empty": [False, True],
        ...                   "binarized": [False, False]})
        >>> check_manifest(m)
    """
    who = f"dataset {dataset!r}: " if dataset else ""
    if len(manifest) and bool(manifest["empty"].all()):
        raise DataIntegrityError(
            f"{who}every label is empty (no foreground voxel in any of the {len(manifest)} cases); check the "
            "label files and source.label_glob (LiTS: source.tumour_label)"
        )
    train = manifest[manifest["split"] == "train"]
    if len(train) and bool(train["empty"].all()):
        raise DataIntegrityError(
            f"{who}every training case has an empty label ({sorted(train['case'])[:10]}); the losses have no "
            "foreground to learn: change split.seed, or list cases with foreground under train in split.file"
        )
    if not (manifest["split"] == "test").any():
        raise DataIntegrityError(
            f"{who}the split has no test case, so no setting can be evaluated; set split.test_fraction > 0 "
            "or list test cases in split.file"
        )
    if "binarized" in manifest and manifest["binarized"].any():
        cases = sorted(manifest.loc[manifest["binarized"], "case"])
        logger.warning(
            "%d case(s) had labels with values other than 0/1, binarized (foreground = every value > 0): %s%s",
            len(cases), cases[:10], " ..." if len(cases) > 10 else "",
        )


def write_manifest(
    meta_paths: Sequence[str | PathLike[str]],
    instance_json_paths: Sequence[str | PathLike[str]],
    split: Mapping[str, Sequence[str]],
    out_csv: str | PathLike[str],
) -> pd.DataFrame:
    """Read the per-case JSON files, build the manifest, check it (:func:`check_manifest`), write it as CSV.

    Raises:
        DataIntegrityError: if every label is empty, every training label is empty, or the split has no
            test case (the study would train on nothing or evaluate nothing); nothing is written then.
    """
    metas = [read_json(p) for p in meta_paths]
    manifest = build_manifest(metas, [read_json(p) for p in instance_json_paths], split)
    check_manifest(manifest, metas[0].get("dataset") if metas else None)
    with atomic_path(out_csv) as tmp:
        manifest.to_csv(tmp, index=False)
    return manifest
