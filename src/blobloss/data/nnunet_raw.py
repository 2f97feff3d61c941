"""Write datasets in nnU-Net v2's raw format (``dataset.json``, ``imagesTr/``, ``labelsTr/``, ``imagesTs/``).

nnU-Net v2 expects, under ``$nnUNet_raw/DatasetXXX_Name/``::

    dataset.json                      channel_names, labels, numTraining, file_ending
    imagesTr/<case>_0000.nii.gz       one file per input channel (4-digit channel index)
    labelsTr/<case>.nii.gz            integer label map, 0 = background
    imagesTs/<case>_0000.nii.gz       optional cases to predict

:func:`write_nnunet_dataset` writes any cases in that layout (every file atomically, ``dataset.json``
last, so a folder with a ``dataset.json`` is complete); :func:`write_synthetic_nnunet` writes the
project's synthetic cases (:mod:`blobloss.data.synthetic`), e.g. for a quick nnU-Net run. The ``nnunet``
source format of :mod:`blobloss.data.convert` reads what these functions write.

Example:
    >>> import tempfile
    >>> root = write_synthetic_nnunet(tempfile.mkdtemp(), dataset_id=1, n_train=2, n_test=1, shape=(16, 16, 8))
    >>> root.name, sorted(p.name for p in (root / "labelsTr").iterdir())
    ('Dataset001_BlobSynthetic', ['case_000.nii.gz', 'case_001.nii.gz'])
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from blobloss.data.synthetic import DEFAULT_SHAPE_3D, case_seed, generate_case
from blobloss.io import save_nifti, write_json_atomic

__all__ = ["nnunet_dataset_name", "write_nnunet_dataset", "write_synthetic_nnunet"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_CASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

#: One training or test case: ``(case_id, image, label)``; image ``(C, *spatial)``, label ``(*spatial)``
#: integer (None for test cases).
Case = tuple[str, np.ndarray, "np.ndarray | None"]


def nnunet_dataset_name(dataset_id: int, name: str) -> str:
    """The folder name nnU-Net v2 uses for a dataset: ``Dataset{id:03d}_{name}``.

    Args:
        dataset_id: 1..999 (nnU-Net's dataset ids; ids 1-10 are by convention the Decathlon's, which only
            matters if you also use those datasets).
        name: Letters, digits, ``_`` and ``-``.

    Returns:
        The folder name.

    Raises:
        ValueError: On an id outside 1..999 or a name with other characters.

    Example:
        >>> nnunet_dataset_name(42, "Blobs")
        'Dataset042_Blobs'
    """
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, (int, np.integer)) or not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id={dataset_id!r} must be an integer in 1..999 (nnU-Net's DatasetXXX numbering).")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"dataset name {name!r} may only hold letters, digits, '_' and '-', e.g. 'BlobSynthetic'.")
    return f"Dataset{int(dataset_id):03d}_{name}"


def _check_case(case_id: str, image: np.ndarray, label: np.ndarray | None, n_channels: int) -> None:
    if not isinstance(case_id, str) or not _CASE.fullmatch(case_id):
        raise ValueError(f"case id {case_id!r} may only hold letters, digits, '_', '.' and '-'.")
    if image.ndim not in (3, 4):
        raise ValueError(
            f"case {case_id!r}: image has shape {image.shape}; it must be (C, *spatial) with 2 or 3 spatial axes "
            "(add the channel axis with image[None])."
        )
    if image.shape[0] != n_channels:
        raise ValueError(
            f"case {case_id!r}: image has {image.shape[0]} channel(s) but channel_names declares {n_channels}."
        )
    if label is not None:
        if label.shape != image.shape[1:]:
            raise ValueError(
                f"case {case_id!r}: label shape {label.shape} differs from the image's spatial shape {image.shape[1:]}."
            )
        if label.dtype.kind not in "biu":
            raise ValueError(f"case {case_id!r}: label dtype {label.dtype} must be integer (class ids, 0 = background).")


def write_nnunet_dataset(
    raw_root: str | os.PathLike[str],
    dataset_id: int,
    name: str,
    train_cases: Iterable[Case],
    *,
    test_cases: Iterable[Case] = (),
    channel_names: Sequence[str] = ("image",),
    labels: Mapping[str, int] | None = None,
    spacing: Sequence[float] | None = None,
    file_ending: str = ".nii.gz",
) -> Path:
    """Write cases as an nnU-Net v2 raw dataset under ``raw_root/DatasetXXX_Name``.

    Args:
        raw_root: The folder nnU-Net calls ``nnUNet_raw`` (created if needed).
        dataset_id: nnU-Net dataset id, 1..999.
        name: Dataset name (letters, digits, ``_``, ``-``).
        train_cases: ``(case_id, image (C, *spatial) float, label (*spatial) int)`` triples.
        test_cases: ``(case_id, image, None)`` triples written to ``imagesTs/`` (labels ignored if given).
        channel_names: One name per input channel (``dataset.json`` ``channel_names``; nnU-Net normalises
            ``"CT"`` channels with CT statistics, anything else per image with z-scores).
        labels: ``dataset.json`` ``labels``, name -> class id, must hold ``"background": 0``; default
            ``{"background": 0, "foreground": 1}``. Every label value in the cases must be declared.
        spacing: Voxel size per spatial axis written to every header (default 1.0).
        file_ending: ``".nii.gz"`` (default) or ``".nii"``.

    Returns:
        The dataset folder.

    Raises:
        ValueError: On bad ids, names, shapes, undeclared label values or an empty training set.

    Example:
        >>> import tempfile
        >>> img, lab = np.zeros((1, 8, 8, 8), np.float32), np.zeros((8, 8, 8), np.uint8)
        >>> root = write_nnunet_dataset(tempfile.mkdtemp(), 7, "Tiny", [("a", img, lab)])
        >>> sorted(p.name for p in (root / "imagesTr").iterdir())
        ['a_0000.nii.gz']
    """
    if file_ending not in (".nii.gz", ".nii"):
        raise ValueError(f"file_ending={file_ending!r}: this writer supports '.nii.gz' and '.nii'.")
    labels = dict(labels) if labels is not None else {"background": 0, "foreground": 1}
    if labels.get("background") != 0:
        raise ValueError(f"labels={labels!r} must map 'background' to 0 (nnU-Net's convention).")
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in labels.values()):
        raise ValueError(
            f"labels={labels!r}: every value must be an integer class id >= 0 (region-based label lists are not "
            "written by this function)."
        )
    channels = [str(c) for c in channel_names]
    if not channels:
        raise ValueError("channel_names must name at least one input channel.")
    declared = set(labels.values())
    root = Path(raw_root) / nnunet_dataset_name(dataset_id, name)

    def _write(case_id: str, image: np.ndarray, folder: str) -> None:
        for c in range(image.shape[0]):
            save_nifti(root / folder / f"{case_id}_{c:04d}{file_ending}", image[c], spacing=spacing, dtype=np.float32)

    label_dtype = np.uint8 if max(declared) < 256 else np.uint16
    n_train = 0
    seen: set[str] = set()
    for case_id, image, label in train_cases:
        image, label = np.asarray(image), None if label is None else np.asarray(label)
        if label is None:
            raise ValueError(f"training case {case_id!r} has no label.")
        _check_case(case_id, image, label, len(channels))
        if case_id in seen:
            raise ValueError(f"case id {case_id!r} appears twice.")
        seen.add(case_id)
        undeclared = sorted(set(np.unique(label).tolist()) - declared)
        if undeclared:
            raise ValueError(
                f"case {case_id!r}: label values {undeclared} are not declared in labels={labels!r}; add them."
            )
        _write(case_id, image, "imagesTr")
        save_nifti(root / "labelsTr" / f"{case_id}{file_ending}", label, spacing=spacing, dtype=label_dtype)
        n_train += 1
    if n_train == 0:
        raise ValueError("train_cases is empty; nnU-Net needs at least one labelled training case.")
    for case_id, image, _ in test_cases:
        image = np.asarray(image)
        _check_case(case_id, image, None, len(channels))
        _write(case_id, image, "imagesTs")
    meta = {
        "channel_names": {str(i): c for i, c in enumerate(channels)},
        "labels": labels,
        "numTraining": n_train,
        "file_ending": file_ending,
        "name": name,
        "description": "written by blobloss.data.nnunet_raw",
    }
    write_json_atomic(root / "dataset.json", meta)
    return root


def write_synthetic_nnunet(
    raw_root: str | os.PathLike[str],
    dataset_id: int = 900,
    name: str = "BlobSynthetic",
    n_train: int = 6,
    n_test: int = 2,
    shape: Sequence[int] = DEFAULT_SHAPE_3D,
    seed: int = 0,
    spacing: Sequence[float] | None = None,
) -> Path:
    """Write the project's synthetic cases (binary: background 0, blob 1) as an nnU-Net v2 raw dataset.

    Training case ``i`` is :func:`~blobloss.data.synthetic.generate_case` with seed
    ``case_seed(seed, i)``, test case ``j`` uses ``case_seed(seed, n_train + j)``; ids are ``case_XXX``.

    Args:
        raw_root: The ``nnUNet_raw`` folder.
        dataset_id: nnU-Net dataset id (default 900, far from the ids public datasets use).
        name: Dataset name.
        n_train: Number of training cases (>= 1; nnU-Net's 5-fold split needs >= 5 for folds 0-4).
        n_test: Number of cases written to ``imagesTs/`` (>= 0).
        shape: Spatial shape of every case.
        seed: Dataset seed.
        spacing: Voxel size per axis (default 1.0).

    Returns:
        The dataset folder.

    Example:
        >>> import tempfile
        >>> from blobloss.io import read_json
        >>> root = write_synthetic_nnunet(tempfile.mkdtemp(), n_train=1, n_test=0, shape=(16, 16, 8))
        >>> read_json(root / "dataset.json")["labels"]
        {'background': 0, 'blob': 1}
    """
    if int(n_train) < 1 or int(n_test) < 0:
        raise ValueError(f"n_train={n_train!r} must be >= 1 and n_test={n_test!r} >= 0.")

    def cases(start: int, count: int, with_label: bool) -> Iterable[Case]:
        for i in range(start, start + count):
            image, label, _ = generate_case(case_seed(seed, i), shape)
            yield f"case_{i:03d}", image, label if with_label else None

    return write_nnunet_dataset(
        raw_root,
        dataset_id,
        name,
        cases(0, int(n_train), True),
        test_cases=cases(int(n_train), int(n_test), False),
        channel_names=("image",),
        labels={"background": 0, "blob": 1},
        spacing=spacing,
    )
