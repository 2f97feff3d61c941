"""Tests for the multi-class blob loss (paper Eq. 3, docs/definitions.md section 2 "Multi-class")."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
import torch
from monai.losses import DiceLoss, TverskyLoss

from blobloss.losses.blob import BlobLoss
from blobloss.losses.multiclass import MultiClassBlobLoss, multiclass_loop_instance_losses

S = 1e-5  # MONAI default smoothing


def _dice(pt: float, p_sum: float, t_sum: float) -> float:
    return 1 - (2 * pt + S) / (t_sum + p_sum + S)


# ------------------------------------------------------------------------------------------ hand cases
def _hand_maps() -> tuple[torch.Tensor, torch.Tensor]:
    """1 x 1 x 4 x 4: class 1 has instances 1 (2 voxels) and 2 (1 voxel); class 2 has instance 1 (3 voxels)."""
    cls = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    inst = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    cls[0, 0, 0, :2], inst[0, 0, 0, :2] = 1, 1
    cls[0, 0, 3, 3], inst[0, 0, 3, 3] = 1, 2
    cls[0, 0, 2, :3], inst[0, 0, 2, :3] = 2, 1  # id 1 again, but another class: a distinct instance
    return cls, inst


# With zero logits p = 1/3 in every channel; N = 16 voxels so sum(p_c) = 16/3 before masking.
HAND_C1_I1 = _dice(2 / 3, (16 - 1) / 3, 2)  # instance 2 (1 voxel) of class 1 masked
HAND_C1_I2 = _dice(1 / 3, (16 - 2) / 3, 1)  # instance 1 (2 voxels) of class 1 masked
HAND_C2_I1 = _dice(3 / 3, 16 / 3, 3)  # nothing masked: class-1 voxels stay as background
HAND_BLOB = ((HAND_C1_I1 + HAND_C1_I2) / 2 + HAND_C2_I1) / 2
HAND_GLOBAL = _dice(3 / 3, 16 / 3, 3)  # both classes have 3 voxels


@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_hand_case_two_classes(implementation):
    cls, inst = _hand_maps()
    logits = torch.zeros(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    loss_fn = MultiClassBlobLoss("dice", implementation=implementation)
    total, global_term, blob_term = loss_fn.components(logits, inst, class_map=cls)
    assert float(blob_term.detach()) == pytest.approx(HAND_BLOB, rel=1e-12)
    assert float(global_term.detach()) == pytest.approx(HAND_GLOBAL, rel=1e-12)
    assert float(total.detach()) == pytest.approx(2 * HAND_GLOBAL + HAND_BLOB, rel=1e-12)
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_hand_case_loop_instance_losses():
    cls, inst = _hand_maps()
    probs = torch.full((1, 3, 4, 4), 1 / 3, dtype=torch.float64)
    out = multiclass_loop_instance_losses(probs, cls, inst, DiceLoss())
    values = [[float(v) for v in per_class] for per_class in out[0]]
    assert values == [pytest.approx([HAND_C1_I1, HAND_C1_I2]), pytest.approx([HAND_C2_I1])]


def test_hand_case_without_masking():
    cls, inst = _hand_maps()
    logits = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    c1_i1, c1_i2 = _dice(2 / 3, 16 / 3, 2), _dice(1 / 3, 16 / 3, 1)
    expected = ((c1_i1 + c1_i2) / 2 + HAND_C2_I1) / 2
    for implementation in ("fused", "loop"):
        loss_fn = MultiClassBlobLoss("dice", alpha=0.0, masking=False, implementation=implementation)
        assert float(loss_fn(logits, inst, class_map=cls)) == pytest.approx(expected, rel=1e-12)


def test_ids_repeated_across_classes_are_distinct_instances():
    cls, inst = _hand_maps()
    renamed = inst.clone()
    renamed[cls == 2] = 7  # give the class-2 instance a fresh id: the loss must not change
    logits = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    loss_fn = MultiClassBlobLoss("dice")
    assert float(loss_fn(logits, inst, class_map=cls)) == pytest.approx(float(loss_fn(logits, renamed, class_map=cls)), rel=1e-12)
    # ...whereas giving the two class-1 instances one id (one instance) does change it
    merged = inst.clone()
    merged[(cls == 1) & (inst == 2)] = 1
    assert float(loss_fn(logits, merged, class_map=cls)) != pytest.approx(float(loss_fn(logits, inst, class_map=cls)), rel=1e-6)


def _one_class_present():
    """Element 0: only class 2 (of C = 2) has an instance (2 voxels); element 1: nothing."""
    cls = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    inst = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    cls[0, 0, 1, 1:3], inst[0, 0, 1, 1:3] = 2, 5
    return torch.zeros(2, 3, 4, 4, dtype=torch.float64), cls, inst


# The single instance's loss with zero logits (p = 1/3 everywhere, nothing masked): 1 - (2/3) / (2 + 16/3).
ONE_INSTANCE = _dice(2 / 3, 16 / 3, 2)


@pytest.mark.parametrize("implementation", ["fused", "loop"])
@pytest.mark.parametrize(
    ("class_reduction", "expected"),
    [
        ("paper", ONE_INSTANCE / 2),  # Eq. 3: (0 + class-2 term) / C with C = 2
        ("present", ONE_INSTANCE),  # mean over the classes present in the element: class 2 only
    ],
)
def test_class_reduction_hand_case(implementation, class_reduction, expected):
    # element 1 has no instance: it is left out of the mean over elements under both reductions
    logits, cls, inst = _one_class_present()
    loss_fn = MultiClassBlobLoss("dice", alpha=0.0, implementation=implementation, class_reduction=class_reduction)
    assert float(loss_fn(logits, inst, class_map=cls)) == pytest.approx(expected, rel=1e-12)


def test_class_reduction_default_is_paper_and_equal_when_every_class_is_present():
    assert MultiClassBlobLoss().class_reduction.value == "paper"
    cls, inst = _hand_maps()  # both classes have instances: the two reductions agree
    logits = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    paper = MultiClassBlobLoss("dice", alpha=0.0, class_reduction="paper")(logits, inst, class_map=cls)
    present = MultiClassBlobLoss("dice", alpha=0.0, class_reduction="present")(logits, inst, class_map=cls)
    assert float(paper) == pytest.approx(float(present), rel=1e-12) == pytest.approx(HAND_BLOB, rel=1e-12)
    with pytest.raises(ValueError, match=r"class_reduction='mean' is not supported; use one of \['paper', 'present'\]"):
        MultiClassBlobLoss(class_reduction="mean")


def test_old_call_order_warns_and_gives_the_same_loss():
    cls, inst = _hand_maps()
    logits = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    loss_fn = MultiClassBlobLoss("dice")
    new = loss_fn(logits, inst, class_map=cls)
    with pytest.warns(DeprecationWarning, match=r"loss.forward\(logits, instances, class_map=class_map\)"):
        old = loss_fn(logits, cls, inst)
    assert float(old) == float(new)
    with pytest.warns(DeprecationWarning, match=r"components\(logits, instances, class_map=class_map\)"):
        old_parts = loss_fn.components(logits, cls, inst)
    assert float(old_parts.total) == float(new)
    with pytest.raises(TypeError, match=r"needs the class map as a keyword: loss.forward\(logits, instances, class_map"):
        loss_fn(logits, inst)


def test_old_criterion_keywords_warn_and_match_settings():
    from blobloss.losses import CriterionSettings

    cls, inst = _hand_maps()
    logits = torch.randn(1, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning, match=r"criterion_settings=CriterionSettings\(tversky_alpha=0.5\)"):
        old = MultiClassBlobLoss("tversky", tversky_alpha=0.5)
    new = MultiClassBlobLoss("tversky", criterion_settings=CriterionSettings(tversky_alpha=0.5))
    assert old.criterion_settings == new.criterion_settings
    assert float(old(logits, inst, class_map=cls)) == float(new(logits, inst, class_map=cls))


@pytest.mark.parametrize("implementation", ["fused", "loop"])
@pytest.mark.parametrize("criterion", ["dice", "tversky", "bce"])
def test_empty_batch_gives_zero_with_grad(implementation, criterion):
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    empty = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    loss_fn = MultiClassBlobLoss(criterion, implementation=implementation)
    total, global_term, blob_term = loss_fn.components(logits, empty, class_map=empty)
    assert float(blob_term.detach()) == 0.0
    assert blob_term.requires_grad
    total.backward()
    assert torch.isfinite(logits.grad).all()
    assert float(total.detach()) == pytest.approx(2 * float(global_term.detach()))


def test_beta_zero_and_alpha_zero():
    cls, inst = _hand_maps()
    logits = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    only_global = MultiClassBlobLoss("dice", alpha=1.0, beta=0.0).components(logits, inst, class_map=cls)
    assert only_global.blob_term is None and float(only_global.total) == pytest.approx(HAND_GLOBAL)
    only_blob = MultiClassBlobLoss("dice", alpha=0.0, beta=1.0).components(logits, inst, class_map=cls)
    assert only_blob.global_term is None and float(only_blob.total) == pytest.approx(HAND_BLOB)


# ----------------------------------------------------------------------------------------- global term
@pytest.mark.parametrize(
    ("criterion", "monai_loss"),
    [
        ("dice", DiceLoss(softmax=True, to_onehot_y=True, include_background=False)),
        ("tversky", TverskyLoss(softmax=True, to_onehot_y=True, include_background=False, alpha=0.3, beta=0.7)),
    ],
)
@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_global_term_matches_monai(criterion, monai_loss, implementation):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 5, dtype=torch.float64, generator=generator)
    cls = torch.randint(0, 4, (2, 1, 6, 5), generator=generator)
    loss_fn = MultiClassBlobLoss(criterion, implementation=implementation, check_inputs=False)
    global_term = loss_fn.components(logits, cls, class_map=cls).global_term
    assert float(global_term) == pytest.approx(float(monai_loss(logits, cls)), rel=1e-10)


def test_global_bce_is_mean_over_foreground_channels():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 5, 5, dtype=torch.float64, generator=generator)
    cls = torch.randint(0, 3, (2, 1, 5, 5), generator=generator)
    probs = torch.softmax(logits, 1)
    onehot = torch.nn.functional.one_hot(cls[:, 0], 3).movedim(-1, 1).double()
    per_class = [torch.nn.functional.binary_cross_entropy(probs[:, c], onehot[:, c]) for c in (1, 2)]
    expected = float(torch.stack(per_class).mean())
    for implementation in ("fused", "loop"):
        loss_fn = MultiClassBlobLoss("bce", implementation=implementation, check_inputs=False)
        assert float(loss_fn.components(logits, cls, class_map=cls).global_term) == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------------------- random comparisons
def _random_case(shape: tuple[int, ...], n_classes: int, seed: int, dtype=torch.float32):
    """Random logits (B, C+1, *shape), a blobby class map and per-class cc3d instances (B, 1, *shape)."""
    rng = np.random.default_rng(seed)
    batch = 2
    cls = np.zeros((batch, *shape), dtype=np.int64)
    inst = np.zeros((batch, *shape), dtype=np.int64)
    for b in range(batch):
        noise = rng.random(shape)
        cls[b] = np.where(noise > 0.75, rng.integers(1, n_classes + 1, size=shape), 0)
        for c in range(1, n_classes + 1):
            labels = cc3d.connected_components((cls[b] == c).astype(np.uint8))
            inst[b][cls[b] == c] = labels[cls[b] == c]
    logits = torch.from_numpy(rng.normal(size=(batch, n_classes + 1, *shape))).to(dtype)
    return logits, torch.from_numpy(cls)[:, None], torch.from_numpy(inst)[:, None]


@pytest.mark.parametrize("criterion", ["dice", "tversky", "bce"])
@pytest.mark.parametrize(("shape", "n_classes"), [((10, 9), 2), ((6, 5, 4), 3)])
@pytest.mark.parametrize("masking", [True, False])
def test_fused_matches_loop(criterion, shape, n_classes, masking):
    logits, cls, inst = _random_case(shape, n_classes, seed=len(shape) * 10 + n_classes)
    assert int(inst.max()) > 1  # several instances per class, so masking matters
    results = []
    for implementation in ("fused", "loop"):
        x = logits.clone().requires_grad_(True)
        loss_fn = MultiClassBlobLoss(criterion, masking=masking, implementation=implementation)
        total, global_term, blob_term = loss_fn.components(x, inst, class_map=cls)
        (grad,) = torch.autograd.grad(total, x)
        results.append((total.detach(), global_term.detach(), blob_term.detach(), grad))
    for fused, loop in zip(*results):
        torch.testing.assert_close(fused, loop, rtol=1e-6, atol=1e-6)


def test_custom_callable_uses_loop_and_matches_builtin():
    logits, cls, inst = _random_case((7, 7), 2, seed=3, dtype=torch.float64)
    custom = MultiClassBlobLoss(DiceLoss(sigmoid=False))
    assert custom.implementation.value == "loop"
    builtin = MultiClassBlobLoss("dice")
    assert float(custom(logits, inst, class_map=cls)) == pytest.approx(float(builtin(logits, inst, class_map=cls)), rel=1e-10)


@pytest.mark.parametrize("criterion", ["dice", "tversky", "bce"])
def test_single_class_equals_binary_blob_loss(criterion):
    # softmax over (x0, x1) gives p1 = sigmoid(x1 - x0): C = 1 must equal the binary loss on x1 - x0.
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 2, 6, 6, 4, dtype=torch.float64, generator=generator)
    inst = torch.zeros(2, 1, 6, 6, 4, dtype=torch.long)
    inst[0, 0, :2, :2, :2], inst[0, 0, 4:, 4:, 2:] = 1, 3
    inst[1, 0, 2:4, 1:3, 1:3] = 2
    cls = (inst > 0).long()
    multi = MultiClassBlobLoss(criterion).components(logits, inst, class_map=cls)
    binary = BlobLoss(criterion).components(logits[:, 1:2] - logits[:, 0:1], inst)
    for m, b in zip(multi, binary):
        assert float(m) == pytest.approx(float(b), rel=1e-9)


def test_float_maps_with_whole_numbers_are_accepted():
    cls, inst = _hand_maps()
    logits = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    loss = MultiClassBlobLoss("dice", alpha=0.0)(logits, inst.float(), class_map=cls.float())
    assert float(loss) == pytest.approx(HAND_BLOB, rel=1e-12)


# ---------------------------------------------------------------------------------------------- errors
def _ok_inputs():
    cls, inst = _hand_maps()
    return torch.zeros(1, 3, 4, 4), cls, inst


def _with(**changes):
    logits, cls, inst = _ok_inputs()
    values = {"logits": logits, "class_map": cls, "instances": inst}
    for key, fn in changes.items():
        values[key] = fn(values[key])
    return values


@pytest.mark.parametrize(
    ("inputs", "exc", "match"),
    [
        (_with(logits=lambda x: x[:, :1]), ValueError, "C \\+ 1 >= 2"),
        (_with(logits=lambda x: x[:, :2]), ValueError, "class_map contains class 2 .* 3 output channels"),
        (_with(logits=lambda x: x[0, 0]), ValueError, r"\(B, C \+ 1, \*spatial\)"),
        (_with(logits=lambda x: x.long()), TypeError, "floating point"),
        (_with(logits=lambda x: x.index_put((torch.tensor(0),), torch.tensor(float("nan")))), ValueError, "NaN"),
        (_with(instances=lambda t: t[:, 0]), ValueError, r"unsqueeze\(1\)"),
        (_with(class_map=lambda t: t[..., :3]), ValueError, "class_map .* must have shape"),
        (_with(instances=lambda t: t > 0), TypeError, "instances is a bool tensor"),
        (_with(class_map=lambda t: t.float() + 0.5), ValueError, "class_map is a float tensor with non-integer"),
        (_with(instances=lambda t: t.float() * 1.5), ValueError, "instances is a float tensor with non-integer"),
        (_with(class_map=lambda t: t - 1), ValueError, "class_map contains negative ids"),
        (_with(instances=lambda t: torch.where(t == 2, -3, t)), ValueError, "instances contains negative ids"),
        (_with(instances=lambda t: torch.where(t == 2, 0, t)), ValueError, "1 foreground voxels .* instance id 0"),
        (_with(class_map=lambda t: torch.where(t == 2, 0, t)), ValueError, "3 voxels have an instance id but class 0"),
    ],
)
def test_input_errors(inputs, exc, match):
    with pytest.raises(exc, match=match):
        MultiClassBlobLoss("dice")(**inputs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"criterion": "focal"}, ValueError, "criterion='focal' is not supported"),
        ({"criterion": 3}, TypeError, "callable"),
        ({"criterion": DiceLoss(), "implementation": "fused"}, ValueError, "built-in criterion"),
        ({"implementation": "fast"}, ValueError, "implementation='fast'"),
        ({"alpha": 0.0, "beta": 0.0}, ValueError, "both 0"),
        ({"alpha": -1.0}, ValueError, "alpha=-1.0"),
        ({"criterion_settings": None, "smooth_dr": float("nan")}, ValueError, "smooth_dr"),
        ({"class_reduction": "all"}, ValueError, "class_reduction='all'"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MultiClassBlobLoss(**kwargs)
