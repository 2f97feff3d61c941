"""Tests for blobloss.data.convert: discovery and conversion of every source format on tiny files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from blobloss.data.checks import DataIntegrityError, EmptyLabelWarning
from blobloss.data.convert import convert_case, convert_dataset, discover_cases
from blobloss.io import load_case_image, load_image, save_nifti, save_tiff


def dataset(fmt: str, path: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """A defaults-filled dataset config like the lead's schema produces."""
    source = {
        "format": fmt,
        "path": None if path is None else str(path),
        "n_cases": 3,
        "shape": [16, 16, 8],
        "seed": 0,
        "image_glob": "images/*.nii.gz",
        "label_glob": "labels/*.nii.gz",
        "channel_suffixes": None,
        "label_suffix": "",
        "tumour_label": 2,
        "margin": 10,
    }
    source.update(overrides.pop("source", {}))
    cfg = {
        "name": "t",
        "source": source,
        "spacing": None,
        "spacing_unit": "mm",
        "instance_labels": False,
        "normalization": {"method": "minmax", "lower": 0.5, "upper": 99.5, "center": 30, "width": 150, "tolerance": 0.2},
        "split": {"seed": 0, "test_fraction": 0.2, "val_fraction": 0.0, "file": None},
        "connectivity": 26,
    }
    cfg.update(overrides)
    return cfg


def run_case(cfg: dict[str, Any], case: str, out: Path, instances: bool = False) -> dict[str, Any]:
    sources = discover_cases(cfg)[case]
    return convert_case(
        cfg,
        case,
        sources,
        out / "image.nii.gz",
        out / "label.nii.gz",
        out / "meta.json",
        out / "instances.nii.gz" if instances else None,
    )


def ramp(shape: tuple[int, ...], lo: float = 0.0, hi: float = 100.0) -> np.ndarray:
    return np.linspace(lo, hi, int(np.prod(shape)), dtype=np.float32).reshape(shape)


# ---------------------------------------------------------------- synthetic


def test_synthetic_discovery_is_cheap_and_seeded():
    cases = discover_cases(dataset("synthetic"))
    assert list(cases) == ["case_000", "case_001", "case_002"]
    assert [c["index"] for c in cases.values()] == [0, 1, 2]
    assert len({c["seed"] for c in cases.values()}) == 3
    assert cases == discover_cases(dataset("synthetic"))
    assert cases != discover_cases(dataset("synthetic", source={"seed": 1}))
    json.dumps(cases)  # serialisable for Snakemake params


@pytest.mark.parametrize("shape", [[16, 16, 8], [24, 24]])
def test_synthetic_convert_writes_standard_layout(tmp_path, shape):
    cfg = dataset("synthetic", source={"shape": shape})
    meta = run_case(cfg, "case_001", tmp_path)
    img, spacing = load_case_image(tmp_path / "image.nii.gz")
    lab = load_image(tmp_path / "label.nii.gz")
    assert img.shape == (1, *shape)
    assert float(img.min()) == 0.0 and float(img.max()) == 1.0
    assert lab.array.dtype == np.uint8 and set(np.unique(lab.array)) <= {0, 1}
    assert spacing == (1.0,) * len(shape)
    assert meta["shape"] == shape and meta["channels"] == 1
    assert meta["label_voxels"] == int(lab.array.sum()) > 0
    assert meta["empty"] is False
    assert meta["sources"]["seed"] == discover_cases(cfg)["case_001"]["seed"]
    assert json.loads((tmp_path / "meta.json").read_text()) == meta


def test_synthetic_convert_is_deterministic(tmp_path):
    cfg = dataset("synthetic")
    run_case(cfg, "case_000", tmp_path / "a")
    run_case(cfg, "case_000", tmp_path / "b")
    a = load_case_image(tmp_path / "a" / "image.nii.gz")[0]
    b = load_case_image(tmp_path / "b" / "image.nii.gz")[0]
    np.testing.assert_array_equal(a, b)


def test_synthetic_spacing_override(tmp_path):
    meta = run_case(dataset("synthetic", spacing=[0.5, 0.5, 2.0]), "case_000", tmp_path)
    assert meta["spacing"] == [0.5, 0.5, 2.0]
    assert load_image(tmp_path / "label.nii.gz").spacing == (0.5, 0.5, 2.0)


# ---------------------------------------------------------------- generic NIfTI / TIFF


def write_generic(root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], spacing=None, ext=".nii.gz") -> None:
    for case, (img, lab) in cases.items():
        if ext == ".tif":
            save_tiff(root / "images" / f"{case}{ext}", img, spacing=spacing)
            save_tiff(root / "labels" / f"{case}{ext}", lab, spacing=spacing)
        else:
            save_nifti(root / "images" / f"{case}{ext}", img, spacing=spacing)
            save_nifti(root / "labels" / f"{case}{ext}", lab, spacing=spacing)


@pytest.mark.parametrize("shape", [(6, 5, 4), (7, 6)])
def test_generic_nifti_2d_and_3d(tmp_path, shape):
    lab = np.zeros(shape, np.uint8)
    lab[(1,) * len(shape)] = 1
    spacing = (0.5, 0.6, 2.0)[: len(shape)]
    write_generic(tmp_path, {"b": (ramp(shape, -50, 50), lab), "a": (ramp(shape), lab)}, spacing=spacing)
    cfg = dataset("generic", tmp_path)
    cases = discover_cases(cfg)
    assert list(cases) == ["a", "b"]
    assert cases["a"]["images"] == [str(tmp_path / "images" / "a.nii.gz")]
    assert cases["a"]["label"] == str(tmp_path / "labels" / "a.nii.gz")
    meta = run_case(cfg, "b", tmp_path / "out")
    img, sp = load_case_image(tmp_path / "out" / "image.nii.gz")
    assert img.shape == (1, *shape)
    np.testing.assert_allclose(img[0], (ramp(shape, -50, 50) + 50) / 100, atol=1e-6)
    assert sp == pytest.approx(spacing)
    assert meta["shape"] == list(shape) and meta["label_voxels"] == 1
    assert meta["spacing"] == pytest.approx(list(spacing))
    assert meta["sources"]["images"] == [str(tmp_path / "images" / "b.nii.gz")]


def test_generic_relative_path_from_cwd(tmp_path, monkeypatch):
    write_generic(tmp_path / "raw", {"a": (ramp((4, 4, 2)), np.ones((4, 4, 2), np.uint8))})
    monkeypatch.chdir(tmp_path)
    cases = discover_cases(dataset("generic", Path("raw")))
    assert cases["a"]["label"] == str(Path("raw") / "labels" / "a.nii.gz")


def test_generic_multichannel_by_suffix_and_label_suffix(tmp_path):
    shape = (5, 4, 3)
    lab = np.zeros(shape, np.uint8)
    lab[2, 2, 1] = 1
    for case in ("p1", "p2"):
        save_nifti(tmp_path / "data" / f"{case}_0000.nii.gz", ramp(shape, 0, 10))
        save_nifti(tmp_path / "data" / f"{case}_0001.nii.gz", ramp(shape, 100, 500))
        save_nifti(tmp_path / "data" / f"{case}_seg.nii.gz", lab)
    cfg = dataset(
        "generic",
        tmp_path,
        source={
            "image_glob": "data/*.nii.gz",
            "label_glob": "data/*_seg.nii.gz",
            "channel_suffixes": ["_0000", "_0001"],
            "label_suffix": "_seg",
        },
    )
    cases = discover_cases(cfg)
    assert list(cases) == ["p1", "p2"]
    assert [Path(f).name for f in cases["p2"]["images"]] == ["p2_0000.nii.gz", "p2_0001.nii.gz"]
    meta = run_case(cfg, "p2", tmp_path / "out")
    img, _ = load_case_image(tmp_path / "out" / "image.nii.gz")
    assert img.shape == (2, *shape)
    for c in range(2):  # min/max per channel
        assert float(img[c].min()) == 0.0 and float(img[c].max()) == 1.0
    assert nib.load(str(tmp_path / "out" / "image.nii.gz")).shape == (*shape, 2)
    assert meta["channels"] == 2 and meta["channel_names"] == ["0000", "0001"]


def test_generic_tiff_with_spacing_in_file(tmp_path):
    shape = (3, 6, 5)
    lab = np.zeros(shape, np.uint8)
    lab[1, 2:4, 2:4] = 1
    write_generic(tmp_path, {"s1": (ramp(shape).astype(np.uint16), lab)}, spacing=(4.0, 1.0, 1.0), ext=".tif")
    cfg = dataset("generic", tmp_path, source={"image_glob": "images/*.tif", "label_glob": "labels/*.tif"})
    meta = run_case(cfg, "s1", tmp_path / "out")
    assert meta["shape"] == [3, 6, 5]
    assert meta["spacing"] == pytest.approx([4.0, 1.0, 1.0], rel=1e-5)
    assert meta["label_voxels"] == 4


def test_lightsheet_tiff_with_configured_spacing(tmp_path):
    shape = (4, 6, 6)
    lab = np.zeros(shape, np.uint16)
    lab[1:3, 1:3, 1:3] = 1
    img = ramp(shape, 0, 1000).astype(np.uint16)
    write_generic(tmp_path, {"brain_01": (img, lab)}, spacing=None, ext=".tif")
    cfg = dataset(
        "lightsheet",
        tmp_path,
        source={"image_glob": "images/*.tif", "label_glob": "labels/*.tif"},
        spacing=[6.0, 2.0, 2.0],
        spacing_unit="um",
        normalization={"method": "percentile", "lower": 0.0, "upper": 50.0},
    )
    meta = run_case(cfg, "brain_01", tmp_path / "out")
    out, spacing = load_case_image(tmp_path / "out" / "image.nii.gz")
    assert spacing == (6.0, 2.0, 2.0)
    assert meta["spacing_unit"] == "um" and meta["label_voxels"] == 8
    assert float(out.max()) == 1.0 and float((out == 1.0).mean()) >= 0.5  # upper half clipped


# ---------------------------------------------------------------- nnU-Net v2 and MSD


def test_nnunet_v2_layout(tmp_path):
    shape = (5, 5, 3)
    lab = np.zeros(shape, np.uint8)
    lab[1, 1, 1] = 1
    ds = {"channel_names": {"0": "T1", "1": "FLAIR"}, "labels": {"background": 0, "lesion": 1}, "file_ending": ".nii.gz"}
    (tmp_path / "dataset.json").write_text(json.dumps(ds))
    for case in ("ms_001", "ms_002"):
        save_nifti(tmp_path / "imagesTr" / f"{case}_0000.nii.gz", ramp(shape, 0, 1), spacing=(1, 1, 3))
        save_nifti(tmp_path / "imagesTr" / f"{case}_0001.nii.gz", ramp(shape, 5, 9), spacing=(1, 1, 3))
        save_nifti(tmp_path / "labelsTr" / f"{case}.nii.gz", lab, spacing=(1, 1, 3))
    save_nifti(tmp_path / "imagesTs" / "ms_100_0000.nii.gz", ramp(shape))  # ignored
    cfg = dataset("nnunet", tmp_path)
    cases = discover_cases(cfg)
    assert list(cases) == ["ms_001", "ms_002"]
    assert cases["ms_001"]["channel_names"] == ["T1", "FLAIR"]
    meta = run_case(cfg, "ms_002", tmp_path / "out")
    img, sp = load_case_image(tmp_path / "out" / "image.nii.gz")
    assert img.shape == (2, *shape) and sp == (1.0, 1.0, 3.0)
    assert meta["channels"] == 2 and meta["channel_names"] == ["T1", "FLAIR"]


def test_msd_4d_images_keep_channels(tmp_path):
    shape = (6, 5, 4)
    lab = np.zeros(shape, np.uint8)
    lab[2:4, 2:4, 1:3] = 2  # MSD labels may use several classes: foreground = label > 0
    ds = {"name": "BRATS", "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd"}, "training": []}
    (tmp_path / "dataset.json").write_text(json.dumps(ds))
    for case in ("BRATS_001", "BRATS_002"):
        img4d = np.stack([ramp(shape, 0, 1), ramp(shape, 0, 10), ramp(shape, 0, 100)], axis=-1)
        save_nifti(tmp_path / "imagesTr" / f"{case}.nii.gz", img4d, spacing=(1, 1, 1))
        save_nifti(tmp_path / "labelsTr" / f"{case}.nii.gz", lab, spacing=(1, 1, 1))
    (tmp_path / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"macOS resource fork")
    cfg = dataset("nnunet", tmp_path)
    cases = discover_cases(cfg)
    assert list(cases) == ["BRATS_001", "BRATS_002"]
    assert len(cases["BRATS_001"]["images"]) == 1
    meta = run_case(cfg, "BRATS_001", tmp_path / "out")
    img, _ = load_case_image(tmp_path / "out" / "image.nii.gz")
    assert img.shape == (3, *shape)
    assert meta["channels"] == 3 and meta["channel_names"] == ["FLAIR", "T1w", "t1gd"]
    assert meta["label_voxels"] == 8
    assert set(np.unique(load_image(tmp_path / "out" / "label.nii.gz").array)) == {0, 1}


def test_msd_4d_with_wrong_channel_count_raises(tmp_path):
    shape = (4, 4, 3)
    (tmp_path / "dataset.json").write_text(json.dumps({"modality": {"0": "a", "1": "b", "2": "c"}}))
    save_nifti(tmp_path / "imagesTr" / "x_001.nii.gz", np.zeros((*shape, 2), np.float32))
    save_nifti(tmp_path / "labelsTr" / "x_001.nii.gz", np.zeros(shape, np.uint8))
    with pytest.raises(DataIntegrityError, match=r"x_001.*3 channels"):
        run_case(dataset("nnunet", tmp_path), "x_001", tmp_path / "out")


def test_nnunet_missing_dataset_json(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(DataIntegrityError, match="dataset.json"):
        discover_cases(dataset("nnunet", tmp_path))


# ---------------------------------------------------------------- LiTS


def write_lits(root: Path, n: int, shape=(20, 18, 12)) -> tuple[np.ndarray, np.ndarray]:
    vol = ramp(shape, -1000, 1000)
    seg = np.zeros(shape, np.uint8)
    seg[5:12, 6:10, 3:8] = 1  # liver
    seg[7:9, 7:9, 4:6] = 2  # tumour
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    batch = root / "Training Batch 1"
    batch.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(vol.astype(np.int16), affine), str(batch / f"volume-{n}.nii"))
    nib.save(nib.Nifti1Image(seg, affine), str(batch / f"segmentation-{n}.nii"))
    return vol, seg


def test_lits_tumour_only_and_liver_crop(tmp_path):
    write_lits(tmp_path, 3)
    write_lits(tmp_path, 10)
    cfg = dataset(
        "lits", tmp_path, source={"margin": [2, 1, 0]},
        normalization={"method": "ct_window", "center": 30, "width": 150, "tolerance": 0.2},
    )
    cases = discover_cases(cfg)
    assert list(cases) == ["lits_10", "lits_3"]
    meta = run_case(cfg, "lits_3", tmp_path / "out")
    # liver bbox [5:12, 6:10, 3:8] + margin (2, 1, 0) -> [3:14, 5:11, 3:8]
    assert meta["crop"] == {"start": [3, 5, 3], "stop": [14, 11, 8], "source_shape": [20, 18, 12]}
    assert meta["shape"] == [11, 6, 5]
    lab = load_image(tmp_path / "out" / "label.nii.gz")
    assert lab.shape == (11, 6, 5)
    assert int(lab.array.sum()) == meta["label_voxels"] == 2 * 2 * 2  # tumour only
    np.testing.assert_array_equal(np.argwhere(lab.array)[0], [7 - 3, 7 - 5, 4 - 3])
    np.testing.assert_allclose(lab.affine[:3, 3], [10 + 3 * 0.7, 20 + 5 * 0.7, 30 + 3 * 2.5])
    img, sp = load_case_image(tmp_path / "out" / "image.nii.gz")
    assert sp == pytest.approx((0.7, 0.7, 2.5))
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0


def test_lits_margin_clipped_at_volume_border(tmp_path):
    write_lits(tmp_path, 1)
    meta = run_case(dataset("lits", tmp_path, source={"margin": 100}), "lits_1", tmp_path / "out")
    assert meta["crop"]["start"] == [0, 0, 0] and meta["crop"]["stop"] == [20, 18, 12]


def test_lits_rejects_instance_labels(tmp_path):
    write_lits(tmp_path, 1)
    with pytest.raises(ValueError, match="instance_labels"):
        run_case(dataset("lits", tmp_path, instance_labels=True), "lits_1", tmp_path / "out", instances=True)
    assert not (tmp_path / "out").exists()


def test_lits_unpaired_volume(tmp_path):
    write_lits(tmp_path, 1)
    (tmp_path / "Training Batch 1" / "segmentation-1.nii").unlink()
    with pytest.raises(DataIntegrityError, match=r"lits_1.*volume-1\.nii.*segmentation"):
        discover_cases(dataset("lits", tmp_path))


# ---------------------------------------------------------------- labels


def test_instance_labels_kept_and_binarized(tmp_path):
    shape = (6, 6, 3)
    lab = np.zeros(shape, np.uint16)
    lab[0:2, 0:2, 0] = 7
    lab[2:4, 0:2, 0] = 3  # touches instance 7: still a separate instance
    lab[5, 5, 2] = 300
    write_generic(tmp_path, {"n1": (ramp(shape), lab)})
    cfg = dataset("generic", tmp_path, instance_labels=True)
    meta = run_case(cfg, "n1", tmp_path / "out", instances=True)
    inst = load_image(tmp_path / "out" / "instances.nii.gz").array
    sem = load_image(tmp_path / "out" / "label.nii.gz").array
    assert inst.dtype == np.uint32
    np.testing.assert_array_equal(sem, (lab > 0).astype(np.uint8))
    assert inst[0, 0, 0] == 2 and inst[2, 0, 0] == 1 and inst[5, 5, 2] == 3  # renumbered 3, 7, 300 -> 1, 2, 3
    assert meta["n_instances"] == 3 and meta["instance_labels"] is True


def test_instance_ids_binarized_without_instance_labels(tmp_path):
    shape = (4, 4, 2)
    lab = np.zeros(shape, np.uint16)
    lab[0, 0, 0], lab[3, 3, 1] = 5, 9
    write_generic(tmp_path, {"n1": (ramp(shape), lab)})
    cfg = dataset("generic", tmp_path)
    meta = run_case(cfg, "n1", tmp_path / "out")
    assert meta["label_voxels"] == 2 and "n_instances" not in meta
    with pytest.raises(ValueError, match="instance_labels"):
        run_case(cfg, "n1", tmp_path / "out2", instances=True)
    assert not (tmp_path / "out2").exists()


def test_foreground_labels_option(tmp_path):
    shape = (4, 4, 2)
    lab = np.zeros(shape, np.uint8)
    lab[0, 0, 0], lab[1, 1, 1], lab[2, 2, 0] = 1, 2, 3
    write_generic(tmp_path, {"c": (ramp(shape), lab)})
    meta = run_case(dataset("generic", tmp_path, foreground_labels=[2, 3]), "c", tmp_path / "out")
    assert meta["label_voxels"] == 2


def test_empty_label_warns_and_is_flagged(tmp_path):
    write_generic(tmp_path, {"empty_case": (ramp((4, 4, 2)), np.zeros((4, 4, 2), np.uint8))})
    with pytest.warns(EmptyLabelWarning, match="empty_case"):
        meta = run_case(dataset("generic", tmp_path), "empty_case", tmp_path / "out")
    assert meta["empty"] is True and meta["label_voxels"] == 0
    assert (tmp_path / "out" / "label.nii.gz").exists()


def test_constant_image_normalizes_to_zeros(tmp_path):
    lab = np.ones((4, 4, 2), np.uint8)
    write_generic(tmp_path, {"c": (np.full((4, 4, 2), 7.0, np.float32), lab)})
    run_case(dataset("generic", tmp_path), "c", tmp_path / "out")
    img, _ = load_case_image(tmp_path / "out" / "image.nii.gz")
    assert not img.any()


def test_convert_dataset_all_cases(tmp_path):
    metas = convert_dataset(dataset("synthetic", source={"n_cases": 2, "shape": [12, 12]}), tmp_path)
    assert [m["case"] for m in metas] == ["case_000", "case_001"]
    assert sorted(p.name for p in (tmp_path / "case_001").iterdir()) == ["image.nii.gz", "label.nii.gz", "meta.json"]


# ---------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        ({"name": "t", "source": {"format": "dicom"}}, ValueError, "unknown source format 'dicom'.*synthetic"),
        ({"name": "t", "source": {"format": "generic"}}, ValueError, "source.path is required"),
        ({"name": "t", "source": {"format": "generic", "path": "/nonexistent/raw"}}, DataIntegrityError, "not a folder"),
        ({"name": "t", "source": {"format": "synthetic", "n_cases": 0}}, ValueError, "n_cases"),
        ({"name": "t", "source": {"format": "synthetic", "shape": [64]}}, ValueError, "2 \\(2D\\) or 3"),
        ({"name": "t"}, ValueError, "'source' section"),
    ],
)
def test_config_errors(cfg, error, match):
    with pytest.raises(error, match=match):
        discover_cases(cfg)


def test_no_files_found(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataIntegrityError, match=r"no image file matches .*images/\*\.nii\.gz"):
        discover_cases(dataset("generic", tmp_path))


def test_spacing_override_wrong_length(tmp_path):
    with pytest.raises(ValueError, match=r"spacing \[1.0, 1.0\] has 2 entries.*3 spatial axes"):
        run_case(dataset("synthetic", spacing=[1.0, 1.0]), "case_000", tmp_path)
    assert not tmp_path.joinpath("image.nii.gz").exists()


# ---------------------------------------------------------------- one module per source format


def test_each_source_format_has_its_own_module_and_the_public_functions_stay_importable():
    from blobloss.data import convert
    from blobloss.data.sources import SourceFormat, source_module

    for fmt in SourceFormat:
        module = source_module(fmt)
        assert module.__name__ == f"blobloss.data.sources.{fmt.value}"
        assert callable(module.discover) and callable(module.read)
    assert hasattr(source_module("lits"), "process") and not hasattr(source_module("generic"), "process")
    for name in ("discover_cases", "convert_case", "convert_dataset", "read_case", "prepare_case", "check_case",
                 "RawCase", "SourceFormat"):
        assert hasattr(convert, name), name


@pytest.mark.parametrize(("values", "binarized"), [((0, 255), [0, 255]), ((0, 1), None), ((0, 3, 7), [0, 3, 7])])
def test_labels_other_than_0_1_are_binarized_with_one_warning_and_flagged(tmp_path, values, binarized):
    lab = np.zeros((6, 5, 4), np.uint8)
    for i, v in enumerate(values):
        lab[i, 0, 0] = v
    save_nifti(tmp_path / "images" / "a.nii.gz", ramp((6, 5, 4)))
    save_nifti(tmp_path / "labels" / "a.nii.gz", lab)
    import warnings

    from blobloss.errors import LabelBinarizedWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = run_case(dataset("generic", tmp_path), "a", tmp_path / "out")
    hits = [w for w in caught if issubclass(w.category, LabelBinarizedWarning)]
    assert meta["binarized"] is (binarized is not None)
    assert meta.get("label_values") == binarized
    assert len(hits) == (0 if binarized is None else 1)
    if hits:
        assert "labels/a.nii.gz" in str(hits[0].message) and str(binarized) in str(hits[0].message)
    assert meta["label_voxels"] == len(values) - 1
