"""One loss API: the three losses share the call order, the input checks and the settings object."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from blobloss.losses import (
    BlobLoss,
    BlobLossComponents,
    CriterionSettings,
    InverseWeightingLoss,
    MultiClassBlobLoss,
    fused_instance_losses,
)
from blobloss.losses import settings as loss_settings

REPO = Path(__file__).resolve().parents[1]
SHAPE = (2, 1, 4, 4)


def _instances() -> torch.Tensor:
    inst = torch.zeros(SHAPE, dtype=torch.long)
    inst[0, 0, :2, :2], inst[1, 0, 3, 3] = 1, 2
    return inst


def _call(which: str, logits, instances) -> None:
    """Call one loss on ``(logits, instances)``; the multi-class loss gets 2 channels and a valid class map."""
    if which == "blob":
        BlobLoss("dice")(logits, instances)
    elif which == "iw":
        InverseWeightingLoss("dice")(logits, instances)
    else:
        if isinstance(logits, torch.Tensor) and logits.ndim >= 2 and logits.shape[1] == 1:
            logits = torch.cat([torch.zeros_like(logits), logits], 1)  # C = 1: background + one class
        class_map = (_instances() > 0).long()
        MultiClassBlobLoss("dice")(logits, instances, class_map=class_map)


def _error(which: str, logits, instances) -> tuple[type, str]:
    with pytest.raises(Exception) as info:
        _call(which, logits, instances)
    # the multi-class logits have 2 channels: compare messages with the logits' shape left out
    message = re.sub(r"logits \(2, [12], 4, 4\)", "logits <shape>", str(info.value))
    return info.type, message


_FAULTS = {
    "bool instances": (lambda: torch.zeros(SHAPE), lambda: _instances() > 0),
    "float instances, not whole": (lambda: torch.zeros(SHAPE), lambda: _instances().float() * 1.5),
    "float instances, NaN": (lambda: torch.zeros(SHAPE), lambda: _instances().float().fill_(float("nan"))),
    "negative ids": (lambda: torch.zeros(SHAPE), lambda: -_instances()),
    "complex instances": (lambda: torch.zeros(SHAPE), lambda: _instances().to(torch.complex64)),
    "NaN logits": (lambda: torch.full(SHAPE, float("nan")), _instances),
    "Inf logits": (lambda: torch.full(SHAPE, float("inf")), _instances),
    "integer logits": (lambda: torch.zeros(SHAPE, dtype=torch.long), _instances),
    "logits not a tensor": (lambda: torch.zeros(SHAPE).numpy(), _instances),
    "instances not a tensor": (lambda: torch.zeros(SHAPE), lambda: _instances().numpy()),
    "instances without channel axis": (lambda: torch.zeros(SHAPE), lambda: _instances()[:, 0]),
    "instances of another size": (lambda: torch.zeros(SHAPE), lambda: _instances()[..., :3]),
    "instances on another device": (lambda: torch.zeros(SHAPE), lambda: _instances().to("meta")),
}

_EXPECTED = {
    "bool instances": (TypeError, "instances is a bool tensor (a binary label)"),
    "float instances, not whole": (ValueError, "instances is a float tensor with non-integer (or NaN) values"),
    "float instances, NaN": (ValueError, "instances is a float tensor with non-integer (or NaN) values"),
    "negative ids": (ValueError, "instances contains negative ids (min -2)"),
    "complex instances": (TypeError, "instances must hold integer ids, got torch.complex64"),
    "NaN logits": (ValueError, "logits contain NaN or Inf"),
    "Inf logits": (ValueError, "logits contain NaN or Inf"),
    "integer logits": (TypeError, "logits must be a floating point tensor (raw network output), got torch.int64"),
    "logits not a tensor": (TypeError, "logits must be a torch.Tensor, got ndarray"),
    "instances not a tensor": (TypeError, "instances must be a torch.Tensor, got ndarray"),
    "instances without channel axis": (ValueError, "add the channel axis: instances.unsqueeze(1)"),
    "instances of another size": (ValueError, "instances (2, 1, 4, 3) must have shape (2, 1, 4, 4)"),
    "instances on another device": (ValueError, "instances is on meta but logits on cpu"),
}


@pytest.mark.parametrize("fault", list(_FAULTS))
def test_same_fault_same_exception_and_message_in_every_loss(fault: str) -> None:
    make_logits, make_instances = _FAULTS[fault]
    errors = {which: _error(which, make_logits(), make_instances()) for which in ("blob", "multiclass", "iw")}
    assert errors["blob"] == errors["multiclass"] == errors["iw"], errors
    exc, text = _EXPECTED[fault]
    assert errors["blob"][0] is exc
    assert text in errors["blob"][1]


def test_channel_and_rank_errors() -> None:
    # binary losses given 3 channels: one message; the multi-class loss given 1 channel: its own message
    three = torch.zeros(2, 3, 4, 4)
    for which in ("blob", "iw"):
        exc, text = _error(which, three, _instances())
        assert exc is ValueError and "binary and needs 1 sigmoid channel" in text and "MultiClassBlobLoss" in text
    with pytest.raises(ValueError, match=r"needs C \+ 1 >= 2 softmax channels .* use BlobLoss"):
        MultiClassBlobLoss()(torch.zeros(SHAPE), _instances(), class_map=_instances())
    flat = torch.zeros(4, 4)
    assert _error("blob", flat, _instances()) == _error("iw", flat, _instances())
    with pytest.raises(ValueError, match=r"\(B, C \+ 1, \*spatial\) with 1 to 3 spatial axes"):
        MultiClassBlobLoss()(flat, _instances(), class_map=_instances())


@pytest.mark.parametrize("which", ["blob", "multiclass", "iw"])
def test_every_loss_offers_components_and_last_components(which: str) -> None:
    logits = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), requires_grad=True)
    inst = _instances()
    if which == "blob":
        loss_fn, args, kwargs = BlobLoss("dice"), (logits, inst), {}
    elif which == "iw":
        loss_fn, args, kwargs = InverseWeightingLoss("dice"), (logits, inst), {}
    else:
        two = torch.cat([torch.zeros_like(logits), logits], 1)
        loss_fn, args, kwargs = MultiClassBlobLoss("dice"), (two, inst), {"class_map": (inst > 0).long()}
    assert loss_fn.last_components is None
    parts = loss_fn.components(*args, **kwargs)
    assert isinstance(parts, BlobLossComponents) and parts.total.requires_grad
    total = loss_fn(*args, **kwargs)
    assert float(total.detach()) == pytest.approx(float(parts.total.detach()), rel=1e-12)
    assert isinstance(loss_fn.last_components, BlobLossComponents)
    assert not loss_fn.last_components.total.requires_grad
    total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# ------------------------------------------------------------------------------------- settings object
def test_one_settings_object_reaches_every_criterion() -> None:
    settings = CriterionSettings(smooth_nr=0.0, smooth_dr=0.0, tversky_alpha=0.5, tversky_beta=0.5)
    logits = torch.zeros(SHAPE, dtype=torch.float64)
    inst = _instances()
    binary = BlobLoss("tversky", criterion_settings=settings)
    multi = MultiClassBlobLoss("tversky", criterion_settings=settings)
    assert binary.criterion_settings is settings and multi.criterion_settings is settings
    # Tversky with alpha = beta = 0.5 and no smoothing is the Dice loss without smoothing
    dice = BlobLoss("dice", criterion_settings=CriterionSettings(smooth_nr=0.0, smooth_dr=0.0))
    assert float(binary(logits, inst)) == pytest.approx(float(dice(logits, inst)), rel=1e-12)
    two = torch.cat([torch.zeros_like(logits), logits], 1)
    assert float(multi(two, inst, class_map=(inst > 0).long())) == pytest.approx(float(binary(logits, inst)), rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"smooth_nr": -1.0}, r"smooth_nr=-1.0 must be a finite number >= 0"),
        ({"tversky_beta": float("nan")}, r"tversky_beta=nan must be"),
        ({"tversky_alpha": True}, r"tversky_alpha=True must be"),
    ],
)
def test_settings_validate(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        CriterionSettings(**kwargs)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['smoothing'\]"):
        CriterionSettings.from_mapping({"smoothing": 1.0})
    with pytest.raises(Exception):  # frozen
        CriterionSettings().smooth_nr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("make", [
    lambda **kw: BlobLoss("tversky", **kw),
    lambda **kw: MultiClassBlobLoss("tversky", **kw),
])
def test_old_keywords_warn_with_the_new_form(make) -> None:
    with pytest.warns(DeprecationWarning, match=r"criterion_settings=CriterionSettings\(tversky_alpha=0.4, smooth_nr=0\)"):
        loss = make(tversky_alpha=0.4, smooth_nr=0)
    assert loss.criterion_settings == CriterionSettings(tversky_alpha=0.4, smooth_nr=0.0)
    assert loss.tversky_alpha == 0.4 and loss.smooth_nr == 0.0  # read-only views of the settings
    with pytest.raises(ValueError, match="not both"):
        make(tversky_alpha=0.4, criterion_settings=CriterionSettings())
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['smooth'\]"):
        make(smooth=0.1)


def test_fused_core_old_keywords_warn() -> None:
    probs = torch.full((1, 4, 4), 0.5, dtype=torch.float64)
    inst = _instances()[0]
    new, _ = fused_instance_losses(probs, inst, "dice", criterion_settings=CriterionSettings(smooth_nr=0, smooth_dr=0))
    with pytest.warns(DeprecationWarning, match="criterion_settings=CriterionSettings"):
        old, _ = fused_instance_losses(probs, inst, "dice", smooth_nr=0, smooth_dr=0)
    torch.testing.assert_close(old, new)


# ---------------------------------------------------------------------------------- loss names, options
def test_schema_loss_enum_is_the_training_code_list() -> None:
    from blobloss.training.losses import LOSS_NAMES

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    entry = schema["$defs"]["loss_entry"]
    assert entry["properties"]["loss"]["enum"] == list(LOSS_NAMES) == list(loss_settings.LOSS_NAMES)
    # every option the loss module knows is a property of the schema's loss entry, and nothing else
    options = {opt for opts in loss_settings.LOSS_OPTIONS.values() for opt in opts}
    assert set(entry["properties"]) == {"name", "loss", "lr", "model", "gpus"} | options
    crit = entry["properties"]["criterion"]["properties"]
    assert set(crit) == set(CriterionSettings().as_dict())
    assert entry["properties"]["iw_criterion"]["enum"] == list(loss_settings.IW_CRITERIA)


def test_settings_module_does_not_import_torch() -> None:
    code = "import sys, blobloss.losses.settings as s; print('torch' in sys.modules, s.DEFAULT_ALPHA)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": ""}).stdout
    assert out.split() == ["False", "2.0"]


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("blob_dice", {}, {"name": "blob_dice", "alpha": 2.0, "beta": 1.0, "mask_space": "probabilities",
                           "masking": True, "published_running_mean": False, "implementation": "auto",
                           "criterion": {"smooth_nr": 1e-5, "smooth_dr": 1e-5}}),
        ("blob_dice_nomask", {"published_running_mean": True}, {"masking": False, "published_running_mean": True}),
        ("blob_tversky", {"criterion": {"tversky_alpha": 0.5}, "alpha": 1},
         {"alpha": 1.0, "criterion": {"smooth_nr": 1e-5, "smooth_dr": 1e-5, "tversky_alpha": 0.5, "tversky_beta": 0.7}}),
        ("blob_bce", {"mask_space": "LOGITS", "implementation": "loop"}, {"mask_space": "logits", "implementation": "loop"}),
        ("dice", {"alpha": None}, {"name": "dice", "criterion": {"smooth_nr": 1e-5, "smooth_dr": 1e-5}}),
        ("bce", {}, {"name": "bce"}),
        ("iw", {"iw_criterion": "bce"}, {"name": "iw", "iw_criterion": "bce"}),
    ],
)
def test_loss_config_fills_the_loss_module_defaults(name, options, expected) -> None:
    cfg = loss_settings.loss_config(name, **options)
    assert {k: cfg[k] for k in expected} == expected
    assert set(cfg) == {"name", *loss_settings.LOSS_OPTIONS[name]} - ({"criterion"} if name in ("bce", "blob_bce") else set())


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("focal", {}, r"Unknown loss 'focal'; choose one of \['dice'"),
        ("dice", {"alpha": 1}, r"'alpha' applies only to the blob_\* losses"),
        ("iw", {"mask_space": "logits"}, r"loss 'iw' does not take option\(s\) \['mask_space'\]"),
        ("dice", {"iw_criterion": "bce"}, r"'iw_criterion' applies only to \['iw'\]"),
        ("blob_dice", {"mask_space": "voxels"}, r"mask_space='voxels' is not supported; use one of \['probabilities', 'logits'\]"),
        ("blob_dice", {"implementation": "fast"}, r"implementation='fast'"),
        ("blob_dice", {"masking": "no"}, r"masking='no' must be true or false"),
        ("blob_dice", {"alpha": 0, "beta": 0}, "both 0"),
        ("blob_dice", {"criterion": {"tversky_alpha": 0.5}}, r"'blob_dice' \(dice\) does not use criterion option\(s\) \['tversky_alpha'\]"),
        ("blob_dice", {"criterion": {"smoothing": 1}}, r"unknown option\(s\) \['smoothing'\]"),
        ("blob_dice", {"criterion": 0.5}, "must be a mapping"),
        ("blob_dice_nomask", {"masking": True}, "contradicts"),
        ("iw", {"iw_criterion": "focal"}, r"iw_criterion='focal' is not supported; use one of \['dice', 'bce', 'asl'\]"),
    ],
)
def test_loss_config_errors(name, options, match) -> None:
    with pytest.raises(ValueError, match=match):
        loss_settings.loss_config(name, **options)


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ({"name": "blob_dice"}, ""),
        ({"name": "blob_dice_nomask"}, ""),
        ({"name": "blob_dice", "masking": False}, "no masking"),
        ({"name": "blob_dice", "mask_space": "logits"}, "logit masking"),
        ({"name": "blob_dice_nomask", "published_running_mean": True}, "published running mean"),
        ({"name": "blob_tversky", "criterion": {"tversky_alpha": 0.5, "tversky_beta": 0.5}}, "tversky 0.5/0.5"),
        ({"name": "dice", "criterion": {"smooth_nr": 0, "smooth_dr": 0}}, "smooth 0/0"),
        ({"name": "iw", "iw_criterion": "bce"}, "weighted BCE"),
        ({"name": "blob_dice", "alpha": 3}, ""),  # alpha/beta have their own columns
    ],
)
def test_describe_loss_options(entry, text) -> None:
    assert loss_settings.describe_loss_options(entry) == text


@pytest.mark.parametrize(
    ("entry", "check"),
    [
        ({"name": "blob_dice", "mask_space": "logits"}, lambda m: m.mask_space.value == "logits"),
        ({"name": "blob_dice", "masking": False}, lambda m: m.masking is False),
        ({"name": "blob_dice_nomask", "published_running_mean": True}, lambda m: m.published_running_mean),
        ({"name": "blob_dice", "implementation": "loop"}, lambda m: m.implementation.value == "loop"),
        ({"name": "blob_tversky", "criterion": {"tversky_alpha": 0.2, "tversky_beta": 0.8}},
         lambda m: m.criterion_settings.tversky_alpha == 0.2 and m.criterion_settings.tversky_beta == 0.8),
        ({"name": "tversky", "criterion": {"tversky_alpha": 0.2}}, lambda m: m.criterion.alpha == 0.2),
        ({"name": "dice", "criterion": {"smooth_nr": 0.5}}, lambda m: m.criterion.smooth_nr == 0.5),
        ({"name": "iw", "iw_criterion": "bce"}, lambda m: m.criterion == "bce"),
    ],
)
def test_every_option_reaches_the_built_loss(entry, check) -> None:
    from blobloss.training.losses import build_loss_from_config

    loss = build_loss_from_config(loss_settings.loss_config(**entry))
    assert check(loss)
    logits = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(loss(logits, _instances()))


def test_tables_show_the_loss_options_in_the_setting_labels() -> None:
    import pandas as pd

    from blobloss import tables

    nan = float("nan")
    base = dict(dataset="ms", loss="blob_dice", lr=0.01, alpha=2.0, beta=1.0, model="basicunet", checkpoint="last",
                seed=0, case="c0", dsc=0.5, sensitivity=0.5, precision=0.5, surface_dice=0.5, tp=1, fp=1, fn=0,
                instance_sensitivity=1.0, instance_precision=0.5, f1=2 / 3, gt_empty=False, pred_empty=False)
    per_case = pd.DataFrame([
        dict(base, setting="blob_dice", loss_options=nan),  # empty text reads back from CSV as NaN
        dict(base, setting="blob_dice_logitmask", loss_options="logit masking"),
        dict(base, setting="dice", loss="dice", alpha=nan, beta=nan, loss_options=nan),
    ])
    summary = tables.summarize_runs(per_case)
    assert summary["loss_options"].tolist()[1] == "logit masking"
    assert tables._labels(summary, with_alpha_beta=False) == ["blob dice", "blob dice (logit masking)", "dice"]
    # without the column (tables written before the option existed) the labels are the plain loss names
    assert tables._labels(summary.drop(columns="loss_options"), with_alpha_beta=False) == [
        "blob dice [blob_dice]", "blob dice [blob_dice_logitmask]", "dice"]


# ------------------------------------------------------------------------------------ light install
def test_pipeline_extra_lists_every_pipeline_import() -> None:
    """The extra the ImportError names holds what _optional checks (import names of its distributions)."""
    import tomllib

    from blobloss._optional import EXTRAS

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(re.split(r"[<>=!~\[ ]", d)[0].lower() for d in project["dependencies"]) == [
        "connected-components-3d", "numpy", "torch"]
    extras = project["optional-dependencies"]
    import_name = {"pyyaml": "yaml", "pytorch-optimizer": "pytorch_optimizer"}
    dists = [re.split(r"[<>=!~\[ ]", d)[0] for d in extras["pipeline"]]
    expected = {import_name.get(d.lower(), d) for d in dists if d not in ("blobloss", "snakemake", "pygments")}
    assert set(EXTRAS["pipeline"]) == expected | set(EXTRAS["monai"])
    assert "blobloss[monai]" in extras["pipeline"] and extras["monai"] == ["monai>=1.3"]
    for extra in ("test", "report", "slurm"):
        assert any(r.startswith("blobloss[") and "pipeline" in r[9:-1].split(",") for r in extras[extra]), extras[extra]


def test_require_names_the_extra() -> None:
    from blobloss._optional import missing_modules, require

    with pytest.raises(ImportError, match=r"needed for the loop but is not installed .* the 'monai' extra: "
                                          r"pip install \"blobloss\[monai\]\""):
        require("no_such_module_xyz", extra="monai", purpose="the loop")
    assert missing_modules("pipeline") == []  # the test environment has the pipeline extra
    with pytest.raises(ValueError, match="unknown extra 'gui'"):
        missing_modules("gui")


_LIGHT_CHECK = r"""
import sys, torch
from blobloss.losses import BlobLoss, InverseWeightingLoss, MultiClassBlobLoss
logits = torch.randn(2, 1, 8, 8, 4, requires_grad=True)
inst = torch.zeros(2, 1, 8, 8, 4, dtype=torch.long); inst[0, 0, :2, :2, :2] = 1; inst[1, 0, 5:, 5:, 2:] = 2
loss = BlobLoss("dice")(logits, inst) + BlobLoss("tversky", mask_space="logits")(logits, inst)
loss = loss + InverseWeightingLoss("dice")(logits, inst)
two = torch.cat([torch.zeros_like(logits), logits], 1)
loss = loss + MultiClassBlobLoss("bce")(two, inst, class_map=(inst > 0).long())
loss.backward()
assert torch.isfinite(logits.grad).all()
for name in ("pandas", "monai", "pymia", "SimpleITK", "seaborn", "snakemake"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable in the light environment")
for module in ("blobloss.metrics", "blobloss.training", "blobloss.plots"):
    try:
        __import__(module)
    except ImportError as err:
        assert "'pipeline' extra" in str(err) and 'pip install "blobloss[pipeline]"' in str(err), err
    else:
        raise SystemExit(f"{module} imported without the pipeline extra")
try:
    BlobLoss("dice", implementation="loop")
except ImportError as err:
    assert "'monai' extra" in str(err), err
else:
    raise SystemExit("the loop reference needs MONAI")
print("light ok", float(loss))
"""


def _distribution_files(name: str, target: Path) -> None:
    """Link the installed files of distribution ``name`` (top-level packages, modules, metadata) into target."""
    import importlib.metadata

    dist = importlib.metadata.distribution(name)
    root = Path(dist.locate_file(""))
    for top in sorted({Path(f).parts[0] for f in dist.files or []}):
        if top in ("..", "__pycache__") or top.startswith("."):
            continue
        source = root / top
        if source.exists() and not (target / top).exists():
            (target / top).symlink_to(source)


@pytest.mark.slow
def test_pip_install_gives_the_light_loss_library(tmp_path: Path) -> None:
    """``pip install blobloss`` resolves to torch, numpy and cc3d only, and the loss works with only those.

    1. In a fresh venv without system site packages, pip resolves ``torch==2.13.0 <repo>`` (a dry run with
       a report): besides torch and its own requirements it installs exactly numpy, cc3d and blobloss.
    2. The wheel is installed there without dependencies; the resolved base distributions are
       linked in from this environment (installing torch anew takes minutes), nothing else. There the three
       losses compute and backpropagate, and the pipeline modules raise the ImportError naming the extra.
    """
    import json

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no system site packages
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "-q"]
    # without PYTHONPATH: a source tree on it would count as an installed blobloss and pip would skip ours
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run = {"check": True, "capture_output": True, "text": True, "timeout": 600, "env": clean}
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(REPO)], **run)
    (wheel,) = (tmp_path / "dist").glob("blobloss-*.whl")
    report = tmp_path / "report.json"
    subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", "--report", str(report), "torch==2.13.0",
                    str(wheel)], **run)
    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    install = {canonical(item["metadata"]["name"]): item for item in json.loads(report.read_text())["install"]}

    def closure(name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in install:
                continue
            seen.add(current)
            for req in install[current]["metadata"].get("requires_dist", []):
                if "extra ==" not in req:
                    todo.append(canonical(re.split(r"[<>=!~;\[ (]", req)[0]))
        return seen

    torch_deps = closure("torch")
    assert set(install) - torch_deps == {"blobloss", "numpy", "connected-components-3d"}

    subprocess.run([*pip, "install", "--no-deps", str(wheel)], **run)
    base = tmp_path / "base"
    base.mkdir()
    for name in sorted(torch_deps | {"numpy", "connected-components-3d"}):
        _distribution_files(name, base)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "base_packages.pth").write_text(str(base) + "\n")
    proc = subprocess.run([str(python), "-c", _LIGHT_CHECK], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={"PATH": str(venv / "bin"), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "light ok" in proc.stdout


@pytest.mark.parametrize("which", ["blob", "multiclass", "iw"])
def test_half_precision_logits_of_a_large_volume_are_not_reported_as_inf(which: str) -> None:
    # 2 x 64 x 64 x 32 voxels of logit -8 sum to about -2e6, beyond float16's range (65504)
    logits = torch.full((2, 1, 64, 64, 32), -8.0, dtype=torch.float16)
    inst = torch.zeros(logits.shape, dtype=torch.long)
    inst[0, 0, :2, :2, :2] = 1
    if which == "blob":
        loss = BlobLoss("dice")(logits, inst)
    elif which == "iw":
        # the check passes; the weighted criterion itself is computed in the logits' dtype (weights up to
        # 2e5 exceed float16's range, so the loss value may overflow: train it in float32 or bf16)
        InverseWeightingLoss("dice")(logits, inst)
        return
    else:
        loss = MultiClassBlobLoss("dice")(torch.cat([torch.zeros_like(logits), logits], 1), inst,
                                          class_map=(inst > 0).long())
    assert torch.isfinite(loss)
