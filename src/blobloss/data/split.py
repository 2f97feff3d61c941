"""Train / validation / test splits of a dataset's cases.

A split is either drawn at random (seeded, from the *sorted* case ids, so it does not depend on the order in
which cases were found) or read from a user file (JSON or YAML ``{train: [...], val: [...], test: [...]}``)
that is validated against the case list.

Counts: ``n_test = round(n * test_fraction)`` and ``n_val = round(n * val_fraction)`` (Python's round, half to
even), each raised to 1 when its fraction is positive and there are enough cases, then lowered (val first)
until at least one training case remains.

Example:
    >>> s = make_split([f"c{i}" for i in range(10)], seed=0)
    >>> [len(s[k]) for k in ("train", "val", "test")]
    [8, 0, 2]
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blobloss.errors import DataIntegrityError

__all__ = ["SPLIT_KEYS", "make_split", "read_split_file"]

SPLIT_KEYS: tuple[str, ...] = ("train", "val", "test")


def _check_fraction(name: str, value: float) -> float:
    v = float(value)
    if not (0.0 <= v < 1.0):
        raise ValueError(f"make_split: {name} must be in [0, 1), got {value!r}")
    return v


def _counts(n: int, test_fraction: float, val_fraction: float) -> tuple[int, int]:
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    if test_fraction > 0 and n_test == 0 and n >= 2:
        n_test = 1
    if val_fraction > 0 and n_val == 0 and n - n_test >= 2:
        n_val = 1
    while n_test + n_val > n - 1 and n_val > 0:
        n_val -= 1
    while n_test + n_val > n - 1 and n_test > 0:
        n_test -= 1
    return n_test, n_val


def make_split(
    case_ids: Iterable[str],
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    split_file: str | os.PathLike[str] | None = None,
) -> dict[str, list[str]]:
    """Split case ids into ``train`` / ``val`` / ``test``.

    Args:
        case_ids: All case ids of the dataset (order irrelevant, no duplicates).
        seed: Seed of the random permutation.
        test_fraction: Fraction of cases for testing, in [0, 1).
        val_fraction: Fraction of cases for validation, in [0, 1).
        split_file: Optional JSON/YAML file with the user's split; when given, the fractions and seed are
            ignored and the file is validated against ``case_ids``.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each list sorted; at least one training case.

    Raises:
        ValueError: On bad fractions (sum must be < 1), no cases, or duplicate case ids.
        DataIntegrityError: If the split file is unreadable, has unknown keys or case ids, assigns a case
            twice, leaves cases unassigned, or has no training case.

    Example:
        >>> make_split(["a", "b", "c", "d", "e"], seed=1, test_fraction=0.2, val_fraction=0.2)["train"]
        ['b', 'c', 'd']
    """
    ids = [str(c) for c in case_ids]
    if not ids:
        raise ValueError("make_split: no case ids given; check that the dataset conversion found cases")
    dup = sorted(c for c, k in Counter(ids).items() if k > 1)
    if dup:
        raise ValueError(f"make_split: duplicate case ids {dup}; case ids must be unique")
    ids = sorted(ids)
    if split_file is not None:
        return read_split_file(split_file, ids)

    tf = _check_fraction("test_fraction", test_fraction)
    vf = _check_fraction("val_fraction", val_fraction)
    if tf + vf >= 1.0:
        raise ValueError(
            f"make_split: test_fraction + val_fraction must be < 1 to leave training cases, got "
            f"{tf} + {vf} = {tf + vf}"
        )
    n = len(ids)
    n_test, n_val = _counts(n, tf, vf)
    perm = np.random.default_rng(int(seed)).permutation(n)
    test = sorted(ids[i] for i in perm[:n_test])
    val = sorted(ids[i] for i in perm[n_test : n_test + n_val])
    train = sorted(ids[i] for i in perm[n_test + n_val :])
    return {"train": train, "val": val, "test": test}


def _load_mapping(path: Path) -> Any:
    import json

    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataIntegrityError(f"cannot read split file {path}: {exc}; check the `split.file` path") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DataIntegrityError(
            f"split file {path} is not valid JSON/YAML: {exc}; write it as {{train: [...], val: [...], "
            "test: [...]}}"
        ) from exc


def read_split_file(path: str | os.PathLike[str], case_ids: Sequence[str]) -> dict[str, list[str]]:
    """Read and validate a user split file against the dataset's case ids.

    Args:
        path: JSON (``.json``) or YAML file mapping ``train`` / ``val`` / ``test`` to lists of case ids
            (missing keys mean empty lists).
        case_ids: All case ids of the dataset.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` with sorted lists.

    Raises:
        DataIntegrityError: Naming the file and the offending keys / case ids.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "split.yaml")
        >>> _ = open(p, "w").write("train: [a]\\ntest: [b]\\n")
        >>> read_split_file(p, ["a", "b"])
        {'train': ['a'], 'val': [], 'test': ['b']}
    """
    p = Path(path)
    data = _load_mapping(p)
    if not isinstance(data, dict):
        raise DataIntegrityError(
            f"split file {p} must hold a mapping {{train: [...], val: [...], test: [...]}}, got "
            f"{type(data).__name__}"
        )
    bad_keys = sorted(str(k) for k in data if k not in SPLIT_KEYS)
    if bad_keys:
        raise DataIntegrityError(
            f"split file {p} has unknown key(s) {bad_keys}; allowed keys: {list(SPLIT_KEYS)}"
        )
    out: dict[str, list[str]] = {}
    for key in SPLIT_KEYS:
        val = data.get(key) or []
        if not isinstance(val, list):
            raise DataIntegrityError(f"split file {p}: {key!r} must be a list of case ids, got {val!r}")
        out[key] = [str(v) for v in val]

    known = set(case_ids)
    unknown = sorted({c for lst in out.values() for c in lst} - known)
    if unknown:
        raise DataIntegrityError(
            f"split file {p} names unknown case id(s) {unknown}; use the ids of the converted dataset "
            f"(e.g. {sorted(known)[:3]})"
        )
    where: dict[str, list[str]] = {}
    for key, lst in out.items():
        for c in lst:
            where.setdefault(c, []).append(key)
    dups = {c: ks for c, ks in where.items() if len(ks) > 1}
    if dups:
        listing = ", ".join(f"{c!r} in {ks}" for c, ks in sorted(dups.items()))
        raise DataIntegrityError(f"split file {p} assigns case(s) more than once: {listing}; list each case once")
    missing = sorted(known - set(where))
    if missing:
        raise DataIntegrityError(
            f"split file {p} leaves case(s) unassigned: {missing}; add each to train, val or test"
        )
    if not out["train"]:
        raise DataIntegrityError(f"split file {p} has no training case; put at least one case under 'train'")
    return {k: sorted(v) for k, v in out.items()}
