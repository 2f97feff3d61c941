"""Source format ``nnunet``: an nnU-Net (v1/v2) or Medical Segmentation Decathlon dataset folder.

``dataset.json``, ``imagesTr/`` and ``labelsTr/`` (``imagesTs/`` is ignored). Channels come from
``channel_names`` (v2) or ``modality`` (v1 / MSD), the file ending from ``file_ending`` (default
``.nii.gz``). Images are either one file per channel (``<case>_0000<ending>``) or one file per case (MSD;
4D files hold the declared channels in the 4th axis). Hidden files (e.g. macOS ``._*`` files in the MSD
archives) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blobloss.data.checks import check_pairs
from blobloss.data.sources._common import RawCase, read_files, root_folder, visible_files
from blobloss.data.sources.generic import file_sources
from blobloss.errors import DataIntegrityError
from blobloss.io import read_json

__all__ = ["discover", "read"]


def _nnunet_channels(meta: Mapping[str, Any], path: Path) -> list[str]:
    chans = meta.get("channel_names", meta.get("modality"))
    if not isinstance(chans, Mapping) or not chans:
        raise DataIntegrityError(
            f"{path} has no 'channel_names' (nnU-Net v2) or 'modality' (MSD / nnU-Net v1) mapping; add "
            'e.g. "channel_names": {"0": "CT"}'
        )
    try:
        items = sorted(((int(k), str(v)) for k, v in chans.items()))
    except ValueError as exc:
        raise DataIntegrityError(f"{path}: channel keys must be integers 0..C-1, got {list(chans)}") from exc
    if [k for k, _ in items] != list(range(len(items))):
        raise DataIntegrityError(f"{path}: channel keys must be 0..C-1, got {[k for k, _ in items]}")
    return [v for _, v in items]


def discover(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    name = dataset.get("name", "?")
    root = root_folder(dataset, src)
    meta_path = root / "dataset.json"
    meta = read_json(meta_path)
    if not isinstance(meta, Mapping):
        raise DataIntegrityError(f"{meta_path} must hold a JSON object")
    channel_names = _nnunet_channels(meta, meta_path)
    n_ch = len(channel_names)
    ending = str(meta.get("file_ending", ".nii.gz"))
    label_files = visible_files(root / "labelsTr", f"*{ending}")
    labels = {Path(f).name[: -len(ending)]: f for f in label_files}
    image_files = visible_files(root / "imagesTr", f"*{ending}")
    if not image_files:
        raise DataIntegrityError(
            f"dataset {name!r}: no image file matches {root / 'imagesTr' / ('*' + ending)}; source.path must "
            "be the folder holding dataset.json, imagesTr/ and labelsTr/"
        )
    per_channel: dict[str, list[str | None]] = {}
    single: dict[str, str] = {}
    pat = re.compile(r"(.+)_(\d{4})")
    for f in image_files:
        stem = Path(f).name[: -len(ending)]
        m = pat.fullmatch(stem)
        if stem not in labels and m and int(m.group(2)) < n_ch:
            per_channel.setdefault(m.group(1), [None] * n_ch)[int(m.group(2))] = f
        elif m and m.group(1) in labels and int(m.group(2)) >= n_ch:
            raise DataIntegrityError(
                f"dataset {name!r}: image {f} has channel index {int(m.group(2))} but {meta_path} declares "
                f"{n_ch} channel(s) {channel_names}; fix dataset.json or remove the file"
            )
        else:
            single[stem] = f
    both = sorted(set(per_channel) & set(single))
    if both:
        raise DataIntegrityError(
            f"dataset {name!r}: case(s) {both} have both a single image file and per-channel files in "
            f"{root / 'imagesTr'}; keep one layout"
        )
    missing = {c: [i for i, f in enumerate(s) if f is None] for c, s in per_channel.items()}
    missing = {c: m for c, m in missing.items() if m}
    if missing:
        listing = "; ".join(
            f"case {c!r} lacks {[f'{c}_{i:04d}{ending}' for i in m]}" for c, m in sorted(missing.items())
        )
        raise DataIntegrityError(
            f"dataset {name!r}: missing channel files in {root / 'imagesTr'}: {listing}; dataset.json "
            f"declares {n_ch} channel(s) {channel_names}"
        )
    images: dict[str, list[str]] = {c: [str(f) for f in s] for c, s in per_channel.items()}
    images.update({c: [f] for c, f in single.items()})
    check_pairs(
        images,
        labels,
        hint=f"every imagesTr case needs labelsTr/<case>{ending} (and vice versa)",
        dataset=name,
    )
    return {c: {"images": images[c], "label": labels[c], "channel_names": channel_names} for c in images}


def read(dataset: Mapping[str, Any], src: Mapping[str, Any], case_id: str, sources: Mapping[str, Any]) -> RawCase:
    """Read one case; a single 4D file holds the channels that ``dataset.json`` declares in its last axis."""
    files, label_file = file_sources(case_id, sources)
    names = sources.get("channel_names") or []
    return read_files(
        case_id, files, label_file, names,
        channels_in_last_axis=len(names) > 1,
        channels_option="the channels in dataset.json ('channel_names' or 'modality')",
    )
