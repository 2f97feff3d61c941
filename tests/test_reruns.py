"""Reruns follow the real imports: each rule's code inputs are the import closure of its script.

* the scanner (workflow/lib/codedeps.py) on tiny hand-made packages: every import form, function-level
  imports counted only for the functions used, the errors it raises;
* for every script, what the scan says its import lines load equals what Python loads (``sys.modules``);
* every rule declares ``code=job_code(<its own script>)``;
* on a copy of the workflow, the dry run's code inputs of every rule are the scan of its script, taken
  from the copy's own src/, and a content edit of a module reruns exactly the rules that run it and what
  depends on them (tables code never retrains a model; logs.py reruns every job).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PKG = SRC / "blobloss"
SCRIPTS = sorted((REPO / "scripts").glob("*.py"))


def _load_scanner():
    spec = importlib.util.spec_from_file_location("codedeps_under_test", REPO / "workflow" / "lib" / "codedeps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


codedeps = _load_scanner()


def rel(paths, root: Path) -> set[str]:
    return {Path(p).relative_to(root).as_posix() for p in paths}


# ---------------------------------------------------------------------------------------------------
# The scanner on tiny packages
# ---------------------------------------------------------------------------------------------------
def make_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


BASE = {"pkg/__init__.py": "", "pkg/a.py": "", "pkg/b.py": "", "pkg/sub/__init__.py": "", "pkg/sub/c.py": ""}

# (case id, extra or replaced files, script, full closure, eager-only closure)
CASES = [
    ("import-dotted", {}, "import pkg.sub.c\n",
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}, None),
    ("from-module-import-name", {}, "from pkg.a import x\n", {"pkg/__init__.py", "pkg/a.py"}, None),
    ("from-package-import-submodule", {}, "from pkg.sub import c\n",
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}, None),
    ("other-packages-ignored", {}, "import os\nimport numpy as np\nfrom collections import Counter\n", set(), None),
    ("import-as", {}, "import pkg.a as m\nm.f()\n", {"pkg/__init__.py", "pkg/a.py"}, None),
    ("transitive", {"pkg/a.py": "from pkg import b\n"}, "import pkg.a\n",
     {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, None),
    ("relative-level-1", {"pkg/sub/c.py": "from . import d\n", "pkg/sub/d.py": ""}, "import pkg.sub.c\n",
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py", "pkg/sub/d.py"}, None),
    ("relative-level-2", {"pkg/sub/c.py": "from ..a import f\n"}, "import pkg.sub.c\n",
     {"pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}, None),
    ("relative-in-init", {"pkg/sub/__init__.py": "from .c import f\n"}, "import pkg.sub\n",
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}, None),
    ("package-init-imports-count", {"pkg/__init__.py": "from pkg.b import g\n"}, "import pkg.a\n",
     {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, None),
    ("function-import-of-used-function",
     {"pkg/a.py": "def f():\n    from pkg.b import g\n    return g()\n"},
     "from pkg.a import f\nf()\n",
     {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, {"pkg/__init__.py", "pkg/a.py"}),
    ("function-import-of-unused-function",
     {"pkg/a.py": "def f():\n    return 1\n\ndef h():\n    from pkg.b import g\n    return g()\n"},
     "from pkg.a import f\nf()\n", {"pkg/__init__.py", "pkg/a.py"}, None),
    ("helper-of-used-function",
     {"pkg/a.py": "def f():\n    return _h()\n\ndef _h():\n    import pkg.sub.c\n"},
     "from pkg.a import f\nf()\n",
     {"pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}, {"pkg/__init__.py", "pkg/a.py"}),
    ("through-a-reexport",
     {"pkg/sub/__init__.py": "from pkg.sub.c import f\n", "pkg/sub/c.py": "def f():\n    from pkg import b\n"},
     "from pkg.sub import f\nf()\n",
     {"pkg/__init__.py", "pkg/b.py", "pkg/sub/__init__.py", "pkg/sub/c.py"},
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}),
    ("function-import-of-another-function",
     {"pkg/a.py": "from pkg.b import g\n\ndef f():\n    return g()\n",
      "pkg/b.py": "def g():\n    import pkg.sub.c\n"},
     "from pkg.a import f\nf()\n",
     {"pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/sub/__init__.py", "pkg/sub/c.py"},
     {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}),
    ("attribute-chain", {"pkg/sub/c.py": "def f():\n    import pkg.b\n"},
     "import pkg.sub.c\npkg.sub.c.f()\n",
     {"pkg/__init__.py", "pkg/b.py", "pkg/sub/__init__.py", "pkg/sub/c.py"},
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}),
    ("method-of-used-class",
     {"pkg/a.py": "class K:\n    def run(self):\n        from pkg import b\n"},
     "from pkg.a import K\nK().run()\n", {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, {"pkg/__init__.py", "pkg/a.py"}),
    ("call-at-import-time", {"pkg/a.py": "def _make():\n    from pkg import b\n\nX = _make()\n"},
     "from pkg.a import X\n", {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, {"pkg/__init__.py", "pkg/a.py"}),
    ("decorator-runs-at-import", {"pkg/a.py": "def deco(fn):\n    import pkg.b\n    return fn\n\n@deco\ndef f():\n    pass\n"},
     "import pkg.a\n", {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, {"pkg/__init__.py", "pkg/a.py"}),
    ("type-checking-skipped",
     {"pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\nelse:\n    from pkg.sub import c\n"},
     "import pkg.a\n", {"pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}, None),
    ("guarded-missing-module",
     {"pkg/a.py": "try:\n    from pkg import optional\nexcept ImportError:\n    optional = None\n"},
     "import pkg.a\n", {"pkg/__init__.py", "pkg/a.py"}, None),
    ("guarded-missing-module-used-later",
     {"pkg/a.py": "try:\n    import pkg.optional as opt\nexcept ImportError:\n    opt = None\n\ndef f():\n    return opt.g()\n"},
     "from pkg.a import f\nf()\n", {"pkg/__init__.py", "pkg/a.py"}, None),
    ("import-module-literal", {"pkg/a.py": "import importlib\nmod = importlib.import_module('pkg.b')\n"},
     "import pkg.a\n", {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, None),
    ("import-module-relative", {"pkg/sub/c.py": "from importlib import import_module\n\ndef f():\n    return import_module('..b', __package__)\n"},
     "from pkg.sub.c import f\nf()\n",
     {"pkg/__init__.py", "pkg/b.py", "pkg/sub/__init__.py", "pkg/sub/c.py"},
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}),
    ("lazy-getattr-init",
     {"pkg/__init__.py": "import importlib\n_LAZY = {'g': 'pkg.b', 'h': 'pkg.sub.c'}\n\n"
                         "def __getattr__(name):\n    return getattr(importlib.import_module(_LAZY[name]), name)\n"},
     "from pkg import g\n", {"pkg/__init__.py", "pkg/b.py"}, None),
    ("star-import-counts-everything", {"pkg/a.py": "def f():\n    from pkg import b\n"},
     "from pkg.a import *\n", {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, {"pkg/__init__.py", "pkg/a.py"}),
    ("module-passed-as-value", {"pkg/a.py": "def f():\n    from pkg import b\n"},
     "import pkg.a\nprint(pkg.a)\n", {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, {"pkg/__init__.py", "pkg/a.py"}),
    ("scripts-own-functions-count", {"pkg/a.py": "def f():\n    from pkg import b\n"},
     "def main():\n    from pkg.a import f\n    f()\n",
     {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"}, set()),
    ("import-inside-with-block", {},
     "import contextlib\nwith contextlib.suppress(Exception):\n    from pkg.sub import c\n",
     {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py"}, None),
    ("namespace-package", {"pkg/ns/d.py": ""}, "import pkg.ns.d\n", {"pkg/__init__.py", "pkg/ns/d.py"}, None),
    # a script's own function that uses a name its caller binds (scopes referring to each other): scanned once
    ("script-scopes-refer-to-each-other", {},
     "from pkg.a import f\ndef helper(xs):\n    return [seed for seed in xs]\nseed = f(helper([1]))\n",
     {"pkg/__init__.py", "pkg/a.py"}, None),
]


@pytest.mark.parametrize("files, script, full, eager", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_closure_of_a_tiny_package(tmp_path: Path, files, script, full, eager) -> None:
    make_tree(tmp_path, {**BASE, **files, "job.py": script})
    assert rel(codedeps.import_closure(tmp_path / "job.py", tmp_path, "pkg"), tmp_path) == full
    eager_expected = full if eager is None else eager
    assert rel(codedeps.import_closure(tmp_path / "job.py", tmp_path, "pkg", eager_only=True), tmp_path) == eager_expected


ERRORS = [
    ("missing-module", {"pkg/a.py": "import os\nfrom pkg.nothere import x\n"}, "import pkg.a\n",
     r"a\.py:2: imports 'pkg\.nothere', which is not a module of 'pkg'"),
    ("missing-module-in-used-function", {"pkg/a.py": "def f():\n    import pkg.gone\n"}, "from pkg.a import f\nf()\n",
     r"a\.py:2: imports 'pkg\.gone'"),
    ("syntax-error", {"pkg/a.py": "def f(:\n"}, "import pkg.a\n", r"a\.py:1: cannot scan its imports"),
    ("relative-import-in-script", {}, "from . import a\n", r"job\.py:1: relative import outside a package"),
    ("relative-above-top", {"pkg/a.py": "from ... import x\n"}, "import pkg.a\n", r"above the top-level package 'pkg'"),
]


@pytest.mark.parametrize("files, script, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_scan_errors_name_the_file_and_line(tmp_path: Path, files, script, message) -> None:
    make_tree(tmp_path, {**BASE, **files, "job.py": script})
    with pytest.raises(codedeps.ImportScanError, match=message):
        codedeps.import_closure(tmp_path / "job.py", tmp_path, "pkg")


def test_scan_errors_for_a_missing_script_or_package(tmp_path: Path) -> None:
    make_tree(tmp_path, BASE)
    with pytest.raises(codedeps.ImportScanError, match=r"nope\.py: no such script"):
        codedeps.import_closure(tmp_path / "nope.py", tmp_path, "pkg")
    (tmp_path / "job.py").write_text("import pkg\n")
    with pytest.raises(codedeps.ImportScanError, match=r"holds no package folder 'other'"):
        codedeps.import_closure(tmp_path / "job.py", tmp_path, "other")


def test_a_changed_file_is_scanned_again(tmp_path: Path) -> None:
    make_tree(tmp_path, {**BASE, "job.py": "import pkg.a\n"})
    assert rel(codedeps.import_closure(tmp_path / "job.py", tmp_path, "pkg"), tmp_path) == {"pkg/__init__.py", "pkg/a.py"}
    (tmp_path / "pkg" / "a.py").write_text("import pkg.b  # now longer\n")
    assert "pkg/b.py" in rel(codedeps.import_closure(tmp_path / "job.py", tmp_path, "pkg"), tmp_path)


# ---------------------------------------------------------------------------------------------------
# The real scripts: the scan against what Python loads
# ---------------------------------------------------------------------------------------------------
_LOADED = r"""
import ast, json, sys
from pathlib import Path
src = Path(sys.argv[1]).resolve()
result = {}
for script in sys.argv[2:]:
    for name in [n for n in sys.modules if n == "blobloss" or n.startswith("blobloss.")]:
        del sys.modules[name]
    tree = ast.parse(Path(script).read_text())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), script, "exec"), {"__name__": "job_imports"})
    files = [m.__file__ for n, m in list(sys.modules.items())
             if (n == "blobloss" or n.startswith("blobloss.")) and getattr(m, "__file__", None)]
    result[Path(script).name] = sorted(str(Path(f).resolve()) for f in files)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def loaded_by_python() -> dict[str, set[str]]:
    """Script name -> the package files ``sys.modules`` holds after the script's import lines ran."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-c", _LOADED, str(SRC), *map(str, SCRIPTS)],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: set(files) for name, files in loaded.items()}


def test_the_scripts_import_only_at_top_level() -> None:
    """The check below runs a script's top-level import lines; a script keeps its imports there."""
    for script in SCRIPTS:
        tree = ast.parse(script.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        every = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert len(top) == len(every), f"{script.name}: move its imports to the top of the file"


def test_the_scan_equals_what_python_loads_for_every_script(loaded_by_python) -> None:
    assert set(loaded_by_python) == {s.name for s in SCRIPTS}
    for script in SCRIPTS:
        loaded = loaded_by_python[script.name]
        assert loaded, f"{script.name} loads no blobloss module"
        assert all(Path(f).is_relative_to(PKG) for f in loaded), f"{script.name}: loaded outside {PKG}: {loaded}"
        eager = {str(p) for p in codedeps.import_closure(script, SRC, eager_only=True)}
        full = {str(p) for p in codedeps.import_closure(script, SRC)}
        assert eager == loaded, (script.name, sorted(rel(eager ^ loaded, PKG)))
        assert loaded <= full


def test_every_job_depends_on_what_it_runs_and_not_on_other_jobs_code() -> None:
    closure = {s.name: rel(codedeps.import_closure(s, SRC), PKG) for s in SCRIPTS}
    for name, files in closure.items():
        assert "logs.py" in files and "__init__.py" in files, name  # every job logs through blobloss.logs
    for name in ("train.py", "predict.py"):  # an edit of tables, figures or metrics code never retrains
        assert not {f for f in closure[name] if f.startswith("metrics/")} and not closure[name] & {"tables.py", "plots.py", "study.py", "stats.py", "data/convert.py", "data/manifest.py"}, closure[name]
        assert {"gpu.py", "jobs.py", "training/model.py"} <= closure[name]
    assert {"losses/blob.py", "losses/criteria.py", "losses/__init__.py", "training/loop.py"} <= closure["train.py"]
    # blobloss.losses loads its submodules lazily: training builds binary losses only, never the multi-class one
    assert "losses/multiclass.py" not in closure["train.py"]
    assert "inference.py" in closure["predict.py"] and "inference.py" not in closure["train.py"]
    assert "metrics/case.py" in closure["metrics.py"] and "plots.py" in closure["training_curves.py"]
    assert "data/synthetic.py" in closure["convert_case.py"]  # imported inside the conversion functions
    scanned = set().union(*closure.values())
    assert scanned <= rel(codedeps.package_modules(SRC), PKG)


RULE_RE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |^def |^[A-Za-z_]\w* = |\Z)", re.S | re.M)


def rule_scripts() -> dict[str, tuple[str, str | None]]:
    """Rule name -> (its script, the script its code input names), from the rule files."""
    rules = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        helpers = dict(re.findall(r'^def (\w+)\(.*?\n(.*?)(?=^\S|\Z)', text, re.S | re.M))
        for name, body in RULE_RE.findall(text):
            script = re.search(r'script:\s*\n\s*"\.\./\.\./scripts/([\w.]+)"', body)
            if not script:
                continue
            code = re.search(r'code=job_code\("([\w.]+)"\)', body)
            if code is None:  # an input function (train's unpack) holds the code line
                called = [h for h in helpers if re.search(rf"\b{h}\b", body)]
                found = [re.search(r'"code": job_code\("([\w.]+)"\)', helpers[h]) for h in called]
                code = next((m for m in found if m), None)
            rules[name] = (script.group(1), code.group(1) if code else None)
    return rules


def test_every_rule_declares_the_closure_of_its_own_script() -> None:
    rules = rule_scripts()
    assert {"train", "predict", "tables", "convert_case", "metrics", "blob_features"} <= set(rules)
    wrong = {rule: pair for rule, pair in rules.items() if pair[0] != pair[1]}
    assert not wrong, f'rules whose code input is not code=job_code("<their script>"): {wrong}'
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        assert not re.search(r"code=pkg_src|pkg_src\(\"", smk.read_text()), smk.name


# ---------------------------------------------------------------------------------------------------
# The workflow itself, on a copy (its own src/ is what is edited)
# ---------------------------------------------------------------------------------------------------
TINY = {
    "results_dir": "results",
    "datasets": {
        "syn": {
            "source": {"format": "synthetic", "n_cases": 3, "shape": [32, 24, 16], "seed": 1},
            "split": {"test_fraction": 0.34},
            "training": {"model": {"features": [2, 2, 2, 2, 2, 2]}, "batch_size": 1, "crops_per_case": 1,
                         "epochs": 1, "num_workers": 0, "patch_size": [32, 16, 16],
                         "losses": [{"name": "dice", "loss": "dice"}, {"name": "blob_dice", "loss": "blob_dice"}]},
        },
        # label files that hold instance ids take the other conversion rule; the DAG is only planned and
        # touched, never run, so empty raw files do
        "ids": {
            "source": {"format": "generic", "path": "raw_ids"},
            "instance_labels": True,
            "split": {"test_fraction": 0.5},
            "training": {"patch_size": [32, 16, 16], "epochs": 1, "losses": [{"name": "dice", "loss": "dice"}]},
        },
    },
}


def copy_workflow(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    for name in ("workflow", "scripts", "src", "config", "envs", "profiles"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    # a rule's message: replaces its input/output block in Snakemake's output; the copy prints the blocks
    for smk in [*(dest / "workflow" / "rules").glob("*.smk"), dest / "Snakefile"]:
        smk.write_text(re.sub(r"^    message:\n        .*\n", "", smk.read_text(), flags=re.M))
    return dest


def snakemake(wf: Path, workdir: Path, *args: str, check: bool = True) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(wf / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "1", "--quiet", "host", *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # (--quiet host: the reasons shown)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=300, env=env)
    if check:
        assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def planned_jobs(output: str) -> list[dict]:
    """The jobs of a dry run: rule, inputs, outputs, reason."""
    jobs: list[dict] = []
    for line in output.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):$", line)  # grouped jobs (predict + metrics) are indented
        if m:
            jobs.append({"rule": m.group(1), "input": [], "output": [], "reason": ""})
            continue
        m = re.match(r"^\s+(input|output|reason): (.*)$", line)
        if m and jobs:
            key, value = m.groups()
            jobs[-1][key] = value if key == "reason" else [v.strip() for v in value.split(",")]
    return jobs


@pytest.mark.slow
def test_a_content_edit_reruns_exactly_the_rules_that_run_the_module(tmp_path: Path, loaded_by_python) -> None:
    wf = copy_workflow(tmp_path / "wf")
    work = tmp_path / "run"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(TINY))
    for folder in ("images", "labels"):
        (work / "raw_ids" / folder).mkdir(parents=True)
        for case in ("c0", "c1"):
            (work / "raw_ids" / folder / f"{case}.nii.gz").touch()
    wf_pkg = (wf / "src" / "blobloss").resolve()

    # 1. The whole DAG, planned from scratch: every job's code inputs are its script's closure in the copy.
    jobs = planned_jobs(snakemake(wf, work, "-n"))
    scripts = {rule: script for rule, (script, _) in rule_scripts().items()}
    code: dict[str, set[str]] = {}
    for job in jobs:
        if job["rule"] == "all":
            continue
        pkg_inputs = {p for p in job["input"] if p.endswith(".py")}
        assert all(Path(p).is_relative_to(wf_pkg) for p in pkg_inputs), (job["rule"], pkg_inputs)
        code.setdefault(job["rule"], set()).update(rel(pkg_inputs, wf_pkg))
    assert set(code) == set(scripts), (sorted(code), sorted(scripts))
    for rule, files in code.items():
        assert files == rel(codedeps.import_closure(wf / "scripts" / scripts[rule], wf / "src"), wf_pkg), rule
        # what Python loads for the script (in the repository's src/) is among them
        assert rel(loaded_by_python[scripts[rule]], PKG) <= files, rule

    # Every module of the package: the rules whose code inputs hold it are those whose script runs it.
    for module in rel(codedeps.package_modules(SRC), PKG):
        holders = {rule for rule, files in code.items() if module in files}
        runners = {rule for rule in code if module in rel(codedeps.import_closure(REPO / "scripts" / scripts[rule], SRC), PKG)}
        importers = {rule for rule in code if module in rel(loaded_by_python[scripts[rule]], PKG)}
        assert holders == runners and importers <= holders, (module, holders, runners, importers)

    # The rule graph (which rule's outputs feed which rule) from the same dry run.
    producer = {out: job["rule"] for job in jobs for out in job["output"]}
    feeds: dict[str, set[str]] = {}
    for job in jobs:
        for inp in job["input"]:
            if inp in producer:
                feeds.setdefault(producer[inp], set()).add(job["rule"])

    def downstream(rules: set[str]) -> set[str]:
        seen, todo = set(rules), list(rules)
        while todo:
            for nxt in feeds.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    # 2. Mark the whole study done without running it: every file of the copy dated in the past, every
    #    output after its inputs (in the DAG's order), so the plan is empty until a file changes.
    now = time.time()
    for f in wf.rglob("*"):
        os.utime(f, (now - 10_000, now - 10_000))
    depth: dict[str, int] = {}

    def job_depth(job: dict) -> int:
        key = job["output"][0]
        if key not in depth:
            depth[key] = 1 + max((job_depth(by_output[i]) for i in job["input"] if i in by_output), default=0)
        return depth[key]

    by_output = {out: job for job in jobs for out in job["output"]}
    for job in jobs:
        for out in job["output"]:
            (work / out).parent.mkdir(parents=True, exist_ok=True)
            (work / out).touch()
            os.utime(work / out, (now - 1_000 + job_depth(job), now - 1_000 + job_depth(job)))
    for raw in (work / "raw_ids").rglob("*.nii.gz"):
        os.utime(raw, (now - 5_000, now - 5_000))

    # 3. A content edit of a module plans exactly the rules whose code holds it and what depends on them.
    for module in ("tables.py", "losses/blob.py", "logs.py"):
        path = wf_pkg / module
        original, stat = path.read_bytes(), path.stat()
        try:
            path.write_bytes(original + b"\n# edited by test_reruns\n")
            replanned = planned_jobs(snakemake(wf, work, "-n"))
        finally:
            path.write_bytes(original)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        direct = {rule for rule, files in code.items() if module in files}
        planned = {job["rule"] for job in replanned}
        assert planned == downstream(direct) | {"all"}, (module, sorted(planned), sorted(direct))
        # the jobs Snakemake says rerun because the file changed are jobs of those rules
        because = {job["rule"] for job in replanned if str(path) in job["reason"]}
        assert because and because <= direct, (module, because, direct)
        if module == "tables.py":
            assert not planned & {"train", "predict", "metrics", "convert_case", "components"}, planned
        if module == "losses/blob.py":
            assert "train" in direct and not planned & {"convert_case", "components", "manifest", "blob_features"}
        if module == "logs.py":
            assert direct == set(scripts), sorted(set(scripts) - direct)

    # 4. A module that imports a missing module stops the workflow at parse time, naming file and line.
    tables = wf_pkg / "tables.py"
    tables.write_text(tables.read_text() + "\nfrom blobloss.nothere import x\n")
    out = snakemake(wf, work, "-n", check=False)
    assert "tables.py" in out and "'blobloss.nothere', which is not a module of 'blobloss'" in out, out[-2000:]
