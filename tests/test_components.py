"""Tests for blobloss.components: connected components, relabelling, summaries, file wrapper."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blobloss.components import (
    compute_instances,
    instance_summary,
    label_instances,
    relabel_consecutive,
    resolve_connectivity,
)
from blobloss.data.checks import DataIntegrityError
from blobloss.io import load_image, save_nifti


def _two_voxels(shape: tuple[int, ...], a: tuple[int, ...], b: tuple[int, ...]) -> np.ndarray:
    lab = np.zeros(shape, dtype=np.uint8)
    lab[a] = 1
    lab[b] = 1
    return lab


# (label, connectivity, expected number of components)
CONNECTIVITY_CASES = [
    (_two_voxels((3, 3, 3), (0, 0, 0), (1, 1, 1)), None, 1),  # corner contact, default 26
    (_two_voxels((3, 3, 3), (0, 0, 0), (1, 1, 1)), 26, 1),
    (_two_voxels((3, 3, 3), (0, 0, 0), (1, 1, 1)), 18, 2),
    (_two_voxels((3, 3, 3), (0, 0, 0), (1, 1, 1)), 6, 2),
    (_two_voxels((3, 3, 3), (0, 0, 0), (1, 1, 0)), 18, 1),  # edge contact
    (_two_voxels((3, 3, 3), (0, 0, 0), (1, 1, 0)), 6, 2),
    (_two_voxels((3, 3, 3), (0, 0, 0), (0, 0, 1)), 6, 1),  # face contact
    (_two_voxels((3, 3), (0, 0), (1, 1)), None, 1),  # 2D diagonal, default 8
    (_two_voxels((3, 3), (0, 0), (1, 1)), 8, 1),
    (_two_voxels((3, 3), (0, 0), (1, 1)), 4, 2),
    (_two_voxels((3, 3), (0, 0), (0, 2)), 8, 2),  # gap
    (np.zeros((4, 4, 4), np.uint8), None, 0),
]


@pytest.mark.parametrize(("label", "connectivity", "expected"), CONNECTIVITY_CASES)
def test_label_instances_connectivity(label: np.ndarray, connectivity: int | None, expected: int) -> None:
    inst, n = label_instances(label, connectivity)
    assert n == expected
    assert inst.dtype == np.uint32
    assert inst.shape == label.shape
    assert sorted(np.unique(inst[inst > 0]).tolist()) == list(range(1, expected + 1))
    np.testing.assert_array_equal(inst > 0, label > 0)


def test_label_instances_binarizes_classes_and_accepts_bool_and_float() -> None:
    lab = np.zeros((1, 4, 4), dtype=np.int16)
    lab[0, 0, 0:2] = [1, 2]  # different classes touching: one blob (label > 0)
    lab[0, 3, 3] = -1  # negative = background
    inst, n = label_instances(lab)
    assert n == 1
    assert inst[0, 3, 3] == 0
    assert label_instances(lab > 0)[1] == 1
    assert label_instances(lab.astype(np.float32))[1] == 1


def test_resolve_connectivity_defaults() -> None:
    assert resolve_connectivity(3) == 26
    assert resolve_connectivity(2) == 8
    assert resolve_connectivity(3, np.int64(18)) == 18


@pytest.mark.parametrize(
    ("shape", "connectivity"),
    [((3, 3, 3), 4), ((3, 3, 3), 8), ((3, 3, 3), 5), ((3, 3), 6), ((3, 3), 26), ((3, 3, 3), True), ((3, 3), "8")],
)
def test_label_instances_rejects_invalid_connectivity(shape: tuple[int, ...], connectivity: object) -> None:
    with pytest.raises(ValueError, match=r"connectivity=.*not valid for a [23]D label; use one of"):
        label_instances(np.zeros(shape, np.uint8), connectivity)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4)])
def test_label_instances_rejects_wrong_ndim(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"2D or 3D.*got shape"):
        label_instances(np.zeros(shape, np.uint8))


def test_label_instances_rejects_non_numeric() -> None:
    with pytest.raises(TypeError, match="numeric or boolean"):
        label_instances(np.array([["a", "b"], ["c", "d"]]))


@pytest.mark.parametrize(
    ("ids", "expected", "n"),
    [
        ([[0, 7], [3, 7]], [[0, 2], [1, 2]], 2),
        ([[0, 1], [2, 0]], [[0, 1], [2, 0]], 2),  # already consecutive
        ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 0),
        ([[5, 5], [9, 9]], [[1, 1], [2, 2]], 2),  # no background
        ([[0, 100_000_000], [4, 0]], [[0, 2], [1, 0]], 2),  # huge ids: np.unique path
        ([[100_000_000, 4]], [[2, 1]], 2),
    ],
)
def test_relabel_consecutive(ids: list, expected: list, n: int) -> None:
    out, count = relabel_consecutive(np.asarray(ids, dtype=np.int64))
    assert count == n
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, np.asarray(expected))


def test_relabel_consecutive_errors() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        relabel_consecutive(np.array([[0, -2]]))
    with pytest.raises(TypeError, match="integer ids"):
        relabel_consecutive(np.array([[0.0, 1.5]]))


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([[1, 1, 0], [0, 0, 2]], {"n_instances": 2, "voxels": {"min": 1, "median": 1.5, "max": 2, "total": 3}}),
        ([[4, 4, 4], [0, 9, 0]], {"n_instances": 2, "voxels": {"min": 1, "median": 2, "max": 3, "total": 4}}),
        ([[0, 0]], {"n_instances": 0, "voxels": {"min": None, "median": None, "max": None, "total": 0}}),
    ],
)
def test_instance_summary(ids: list, expected: dict) -> None:
    assert instance_summary(np.asarray(ids, dtype=np.uint32)) == expected


def _write_label(tmp_path, array: np.ndarray, name: str = "label.nii.gz"):
    path = tmp_path / name
    affine = np.array([[0.0, -0.5, 0, 10], [2.0, 0, 0, -3], [0, 0, 3.0, 1], [0, 0, 0, 1]])
    save_nifti(path, array, spacing=(2.0, 0.5, 3.0), affine=affine, dtype=np.uint8)
    return path, affine


def test_compute_instances_writes_map_and_json(tmp_path) -> None:
    lab = _two_voxels((4, 4, 3), (0, 0, 0), (1, 1, 1))
    lab[3, 3, 2] = 1
    label_path, affine = _write_label(tmp_path, lab)
    out, out_json = tmp_path / "instances.nii.gz", tmp_path / "instances.json"

    info = compute_instances(label_path, out, out_json, connectivity=6)

    vol = load_image(out)
    assert vol.array.dtype == np.uint32
    assert vol.spacing == (2.0, 0.5, 3.0)
    np.testing.assert_allclose(vol.affine, affine)
    assert int(vol.array.max()) == 3
    np.testing.assert_array_equal(vol.array > 0, lab > 0)
    assert info == json.loads(out_json.read_text())
    assert info["n_instances"] == 3
    assert info["connectivity"] == 6
    assert info["source"] == "cc3d"
    assert info["shape"] == [4, 4, 3]
    assert info["voxels"] == {"min": 1, "median": 1, "max": 1, "total": 3}
    # default connectivity (26) joins the corner-touching pair
    assert compute_instances(label_path, out, out_json)["n_instances"] == 2
    assert json.loads(out_json.read_text())["connectivity"] == 26


def test_compute_instances_keeps_given_ids(tmp_path) -> None:
    given = np.zeros((4, 4, 2), dtype=np.uint16)
    given[0, 0:2, 0] = 10  # two touching instances that cc3d would merge
    given[0, 2:4, 0] = 4
    given[3, 3, 1] = 30
    label_path, _ = _write_label(tmp_path, (given > 0).astype(np.uint8))
    given_path = tmp_path / "given.nii.gz"
    save_nifti(given_path, given, spacing=(2.0, 0.5, 3.0))
    out, out_json = tmp_path / "instances.nii.gz", tmp_path / "instances.json"

    info = compute_instances(label_path, out, out_json, given_instances_path=given_path)

    inst = load_image(out).array
    assert info["n_instances"] == 3
    assert info["source"] == "given"
    assert info["connectivity"] is None
    # order-preserving relabel: 4 -> 1, 10 -> 2, 30 -> 3
    assert inst[0, 0, 0] == 2 and inst[0, 1, 0] == 2
    assert inst[0, 2, 0] == 1 and inst[0, 3, 0] == 1
    assert inst[3, 3, 1] == 3
    assert compute_instances(label_path, out, out_json)["n_instances"] == 2  # cc3d would merge


def test_compute_instances_given_ids_must_match_label(tmp_path) -> None:
    lab = np.zeros((3, 3, 3), np.uint8)
    lab[1, 1, 1] = 1
    label_path, _ = _write_label(tmp_path, lab)
    bad = np.zeros((3, 3, 3), np.uint32)
    bad[0, 0, 0] = 1
    bad_path = tmp_path / "bad.nii.gz"
    save_nifti(bad_path, bad)
    with pytest.raises(DataIntegrityError, match="disagree on 2 foreground voxels"):
        compute_instances(label_path, tmp_path / "i.nii.gz", tmp_path / "i.json", given_instances_path=bad_path)
    wrong_shape = tmp_path / "shape.nii.gz"
    save_nifti(wrong_shape, np.zeros((3, 3, 4), np.uint32))
    with pytest.raises(DataIntegrityError, match="has shape"):
        compute_instances(label_path, tmp_path / "i.nii.gz", tmp_path / "i.json", given_instances_path=wrong_shape)
    assert not (tmp_path / "i.nii.gz").exists()
