"""Unit tests of blobloss.training: model, optimizer and loss factories, data, checkpoints, loop outputs."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.networks.nets import UNETR, BasicUNet

from blobloss.io import save_case_image, save_nifti
from blobloss.losses import BlobLoss
from blobloss.training import (
    LOSS_NAMES,
    CropDataset,
    EpochSampler,
    batches_per_epoch,
    build_loss,
    build_model,
    build_optimizer,
    current_lr,
    load_checkpoint,
    make_loader,
    read_log,
    resolve_config,
    save_checkpoint,
    train,
)

TINY = (4, 4, 8, 8, 16, 4)


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ---------------------------------------------------------------------------------------------- model


def test_basicunet_paper_defaults_use_mish_and_dropout() -> None:
    net = build_model()
    assert isinstance(net, BasicUNet)
    assert any(isinstance(m, torch.nn.Mish) or type(m).__name__ == "Mish" for m in net.modules())
    drops = [m.p for m in net.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout3d))]
    assert drops and all(p == pytest.approx(0.1) for p in drops)
    assert net.conv_0.conv_0.conv.out_channels == 32


@pytest.mark.parametrize("dims, shape", [(3, (32, 16, 16)), (2, (32, 48))])
def test_build_model_output_shape(dims: int, shape: tuple[int, ...]) -> None:
    net = build_model(spatial_dims=dims, in_channels=2, features=TINY).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 2, *shape)).shape == (1, 1, *shape)


def test_unetr_needs_the_patch_size() -> None:
    net = build_model("unetr", spatial_dims=2, img_size=(32, 32), dropout=0.0).eval()
    assert isinstance(net, UNETR)
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="img_size"):
        build_model("unetr")
    with pytest.raises(ValueError, match="divisible by 16"):
        build_model("unetr", img_size=(24, 32, 32))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"name": "vnet"}, "Unknown model"), ({"features": (4, 4)}, "6 positive"), ({"act": "tanhh"}, "activation"),
     ({"dropout": 1.5}, "dropout"), ({"spatial_dims": 4}, "spatial_dims")],
)
def test_build_model_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)


# ---------------------------------------------------------------------------------------------- optim


def _quadratic_steps(opt: torch.optim.Optimizer, p: torch.nn.Parameter, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
        lrs.append(current_lr(opt))
    return lrs


def test_ranger21_constant_schedule_keeps_the_lr_and_updates_weights() -> None:
    p = torch.nn.Parameter(torch.ones(4, 3))
    opt = build_optimizer([p], "ranger21", lr=1e-2, num_iterations=10, schedule="constant")
    assert type(opt).__name__ == "Ranger21" and opt.disable_lr_scheduler
    lrs = _quadratic_steps(opt, p, 10)
    assert lrs == [1e-2] * 10
    assert not torch.equal(p.detach(), torch.ones(4, 3))


def _ranger21_schedule(step: int, total: int, lr: float, min_lr: float = 3e-5) -> float:
    """Ranger21's schedule as docs/training.md states it (short runs: warm-up over 22 %, warm-down over 28 %)."""
    warm_up = int(0.22 * total)  # 2000 steps would exceed 45 % of these runs
    start_down = total - (total - int(0.72 * total))
    value = lr * min(1.0, step / warm_up) if step <= warm_up else lr
    if step >= start_down:
        pct = min(max(step + 1 - start_down, 1) / (total - start_down + 1), 1.0)
        value = max(lr - (lr - min_lr) * pct, min_lr)
    return value


def test_ranger21_schedule_is_the_default_warm_up_then_warm_down() -> None:
    p = torch.nn.Parameter(torch.ones(4, 3))
    opt = build_optimizer([p], "ranger21", lr=1e-2, num_iterations=10)  # schedule: the optimizer's own
    assert not opt.disable_lr_scheduler
    lrs = _quadratic_steps(opt, p, 10)
    assert lrs == pytest.approx([_ranger21_schedule(t, 10, 1e-2) for t in range(1, 11)])
    assert lrs[0] < lrs[2] == 1e-2 and lrs[-1] == pytest.approx(3e-5)
    # the warm-down floor never lies above a small initial lr
    low = build_optimizer([torch.nn.Parameter(torch.ones(2))], "ranger21", lr=1e-5, num_iterations=10)
    assert low.min_lr == 1e-5


def test_lr_trajectory_of_a_short_training_run(tmp_path: Path) -> None:
    """The paper configs' schedule in a real run: log.csv's lr per epoch follows Ranger21's schedule."""
    cfg = {"model": {"features": [2] * 6, "dropout": 0.0}, "patch_size": [32, 32], "epochs": 10,
           "batch_size": 1, "crops_per_case": 1, "num_workers": 0, "progress": False,
           "optimizer": {"name": "ranger21", "lr": 1e-2, "schedule": "ranger21"}}
    train(cfg, _blob_cases(1), None, tmp_path / "ranger21", device="cpu")  # one step per epoch
    lrs = [r["lr"] for r in read_log(tmp_path / "ranger21" / "log.csv")]
    assert lrs == pytest.approx([_ranger21_schedule(t, 10, 1e-2) for t in range(1, 11)])
    assert load_checkpoint(tmp_path / "ranger21" / "checkpoint_last.pt")["cfg"]["optimizer"]["schedule"] == "ranger21"
    train({**cfg, "epochs": 3, "optimizer": {"name": "ranger21", "lr": 1e-2, "schedule": "constant"}},
          _blob_cases(1), None, tmp_path / "constant", device="cpu")
    assert [r["lr"] for r in read_log(tmp_path / "constant" / "log.csv")] == [1e-2] * 3


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_other_optimizers(name: str, cls: type) -> None:
    opt = build_optimizer(torch.nn.Linear(2, 1).parameters(), name, lr=3e-4)
    assert isinstance(opt, cls) and current_lr(opt) == 3e-4


@pytest.mark.parametrize(
    "kwargs, match",
    [({"name": "adam"}, "Unknown optimizer"), ({"lr": 0}, "lr must be > 0"), ({"num_iterations": None}, "num_iterations"),
     ({"name": "sgd", "schedule": "ranger21"}, "only for Ranger21"), ({"schedule": "cosine"}, "Unknown schedule")],
)
def test_build_optimizer_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"name": "ranger21", "lr": 1e-3, "num_iterations": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_optimizer(torch.nn.Linear(2, 1).parameters(), **args)


# ---------------------------------------------------------------------------------------------- losses


def _logits_and_instances(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 1, 12, 10, 6, generator=g, dtype=torch.float64)
    inst = torch.zeros(2, 1, 12, 10, 6, dtype=torch.int32)
    inst[0, 0, 1:4, 1:4, 1:3] = 1
    inst[0, 0, 7:11, 5:9, 2:5] = 2
    inst[1, 0, 2:5, 6:9, 0:2] = 7
    return logits, inst


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_runs_and_backpropagates(name: str) -> None:
    logits, inst = _logits_and_instances()
    logits.requires_grad_(True)
    loss = build_loss(name)(logits, inst)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("plain, criterion", [("dice", "dice"), ("tversky", "tversky"), ("bce", "bce")])
def test_plain_losses_equal_blob_loss_global_term(plain: str, criterion: str) -> None:
    logits, inst = _logits_and_instances(1)
    expected = BlobLoss(criterion, alpha=1.0, beta=0.0)(logits, inst)
    assert float(build_loss(plain)(logits, inst)) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


def test_blob_losses_pass_alpha_beta_and_masking() -> None:
    logits, inst = _logits_and_instances(2)
    default = build_loss("blob_dice")(logits, inst)
    assert float(default) == pytest.approx(float(BlobLoss("dice", 2.0, 1.0)(logits, inst)))
    custom = build_loss("blob_tversky", alpha=3, beta=1)(logits, inst)
    assert float(custom) == pytest.approx(float(BlobLoss("tversky", 3.0, 1.0)(logits, inst)))
    unchecked = build_loss("blob_dice", max_instance_id=7)  # training path: no host sync
    assert not unchecked.check_inputs
    assert float(unchecked(logits, inst)) == pytest.approx(float(default), rel=1e-12)
    nomask = build_loss("blob_dice_nomask")(logits, inst)
    assert float(nomask) == pytest.approx(float(BlobLoss("dice", masking=False)(logits, inst)))
    assert float(nomask) != pytest.approx(float(default))


def test_build_loss_rejects_alpha_for_plain_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="only to the blob_"):
        build_loss("dice", alpha=1.0)
    with pytest.raises(ValueError, match="Unknown loss"):
        build_loss("focal")


# ---------------------------------------------------------------------------------------------- data


def _position_case(shape: tuple[int, ...], blobs: list[tuple[slice, ...]]) -> dict:
    """Image values = flat voxel index (so a crop tells where it came from); numbered blobs."""
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)[None]
    inst = np.zeros(shape, np.uint32)
    for k, sl in enumerate(blobs, start=1):
        inst[sl] = 10 * k
    return {"image": image, "instances": inst, "name": "pos"}


def test_crops_keep_instance_ids_and_match_the_image() -> None:
    shape = (40, 36, 20)
    case = _position_case(shape, [np.s_[2:6, 2:6, 2:4], np.s_[30:39, 20:30, 10:19]])
    ds = CropDataset([case], (32, 16, 16), crops_per_case=8, seed=1)
    item = ds[(0, 0)]
    assert item["image"].shape == (8, 1, 32, 16, 16) and item["image"].dtype == torch.float32
    assert item["instances"].shape == (8, 1, 32, 16, 16)
    for img, ins in zip(item["image"], item["instances"]):
        corner = np.unravel_index(int(img[0, 0, 0, 0]), shape)
        sl = tuple(slice(c, c + p) for c, p in zip(corner, (32, 16, 16)))
        np.testing.assert_array_equal(img[0].numpy(), case["image"][0][sl])
        np.testing.assert_array_equal(ins[0].numpy(), case["instances"][sl].astype(np.int32))
        assert set(np.unique(ins.numpy())) <= {0, 10, 20}


def test_foreground_probability_controls_centring() -> None:
    shape = (64, 64, 32)
    case = _position_case(shape, [np.s_[60:62, 60:62, 28:30]])  # one tiny blob in a corner
    always = CropDataset([case], (16, 16, 16), crops_per_case=50, seed=0, foreground_prob=1.0)[(0, 0)]
    never = CropDataset([case], (16, 16, 16), crops_per_case=50, seed=0, foreground_prob=0.0)[(0, 0)]
    paper = CropDataset([case], (16, 16, 16), crops_per_case=400, seed=0)[(0, 0)]
    hit = lambda crops: (crops["instances"].flatten(1) > 0).any(1).float().mean().item()  # noqa: E731
    assert hit(always) == 1.0
    assert hit(never) < 0.1  # a uniform crop meets this blob with probability ~3e-4
    assert 0.9 < hit(paper) < 0.99  # 0.95 expected


def test_small_volumes_are_padded_and_empty_cases_sampled_uniformly() -> None:
    small = {"image": np.ones((2, 10, 12), np.float32), "instances": np.zeros((10, 12), np.uint32)}
    with pytest.raises(ValueError, match=r"smaller than .*pad_to_patch: true"):
        CropDataset([small], (32, 16), crops_per_case=2, seed=0)  # an error by default
    with pytest.warns(UserWarning, match="zero-padded"):
        ds = CropDataset([small], (32, 16), crops_per_case=2, seed=0, pad_to_patch=True)
    item = ds[(0, 0)]
    assert item["image"].shape == (2, 2, 32, 16)
    assert float(item["image"].sum()) == pytest.approx(2 * 2 * 10 * 12)  # all of the case, zeros around
    assert int(item["instances"].abs().sum()) == 0


def test_crops_are_seeded_by_seed_epoch_and_case() -> None:
    case = _position_case((48, 48), [np.s_[5:10, 5:10], np.s_[30:40, 30:35]])
    ds = CropDataset([case, case], (16, 16), crops_per_case=4, seed=5)
    a, b = ds[(3, 1)], ds[(3, 1)]
    assert torch.equal(a["image"], b["image"])
    assert not torch.equal(a["image"], ds[(4, 1)]["image"])
    assert not torch.equal(a["image"], CropDataset([case, case], (16, 16), 4, seed=6)[(3, 1)]["image"])


def test_epoch_sampler_and_loader_give_one_pass_per_epoch() -> None:
    s = EpochSampler(5, seed=0)
    s.set_epoch(2)
    keys = list(s)
    assert sorted(i for _, i in keys) == list(range(5)) and {e for e, _ in keys} == {2}
    assert list(s) == keys  # deterministic
    orders = set()
    for epoch in range(3, 8):
        s.set_epoch(epoch)
        assert {e for e, _ in s} == {epoch}
        orders.add(tuple(i for _, i in s))
    assert len(orders) > 1  # reshuffled between epochs
    case = {"image": np.zeros((1, 16, 16), np.float32), "instances": np.ones((16, 16), np.uint32)}
    ds = CropDataset([case] * 5, (16, 16), crops_per_case=3)
    loader = make_loader(ds, 2, EpochSampler(5))
    assert len(loader) == batches_per_epoch(5, 2) == 3
    assert [b["image"].shape[0] for b in loader] == [6, 6, 3]


def test_loader_crops_do_not_depend_on_workers() -> None:
    case = _position_case((40, 40), [np.s_[5:10, 5:10]])
    ds = CropDataset([case] * 3, (16, 16), crops_per_case=2, seed=0)
    batches = []
    for workers in (0, 1):
        sampler = EpochSampler(3, seed=0)
        sampler.set_epoch(1)
        batches.append(torch.cat([b["image"] for b in make_loader(ds, 2, sampler, num_workers=workers)]))
    assert torch.equal(batches[0], batches[1])


def test_dataset_reads_files_through_blobloss_io(tmp_path: Path) -> None:
    inst = np.zeros((20, 18, 16), np.uint32)
    inst[3:8, 3:8, 3:8] = 4
    save_case_image(tmp_path / "c1" / "image.nii.gz", np.stack([inst > 0, inst == 0]).astype(np.float32), (1, 1, 2))
    save_nifti(tmp_path / "c1" / "instances.nii.gz", inst, dtype=np.uint32)
    ds = CropDataset(
        [{"image": tmp_path / "c1" / "image.nii.gz", "instances": tmp_path / "c1" / "instances.nii.gz"}],
        (16, 16, 16), crops_per_case=1,
    )
    assert ds.in_channels == 2 and ds.spatial_dims == 3 and ds.cases[0].name == "c1"
    item = ds[(0, 0)]
    assert int(item["instances"].max()) == 4
    np.testing.assert_array_equal(item["image"][0, 0].numpy() > 0, item["instances"][0, 0].numpy() > 0)


@pytest.mark.parametrize(
    "case, match",
    [({"image": np.zeros((1, 8, 8), np.float32), "instances": np.zeros((8, 9), np.uint32)}, "does not match"),
     ({"image": np.zeros((1, 8, 8), np.float32), "instances": np.zeros((8, 8), np.float32)}, "must be integer"),
     ({"image": np.zeros((1, 8, 8), np.float32)}, "keys 'image' and 'instances'"),
     ({"image": np.zeros((1, 8, 8, 8), np.float32), "instances": np.zeros((8, 8, 8), np.uint32)}, "spatial axes")],
)
def test_dataset_rejects_bad_cases(case: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CropDataset([case], (16, 16))


# ---------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoint_last.pt"
    save_checkpoint(path, {"epoch": 1})

    def broken_save(obj, fh) -> None:
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_last.pt"]


def test_load_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


# ---------------------------------------------------------------------------------------------- config + loop


@pytest.mark.parametrize(
    "cfg, match",
    [({"epoch": 3}, "Unknown training config"), ({"patch_size": [24, 32, 32]}, "multiples of 16"),
     ({"patch_size": [16, 16, 16]}, "too small"), ({"batch_size": 0}, "batch_size"), ({"amp": "fp16"}, "amp"),
     ({"model": 3}, "mapping"), ({"gpus": 0}, "gpus"),
     ({"optimizer": {"name": "adamw", "schedule": "ranger21"}}, "schedule: constant")],
)
def test_resolve_config_rejects_bad_values(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_config(cfg)


def test_resolve_config_merges_sections() -> None:
    cfg = resolve_config({"optimizer": {"lr": 1e-2}, "loss": {"name": "blob_tversky", "alpha": 1}})
    assert cfg["optimizer"] == {"name": "ranger21", "lr": 1e-2, "weight_decay": None, "schedule": "ranger21"}
    assert resolve_config({"optimizer": {"name": "adamw"}})["optimizer"]["schedule"] == "constant"
    assert cfg["loss"] == {"name": "blob_tversky", "alpha": 1, "beta": None}
    assert cfg["model"]["act"] == "mish" and cfg["foreground_prob"] == 0.95


def _blob_cases(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        inst = np.zeros((32, 32), np.uint32)
        for k in range(1, 4):
            y, x = rng.integers(2, 28, size=2)
            inst[y : y + 3, x : x + 3] = k
        img = (inst > 0).astype(np.float32) + 0.1 * rng.standard_normal(inst.shape).astype(np.float32)
        cases.append({"image": img[None], "instances": inst, "name": f"c{i}"})
    return cases


def test_train_writes_all_outputs_and_learns(tmp_path: Path) -> None:
    cfg = {
        "model": {"features": [8, 8, 8, 8, 8, 8], "dropout": 0.0},
        "optimizer": {"name": "adamw", "lr": 3e-2},
        "loss": {"name": "blob_dice"},
        "patch_size": [32, 32],
        "batch_size": 2,
        "crops_per_case": 2,
        "epochs": 12,
        "val_every": 4,
        "num_workers": 0,
        "progress": False,
    }
    rows = []
    summary = train(cfg, _blob_cases(4), _blob_cases(1, seed=9), tmp_path, device="cpu", on_epoch_end=rows.append)

    for name in ("checkpoint_last.pt", "checkpoint_best.pt", "log.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "curve.png").exists()  # the train job draws the curve (blobloss.plots), not the loop
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
    log = read_log(tmp_path / "log.csv")
    assert [r["epoch"] for r in log] == list(range(1, 13)) == [r["epoch"] for r in rows]
    assert [r["epoch"] for r in log if r["val_loss"] is not None] == [4, 8, 12]
    assert all(r["lr"] == 3e-2 and r["seconds"] > 0 for r in log)
    assert log[-1]["train_loss"] < 0.7 * log[0]["train_loss"]  # it learns (measured: 2.86 -> 0.92)
    assert log[-1]["val_loss"] < log[3]["val_loss"]
    last = load_checkpoint(tmp_path / "checkpoint_last.pt")
    assert last["epoch"] == 12 and last["cfg"]["optimizer"]["name"] == "adamw"
    assert set(last["rng"]) == {"torch", "cuda", "numpy", "python"} and last["optimizer"]["state"]
    best = load_checkpoint(tmp_path / "checkpoint_best.pt")
    vals = {r["epoch"]: r["val_loss"] for r in log if r["val_loss"] is not None}
    assert best["epoch"] == min(vals, key=vals.get) == summary["best_epoch"]
    assert summary["best_val_loss"] == pytest.approx(min(vals.values()))


def test_train_without_validation_writes_no_best_checkpoint(tmp_path: Path) -> None:
    cfg = {"model": {"features": [2] * 6}, "patch_size": [32, 32], "epochs": 1, "progress": False,
           "num_workers": 0, "loss": {"name": "iw"}, "optimizer": {"name": "sgd", "lr": 1e-3}}
    summary = train(cfg, _blob_cases(1), [], tmp_path, device="cpu")
    assert summary["checkpoint_best"] is None and not (tmp_path / "checkpoint_best.pt").exists()
    assert read_log(tmp_path / "log.csv")[0]["val_loss"] is None


def test_train_tensorboard_option(tmp_path: Path) -> None:
    cfg = {"model": {"features": [2] * 6}, "patch_size": [32, 32], "epochs": 1, "progress": False,
           "num_workers": 0, "tensorboard": True}
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install tensorboard"):
            train(cfg, _blob_cases(1), None, tmp_path, device="cpu")
    else:
        train(cfg, _blob_cases(1), None, tmp_path, device="cpu")
        assert any((tmp_path / "tensorboard").iterdir())


@pytest.mark.parametrize("shape, fmt", [((2, 3, 8, 8, 4), torch.channels_last_3d), ((2, 3, 8, 8), torch.channels_last)])
def test_channels_last_batches(shape: tuple[int, ...], fmt: torch.memory_format) -> None:
    from blobloss.training.loop import _to_device

    batch = {"image": torch.rand(shape), "instances": torch.zeros(shape[:1] + (1,) + shape[2:], dtype=torch.int32)}
    image, instances = _to_device(batch, torch.device("cpu"), channels_last=True)
    assert image.is_contiguous(memory_format=fmt) and torch.equal(image, batch["image"])
    assert instances.dtype == torch.int32


def test_train_stops_on_nan_loss(tmp_path: Path) -> None:
    cases = _blob_cases(1)
    cases[0]["image"][0, 0, 0] = np.nan
    cfg = {"model": {"features": [2] * 6}, "patch_size": [32, 32], "epochs": 1, "progress": False,
           "num_workers": 0}
    with pytest.raises(FloatingPointError, match="lower optimizer.lr"):
        train(cfg, cases, None, tmp_path, device="cpu")


# ---------------------------------------------------------------------------------------------- defaults


def test_library_defaults_equal_the_config_schema_defaults(repo_root: Path) -> None:
    """The pipeline's schema is the single source of training defaults: DEFAULT_CONFIG must agree with it."""
    import yaml

    from blobloss.training import DEFAULT_CONFIG

    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["$defs"]["training"]["properties"]
    per_run = {"loss", "seed", "progress"}  # set per run by the pipeline, not dataset settings
    assert set(DEFAULT_CONFIG) - per_run <= set(props), set(DEFAULT_CONFIG) - per_run - set(props)
    compared = []
    for key, value in DEFAULT_CONFIG.items():
        if key in per_run:
            continue
        if isinstance(value, dict):
            sub = props[key]["properties"]
            assert set(value) == set(sub), (key, set(value) ^ set(sub))
            for k, v in value.items():
                assert sub[k]["default"] == v, f"training.{key}.{k}: schema {sub[k]['default']!r}, library {v!r}"
                compared.append(f"{key}.{k}")
        else:
            assert props[key]["default"] == value, f"training.{key}: schema {props[key]['default']!r}, library {value!r}"
            compared.append(key)
    assert {"optimizer.lr", "batch_size", "num_workers", "gpus", "optimizer.schedule"} <= set(compared)


# ---------------------------------------------------------------------------------------------- progress

def _run_job(tmp_path: Path, cfg: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the train job as scripts/train.py does (log_to_file + train_job), on the CPU."""
    from blobloss.jobs import train_job
    from blobloss.logs import log_to_file

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("BLOBLOSS_NUM_GPUS", "0")
    with log_to_file(tmp_path / "job.log"):
        train_job(cfg, _blob_cases(2), _blob_cases(1, seed=9), tmp_path / "work", tmp_path / "model.pt",
                  tmp_path / "log.csv", threads=1,
                  run={"dataset": "syn", "setting": "blob_dice", "seed": 0})
    return tmp_path / "work"


_LINE = re.compile(r"^\[syn/blob_dice/seed0\] epoch (\d+)/3 loss \d+\.\d{4} (val \d+\.\d{4} )?\d+\.\d s/epoch "
                   r"(ETA \d+ s|done)$")


def test_training_job_prints_one_plain_line_per_epoch_and_writes_progress_json(
    tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = {"model": {"features": [2] * 6}, "patch_size": [32, 32], "epochs": 3, "batch_size": 1,
           "num_workers": 0, "val_every": 2, "seed": 0, "progress": True}
    work = _run_job(tmp_path, cfg, monkeypatch)
    # the terminal (the job's original stderr): the first and the last epoch (at most one line per 30 s
    # in between), nothing else
    console = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert [int(_LINE.match(line).group(1)) for line in console] == [1, 3], console
    assert "val " in console[0] or "val " in console[1]
    # the job log: every epoch's line, plain lines only
    log = (tmp_path / "job.log").read_text()
    assert "\r" not in log
    logged = [m.group(1) for m in (_LINE.search(line.split(": ", 1)[-1]) for line in log.splitlines()) if m]
    assert logged == ["1", "2", "3"], log[-2000:]
    progress = json.loads((work / "progress.json").read_text())
    assert list(progress) == ["dataset", "setting", "seed", "epoch", "epochs", "loss", "val_loss",
                              "sec_per_epoch", "eta_s", "state", "world_size", "updated"]
    assert (progress["dataset"], progress["setting"], progress["seed"]) == ("syn", "blob_dice", 0)
    assert (progress["epoch"], progress["epochs"], progress["state"], progress["world_size"]) == (3, 3, "done", 1)
    assert progress["eta_s"] == 0 and progress["sec_per_epoch"] > 0 and progress["val_loss"] is not None
    assert datetime.fromisoformat(progress["updated"]).utcoffset() == timedelta(0)


def test_training_job_publishes_model_and_log_and_draws_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from blobloss.training.checkpoint import load_checkpoint

    cfg = {"model": {"features": [2] * 6}, "patch_size": [32, 32], "epochs": 2, "batch_size": 1,
           "num_workers": 0, "val_every": 1, "seed": 0, "progress": False}
    work = _run_job(tmp_path, cfg, monkeypatch)
    assert (tmp_path / "log.csv").read_bytes() == (work / "log.csv").read_bytes()
    assert load_checkpoint(tmp_path / "model.pt")["epoch"] == 2
    # the curve is the training_curve rule's job (blobloss.jobs.training_curves_job), from the published log
    assert not list(tmp_path.rglob("*.png"))


def test_training_job_that_fails_marks_progress_failed(
    tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = {"model": {"features": [2] * 6}, "patch_size": [32, 32], "epochs": 2, "batch_size": 1,
           "num_workers": 0, "seed": 0, "optimizer": {"name": "sgd", "lr": 1e30, "schedule": "constant"}}
    with pytest.raises(FloatingPointError):
        _run_job(tmp_path, cfg, monkeypatch)
    err = capfd.readouterr().err
    assert "[syn/blob_dice/seed0] epoch 0/2" in err and "FAILED" in err
    progress = json.loads((tmp_path / "work" / "progress.json").read_text())
    assert progress["state"] == "failed" and progress["epochs"] == 2 and progress["setting"] == "blob_dice"
