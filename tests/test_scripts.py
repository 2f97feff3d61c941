"""The rule scripts are thin: each calls exactly one job function of blobloss.jobs, inside the job log.

A script may import only its one job function (from ``blobloss.jobs``) and ``log_to_file`` (from
``blobloss.logs``); the one call of the job function is the only call of a package function. Every
function of ``blobloss.jobs`` whose name ends in ``_job`` is used by exactly one script, so each job has one
home and no job is dead code.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import blobloss.jobs

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "scripts").glob("*.py"))


def _imports(tree: ast.Module) -> dict[str, str]:
    """Imported name -> module, for every ``from X import name`` in the script."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.ImportFrom):
            names.update({alias.asname or alias.name: node.module for alias in node.names})
    return names


def _called_names(tree: ast.Module) -> list[str]:
    return [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_script_calls_exactly_one_job_function(script: Path) -> None:
    tree = ast.parse(script.read_text())
    imported = _imports(tree)
    jobs = [name for name, module in imported.items() if module == "blobloss.jobs"]
    others = {name: module for name, module in imported.items() if module != "blobloss.jobs"}
    assert len(jobs) == 1, f"{script.name} imports {jobs} from blobloss.jobs; a script runs exactly one job"
    assert others == {"log_to_file": "blobloss.logs"}, (
        f"{script.name} imports {others}; it may import only its job function and blobloss.logs.log_to_file "
        "(move any other call into the job function in src/blobloss/jobs.py)"
    )
    calls = _called_names(tree)
    assert calls.count(jobs[0]) == 1, f"{script.name} calls {jobs[0]} {calls.count(jobs[0])} times"
    assert calls.count("log_to_file") == 1, f"{script.name}: the job runs inside log_to_file(snakemake.log[0])"
    assert jobs[0].endswith("_job") and callable(getattr(blobloss.jobs, jobs[0], None)), jobs[0]


def test_every_job_function_has_exactly_one_script() -> None:
    defined = {
        name for name, fn in inspect.getmembers(blobloss.jobs, inspect.isfunction)
        if name.endswith("_job") and fn.__module__ == "blobloss.jobs"
    }
    used: dict[str, list[str]] = {}
    for script in SCRIPTS:
        for name, module in _imports(ast.parse(script.read_text())).items():
            if module == "blobloss.jobs":
                used.setdefault(name, []).append(script.name)
    assert set(used) == defined, f"jobs without a script: {defined - set(used)}; unknown: {set(used) - defined}"
    assert all(len(s) == 1 for s in used.values()), {k: v for k, v in used.items() if len(v) > 1}
