"""MONAI transforms that add instance maps: ConnectedComponents / ConnectedComponentsd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, RandSpatialCropd

from blobloss.transforms import ConnectedComponents, ConnectedComponentsd

REPO = Path(__file__).resolve().parents[1]


def _label(shape, *points):
    lab = np.zeros((1, *shape), np.uint8)
    for value, index in points:
        lab[(0, *index)] = value
    return lab


# (label, kwargs, expected number of instances)
CASES = [
    # diagonal neighbours: 26/8-connected by default, apart at 6/4
    (_label((3, 3, 3), (1, (0, 0, 0)), (1, (1, 1, 1))), {}, 1),
    (_label((3, 3, 3), (1, (0, 0, 0)), (1, (1, 1, 1))), {"connectivity": 6}, 2),
    (_label((3, 3, 3), (1, (0, 0, 0)), (1, (1, 1, 1))), {"connectivity": 18}, 2),
    (_label((3, 3, 3), (1, (0, 0, 0)), (1, (1, 1, 0))), {"connectivity": 18}, 1),
    (_label((3, 3), (1, (0, 0)), (1, (1, 1))), {}, 1),
    (_label((3, 3), (1, (0, 0)), (1, (1, 1))), {"connectivity": 4}, 2),
    (_label((3, 3), (1, (0, 0)), (1, (1, 1))), {"connectivity": {2: 4, 3: 6}}, 2),
    # an int for the other dimensionality leaves this one at its default
    (_label((3, 3), (1, (0, 0)), (1, (1, 1))), {"connectivity": 6}, 1),
    # touching voxels of two classes: one foreground blob, or two per-class instances
    (_label((1, 3), (1, (0, 0)), (2, (0, 1))), {}, 1),
    (_label((1, 3), (1, (0, 0)), (2, (0, 1))), {"per_class": True}, 2),
    (_label((4, 4, 4)), {}, 0),
]


@pytest.mark.parametrize("label, kwargs, n", CASES)
@pytest.mark.parametrize("kind", ["numpy", "tensor", "meta"])
def test_connected_components_table(label: np.ndarray, kwargs: dict, n: int, kind: str) -> None:
    inp = {"numpy": label, "tensor": torch.from_numpy(label), "meta": MetaTensor(torch.from_numpy(label))}[kind]
    out = ConnectedComponents(**kwargs)(inp)
    assert type(out) is type(inp) and tuple(out.shape) == label.shape
    ids = np.asarray(out.cpu() if isinstance(out, torch.Tensor) else out)
    assert ids.dtype == np.int32
    assert int(ids.max()) == n and len(np.unique(ids)) == n + 1
    np.testing.assert_array_equal(ids > 0, label > 0)
    if kwargs.get("per_class"):
        for i in range(1, n + 1):
            assert len(np.unique(label[ids == i])) == 1


def test_float_labels_with_whole_values_are_accepted() -> None:
    lab = _label((3, 3), (2, (0, 0)), (1, (2, 2))).astype(np.float32)
    assert ConnectedComponents(per_class=True)(lab).max() == 2


def test_meta_tensor_keeps_metadata() -> None:
    affine = torch.diag(torch.tensor([0.5, 0.5, 2.0, 1.0], dtype=torch.float64))
    lab = MetaTensor(torch.from_numpy(_label((4, 4, 4), (1, (1, 1, 1)))), affine=affine, meta={"filename_or_obj": "a.nii"})
    out = ConnectedComponents()(lab)
    assert isinstance(out, MetaTensor)
    assert torch.equal(out.affine, affine) and out.meta["filename_or_obj"] == "a.nii"
    assert out.meta is not lab.meta  # a copy: changing one does not change the other


@pytest.mark.parametrize(
    "kwargs, label, error, match",
    [
        ({"connectivity": 5}, _label((3, 3, 3)), ValueError, "not valid"),
        ({"connectivity": {3: 8}}, _label((3, 3, 3)), ValueError, "for 3D is not valid"),
        ({"connectivity": "26"}, _label((3, 3, 3)), TypeError, "must be None"),
        ({}, np.zeros((2, 3, 3, 3), np.uint8), ValueError, "one channel"),
        ({}, np.zeros((3, 3, 3), np.uint8)[0], ValueError, "channel-first"),
        ({}, np.full((1, 3, 3), 0.5, np.float32), ValueError, "non-whole"),
        ({}, np.full((1, 3, 3), np.nan, np.float32), ValueError, "non-whole"),
        ({}, np.full((1, 3, 3), -1, np.int16), ValueError, "negative"),
    ],
)
def test_connected_components_errors(kwargs: dict, label: np.ndarray, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ConnectedComponents(**kwargs)(label)


def test_dict_transform_keys() -> None:
    d = {"label": _label((1, 3), (1, (0, 0)), (1, (0, 2))), "seg": _label((1, 3), (1, (0, 1)))}
    out = ConnectedComponentsd(keys="label")(d)
    assert out["instances"].tolist() == [[[1, 0, 2]]] and "instances" not in d  # input dict untouched
    np.testing.assert_array_equal(out["label"], d["label"])
    both = ConnectedComponentsd(keys=["label", "seg"])(d)
    assert both["seg_instances"].tolist() == [[[0, 1, 0]]] and both["label_instances"].max() == 2
    named = ConnectedComponentsd(keys=["label", "seg"], instance_key=["a", "b"])(d)
    assert named["a"].max() == 2 and named["b"].max() == 1
    assert "x_instances" not in ConnectedComponentsd(keys=["x"], allow_missing_keys=True)(d)
    with pytest.raises(ValueError, match="one per key"):
        ConnectedComponentsd(keys=["label", "seg"], instance_key="inst")
    with pytest.raises(ValueError, match="overwrite the label"):
        ConnectedComponentsd(keys="label", instance_key="label")
    with pytest.raises(KeyError):
        ConnectedComponentsd(keys="x")(d)


def test_instances_before_the_crop_get_the_same_crop_as_image_and_label() -> None:
    """A random crop after the transform cuts image, label and instances alike; crop-cut blobs keep their id."""
    rng = np.random.default_rng(0)
    label = np.zeros((1, 16, 16, 8), np.uint8)
    for _ in range(12):
        x, y, z = rng.integers(0, 14, 3)
        label[0, x : x + 3, y : y + 2, min(z, 6) : min(z, 6) + 2] = 1
    image = rng.random((1, 16, 16, 8)).astype(np.float32) + label
    full = ConnectedComponents()(label)
    pipeline = Compose(
        [
            ConnectedComponentsd(keys="label", instance_key="instances"),
            RandSpatialCropd(keys=["image", "label", "instances"], roi_size=(9, 7, 5), random_size=False),
        ]
    )
    pipeline.set_random_state(seed=3)
    for _ in range(5):
        out = pipeline({"image": MetaTensor(torch.from_numpy(image)), "label": MetaTensor(torch.from_numpy(label))})
        assert out["image"].shape == out["label"].shape == out["instances"].shape == (1, 9, 7, 5)
        # locate the crop through the image values, then compare with the full-volume maps
        box = out["instances"].applied_operations[-1]["extra_info"]["cropped"]
        x0, y0, z0 = box[0], box[2], box[4]
        window = (slice(None), slice(x0, x0 + 9), slice(y0, y0 + 7), slice(z0, z0 + 5))
        np.testing.assert_array_equal(out["image"].numpy(), image[window])
        np.testing.assert_array_equal(out["instances"].numpy(), full[window])
        np.testing.assert_array_equal(out["instances"].numpy() > 0, out["label"].numpy() > 0)


def test_transforms_module_imports_only_torch_numpy_cc3d_monai() -> None:
    code = (
        "import sys; import blobloss.transforms; "
        "print(sorted(m for m in sys.modules if m.startswith('blobloss')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert res.stdout.strip() == "['blobloss', 'blobloss.transforms']"
    text = (REPO / "src" / "blobloss" / "transforms.py").read_text()
    imports = {line.split()[1].split(".")[0] for line in text.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "collections", "typing", "cc3d", "numpy", "torch", "monai"}, imports
