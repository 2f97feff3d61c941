"""Tests of blobloss.inference: sliding-window prediction, TTA inversion, off switch, 2D, file outputs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from blobloss.inference import DEFAULT_TTA, load_model, predict_case, predict_file, tta_variants
from blobloss.io import load_case_image, load_image, save_case_image
from blobloss.training import build_model_from_config, resolve_config, save_checkpoint


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread avoids thread contention on small shared CI machines."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class PositionModel(torch.nn.Module):
    """Not flip-equivariant: logits = 2 * x[:, 0] + a ramp along every axis of the window."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = 2.0 * x[:, :1]
        for axis, size in enumerate(x.shape[2:]):
            shape = [1] * x.dim()
            shape[axis + 2] = size
            ramp = torch.linspace(-1.0, 1.0 + 0.5 * axis, size, dtype=x.dtype, device=x.device).reshape(shape)
            out = out + ramp
        return out


class Pointwise(torch.nn.Module):
    """Flip-equivariant voxel-wise model: logits = 3 * x[:, 0] - 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3.0 * x[:, :1] - 1.0


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _position_logits(x: np.ndarray) -> np.ndarray:
    """PositionModel on a (C, *spatial) numpy array, computed independently."""
    out = 2.0 * x[0].astype(np.float64)
    for axis, size in enumerate(x.shape[1:]):
        shape = [1] * (x.ndim - 1)
        shape[axis] = size
        out = out + np.linspace(-1.0, 1.0 + 0.5 * axis, size).reshape(shape)
    return out


def _hand_tta(image: np.ndarray, noise_copies: int, noise_std: float, seed: int) -> np.ndarray:
    """The defined TTA (docs/definitions.md section 6) by hand: flips (inverted) + noisy copies, mean of sigmoid probabilities."""
    nd = image.ndim - 1
    probs = []
    for k in range(nd + 1):
        for axes in itertools.combinations(range(1, nd + 1), k):
            flipped = np.flip(image, axes) if axes else image
            p = _sigmoid(_position_logits(flipped))
            probs.append(np.flip(p, tuple(a - 1 for a in axes)) if axes else p)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(noise_copies):
        noise = torch.randn((1, *image.shape), generator=gen).numpy()[0]
        probs.append(_sigmoid(_position_logits(image + noise_std * noise)))
    return np.mean(probs, axis=0)


@pytest.mark.parametrize("shape", [(1, 12, 10, 6), (2, 14, 9)])
def test_flip_tta_is_inverted_correctly(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    tta = {"flips": True, "noise_copies": 0}
    got = predict_case(PositionModel(), image, shape[1:], tta=tta, device="cpu", progress=False, mode="constant")
    expected = _hand_tta(image, 0, 0.0, 0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # without flip-back the average would differ: the test can fail
    assert not np.allclose(got, _sigmoid(_position_logits(image)), atol=1e-3)


def test_default_tta_adds_seeded_noise_copies() -> None:
    image = np.random.default_rng(1).standard_normal((1, 8, 10, 6)).astype(np.float32)
    tta = {**DEFAULT_TTA, "noise_std": 0.3, "seed": 7}
    got = predict_case(PositionModel(), image, (8, 10, 6), tta=tta, device="cpu", progress=False, mode="constant")
    np.testing.assert_allclose(got, _hand_tta(image, 5, 0.3, 7), rtol=0, atol=1e-6)
    assert len(tta_variants(3, DEFAULT_TTA)) == 13 and len(tta_variants(2, DEFAULT_TTA)) == 9
    other_seed = predict_case(PositionModel(), image, (8, 10, 6), tta={**tta, "seed": 8}, device="cpu",
                              progress=False, mode="constant")
    assert not np.allclose(got, other_seed, atol=1e-6)


def test_tta_off_switch_predicts_the_original_only() -> None:
    image = np.random.default_rng(2).standard_normal((1, 10, 8, 6)).astype(np.float32)
    got = predict_case(PositionModel(), image, (10, 8, 6), tta=None, device="cpu", progress=False)
    np.testing.assert_allclose(got, _sigmoid(_position_logits(image)), rtol=0, atol=1e-6)
    assert tta_variants(3, None) == [((), None)]
    assert tta_variants(3, {"flips": False, "noise_copies": 0}) == [((), None)]


@pytest.mark.parametrize("sw_batch_size", [2, 4, 13])
def test_tta_variants_stacked_per_pass_give_the_one_at_a_time_result(sw_batch_size: int) -> None:
    """Variants go through the sliding window sw_batch_size at a time: same noise, same order, same mean."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.InstanceNorm3d(4), torch.nn.Mish(),
                              torch.nn.Conv3d(4, 1, 3, padding=1))
    image = np.random.default_rng(5).standard_normal((1, 20, 18, 12)).astype(np.float32)
    kwargs = {"tta": {**DEFAULT_TTA, "noise_std": 0.2}, "device": "cpu", "progress": False, "overlap": 0.5}
    one = predict_case(net, image, (16, 16, 8), sw_batch_size=1, **kwargs)
    calls = []
    stacked = predict_case(net, image, (16, 16, 8), sw_batch_size=sw_batch_size,
                           on_variant=lambda done, total: calls.append((done, total)), **kwargs)
    np.testing.assert_allclose(stacked, one, rtol=0, atol=1e-5)
    passes = -(-13 // sw_batch_size)
    assert calls == [(min(13, (i + 1) * sw_batch_size), 13) for i in range(passes)]


@pytest.mark.parametrize("shape, roi", [((1, 37, 29, 21), (16, 16, 8)), ((1, 45, 33), (16, 16))])
def test_sliding_windows_with_flips_reproduce_a_voxelwise_model(shape, roi) -> None:
    image = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    tta = {"flips": True, "noise_copies": 0}
    got = predict_case(Pointwise(), image, roi, sw_batch_size=3, overlap=0.5, tta=tta, device="cpu", progress=False)
    assert got.shape == shape[1:] and got.dtype == np.float32
    np.testing.assert_allclose(got, _sigmoid(3.0 * image[0] - 1.0), rtol=0, atol=1e-5)


def test_volume_smaller_than_window() -> None:
    image = np.random.default_rng(4).standard_normal((1, 5, 7)).astype(np.float32)
    got = predict_case(Pointwise(), image, (16, 16), tta=None, device="cpu", progress=False)
    np.testing.assert_allclose(got, _sigmoid(3.0 * image[0] - 1.0), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"image": np.zeros((8, 8))}, "C, \\*spatial"), ({"roi_size": (8,)}, "roi_size"), ({"overlap": 1.0}, "overlap"),
     ({"tta": {"flip": True}}, "Unknown TTA"), ({"tta": {"noise_copies": -1}}, "noise_copies")],
)
def test_predict_case_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"model": Pointwise(), "image": np.zeros((1, 8, 8), np.float32), "roi_size": (8, 8), "device": "cpu",
            "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        predict_case(**args)


def _checkpoint(tmp_path: Path, spatial_dims: int, in_channels: int, patch: list[int]) -> Path:
    cfg = resolve_config({"model": {"features": [2] * 6}, "patch_size": patch})
    torch.manual_seed(0)
    model = build_model_from_config(cfg["model"], spatial_dims, in_channels, patch)
    path = tmp_path / "checkpoint_last.pt"
    save_checkpoint(path, {"cfg": cfg, "model": model.state_dict(), "spatial_dims": spatial_dims,
                           "in_channels": in_channels, "epoch": 3})
    return path


@pytest.mark.parametrize("image_shape, patch", [((2, 20, 18, 12), [32, 16, 16]), ((1, 40, 36), [32, 32])])
def test_predict_file_keeps_geometry(tmp_path: Path, image_shape: tuple[int, ...], patch: list[int]) -> None:
    ckpt = _checkpoint(tmp_path, len(image_shape) - 1, image_shape[0], patch)
    spacing = (0.8, 1.2, 2.5)[: len(image_shape) - 1]
    affine = np.array([[0, -0.8, 0, 10], [1.2, 0, 0, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]], float)
    if len(image_shape) == 3:
        affine[2, 2] = 1.0
    image_path = tmp_path / "case" / "image.nii.gz"
    save_case_image(image_path, np.random.default_rng(0).random(image_shape, dtype=np.float32), spacing, affine)

    tta = {"flips": True, "noise_copies": 1}
    info = predict_file(ckpt, image_path, tmp_path / "prob.nii.gz", tmp_path / "pred.nii.gz", tta=tta,
                        device="cpu", progress=False)

    prob, pred, src = (load_image(tmp_path / n) for n in ("prob.nii.gz", "pred.nii.gz", "case/image.nii.gz"))
    assert prob.shape == pred.shape == image_shape[1:] == info["shape"]
    assert prob.array.dtype == np.float32 and pred.array.dtype == np.uint8
    np.testing.assert_allclose(prob.spacing, spacing)
    np.testing.assert_allclose(prob.affine, src.affine)
    np.testing.assert_allclose(pred.affine, src.affine)
    np.testing.assert_array_equal(pred.array, (prob.array > 0.5).astype(np.uint8))
    assert ((prob.array >= 0) & (prob.array <= 1)).all() and info["epoch"] == 3
    model, _ = load_model(ckpt, device="cpu")
    direct = predict_case(model, load_case_image(image_path)[0], patch, tta=tta, device="cpu", progress=False)
    np.testing.assert_allclose(prob.array, direct, atol=1e-6)


def test_predict_file_rejects_a_channel_mismatch(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path, 2, 2, [32, 32])
    save_case_image(tmp_path / "image.nii.gz", np.zeros((1, 20, 20), np.float32), (1.0, 1.0))
    with pytest.raises(ValueError, match="expects 2 channel"):
        predict_file(ckpt, tmp_path / "image.nii.gz", tmp_path / "p.nii.gz", tmp_path / "b.nii.gz", device="cpu")
