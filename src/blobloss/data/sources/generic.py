"""Source format ``generic``: image/label files found with ``image_glob`` and ``label_glob``.

NIfTI / TIFF / MetaImage / NRRD files under ``source.path`` (``**`` allowed). Case id = file stem (without
extension), minus one of ``channel_suffixes`` for multi-channel images (one file per channel, in the listed
order), minus ``label_suffix`` for labels. A single image file with one axis more than its label holds the
channels in its last axis only with ``source.channels_last: true`` (otherwise it is an error: it might be
a time series).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blobloss.data.checks import check_pairs
from blobloss.data.sources._common import RawCase, read_files, root_folder, visible_files
from blobloss.errors import DataIntegrityError
from blobloss.io import strip_image_suffix

__all__ = ["discover", "read"]


def _strip_suffix(stem: str, suffixes: Sequence[str]) -> tuple[str, int] | None:
    """Return (case id, channel index) for the longest suffix that ``stem`` ends in."""
    best = None
    for idx, suf in enumerate(suffixes):
        if stem.endswith(suf) and len(stem) > len(suf) and (best is None or len(suf) > len(suffixes[best])):
            best = idx
    if best is None:
        return None
    return stem[: len(stem) - len(suffixes[best])] if suffixes[best] else stem, best


def discover(dataset: Mapping[str, Any], src: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    name = dataset.get("name", "?")
    root = root_folder(dataset, src)
    label_files = visible_files(root, str(src["label_glob"]))
    label_set = set(label_files)
    image_files = [f for f in visible_files(root, str(src["image_glob"])) if f not in label_set]
    if not image_files:
        raise DataIntegrityError(
            f"dataset {name!r}: no image file matches {root / str(src['image_glob'])}; check source.path and "
            "source.image_glob"
        )
    suffixes = list(src.get("channel_suffixes") or [])
    label_suffix = str(src.get("label_suffix") or "")

    images: dict[str, list[str | None]] = {}
    unmatched: list[str] = []
    dup: list[str] = []
    for f in image_files:
        stem = strip_image_suffix(f)
        if suffixes:
            hit = _strip_suffix(stem, suffixes)
            if hit is None:
                unmatched.append(f)
                continue
            case, ch = hit
        else:
            case, ch = stem, 0
        slots = images.setdefault(case, [None] * max(1, len(suffixes)))
        if slots[ch] is not None:
            dup.append(f"{slots[ch]} and {f}")
        slots[ch] = f
    if unmatched:
        raise DataIntegrityError(
            f"dataset {name!r}: image file(s) {unmatched} end in none of channel_suffixes {suffixes}; fix "
            "source.channel_suffixes or narrow source.image_glob"
        )
    labels: dict[str, str] = {}
    bad_labels: list[str] = []
    for f in label_files:
        stem = strip_image_suffix(f)
        if label_suffix:
            if not stem.endswith(label_suffix):
                bad_labels.append(f)
                continue
            stem = stem[: len(stem) - len(label_suffix)]
        if stem in labels:
            dup.append(f"{labels[stem]} and {f}")
        labels[stem] = f
    if bad_labels:
        raise DataIntegrityError(
            f"dataset {name!r}: label file(s) {bad_labels} do not end in label_suffix {label_suffix!r}; fix "
            "source.label_suffix or narrow source.label_glob"
        )
    if dup:
        raise DataIntegrityError(
            f"dataset {name!r}: several files map to one case id: {dup}; keep one file per case (and "
            "channel) or narrow the glob patterns"
        )
    missing_ch = {c: [suffixes[i] for i, f in enumerate(s) if f is None] for c, s in images.items()}
    missing_ch = {c: m for c, m in missing_ch.items() if m}
    if missing_ch:
        listing = "; ".join(
            f"case {c!r} lacks channel(s) {m} (has {[f for f in images[c] if f]})"
            for c, m in sorted(missing_ch.items())
        )
        raise DataIntegrityError(
            f"dataset {name!r}: missing channel files: {listing}; every case needs one file per entry of "
            "source.channel_suffixes: check the files and the suffixes"
        )
    check_pairs(
        images,
        labels,
        hint="check source.image_glob / label_glob / channel_suffixes / label_suffix",
        dataset=name,
    )
    channel_names = [s.strip("_") or f"channel_{i}" for i, s in enumerate(suffixes)] if suffixes else ["image"]
    return {
        c: {"images": [str(f) for f in images[c]], "label": labels[c], "channel_names": channel_names}
        for c in images
    }


def read(dataset: Mapping[str, Any], src: Mapping[str, Any], case_id: str, sources: Mapping[str, Any]) -> RawCase:
    """Read one case's image file(s) and label (see :func:`blobloss.data.sources._common.read_files`)."""
    files, label_file = file_sources(case_id, sources)
    return read_files(
        case_id, files, label_file, sources.get("channel_names") or [],
        channels_in_last_axis=bool(src.get("channels_last")),
        channels_option="source.channels_last: true",
    )


def file_sources(case_id: str, sources: Mapping[str, Any]) -> tuple[list[str], str]:
    """The image files and the label file of a case's sources."""
    files = [str(f) for f in sources.get("images", [])]
    label_file = str(sources.get("label", ""))
    if not files or not label_file:
        raise ValueError(
            f"case {case_id!r}: sources must hold 'images' (list of files) and 'label', got {dict(sources)}"
        )
    return files, label_file
