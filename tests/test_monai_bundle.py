"""The MONAI bundle in examples/monai_bundle: BlobLoss with instance maps, run with `python -m monai.bundle run`."""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "examples" / "monai_bundle"

pytest.importorskip("fire", reason="`python -m monai.bundle` needs fire (pip install \"blobloss[bundle]\")")
pytest.importorskip("ignite", reason="MONAI's SupervisedTrainer needs pytorch-ignite (pip install \"blobloss[bundle]\")")


def _parser():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.read_meta(str(BUNDLE / "configs" / "metadata.json"))
    parser["bundle_root"] = str(BUNDLE)
    return parser


def test_bundle_config_uses_blob_loss_and_instance_maps() -> None:
    from blobloss.losses import BlobLoss
    from blobloss.transforms import ConnectedComponentsd

    parser = _parser()
    assert parser.get("loss")["_target_"] == "blobloss.losses.BlobLoss"
    loss = parser.get_parsed_content("loss")
    assert isinstance(loss, BlobLoss) and (loss.alpha, loss.beta) == (2.0, 1.0)
    steps = [t["_target_"] for t in parser.get("train#preprocessing#transforms")]
    at = steps.index("blobloss.transforms.ConnectedComponentsd")
    assert steps.index("RandSpatialCropd") > at  # instance maps before the crop
    crop = parser.get("train#preprocessing#transforms")[steps.index("RandSpatialCropd")]
    assert set(crop["keys"]) == {"image", "label", "instances"}
    assert isinstance(parser.get_parsed_content("train#preprocessing").transforms[at], ConnectedComponentsd)
    # the trainer's target is the instance map, not the binary label
    batch = {"image": torch.zeros(1), "label": torch.ones(1), "instances": torch.full((1,), 7)}
    image, target = parser.get_parsed_content("train#prepare_batch")(batch, torch.device("cpu"))
    assert int(target) == 7


def _doc_commands() -> list[str]:
    """The bash commands of docs/monai.md's bundle section."""
    text = (REPO / "docs" / "monai.md").read_text().split("## The example bundle", 1)[1]
    block = re.findall(r"```bash\n(.*?)```", text, flags=re.S)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_bundle_runs_a_few_iterations(tmp_path: Path) -> None:
    """The two commands of docs/monai.md, with a temporary dataset and output folder."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    data, models = tmp_path / "data", tmp_path / "models"
    commands = _doc_commands()
    assert len(commands) == 2 and commands[1].startswith("python -m monai.bundle run ")
    for cmd in commands:
        argv = shlex.split(cmd.replace("examples/monai_bundle/data", str(data)).replace(
            "examples/monai_bundle/models", str(models)))
        assert argv[0] == "python"
        res = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=900)
        log = res.stdout + res.stderr
        assert res.returncode == 0, log[-4000:]
    assert len(list((data / "images").glob("*.nii.gz"))) == 4 == len(list((data / "labels").glob("*.nii.gz")))
    losses = [float(v) for v in re.findall(r"train_loss: ([-+0-9.eE]+|nan|inf)", log)]
    assert len(losses) == 4, log[-2000:]  # 2 epochs x 2 iterations (4 cases, batch 2)
    assert all(math.isfinite(v) and 0.0 < v <= 3.0 for v in losses), losses  # 2 * Dice + blob Dice
    state = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    network = _parser().get_parsed_content("network_def")
    network.load_state_dict(state)  # the saved weights are the bundle's network
