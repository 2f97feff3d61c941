"""nnU-Net v2 integration: the writer of nnU-Net's raw format, the instance-map transform, the blob loss per
output scale, the trainers, and one real nnU-Net run (plan, preprocess, train, predict) on a tiny dataset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from blobloss.data.nnunet_raw import nnunet_dataset_name, write_nnunet_dataset, write_synthetic_nnunet

REPO = Path(__file__).resolve().parents[1]

try:
    import nnunetv2  # noqa: F401

    HAVE_NNUNET = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_NNUNET = False

needs_nnunet = pytest.mark.skipif(not HAVE_NNUNET, reason='nnunetv2 is not installed (pip install "blobloss[nnunet]")')


# --------------------------------------------------------------------------------------------------
# the raw-format writer (no nnU-Net needed)
# --------------------------------------------------------------------------------------------------
def test_writer_layout_and_dataset_json(tmp_path: Path) -> None:
    img = np.random.default_rng(0).random((2, 8, 9, 10)).astype(np.float32)
    lab = np.zeros((8, 9, 10), np.uint8)
    lab[1:3, 1:3, 1:3] = 2
    root = write_nnunet_dataset(
        tmp_path,
        12,
        "Two-Chan",
        [("a", img, lab), ("b", img, lab)],
        test_cases=[("t", img, None)],
        channel_names=("T1", "T2"),
        labels={"background": 0, "tumor": 2},
    )
    assert root == tmp_path / "Dataset012_Two-Chan"
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == [
        "a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "b_0001.nii.gz"
    ]
    assert sorted(p.name for p in (root / "labelsTr").iterdir()) == ["a.nii.gz", "b.nii.gz"]
    assert sorted(p.name for p in (root / "imagesTs").iterdir()) == ["t_0000.nii.gz", "t_0001.nii.gz"]
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1", "1": "T2"}
    assert meta["labels"] == {"background": 0, "tumor": 2}
    assert meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"


def test_writer_output_is_read_by_the_nnunet_converter(tmp_path: Path) -> None:
    from blobloss.data.convert import discover_cases
    from blobloss.io import load_image

    root = write_synthetic_nnunet(tmp_path, dataset_id=3, n_train=2, n_test=1, shape=(16, 16, 8))
    cases = discover_cases({"name": "nn", "source": {"format": "nnunet", "path": str(root)}})
    assert sorted(cases) == ["case_000", "case_001"]
    label = load_image(cases["case_000"]["label"]).array
    assert label.shape == (16, 16, 8) and set(np.unique(label).tolist()) <= {0, 1}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dataset_id": 0}, "1..999"),
        ({"dataset_id": 1000}, "1..999"),
        ({"name": "bad name"}, "letters, digits"),
        ({"labels": {"foreground": 1}}, "'background' to 0"),
        ({"labels": {"background": 0, "region": [1, 2]}}, "integer class id"),
        ({"train_cases": []}, "train_cases is empty"),
        ({"train_cases": [("a", np.zeros((8, 8)), np.zeros((8,), np.uint8))]}, r"\(C, \*spatial\)"),
        ({"train_cases": [("a", np.zeros((1, 8, 8, 8)), np.zeros((8, 8, 7), np.uint8))]}, "spatial shape"),
        ({"train_cases": [("a", np.zeros((1, 8, 8, 8)), np.full((8, 8, 8), 3, np.uint8))]}, r"\[3\] are not declared"),
        ({"train_cases": [("a", np.zeros((1, 8, 8, 8)), np.zeros((8, 8, 8)))]}, "must be integer"),
        ({"channel_names": ("a", "b")}, "declares 2"),
    ],
)
def test_writer_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {
        "dataset_id": 5,
        "name": "X",
        "train_cases": [("a", np.zeros((1, 8, 8, 8), np.float32), np.zeros((8, 8, 8), np.uint8))],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        write_nnunet_dataset(tmp_path, args.pop("dataset_id"), args.pop("name"), args.pop("train_cases"), **args)
    assert not (tmp_path / nnunet_dataset_name(5, "X") / "dataset.json").exists()


# --------------------------------------------------------------------------------------------------
# the instance-map transform
# --------------------------------------------------------------------------------------------------
def _seg(shape, *boxes):
    seg = torch.zeros((1, *shape), dtype=torch.int16)
    for value, index in boxes:
        seg[(0, *index)] = value
    return seg


@needs_nnunet
@pytest.mark.parametrize(
    "seg, connectivity, n_instances",
    [
        # two voxels touching at a corner: one instance at 26/8, two at 6/4
        (_seg((3, 3, 3), (1, (0, 0, 0)), (1, (1, 1, 1))), None, 1),
        (_seg((3, 3, 3), (1, (0, 0, 0)), (1, (1, 1, 1))), 6, 2),
        (_seg((3, 3, 3), (1, (0, 0, 0)), (1, (1, 1, 0))), 18, 1),
        (_seg((3, 3), (1, (0, 0)), (1, (1, 1))), None, 1),
        (_seg((3, 3), (1, (0, 0)), (1, (1, 1))), 4, 2),
        (_seg((3, 3), (1, (0, 0)), (1, (1, 1))), {2: 4, 3: 26}, 2),
        # touching voxels of different classes are different instances
        (_seg((1, 4), (1, (0, 0)), (2, (0, 1))), None, 2),
        (_seg((4, 4, 4)), None, 0),
    ],
)
def test_instance_map_transform_counts(seg: torch.Tensor, connectivity, n_instances: int) -> None:
    from blobloss.integrations.nnunet.transforms import InstanceMapTransform

    out = InstanceMapTransform(connectivity)(segmentation=seg.clone())["segmentation"]
    assert out.shape == (2, *seg.shape[1:]) and out.dtype == seg.dtype
    assert torch.equal(out[0], seg[0])
    ids = out[1]
    assert int(ids.max()) == n_instances and len(ids.unique()) == n_instances + 1
    assert torch.equal(ids > 0, seg[0] > 0)
    for i in range(1, n_instances + 1):  # one class per instance
        assert len(seg[0][ids == i].unique()) == 1


@needs_nnunet
def test_instance_map_transform_widens_dtype_for_many_ids() -> None:
    from blobloss.integrations.nnunet.transforms import InstanceMapTransform

    seg = torch.zeros((1, 1, 600), dtype=torch.uint8)  # uint8 holds ids up to 255
    seg[0, 0, ::2] = 1  # 300 isolated pixels
    out = InstanceMapTransform()(segmentation=seg)["segmentation"]
    assert int(out[1].max()) == 300 and out.dtype == torch.int32
    assert torch.equal(out[0], seg[0].to(torch.int32))
    small = InstanceMapTransform()(segmentation=seg[:, :, :100])["segmentation"]
    assert int(small[1].max()) == 50 and small.dtype == torch.uint8


@needs_nnunet
@pytest.mark.parametrize(
    "connectivity, seg, match",
    [
        (5, _seg((3, 3, 3)), "not valid"),
        ({3: 8}, _seg((3, 3, 3)), "for 3D is not valid"),
        ("26", _seg((3, 3, 3)), "must be None, an int"),
        (None, torch.zeros((2, 3, 3, 3), dtype=torch.int16), "one class-map channel"),
        (None, torch.full((1, 3, 3, 3), -1, dtype=torch.int16), "RemoveLabelTansform"),
    ],
)
def test_instance_map_transform_errors(connectivity, seg: torch.Tensor, match: str) -> None:
    from blobloss.integrations.nnunet.transforms import InstanceMapTransform

    with pytest.raises(ValueError, match=match):
        InstanceMapTransform(connectivity)(segmentation=seg)


@needs_nnunet
def test_training_transforms_put_instances_before_deep_supervision_downsampling() -> None:
    """Every scale's instance channel is the nearest-downsampled full-resolution instance map."""
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
    from torch.nn.functional import interpolate

    from blobloss.integrations.nnunet.trainers import nnUNetTrainerBlobDice
    from blobloss.integrations.nnunet.transforms import InstanceMapTransform

    ds = [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]
    composed = nnUNetTrainerBlobDice.get_training_transforms(
        (16, 16, 16), (0.0, 0.0), ds, (), False, foreground_labels=(1,)
    )
    names = [type(t) for t in composed.transforms]
    at = names.index(InstanceMapTransform)
    assert names[at + 1] is DownsampleSegForDSTransform and names.count(InstanceMapTransform) == 1
    val = nnUNetTrainerBlobDice.get_validation_transforms(ds, foreground_labels=(1,))
    assert [type(t) for t in val.transforms][-2:] == [InstanceMapTransform, DownsampleSegForDSTransform]

    seg = torch.zeros((1, 16, 16, 16), dtype=torch.int16)
    seg[0, 2:6, 2:6, 2:6] = 1
    seg[0, 10:14, 9:15, 3:7] = 1
    seg[0, 0, 0, 15] = -1  # nnU-Net's padding value, removed before the instance maps
    out = val(image=torch.zeros((1, 16, 16, 16)), segmentation=seg)["segmentation"]
    assert [tuple(t.shape) for t in out] == [(2, 16, 16, 16), (2, 8, 8, 8), (2, 4, 4, 4)]
    full = out[0]
    assert int(full[1].max()) == 2
    for scaled in out[1:]:
        expect = interpolate(full[None].float(), scaled.shape[1:], mode="nearest-exact")[0].to(full.dtype)
        assert torch.equal(scaled, expect)


# --------------------------------------------------------------------------------------------------
# the loss of one scale
# --------------------------------------------------------------------------------------------------
def _batch(n_classes: int, seed: int = 0, shape=(10, 10, 6)):
    """Logits (2, C+1, *shape) and a (2, 2, *shape) target with instance ids from cc3d."""
    from blobloss.integrations.nnunet.transforms import InstanceMapTransform

    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn((2, n_classes + 1, *shape), generator=gen, dtype=torch.float64)
    classes = torch.zeros((2, 1, *shape), dtype=torch.int16)
    classes[0, 0, 1:3, 1:3, 1:3] = 1
    classes[0, 0, 6:9, 5:8, 2:4] = n_classes
    classes[0, 0, 4, 8, 5] = 1
    classes[1, 0, 2:5, 6:9, 0:2] = n_classes  # element 1: one instance
    t = InstanceMapTransform()
    target = torch.stack([t(segmentation=c)["segmentation"] for c in classes])
    return logits.requires_grad_(True), target


@needs_nnunet
@pytest.mark.parametrize("criterion", ["dice", "tversky"])
def test_binary_loss_is_the_blob_loss_on_the_softmax_foreground(criterion: str) -> None:
    from blobloss.integrations.nnunet.loss import NNUNetBlobLoss
    from blobloss.losses import BlobLoss, MultiClassBlobLoss

    logits, target = _batch(1)
    got = NNUNetBlobLoss(n_classes=1, criterion=criterion, alpha=2.0, beta=1.0)(logits, target)
    ref = BlobLoss(criterion, alpha=2.0, beta=1.0)(logits[:, 1:] - logits[:, :1], target[:, 1:].long())
    # the same loss as the softmax (multi-class) blob loss with one foreground class
    soft = MultiClassBlobLoss(criterion, alpha=2.0, beta=1.0)(
        logits, instances=target[:, 1:].long(), class_map=target[:, :1].long()
    )
    assert torch.allclose(got, ref) and torch.allclose(got, soft)
    assert 0.0 < float(got.detach()) < 3.0


@needs_nnunet
def test_multiclass_loss_is_the_multiclass_blob_loss() -> None:
    from blobloss.integrations.nnunet.loss import NNUNetBlobLoss
    from blobloss.losses import MultiClassBlobLoss

    logits, target = _batch(2)
    assert set(target[:, 0].unique().tolist()) == {0, 1, 2}
    got = NNUNetBlobLoss(n_classes=2, criterion="dice", alpha=1.5, beta=0.5)(logits, target)
    ref = MultiClassBlobLoss("dice", alpha=1.5, beta=0.5)(
        logits, instances=target[:, 1:].long(), class_map=target[:, :1].long()
    )
    assert torch.allclose(got, ref)
    got.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def _nnunet_dice_ce():
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    return DC_and_CE_loss(
        {"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1, weight_dice=1,
        ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss,
    )


def _instance_dice_ce():
    """nnU-Net's Dice + CE of one instance's two-class problem, written out with nnU-Net's own soft Dice."""
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    dice = MemoryEfficientSoftDiceLoss(apply_nonlin=None, batch_dice=False, do_bg=True, smooth=1e-5, ddp=False)

    def criterion(q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dice(q, t) + torch.nn.functional.binary_cross_entropy(q, t)

    return criterion


@needs_nnunet
@pytest.mark.parametrize("n_classes", [1, 2])
def test_dice_ce_matches_nnunets_losses_per_instance(n_classes: int) -> None:
    """Global term = nnU-Net's DC_and_CE_loss; blob term = the loop over instances of nnU-Net's Dice + BCE."""
    from blobloss.integrations.nnunet.loss import NNUNetBlobLoss
    from blobloss.losses import BlobLoss, MultiClassBlobLoss

    logits, target = _batch(n_classes, seed=3)
    dcce = _nnunet_dice_ce()
    got = NNUNetBlobLoss(n_classes=n_classes, criterion="dice_ce", alpha=2.0, beta=1.0, global_loss=dcce)(logits, target)
    classes, inst = target[:, :1].long(), target[:, 1:].long()
    if n_classes == 1:
        loop = BlobLoss(_instance_dice_ce(), alpha=0.0, beta=1.0, implementation="loop")
        blob = loop(logits[:, 1:] - logits[:, :1], inst)
    else:
        loop = MultiClassBlobLoss(_instance_dice_ce(), alpha=0.0, beta=1.0, implementation="loop")
        blob = loop(logits, instances=inst, class_map=classes)
    ref = 2.0 * dcce(logits, classes) + blob
    assert torch.allclose(got, ref, atol=1e-9), (float(got), float(ref))
    g1 = torch.autograd.grad(got, logits)[0]
    g2 = torch.autograd.grad(ref, logits)[0]
    assert torch.allclose(g1, g2, atol=1e-9)


@needs_nnunet
def test_dice_ce_without_instances_is_nnunets_loss() -> None:
    from blobloss.integrations.nnunet.loss import NNUNetBlobLoss

    logits = torch.randn(2, 2, 6, 6, 6, requires_grad=True)
    target = torch.zeros(2, 2, 6, 6, 6, dtype=torch.int16)
    dcce = _nnunet_dice_ce()
    got = NNUNetBlobLoss(n_classes=1, criterion="dice_ce", global_loss=dcce)(logits, target)
    assert torch.allclose(got, 2.0 * dcce(logits, target[:, :1].long()))


@needs_nnunet
@pytest.mark.parametrize(
    "kwargs, logits_shape, target_shape, match",
    [
        ({"n_classes": 0}, None, None, "n_classes"),
        ({"n_classes": 1, "criterion": "bce"}, None, None, "not supported"),
        ({"n_classes": 1, "criterion": "dice_ce"}, None, None, "needs global_loss"),
        ({"n_classes": 1}, (1, 3, 4, 4, 4), (1, 2, 4, 4, 4), "must have 2 channels"),
        ({"n_classes": 1}, (1, 2, 4, 4, 4), (1, 1, 4, 4, 4), "InstanceMapTransform"),
    ],
)
def test_loss_errors(kwargs: dict, logits_shape, target_shape, match: str) -> None:
    from blobloss.integrations.nnunet.loss import NNUNetBlobLoss

    with pytest.raises(ValueError, match=match):
        loss = NNUNetBlobLoss(**kwargs)
        loss(torch.zeros(logits_shape), torch.zeros(target_shape, dtype=torch.int16))


# --------------------------------------------------------------------------------------------------
# trainers: dataset.json checks, deep supervision, how nnU-Net finds them
# --------------------------------------------------------------------------------------------------
@needs_nnunet
@pytest.mark.parametrize(
    "dataset_json, match",
    [
        ({"labels": {"background": 0, "a": [1, 2], "b": 2}, "regions_class_order": [1, 2]}, "regions_class_order"),
        ({"labels": {"background": 0, "a": 1}, "regions_class_order": [1]}, "region-based"),
        ({"labels": {"background": 0, "a": 1, "ignore": 2}}, '"ignore" label'),
        ({"labels": {"background": 0}}, "no foreground"),
        ({}, "no 'labels'"),
    ],
)
def test_trainer_rejects_unsupported_datasets_before_any_output(dataset_json: dict, match: str, tmp_path, monkeypatch) -> None:
    from blobloss.integrations.nnunet.trainers import nnUNetTrainerBlobDice

    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    with pytest.raises(ValueError, match=match) as info:
        nnUNetTrainerBlobDice({}, "3d_fullres", 0, dataset_json, torch.device("cpu"))
    assert "nnUNetTrainerBlobDice" in str(info.value) and "dataset.json" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@needs_nnunet
def test_deep_supervision_wraps_the_blob_loss_with_nnunets_weights() -> None:
    """_build_loss on a minimal trainer: nnU-Net's DS weights, the blob loss on every weighted scale."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    from blobloss.integrations.nnunet.loss import NNUNetBlobLoss
    from blobloss.integrations.nnunet.trainers import nnUNetTrainerBlobTversky

    class _Cfg:
        batch_dice = False
        pool_op_kernel_sizes = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]  # 3 deep-supervision scales

    class _Labels:
        has_regions = False
        ignore_label = None
        num_segmentation_heads = 2

    trainer = object.__new__(nnUNetTrainerBlobTversky)  # the parts _build_loss reads, without plans on disk
    trainer.configuration_manager, trainer.label_manager = _Cfg(), _Labels()
    trainer.enable_deep_supervision, trainer.is_ddp, trainer.device = True, False, torch.device("cpu")
    loss = trainer._build_loss()
    assert isinstance(loss, DeepSupervisionWrapper) and isinstance(loss.loss, NNUNetBlobLoss)
    assert loss.loss.criterion == "tversky" and loss.loss.n_classes == 1
    assert np.allclose(loss.weight_factors, [2 / 3, 1 / 3, 0.0])

    logits, target = _batch(1)
    half = [logits[:, :, ::2, ::2, ::2], target[:, :, ::2, ::2, ::2]]
    total = loss([logits, half[0], half[0][:, :, ::2]], [target, half[1], half[1][:, :, ::2]])
    expect = 2 / 3 * loss.loss(logits, target) + 1 / 3 * loss.loss(*half)
    assert torch.allclose(total, expect)


@needs_nnunet
def test_ext_trainer_path_command_and_nnunets_lookup() -> None:
    """The printed folder is what nnU-Net's external-trainer search imports; it finds every trainer there."""
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    from blobloss.integrations import nnunet
    from blobloss.integrations.nnunet import trainers

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "blobloss.integrations.nnunet", "--ext-trainer-path"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()
    assert Path(out) == nnunet.ext_trainer_path() and Path(out).is_dir()
    listed = subprocess.run(
        [sys.executable, "-m", "blobloss.integrations.nnunet", "--list-trainers"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.split()
    assert listed == list(nnunet.TRAINERS) == sorted(trainers.__all__[1:], key=nnunet.TRAINERS.index)
    for name in nnunet.TRAINERS:
        # exactly the call nnU-Net 2.8 makes for each folder in nnUNet_extTrainer
        cls = recursive_find_python_class(out, name, None, base_folder=out, cleanup_imports_from_base_folder=True)
        assert cls is getattr(trainers, name), name
        assert cls.__module__ == "blobloss.integrations.nnunet.trainers"
    short = trainers.nnUNetTrainerBlobDiceCE_1epoch
    assert issubclass(short, trainers.nnUNetTrainerBlobDiceCE) and short.blob_criterion == "dice_ce"


def test_cli_without_arguments_fails_with_usage() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "blobloss.integrations.nnunet"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "--ext-trainer-path" in res.stderr


# --------------------------------------------------------------------------------------------------
# one real nnU-Net run: the commands of docs/nnunet.md on a tiny synthetic dataset
# --------------------------------------------------------------------------------------------------
def _nnunet_trainer_lookup_problem() -> str | None:
    """Why nnU-Net's trainer lookup cannot run here, or None. It imports every trainer module nnU-Net ships."""
    code = "import nnunetv2.training.nnUNetTrainer.primus.primus_trainers"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode == 0:
        return None
    last = (res.stderr.strip().splitlines() or ["?"])[-1]
    return (
        "nnU-Net 2.8 imports all its own trainers (timm, hence torchvision) before it looks in nnUNet_extTrainer, "
        f"and that import fails here: {last}. Install a torchvision built for the installed torch: the test "
        "install pins a matching pair (pip install -c requirements/test.txt -e \".[test]\")."
    )


def _doc_block() -> str:
    """The bash block of docs/nnunet.md's "A tiny dataset to try it" section (what the real run executes)."""
    text = (REPO / "docs" / "nnunet.md").read_text().split("## A tiny dataset to try it", 1)[1]
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)[0]


@pytest.mark.slow
@needs_nnunet
def test_real_nnunet_run(tmp_path: Path) -> None:
    """docs/nnunet.md's commands: write raw, plan and preprocess, train nnUNetTrainerBlobDice_1epoch, predict."""
    problem = _nnunet_trainer_lookup_problem()
    assert problem is None, problem  # nnunetv2 is installed but cannot run: a broken install, not a skip
    from blobloss.data.synthetic import case_seed, generate_case
    from blobloss.io import load_image
    from blobloss.metrics import instance_metrics

    block = _doc_block()
    for needed in ("--ext-trainer-path", "nnUNetv2_plan_and_preprocess", "-tr nnUNetTrainerBlobDice_1epoch -device cpu",
                   "nnUNetv2_predict"):
        assert needed in block
    # python and nnU-Net's commands of this interpreter's environment first (a venv's bin/), then PATH
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path,
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=2400)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-6000:]
    assert "Using trainer 'nnUNetTrainerBlobDice_1epoch'" in log

    dataset = tmp_path / "nnUNet_raw" / "Dataset900_BlobSynthetic"
    model = tmp_path / "nnUNet_results" / dataset.name / "nnUNetTrainerBlobDice_1epoch__nnUNetPlans__3d_fullres"
    checkpoint = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == "nnUNetTrainerBlobDice_1epoch"
    losses = checkpoint["logging"]["train_losses"]
    assert len(losses) == 1 and np.isfinite(losses[0])

    preds = sorted((tmp_path / "pred").glob("*.nii.gz"))
    assert [p.name for p in preds] == ["case_005.nii.gz", "case_006.nii.gz"]
    for i, path in zip((5, 6), preds):
        pred = load_image(path).array
        _, gt, gt_instances = generate_case(case_seed(1, i), (32, 32, 32))
        assert pred.shape == gt.shape and set(np.unique(pred).tolist()) <= {0, 1}
        scores = instance_metrics(pred > 0, gt > 0)
        assert 0 <= scores["fn"] <= int(gt_instances.max()) and scores["tp"] >= 0 and scores["fp"] >= 0
        assert 0.0 <= scores["f1"] <= 1.0
