"""docs/paper_fidelity.md: every choice the paper leaves open is listed, and what the page cites exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PAGE = (REPO / "docs" / "paper_fidelity.md").read_text()
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())

#: The choices the page must name (first column of its table).
TOPICS = (
    "Learning-rate schedule", "Masking space", "No-masking ablation", "Multi-class reduction",
    "Criterion details", "Inverse-weighting", "Table 1 caption, alpha / beta", "TTA: noise", "Sliding window",
    "MS validation loss", "LiTS liver region", "Percentile normalisation", "Ground-truth instances",
    "Instance counting", "Fig. 4 box plots",
)


def _rows() -> dict[str, list[str]]:
    rows = {}
    for line in PAGE.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 4 and not set(cells[0]) <= {"-"} and cells[0] != "topic":
            rows[cells[0]] = cells
    return rows


def _resolve(node: dict, parts: list[str]) -> dict:
    for part in parts:
        while "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        props = node.get("properties", {})
        assert part in props, f"docs/paper_fidelity.md cites {'.'.join(parts)!r}, but {part!r} is not a config key"
        node = props[part]
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_every_open_choice_has_a_row_saying_paper_we_do_and_where() -> None:
    rows = _rows()
    for topic in TOPICS:
        match = [cells for name, cells in rows.items() if name.startswith(topic)]
        assert match, f"docs/paper_fidelity.md has no row for {topic!r}"
        assert all(cell for cell in match[0][:4]), f"row {topic!r} leaves a column empty"


# `training.optimizer.schedule: ranger21 \| constant`, `inference.noise_std`, ...
CITED_KEYS = sorted(set(re.findall(r"`((?:training|inference|evaluation|split|source|stats|normalization)"
                                    r"(?:\.[a-z_]+)+)(?::\s*([^`]*))?`", PAGE)))


@pytest.mark.parametrize(("key", "values"), CITED_KEYS, ids=[k for k, _ in CITED_KEYS])
def test_every_config_key_the_page_cites_exists_with_its_values(key: str, values: str) -> None:
    parts = key.split(".")
    root = SCHEMA if parts[0] == "stats" else SCHEMA["$defs"]["dataset"]
    node = _resolve(root, parts)
    choices = [v.strip() for v in values.replace("\\|", "|").split("|") if v.strip()] if values else []
    if len(choices) > 1:  # `key: a | b` names the allowed values
        allowed = node.get("enum") or [x for alt in node.get("anyOf", []) for x in alt.get("enum", [])]
        assert set(choices) <= set(allowed), f"{key}: the page says {choices}, the schema allows {allowed}"


CITED_NAMES = sorted(set(re.findall(r"`(blobloss(?:\.[A-Za-z_]+)+)", PAGE)))


@pytest.mark.parametrize("name", CITED_NAMES)
def test_every_module_or_function_the_page_cites_exists(name: str) -> None:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"docs/paper_fidelity.md cites {name}, which does not exist"
            obj = getattr(obj, attr)
        return
    pytest.fail(f"docs/paper_fidelity.md cites {name}, which cannot be imported")


def test_the_page_points_at_nothing_outside_the_repository() -> None:
    assert "../" not in PAGE and "SPEC.md" not in PAGE
