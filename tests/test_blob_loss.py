"""Unit tests of the binary blob loss: hand-checked values, fused == loop, terms, options, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from monai.losses import DiceLoss, TverskyLoss

from blobloss.losses import BlobLoss, BlobLossComponents, Criterion, fused_instance_losses, loop_instance_losses
from blobloss.losses import blob as blob_module
from blobloss.losses.criteria import Implementation, MaskSpace, dice_from_sums, parse_option, tversky_from_sums
from blobloss.losses.settings import CriterionSettings

NO_SMOOTHING = CriterionSettings(smooth_nr=0.0, smooth_dr=0.0)


def _random_instances(shape: tuple[int, ...], ids: list[int], fraction: float, seed: int) -> torch.Tensor:
    """Instance map whose voxels are, with probability ``fraction``, a random id from ``ids``."""
    gen = torch.Generator().manual_seed(seed)
    pick = torch.tensor(ids)[torch.randint(0, len(ids), shape, generator=gen)]
    return torch.where(torch.rand(shape, generator=gen) < fraction, pick, torch.zeros((), dtype=torch.long))


def _two_instances_4x4() -> tuple[torch.Tensor, torch.Tensor]:
    """One 2D element of 4x4 voxels, p = 0.5 everywhere, instances 3 and 7 of one voxel each."""
    logits = torch.zeros(1, 1, 4, 4)
    inst = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    inst[..., 0, 0], inst[..., 3, 3] = 3, 7
    return logits, inst


# ----------------------------------------------------------------------------- hand-checkable values
# 16 voxels, p = 0.5, instances of one voxel each; no smoothing.
# Probability masking: S_n = 0.5, S_bg = 7 -> dice_n = 1 - 1 / (1 + 0.5 + 7) = 1 - 1/8.5.
# Logit masking: the other instance counts 0.5 -> 1 - 1 / (1 + 0.5 + 7 + 0.5) = 1 - 1/9.
# No masking: sum p = 8 -> 1 - 1 / 9.
# Tversky (0.3, 0.7): TP = 0.5, FP = 7 (+0.5 logits/no mask), FN = 0.5.
# BCE per instance (mean over 16 voxels): -log .5 on instance n and on the 14 background voxels;
# the masked voxel contributes 0 (probabilities), log 2 (logits, no masking).
HAND_CASES = [
    ("dice", "probabilities", True, 1 - 1 / 8.5),
    ("dice", "logits", True, 1 - 1 / 9),
    ("dice", "probabilities", False, 1 - 1 / 9),
    ("tversky", "probabilities", True, 1 - 0.5 / (0.5 + 0.3 * 7 + 0.7 * 0.5)),
    ("tversky", "logits", True, 1 - 0.5 / (0.5 + 0.3 * 7.5 + 0.7 * 0.5)),
    ("tversky", "probabilities", False, 1 - 0.5 / (0.5 + 0.3 * 7.5 + 0.7 * 0.5)),
    ("bce", "probabilities", True, 15 * math.log(2) / 16),
    ("bce", "logits", True, math.log(2)),
    ("bce", "probabilities", False, math.log(2)),
]


@pytest.mark.parametrize(("criterion", "mask_space", "masking", "expected"), HAND_CASES)
@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_blob_term_hand_values(criterion, mask_space, masking, expected, implementation):
    logits, inst = _two_instances_4x4()
    loss = BlobLoss(
        criterion, mask_space=mask_space, masking=masking, implementation=implementation, criterion_settings=NO_SMOOTHING
    )
    parts = loss.components(logits, inst)
    assert float(parts.blob_term) == pytest.approx(expected, rel=1e-6)


def test_fused_instance_losses_interface():
    logits, inst = _two_instances_4x4()
    probs = torch.sigmoid(logits[:, 0]).repeat(2, 1, 1)
    inst = torch.cat([inst[:, 0], torch.zeros_like(inst[:, 0])])  # second element has no instance
    loss, has = fused_instance_losses(probs, inst, "dice", criterion_settings=NO_SMOOTHING)
    assert loss.shape == (2,) and has.tolist() == [True, False]
    assert loss.tolist() == pytest.approx([1 - 1 / 8.5, 0.0])
    loss_hint, _ = fused_instance_losses(probs, inst, Criterion.DICE, criterion_settings=NO_SMOOTHING, max_id=7)
    assert torch.equal(loss_hint, loss)


def test_fused_bce_uses_logits_when_given():
    # One element of 4 voxels: instance 1 at x = -120 (p underflows to 0 in float32), instance 2 at x = 0,
    # background at x = -30 and x = 2. Masked voxels (the other instance) contribute 0.
    x = torch.tensor([[-120.0, -30.0, 0.0, 2.0]])
    inst = torch.tensor([[1, 0, 2, 0]])
    background = math.log1p(math.exp(-30.0)) + math.log1p(math.exp(2.0))  # -log(1 - p) = softplus(x)
    inst1 = (120.0 + background) / 4  # -log p = softplus(-x) = 120
    inst2 = (math.log(2) + background) / 4
    from_logits, _ = fused_instance_losses(torch.sigmoid(x), inst, "bce", logits=x)
    assert float(from_logits[0]) == pytest.approx((inst1 + inst2) / 2, rel=1e-6)
    # From probabilities alone torch's BCE clamps -log p at 100 (the loop reference does the same).
    from_probs, _ = fused_instance_losses(torch.sigmoid(x), inst, "bce")
    assert float(from_probs[0]) == pytest.approx(((100.0 + background) / 4 + inst2) / 2, rel=1e-6)
    loop = loop_instance_losses(x.view(1, 1, 4), inst.view(1, 1, 4), torch.nn.functional.binary_cross_entropy)
    assert float(torch.stack(loop[0]).mean()) == pytest.approx(float(from_probs[0]), rel=1e-6)


def test_fused_instance_losses_shape_error():
    with pytest.raises(ValueError, match=r"probs \(1, 4\) and instances \(1, 5\)"):
        fused_instance_losses(torch.rand(1, 4), torch.zeros(1, 5, dtype=torch.long), "dice")
    with pytest.raises(TypeError, match="integer tensor of instance ids, got torch.float32"):
        fused_instance_losses(torch.rand(1, 4), torch.zeros(1, 4), "dice")
    with pytest.raises(ValueError, match="criterion='focal'"):
        fused_instance_losses(torch.rand(1, 4), torch.zeros(1, 4, dtype=torch.long), "focal")


def test_criteria_closed_forms():
    t = torch.tensor
    assert float(dice_from_sums(t(2.0), t(4.0), t(4.0), 0.0, 0.0)) == pytest.approx(0.5)
    assert float(tversky_from_sums(t(1.0), t(2.0), t(3.0), 0.3, 0.7, 0.0, 0.0)) == pytest.approx(1 - 1 / 3.7)
    assert parse_option("TVERSKY", Criterion, "criterion") is Criterion.TVERSKY
    assert parse_option(MaskSpace.LOGITS, MaskSpace, "mask_space") is MaskSpace.LOGITS


# ------------------------------------------------------------------------------- fused == loop
AGREEMENT_CASES = [
    # (shape, ids, fraction, empty_elements)
    ((2, 1, 6, 7, 5), [3, 17], 0.3, [0]),  # 3D, one element without instances, non-contiguous ids
    ((3, 1, 9, 8), [1, 2, 5, 1000], 0.4, []),  # 2D, B = 3, large id
    ((1, 1, 5, 5, 4), [1], 1.0, []),  # all foreground: no background voxel
    ((2, 1, 8, 6), [4], 0.05, [1]),  # sparse single id
]


@pytest.mark.parametrize(("shape", "ids", "fraction", "empty"), AGREEMENT_CASES)
@pytest.mark.parametrize(
    ("criterion", "mask_space", "masking"),
    list(itertools.product(["dice", "tversky", "bce"], ["probabilities", "logits"], [True, False])),
)
def test_fused_matches_loop(shape, ids, fraction, empty, criterion, mask_space, masking):
    inst = _random_instances(shape, ids, fraction, seed=len(ids))
    inst[empty] = 0
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(1), requires_grad=True)
    results = {}
    for impl in ("fused", "loop"):
        loss = BlobLoss(criterion, mask_space=mask_space, masking=masking, implementation=impl)
        total, global_term, blob_term = loss.components(logits, inst)
        (grad,) = torch.autograd.grad(total, logits)
        (grad_blob,) = torch.autograd.grad(loss.components(logits, inst).blob_term, logits)
        results[impl] = (total, global_term, blob_term, grad, grad_blob)
    for fused, loop in zip(results["fused"], results["loop"]):
        torch.testing.assert_close(fused, loop, rtol=1e-6, atol=1e-6)


def test_fused_matches_loop_float64_and_running_mean():
    shape = (3, 1, 6, 5, 4)
    inst = _random_instances(shape, [2, 3, 9], 0.3, seed=3)
    logits = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for crit, running in itertools.product(["dice", "tversky", "bce"], [False, True]):
        values = [
            BlobLoss(crit, implementation=impl, published_running_mean=running)(logits, inst)
            for impl in ("fused", "loop")
        ]
        torch.testing.assert_close(values[0], values[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("force", [False, True])
def test_id_compaction_matches_loop(monkeypatch, force):
    shape = (2, 1, 6, 6, 3)
    ids = [2, 9] if force else [5, 70_000, 4_000_000_000]  # huge ids are compacted (torch.unique) anyway
    inst = _random_instances(shape, ids, 0.3, seed=4)
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    if force:
        monkeypatch.setattr(blob_module, "_TABLE_MIN", 1)
        monkeypatch.setattr(blob_module, "_TABLE_FRACTION", 10**9)
    calls = []
    original = blob_module._compact_ids
    monkeypatch.setattr(blob_module, "_compact_ids", lambda x: calls.append(1) or original(x))
    for crit in ("dice", "bce"):
        compact = BlobLoss(crit, published_running_mean=True).components(logits, inst)
        loop = BlobLoss(crit, implementation="loop", published_running_mean=True).components(logits, inst)
        for got, expected in zip(compact, loop):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert calls


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint32, torch.float32]
)
def test_instance_dtypes_give_the_same_loss(dtype):
    shape = (2, 1, 5, 6, 4)
    inst = _random_instances(shape, [1, 2, 9], 0.3, seed=6)
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    expected = BlobLoss()(logits, inst)
    assert torch.equal(BlobLoss()(logits, inst.to(dtype)), expected)


def test_spread_bins_do_not_change_the_result(monkeypatch):
    shape = (2, 1, 7, 5, 33)
    inst = _random_instances(shape, [1, 2, 3], 0.2, seed=8)
    logits = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    spread = BlobLoss("bce")(logits, inst)
    monkeypatch.setattr(blob_module, "_SPREAD", 1)
    torch.testing.assert_close(BlobLoss("bce")(logits, inst), spread, rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------------------------- the terms
@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_global_term_is_monai(implementation):
    shape = (3, 1, 6, 5, 4)
    inst = _random_instances(shape, [1, 4], 0.3, seed=10)
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    target = (inst > 0).float()
    expected = {
        "dice": DiceLoss(sigmoid=True)(logits, target),
        "tversky": TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)(logits, target),
        "bce": torch.nn.functional.binary_cross_entropy_with_logits(logits, target),
    }
    for crit, value in expected.items():
        got = BlobLoss(crit, implementation=implementation).components(logits, inst).global_term
        torch.testing.assert_close(got, value, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_total_combines_terms_and_zero_weights_skip(implementation):
    shape = (2, 1, 6, 6)
    inst = _random_instances(shape, [1, 2], 0.3, seed=12)
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(13))
    both = BlobLoss(alpha=3.0, beta=0.5, implementation=implementation).components(logits, inst)
    assert isinstance(both, BlobLossComponents)
    torch.testing.assert_close(both.total, 3.0 * both.global_term + 0.5 * both.blob_term)
    only_blob = BlobLoss(alpha=0.0, beta=1.0, implementation=implementation).components(logits, inst)
    assert only_blob.global_term is None
    torch.testing.assert_close(only_blob.total, both.blob_term)
    only_global = BlobLoss(alpha=1.0, beta=0.0, implementation=implementation).components(logits, inst)
    assert only_global.blob_term is None
    torch.testing.assert_close(only_global.total, both.global_term)


@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_elements_without_instances_are_left_out_of_the_mean(implementation):
    logits, inst = _two_instances_4x4()
    single = BlobLoss(implementation=implementation).components(logits, inst).blob_term
    batch_logits = torch.cat([logits, torch.randn(2, 1, 4, 4)])
    batch_inst = torch.cat([inst, torch.zeros(2, 1, 4, 4, dtype=torch.long)])
    batch = BlobLoss(implementation=implementation).components(batch_logits, batch_inst).blob_term
    torch.testing.assert_close(batch, single)


@pytest.mark.parametrize("implementation", ["fused", "loop"])
@pytest.mark.parametrize("criterion", ["dice", "tversky", "bce"])
def test_no_instances_gives_zero_that_backpropagates(implementation, criterion):
    logits = torch.randn(2, 1, 5, 5, 3, requires_grad=True)
    inst = torch.zeros(2, 1, 5, 5, 3, dtype=torch.long)
    blob = BlobLoss(criterion, alpha=0.0, implementation=implementation)(logits, inst)
    assert blob.requires_grad and blob.detach().item() == 0.0
    blob.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_published_running_mean_by_hand(implementation):
    # One element, two instances of different size: l1 (id 1) and l2 (id 5).
    logits = torch.zeros(1, 1, 4, 4)
    inst = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    inst[..., 0, 0] = 1
    inst[..., 2:, 2:] = 5
    losses = loop_instance_losses(logits, inst, DiceLoss())[0]
    l1, l2 = float(losses[0]), float(losses[1])
    assert l1 != pytest.approx(l2)
    clean = BlobLoss(alpha=0, implementation=implementation)(logits, inst)
    buggy = BlobLoss(alpha=0, implementation=implementation, published_running_mean=True)(logits, inst)
    assert float(clean) == pytest.approx((l1 + l2) / 2, rel=1e-6)
    assert float(buggy) == pytest.approx((l1 + (l1 + l2) / 2) / 2, rel=1e-6)


@pytest.mark.parametrize("criterion", ["dice", "tversky", "bce"])
def test_absent_ids_do_not_poison_gradients_without_smoothing(criterion):
    # Element 0: instance 1 and a background with p = sigmoid(-200) = 0 exactly; id 2 exists only in
    # element 1. Without smoothing the unused (element 0, id 2) entry is 0 / 0, and its zero-weighted
    # gradient must not reach the background voxels as NaN.
    logits = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(18))
    inst = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    inst[0, 0, 0] = 1
    logits[0, 0, 1:] = -200.0
    inst[1, 0, 1, 1] = 2
    logits.requires_grad_(True)
    results = []
    for impl in ("fused", "loop"):
        loss = BlobLoss(criterion, alpha=0.0, criterion_settings=NO_SMOOTHING, implementation=impl)(logits, inst)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), impl
        results.append((loss, grad))
    torch.testing.assert_close(results[0], results[1])


def test_custom_criterion_uses_the_loop_and_matches_builtin():
    shape = (2, 1, 5, 6, 3)
    inst = _random_instances(shape, [2, 8], 0.3, seed=14)
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(15))
    custom = BlobLoss(DiceLoss(sigmoid=False))
    assert custom.implementation is Implementation.LOOP
    torch.testing.assert_close(custom(logits, inst), BlobLoss("dice")(logits, inst), rtol=1e-6, atol=1e-6)

    def l1(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (probs - target).abs().mean()

    total = BlobLoss(l1, alpha=1.0, beta=1.0)(logits, inst)
    assert torch.isfinite(total)


def test_last_components_are_detached():
    logits = torch.randn(1, 1, 4, 4, requires_grad=True)
    _, inst = _two_instances_4x4()
    loss_fn = BlobLoss()
    assert loss_fn.last_components is None
    loss = loss_fn(logits, inst)
    parts = loss_fn.last_components
    assert parts is not None and not parts.total.requires_grad and torch.equal(parts.total, loss.detach())
    assert "criterion='dice'" in repr(loss_fn)


def test_max_instance_id_hint_without_checks():
    shape = (2, 1, 5, 5)
    inst = _random_instances(shape, [1, 6], 0.3, seed=16)
    logits = torch.randn(shape)
    hinted = BlobLoss(max_instance_id=10, check_inputs=False)(logits, inst)
    torch.testing.assert_close(hinted, BlobLoss()(logits, inst))
    with pytest.raises(ValueError, match=r"id 6 > max_instance_id=3"):
        BlobLoss(max_instance_id=3)(logits, inst)


@pytest.mark.slow
def test_compile_matches_eager():
    shape = (2, 1, 8, 8, 4)
    inst = _random_instances(shape, [1, 3], 0.3, seed=17)
    logits = torch.randn(shape)
    torch.testing.assert_close(BlobLoss(compile=True)(logits, inst), BlobLoss()(logits, inst))


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": -1.0}, r"alpha=-1.0 must be a finite number >= 0"),
        ({"beta": float("nan")}, r"beta=nan must be a finite number >= 0"),
        ({"alpha": 0.0, "beta": 0.0}, "both 0"),
        ({"criterion": "focal"}, r"criterion='focal' is not supported; use one of \['dice', 'tversky', 'bce'\]"),
        ({"mask_space": "voxels"}, r"mask_space='voxels' is not supported; use one of \['probabilities', 'logits'\]"),
        ({"implementation": "fast"}, r"implementation='fast' is not supported; use one of \['auto', 'fused', 'loop'\]"),
        ({"criterion": DiceLoss(), "implementation": "fused"}, "implementation='fused' needs a built-in criterion"),
        ({"criterion_settings": {"smooth_nr": -1e-5}}, r"smooth_nr=-1e-05 must be"),
        ({"max_instance_id": -2}, r"max_instance_id=-2 must be None or an integer >= 0"),
    ],
)
def test_init_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlobLoss(**kwargs)


def test_init_rejects_non_callable_criterion():
    with pytest.raises(TypeError, match="must be one of"):
        BlobLoss(criterion=3)


def _inputs(shape=(2, 1, 4, 4, 3)):
    return torch.randn(shape), torch.zeros(shape, dtype=torch.long)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: (torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 5, dtype=torch.long)), ValueError,
         r"instances \(2, 1, 4, 5\) must have shape \(2, 1, 4, 4\) \(B, 1, \*spatial\) to match logits \(2, 1, 4, 4\)"),
        (lambda: (torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)), ValueError,
         r"instances.unsqueeze\(1\)"),
        (lambda: (torch.randn(2, 3, 4, 4), torch.zeros(2, 3, 4, 4, dtype=torch.long)), ValueError,
         r"logits \(2, 3, 4, 4\) have 3 channels, but this loss is binary and needs 1 sigmoid channel.*multi-class"),
        (lambda: (torch.randn(4, 4), torch.zeros(4, 4, dtype=torch.long)), ValueError, r"\(B, 1, \*spatial\)"),
        (lambda: (torch.zeros(2, 1, 4, 4, dtype=torch.long), torch.zeros(2, 1, 4, 4, dtype=torch.long)), TypeError,
         "floating point"),
        (lambda: (torch.randn(1, 1, 4, 4), torch.full((1, 1, 4, 4), 1.5)), ValueError, "non-integer"),
        (lambda: (torch.randn(1, 1, 4, 4), torch.full((1, 1, 4, 4), float("nan"))), ValueError, "non-integer"),
        (lambda: (torch.randn(1, 1, 4, 4), torch.full((1, 1, 4, 4), -2)), ValueError, r"negative ids \(min -2\)"),
        (lambda: (torch.full((1, 1, 4, 4), float("nan")), torch.zeros(1, 1, 4, 4, dtype=torch.long)), ValueError,
         "NaN or Inf"),
        (lambda: (torch.full((1, 1, 4, 4), float("inf")), torch.zeros(1, 1, 4, 4, dtype=torch.long)), ValueError,
         "NaN or Inf"),
        (lambda: (torch.randn(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool)), TypeError,
         "cc3d.connected_components"),
        (lambda: (torch.randn(1, 1, 0, 4), torch.zeros(1, 1, 0, 4, dtype=torch.long)), ValueError, "empty"),
        (lambda: (torch.randn(1, 1, 4).numpy(), torch.zeros(1, 1, 4, dtype=torch.long)), TypeError, "logits must be a torch.Tensor, got ndarray"),
    ],
)
@pytest.mark.parametrize("implementation", ["fused", "loop"])
def test_forward_errors(make, error, match, implementation):
    logits, inst = make()
    with pytest.raises(error, match=match):
        BlobLoss(implementation=implementation)(logits, inst)


def test_float_instances_with_integer_values_are_accepted():
    logits, inst = _two_instances_4x4()
    torch.testing.assert_close(BlobLoss()(logits, inst.double()), BlobLoss()(logits, inst))
