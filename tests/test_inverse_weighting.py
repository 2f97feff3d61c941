"""Tests for the inverse weighting baseline (docs/definitions.md section 3)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from blobloss.losses.inverse_weighting import (
    InverseWeightingLoss,
    inverse_weight_map,
    weighted_asl_loss,
    weighted_bce_loss,
    weighted_dice_loss,
)

REFERENCE_NAME = "blob_loss_reference_vectors.npz"


def _reference_path() -> Path | None:
    """The reference vectors: tests/data/ if copied there, else the shared reference folder."""
    here = Path(__file__).resolve()
    for candidate in (here.parent / "data" / REFERENCE_NAME, here.parents[2] / "shared" / "reference" / REFERENCE_NAME):
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    path = _reference_path()
    if path is None:
        pytest.skip(f"{REFERENCE_NAME} not found in tests/data/ or ../shared/reference/")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _iw_cases() -> list[str]:
    path = _reference_path()
    if path is None:
        return []
    with np.load(path) as data:
        return sorted({key.split("/")[0] for key in data.files if "/iw/" in key})


IW_CASES = _iw_cases()


# --------------------------------------------------------------------------------------------- weight map
def _map(values: list[list[int]]) -> torch.Tensor:
    """A (1, 1, H, W) instance map from nested lists."""
    return torch.tensor(values, dtype=torch.long)[None, None]


@pytest.mark.parametrize(
    ("instances", "clip", "expected"),
    [
        # N = 8, K = 1: the 2-voxel blob gets 8 / (2 * 2) = 2, background 8 / (2 * 6) = 2/3 -> clipped to 1
        (_map([[5, 5, 0, 0], [0, 0, 0, 0]]), (1.0, 2e5), [[2, 2, 1, 1], [1, 1, 1, 1]]),
        # same without clipping
        (_map([[5, 5, 0, 0], [0, 0, 0, 0]]), None, [[2, 2, 2 / 3, 2 / 3], [2 / 3] * 4]),
        # N = 8, K = 2 (non-contiguous ids 3 and 9): 8 / (3 * 1), 8 / (3 * 3), background 8 / (3 * 4)
        (_map([[3, 9, 9, 9], [0, 0, 0, 0]]), None, [[8 / 3, 8 / 9, 8 / 9, 8 / 9], [8 / 12] * 4]),
        # an upper clip bound
        (_map([[3, 9, 9, 9], [0, 0, 0, 0]]), (1.0, 2.0), [[2, 1, 1, 1], [1, 1, 1, 1]]),
        # all background: N / N = 1, with and without clipping
        (_map([[0, 0], [0, 0]]), None, [[1, 1], [1, 1]]),
        (_map([[0, 0], [0, 0]]), (1.0, 2e5), [[1, 1], [1, 1]]),
        # all foreground, one instance: K = 1, N / (2 N) = 0.5
        (_map([[4, 4], [4, 4]]), None, [[0.5, 0.5], [0.5, 0.5]]),
    ],
)
def test_weight_map_hand_cases(instances, clip, expected):
    weights = inverse_weight_map(instances, clip=clip)
    assert weights.dtype == torch.float32
    assert weights.shape == instances.shape
    torch.testing.assert_close(weights[0, 0], torch.tensor(expected, dtype=torch.float32))


def test_weight_map_is_per_batch_element():
    inst = torch.zeros(3, 1, 2, 4, dtype=torch.int32)
    inst[1, 0, 0, 0] = 1  # element 1: N = 8, K = 1, |1| = 1 -> 4
    inst[2, 0, 0, :2] = 1  # element 2 reuses id 1 with 2 voxels -> 2 (ids are not shared across elements)
    weights = inverse_weight_map(inst, clip=None)
    assert torch.all(weights[0] == 1.0)
    assert weights[1, 0, 0, 0] == pytest.approx(4.0)
    assert weights[1, 0, 1, 0] == pytest.approx(8 / 14)
    assert weights[2, 0, 0, 0] == pytest.approx(2.0)
    assert weights[2, 0, 1, 0] == pytest.approx(8 / 12)


def test_weight_map_does_not_relabel_disconnected_ids():
    # id 1 appears in two separate places: still one component of 2 voxels (a crop keeps ids)
    weights = inverse_weight_map(_map([[1, 0, 0, 1]]), clip=None)
    assert weights[0, 0, 0, 0] == pytest.approx(4 / (2 * 2))


def test_weight_map_clips_large_weights_to_2e5():
    inst = torch.zeros(1, 1000, 1000, dtype=torch.int16)
    inst[0, 0, 0] = 1  # N = 1e6, K = 1 -> 1e6 / 2 = 5e5 > 2e5
    assert float(inverse_weight_map(inst).max()) == 2e5
    assert float(inverse_weight_map(inst, clip=None).max()) == 5e5


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64, torch.float32])
def test_weight_map_accepts_integer_dtypes(dtype):
    weights = inverse_weight_map(_map([[1, 0, 0, 0]]).to(dtype), clip=None)
    assert weights[0, 0, 0, 0] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("instances", "clip", "match"),
    [
        (torch.full((1, 1, 2, 2), 0.5), (1.0, 2e5), "non-integer"),
        (torch.tensor([[[[0, -1]]]]), (1.0, 2e5), r"negative ids \(min -1\)"),
        (torch.tensor([1, 2]), (1.0, 2e5), r"batch axis"),
        (torch.zeros(1, 1, 2, 2, dtype=torch.long), (2.0, 1.0), "w_min <= w_max"),
        (torch.zeros(1, 1, 2, 2, dtype=torch.long), (0.0, 1.0), "0 < w_min"),
        (torch.zeros(1, 1, 2, 2, dtype=torch.long), "big", "pair"),
    ],
)
def test_weight_map_errors(instances, clip, match):
    with pytest.raises(ValueError, match=match):
        inverse_weight_map(instances, clip=clip)


def test_weight_map_rejects_bool_maps_like_the_losses():
    with pytest.raises(TypeError, match="instances is a bool tensor .* cc3d.connected_components"):
        inverse_weight_map(torch.zeros(1, 1, 2, 2, dtype=torch.bool))


# ------------------------------------------------------------------------------------------- hand losses
# One element, 1 x 4 patch, instance at voxel 0: N = 4, K = 1 -> w = [2, 1, 1, 1] (background 2/3 -> 1).
# logits 0 -> p = 0.5 everywhere.
HAND_INST = torch.tensor([[[1, 0, 0, 0]]])
HAND_LOGITS = torch.zeros(1, 1, 4, dtype=torch.float64)
HAND_CASES = [
    # dice: 1 - 2 * (2 * 0.5) / (2 * (0.25 + 1) + 3 * 0.25)
    ("dice", 1 - 2.0 / 3.25),
    # bce: ln 2 * (2 + 1 + 1 + 1) / 4
    ("bce", math.log(2) * 5 / 4),
    # asl (beta 1.5): 1 - 3.25 * (2 * 0.5) / (2 * (2.25 + 0.25) + 3 * 0.25)
    ("asl", 1 - 3.25 / 5.75),
]


@pytest.mark.parametrize(("criterion", "expected"), HAND_CASES)
def test_loss_hand_cases(criterion, expected):
    loss = InverseWeightingLoss(criterion)(HAND_LOGITS, HAND_INST)
    assert loss.dim() == 0
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_batch_mean_of_per_element_dice():
    # element 0: the hand case; element 1 all background with p = 0.5: 1 - 0 / (4 * 0.25) = 1
    logits = torch.zeros(2, 1, 4, dtype=torch.float64)
    inst = torch.cat([HAND_INST, torch.zeros_like(HAND_INST)])
    loss = InverseWeightingLoss("dice")(logits, inst)
    assert float(loss) == pytest.approx(((1 - 2.0 / 3.25) + 1.0) / 2, rel=1e-12)


def test_all_background_batch_is_finite_with_grad():
    logits = torch.randn(2, 1, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    inst = torch.zeros(2, 1, 3, 3, 2, dtype=torch.long)
    for criterion in ("dice", "bce", "asl"):
        loss = InverseWeightingLoss(criterion)(logits, inst)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert float(InverseWeightingLoss("dice")(logits.detach(), inst)) == pytest.approx(1.0)


def test_functional_unweighted_equals_weight_one():
    logits = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    target = (torch.rand(2, 1, 4, 4) > 0.5).double()
    ones = torch.ones_like(logits)
    assert float(weighted_dice_loss(logits, target)) == pytest.approx(float(weighted_dice_loss(logits, target, ones)))
    dice = float(weighted_dice_loss(logits, target))
    assert float(weighted_asl_loss(logits, target, beta=1.0)) == pytest.approx(dice)
    expected_bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert float(weighted_bce_loss(logits, target)) == pytest.approx(float(expected_bce))


def test_criterion_name_is_case_insensitive():
    loss = InverseWeightingLoss(" Dice ")(HAND_LOGITS, HAND_INST)
    assert float(loss) == pytest.approx(HAND_CASES[0][1], rel=1e-12)


def test_nan_check_can_be_disabled():
    logits = torch.tensor([[[0.0, float("nan"), 0.0, 0.0]]])
    assert torch.isnan(InverseWeightingLoss(check_inputs=False)(logits, HAND_INST))


def test_custom_callable_and_precomputed_weight():
    seen = {}

    def crit(logits, target, weight):
        seen["target"], seen["weight"] = target, weight
        return (weight * logits).sum()

    loss_fn = InverseWeightingLoss(crit)
    logits = torch.ones(1, 1, 4, dtype=torch.float64)
    loss = loss_fn(logits, HAND_INST)
    assert float(loss) == pytest.approx(2 + 1 + 1 + 1)
    torch.testing.assert_close(seen["target"], torch.tensor([[[1.0, 0.0, 0.0, 0.0]]], dtype=torch.float64))
    assert seen["weight"].dtype == torch.float64
    # a precomputed weight map is used as given
    loss = loss_fn(logits, HAND_INST, weight=torch.full((1, 1, 4), 3.0))
    assert float(loss) == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"criterion": "tversky"}, ValueError, "criterion must be one of"),
        ({"criterion": 3}, TypeError, "callable"),
        ({"clip": (5.0, 1.0)}, ValueError, "w_min <= w_max"),
        ({"asl_beta": 0.0}, ValueError, "asl_beta"),
        ({"eps": -1.0}, ValueError, "eps"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        InverseWeightingLoss(**kwargs)


@pytest.mark.parametrize(
    ("logits", "instances", "exc", "match"),
    [
        (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4, dtype=torch.long), ValueError, "needs 1 sigmoid channel"),
        (torch.zeros(4, 4), torch.zeros(4, 4, dtype=torch.long), ValueError, r"\(B, 1, \*spatial\)"),
        (torch.zeros(1, 1, 4), torch.zeros(1, 1, 5, dtype=torch.long), ValueError, "must have shape"),
        (torch.zeros(1, 1, 4, dtype=torch.long), torch.zeros(1, 1, 4, dtype=torch.long), TypeError, "floating point"),
        (torch.zeros(1, 1, 4), torch.full((1, 1, 4), 1.5), ValueError, "non-integer"),
        (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4, dtype=torch.bool), TypeError, "bool tensor"),
        (torch.zeros(1, 1, 4), torch.zeros(1, 4, dtype=torch.long), ValueError, r"unsqueeze\(1\)"),
        (torch.tensor([[[0.0, float("nan"), 0.0, 0.0]]]), torch.zeros(1, 1, 4, dtype=torch.long), ValueError,
         "NaN or Inf"),
        (torch.zeros(1, 1, 4), torch.tensor([[[0, -2, 0, 0]]]), ValueError, "negative ids"),
    ],
)
def test_forward_errors(logits, instances, exc, match):
    with pytest.raises(exc, match=match):
        InverseWeightingLoss()(logits, instances)


def test_forward_rejects_wrong_weight_shape():
    with pytest.raises(ValueError, match=r"weight \(1, 1, 3\) must have the shape of logits"):
        InverseWeightingLoss()(HAND_LOGITS, HAND_INST, weight=torch.ones(1, 1, 3))


def test_components_and_last_components():
    loss_fn = InverseWeightingLoss("dice")
    assert loss_fn.last_components is None
    total, weighted, blob = loss_fn.components(HAND_LOGITS, HAND_INST)
    assert blob is None and weighted is total
    assert float(loss_fn(HAND_LOGITS, HAND_INST)) == float(total)
    assert float(loss_fn.last_components.total) == float(total)
    assert not loss_fn.last_components.total.requires_grad


# ------------------------------------------------------------------------------------- reference vectors
def _grad_close(actual: torch.Tensor, expected: np.ndarray) -> None:
    """Reference gradients are stored as float32: compare to float32 precision of their scale."""
    expected_t = torch.from_numpy(expected).to(actual.dtype)
    scale = float(expected_t.abs().max()) or 1.0
    torch.testing.assert_close(actual, expected_t, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.skipif(not IW_CASES, reason="reference vectors not available")
@pytest.mark.parametrize("case", IW_CASES)
def test_reference_weight_map(reference, case):
    instances = torch.from_numpy(reference[f"{case}/labels"])
    weights = inverse_weight_map(instances)
    np.testing.assert_array_equal(weights.numpy(), reference[f"{case}/iw/iw_weight"])


@pytest.mark.skipif(not IW_CASES, reason="reference vectors not available")
@pytest.mark.parametrize("case", IW_CASES)
@pytest.mark.parametrize(("criterion", "key"), [("dice", "iwdl"), ("bce", "iwbce"), ("asl", "iwasl")])
def test_reference_losses_float64(reference, case, criterion, key):
    logits = torch.from_numpy(reference[f"{case}/logits"]).double().requires_grad_(True)
    instances = torch.from_numpy(reference[f"{case}/labels"])
    loss = InverseWeightingLoss(criterion)(logits, instances)
    assert float(loss.detach()) == pytest.approx(float(reference[f"{case}/iw/{key}"]), rel=1e-9, abs=1e-12)
    if f"{case}/iw/{key}_grad" in reference:
        (grad,) = torch.autograd.grad(loss, logits)
        _grad_close(grad, reference[f"{case}/iw/{key}_grad"])


@pytest.mark.skipif(not IW_CASES, reason="reference vectors not available")
@pytest.mark.parametrize("case", IW_CASES)
@pytest.mark.parametrize(("criterion", "key"), [("dice", "iwdl"), ("bce", "iwbce"), ("asl", "iwasl")])
def test_reference_losses_float32(reference, case, criterion, key):
    logits = torch.from_numpy(reference[f"{case}/logits"]).float()
    instances = torch.from_numpy(reference[f"{case}/labels"])
    loss = InverseWeightingLoss(criterion)(logits, instances)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(reference[f"{case}/iw/{key}"]), rel=1e-5)


@pytest.mark.skipif(not IW_CASES, reason="reference vectors not available")
@pytest.mark.parametrize("case", IW_CASES)
def test_reference_unweighted_dice(reference, case):
    # `dl_unweighted` is the same squared Dice loss without weights (per element, batch mean).
    logits = torch.from_numpy(reference[f"{case}/logits"]).double()
    target = torch.from_numpy(reference[f"{case}/labels"] > 0).double()
    loss = weighted_dice_loss(logits, target)
    assert float(loss) == pytest.approx(float(reference[f"{case}/iw/dl_unweighted"]), rel=1e-9)
