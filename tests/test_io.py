"""Tests for blobloss.io: geometry-preserving reads/writes, the case-image convention, atomic writes."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from blobloss import io as bio
from blobloss.data.checks import DataIntegrityError


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- NIfTI


@pytest.mark.parametrize(
    ("shape", "spacing", "dtype"),
    [
        ((5, 4), (0.5, 2.0), np.float32),
        ((5, 4, 3), (0.5, 0.7, 3.0), np.uint8),
        ((5, 4, 3), (1.0, 1.0, 1.0), np.int16),
        ((6, 5, 4), (0.8, 0.8, 2.5), np.uint32),
    ],
)
def test_nifti_roundtrip_keeps_data_spacing_dtype(tmp_path, shape, spacing, dtype):
    arr = (np.arange(np.prod(shape)) % 7).reshape(shape).astype(dtype)
    p = tmp_path / "x.nii.gz"
    bio.save_nifti(p, arr, spacing=spacing)
    vol = bio.load_image(p)
    assert vol.array.dtype == dtype
    np.testing.assert_array_equal(vol.array, arr)
    assert vol.spacing == pytest.approx(spacing)
    assert vol.affine.shape == (4, 4)
    assert vol.spacing_from_file


def test_scaled_nifti_is_read_as_float32(tmp_path):
    img = nib.Nifti1Image(np.array([[0, 2], [4, 6]], np.int16), np.eye(4))
    img.header.set_slope_inter(0.5, -1.0)
    p = tmp_path / "scaled.nii.gz"
    nib.save(img, str(p))
    vol = bio.load_image(p)
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, [[-1.0, 0.0], [1.0, 2.0]])


def test_save_nifti_uncompressed_and_bool(tmp_path):
    p = tmp_path / "m.nii"
    bio.save_nifti(p, np.array([[True, False], [False, True]]))
    vol = bio.load_image(p)
    assert vol.array.dtype == np.uint8
    np.testing.assert_array_equal(vol.array, [[1, 0], [0, 1]])
    assert vol.spacing == (1.0, 1.0)


def test_save_nifti_spacing_wins_over_affine_scale(tmp_path):
    affine = np.array([[-2.0, 0, 0, 10], [0, 2.0, 0, -5], [0, 0, 2.0, 3], [0, 0, 0, 1]])
    p = tmp_path / "a.nii.gz"
    bio.save_nifti(p, np.zeros((3, 3, 3), np.float32), spacing=(1.0, 0.5, 4.0), affine=affine)
    vol = bio.load_image(p)
    assert vol.spacing == pytest.approx((1.0, 0.5, 4.0))
    np.testing.assert_allclose(np.diag(vol.affine)[:3], [-1.0, 0.5, 4.0])  # orientation kept
    np.testing.assert_allclose(vol.affine[:3, 3], [10, -5, 3])  # origin kept


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spacing": (1.0, 1.0, 1.0, 1.0, 1.0)}, "spacing"),
        ({"spacing": (1.0, -1.0, 1.0)}, "positive"),
        ({"affine": np.eye(3)}, "4x4"),
    ],
)
def test_save_nifti_rejects_bad_geometry(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bio.save_nifti(tmp_path / "x.nii.gz", np.zeros((2, 2, 2)), **kwargs)
    assert _listing(tmp_path) == []


def test_save_nifti_rejects_wrong_extension(tmp_path):
    with pytest.raises(ValueError, match=r"\.nii"):
        bio.save_nifti(tmp_path / "x.png", np.zeros((2, 2)))


# ---------------------------------------------------------------- case images


@pytest.mark.parametrize(
    ("shape", "spacing", "disk_shape"),
    [
        ((1, 6, 5, 4), (1.0, 1.0, 2.0), (6, 5, 4)),
        ((3, 6, 5, 4), (1.0, 0.5, 2.0), (6, 5, 4, 3)),
        ((1, 6, 5), (0.5, 0.25), (6, 5)),
        ((2, 6, 5), (0.5, 0.25), (6, 5, 1, 2)),
    ],
)
def test_case_image_roundtrip(tmp_path, shape, spacing, disk_shape):
    rng = np.random.default_rng(0)
    img = rng.normal(size=shape).astype(np.float64)
    p = tmp_path / "image.nii.gz"
    bio.save_case_image(p, img, spacing)
    assert nib.load(str(p)).shape == disk_shape
    assert nib.load(str(p)).get_data_dtype() == np.float32
    back, sp = bio.load_case_image(p)
    assert back.dtype == np.float32
    assert back.shape == shape
    assert sp == pytest.approx(spacing)
    np.testing.assert_allclose(back, img.astype(np.float32))


def test_load_case_image_reads_plain_4d_as_channels_last(tmp_path):
    data = np.stack([np.full((4, 3, 2), c, np.float32) for c in range(3)], axis=-1)  # (4, 3, 2, 3)
    p = tmp_path / "msd.nii.gz"
    bio.save_nifti(p, data, spacing=(1.0, 2.0, 3.0))
    img, sp = bio.load_case_image(p)
    assert img.shape == (3, 4, 3, 2)
    assert [float(img[c].mean()) for c in range(3)] == [0.0, 1.0, 2.0]
    assert sp == (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("image", "spacing", "match"),
    [
        (np.zeros((4, 4)), (1.0,), "channel axis"),
        (np.zeros((1, 4, 4, 4, 4)), (1.0,) * 4, "channel axis"),
        (np.zeros((1, 4, 4, 4)), (1.0, 1.0), "3 spatial axes"),
    ],
)
def test_save_case_image_errors(tmp_path, image, spacing, match):
    with pytest.raises(ValueError, match=match):
        bio.save_case_image(tmp_path / "image.nii.gz", image, spacing)


# ---------------------------------------------------------------- TIFF and ITK formats


def test_tiff_roundtrip_with_spacing(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    p = tmp_path / "stack.tif"
    bio.save_tiff(p, arr, spacing=(5.0, 2.0, 0.5))
    vol = bio.load_image(p)
    np.testing.assert_array_equal(vol.array, arr)
    assert vol.spacing == pytest.approx((5.0, 2.0, 0.5), rel=1e-5)
    assert vol.affine is None
    assert vol.spacing_from_file


def test_tiff_without_spacing_is_flagged(tmp_path):
    import tifffile

    p = tmp_path / "plain.tiff"
    tifffile.imwrite(p, np.ones((3, 4, 5), np.uint8), photometric="minisblack")
    vol = bio.load_image(p)
    assert vol.shape == (3, 4, 5)
    assert not vol.spacing_from_file
    assert vol.spacing == (1.0, 1.0, 1.0)


def test_mha_is_read_in_nifti_axis_order(tmp_path):
    import SimpleITK as sitk

    zyx = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # ITK array order (z, y, x)
    img = sitk.GetImageFromArray(zyx)
    img.SetSpacing((0.5, 0.7, 3.0))  # (x, y, z)
    p = tmp_path / "x.mha"
    sitk.WriteImage(img, str(p))
    vol = bio.load_image(p)
    assert vol.shape == (4, 3, 2)
    np.testing.assert_array_equal(vol.array, zyx.transpose(2, 1, 0))
    assert vol.spacing == pytest.approx((0.5, 0.7, 3.0))
    np.testing.assert_allclose(np.abs(np.diag(vol.affine)[:3]), [0.5, 0.7, 3.0])


# ---------------------------------------------------------------- corrupt / missing files


def test_truncated_nifti_raises_naming_file(tmp_path):
    p = tmp_path / "broken.nii.gz"
    bio.save_nifti(p, np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataIntegrityError, match="broken.nii.gz") as exc:
        bio.load_image(p)
    assert "corrupt" in str(exc.value)


@pytest.mark.parametrize("name", ["garbage.nii.gz", "garbage.nii", "garbage.tif"])
def test_garbage_file_raises_naming_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(gzip.compress(b"not an image") if name.endswith(".gz") else b"not an image at all")
    with pytest.raises(DataIntegrityError, match=name.replace(".", r"\.")):
        bio.load_image(p)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(DataIntegrityError, match="does not exist"):
        bio.load_image(tmp_path / "nope.nii.gz")
    q = tmp_path / "x.png"
    q.write_bytes(b"\x89PNG")
    with pytest.raises(DataIntegrityError, match="unknown extension"):
        bio.load_image(q)


# ---------------------------------------------------------------- atomic writes and JSON


def test_atomic_writes_leave_no_temp_file(tmp_path):
    bio.save_nifti(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.uint8))
    bio.save_case_image(tmp_path / "image.nii.gz", np.zeros((2, 2, 2, 2), np.float32), (1, 1, 1))
    bio.save_tiff(tmp_path / "t.tif", np.zeros((2, 2), np.uint8))
    bio.write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert _listing(tmp_path) == ["a.nii.gz", "image.nii.gz", "m.json", "t.tif"]


def test_nifti_temp_name_keeps_extension_so_it_is_compressed(tmp_path, monkeypatch):
    seen = []
    real_save = nib.save

    def spy(img, filename):
        seen.append(Path(filename).name)
        real_save(img, filename)

    monkeypatch.setattr(nib, "save", spy)
    bio.save_nifti(tmp_path / "label.nii.gz", np.zeros((3, 3), np.uint8))
    assert len(seen) == 1
    assert seen[0].startswith(".label.tmp-") and seen[0].endswith(".nii.gz")
    assert (tmp_path / "label.nii.gz").read_bytes()[:2] == b"\x1f\x8b"  # gzip magic


def test_interrupted_write_leaves_nothing_under_final_name(tmp_path, monkeypatch):
    real_save = nib.save

    def crash(img, filename):
        real_save(img, filename)  # the temp file is fully written ...
        Path(filename).write_bytes(b"partial")  # ... or partially, then the job dies
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(nib, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        bio.save_nifti(tmp_path / "image.nii.gz", np.zeros((3, 3), np.float32))
    assert _listing(tmp_path) == []


def test_interrupted_write_keeps_previous_file(tmp_path):
    p = tmp_path / "out.json"
    bio.write_json_atomic(p, {"old": True})
    with pytest.raises(RuntimeError), bio.atomic_path(p) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("boom")
    assert json.loads(p.read_text()) == {"old": True}
    assert _listing(tmp_path) == ["out.json"]


def test_write_json_atomic_converts_numpy_and_paths(tmp_path):
    obj = {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "a": np.arange(3), "p": Path("x/y")}
    p = tmp_path / "sub" / "meta.json"
    bio.write_json_atomic(p, obj)
    assert bio.read_json(p) == {"i": 3, "f": 0.5, "b": True, "a": [0, 1, 2], "p": os.path.join("x", "y")}


def test_write_json_atomic_unserialisable_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="object"):
        bio.write_json_atomic(tmp_path / "bad.json", {"x": object()})
    assert _listing(tmp_path) == []


def test_read_json_invalid_raises(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(DataIntegrityError, match="bad.json"):
        bio.read_json(p)


@pytest.mark.parametrize(
    ("name", "suffix", "stem"),
    [("a.nii.gz", ".nii.gz", "a"), ("b_0000.NII", ".nii", "b_0000"), ("c.ome.tif", ".ome.tif", "c"), ("d.mha", ".mha", "d")],
)
def test_suffix_helpers(name, suffix, stem):
    assert bio.image_suffix(name) == suffix
    assert bio.strip_image_suffix(name) == stem
