"""Repository-level promises: the README's commands and CI stay in sync."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def setup_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [line for block in _bash_blocks(section) for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_has_exactly_two_setup_commands() -> None:
    cmds = setup_commands()
    assert len(cmds) == 2, cmds
    assert "snakemake" in cmds[0] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command() -> None:
    test_cmd = setup_commands()[1]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def test_cpu_constraints_pin_torch_exactly() -> None:
    lines = (REPO / "requirements" / "cpu.txt").read_text().splitlines()
    assert any(re.fullmatch(r"torch==\d+\.\d+\.\d+", l.strip()) for l in lines)
    pins = [l.strip() for l in lines if l.strip() and not l.lstrip().startswith("#")]
    assert all(p.startswith("torch==") for p in pins), f"only torch's CPU build is pinned: {pins}"


def test_test_constraints_pin_only_a_matching_torch_torchvision_pair() -> None:
    """The test install pins torch and torchvision together (nnU-Net imports torchvision) and nothing else."""
    lines = (REPO / "requirements" / "test.txt").read_text().splitlines()
    pins = dict(l.strip().split("==") for l in lines if l.strip() and not l.lstrip().startswith("#"))
    assert set(pins) == {"torch", "torchvision"}, pins
    torch_minor = int(pins["torch"].split(".")[1])
    vision_minor = int(pins["torchvision"].split(".")[1])
    assert pins["torch"].startswith("2.") and vision_minor == torch_minor + 15, pins  # torchvision 0.(m+15) <-> torch 2.m
    assert "-c requirements/test.txt" in setup_commands()[1]


def test_default_profile_does_not_override_the_slurm_profile() -> None:
    """profiles/default is layered over `--profile profiles/slurm` and wins: it must hold nothing local-only."""
    import yaml

    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    # a global GPU cap in the default profile would let one GPU job run at a time on the whole cluster
    assert "resources" not in default and "executor" not in default
    # where both set a value they agree (cores only sizes thread expressions; `jobs` limits a cluster run)
    clashes = {k: (default[k], slurm[k]) for k in default.keys() & slurm.keys() if k != "cores" and default[k] != slurm[k]}
    assert not clashes, clashes


RULE_RE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |^def |^[A-Za-z_]\w* = |^localrules|\Z)", re.S | re.M)


def _rule_captions() -> dict[str, tuple[set[str], set[str]]]:
    """Rule -> (captions its outputs use, directly or through a helper function; its params' names)."""
    found = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        helpers = dict(re.findall(r"^def (\w+)\(.*?\n(.*?)(?=^\S|\Z)", text, re.S | re.M))
        for name, body in RULE_RE.findall(text):
            called = "".join(helpers[h] for h in helpers if re.search(rf"\b{h}\(", body))
            captions = set(re.findall(r'caption="\.\./report/([\w.]+)"', body + called))
            params = re.search(r"^    params:\n((?:^        .*\n|^\s*\n)*)", body, re.M)
            names = set(re.findall(r"^        (\w+)=", params.group(1), re.M)) if params else set()
            if captions:
                found[name] = (captions, names)
    return found


def test_every_caption_uses_only_params_its_rule_declares() -> None:
    # Snakemake renders a caption with jinja2, where an undeclared snakemake.params.X is silently false:
    # a caption testing a misspelt param would always take its "else" text.
    rules = _rule_captions()
    assert {"tables", "training_curve", "training_curves", "paired_figure", "recall_by_size_figure"} <= set(rules)
    used_captions = set()
    for rule, (captions, params) in rules.items():
        for caption in captions:
            used_captions.add(caption)
            text = (REPO / "workflow" / "report" / caption).read_text()
            wanted = set(re.findall(r"snakemake\.params\.(\w+)", text))
            assert wanted <= params, f"{caption} (rule {rule}) uses params {sorted(wanted - params)} the rule lacks"
    assert used_captions == {p.name for p in (REPO / "workflow" / "report").glob("*.rst")}
