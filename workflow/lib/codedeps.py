"""The package source files a pipeline job runs, found by a static scan of its script's imports.

Snakemake does not see Python imports: a rule reruns when one of its declared inputs changes, so each
rule declares, as its ``code`` input, the package files its script runs. This module computes that list
from the source itself (``ast``): it imports neither the package nor its dependencies (no torch), so the
workflow still parses in a fraction of a second, and no list is ever written by hand.

What counts, starting from the script:

* every module its imports load (``import blobloss.x``, ``from blobloss.x import y``, relative imports,
  ``importlib.import_module("blobloss.x")`` with a literal name), with the ``__init__.py`` of every
  package on the way, and, transitively, every module those modules import when they are loaded;
* the imports inside a function (``def tables_job(): from blobloss.tables import table1``) count when the
  function is used: referenced by the script, by code that runs when its module is loaded, or by another
  used function or class. So one module that holds several jobs does not make every job depend on every
  other job's code: an edit of the tables code does not retrain a model.

Where the source cannot tell, the scan includes more rather than less: a module object passed around as
a value, a star import, a name a module does not define (or a lazy ``__getattr__``) make every name of
that module count; imports under ``if TYPE_CHECKING:`` never run and do not count.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "pkg").mkdir()
    >>> _ = (root / "pkg" / "__init__.py").write_text("")
    >>> _ = (root / "pkg" / "a.py").write_text("def f():\\n    from pkg import b\\n")
    >>> _ = (root / "pkg" / "b.py").write_text("")
    >>> _ = (root / "job.py").write_text("from pkg.a import f\\nf()\\n")
    >>> [p.relative_to(root).as_posix() for p in import_closure(root / "job.py", root, "pkg")]
    ['pkg/__init__.py', 'pkg/a.py', 'pkg/b.py']
    >>> [p.relative_to(root).as_posix() for p in import_closure(root / "job.py", root, "pkg", eager_only=True)]
    ['pkg/__init__.py', 'pkg/a.py']

This file is loaded by path from ``workflow/rules/common.smk`` (it is not part of the package).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ImportScanError", "import_closure", "package_modules"]


class ImportScanError(ValueError):
    """A script or package module cannot be scanned (missing file, syntax error, import of a missing module)."""


# ---------------------------------------------------------------------------------------------------
# What one source file holds
# ---------------------------------------------------------------------------------------------------
Chain = tuple[str, ...]  # a dotted reference in the code: ``a.b.c`` -> ("a", "b", "c")


@dataclass(frozen=True)
class _Import:
    """One import statement (or literal ``import_module`` call), with absolute module names."""

    module: str  # ``import a.b`` -> "a.b"; ``from a import x`` -> "a"
    names: tuple[tuple[str, str], ...] | None  # from-import (name, bound-as) pairs; None for ``import a.b``
    bound: tuple[str, str] | None  # ``import a.b`` binds ("a", "a"); ``import a.b as m`` ("m", "a.b")
    line: int
    guarded: bool  # inside ``try: ... except ImportError``: a missing module is not an error
    dynamic: bool = False  # importlib.import_module(...): the module object is used as a whole


@dataclass
class _Scope:
    """What running a piece of code needs: the imports it executes and the names it refers to."""

    imports: list[_Import] = field(default_factory=list)
    refs: set[Chain] = field(default_factory=set)
    locals: dict[str, tuple] = field(default_factory=dict)  # import bindings local to a function


@dataclass
class _ModuleInfo:
    name: str  # dotted module name ("__main__" for a script)
    path: Path
    is_pkg: bool
    load: _Scope  # runs when the module is imported (module body, class bodies, decorators, defaults)
    top: dict[str, _Scope]  # module-level name -> what using it needs (a function's or class's body)
    bindings: dict[str, tuple]  # module-level import bindings: ("module", X) or ("attr", X, name)
    lazy_map: dict[str, str]  # name -> module, from string dict literals (a lazy ``__getattr__``)
    strings: set[str]  # string constants that may name modules (for a lazy ``__getattr__``)


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
_MODULE_STRING = re.compile(r"^\.*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _chain(node: ast.AST) -> Chain | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return (node.id, *reversed(parts))
    return None


def _is_type_checking(test: ast.expr) -> bool:
    chain = _chain(test)
    return chain is not None and chain[-1] == "TYPE_CHECKING"


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any((_chain(t) or ("",))[-1] in _IMPORT_ERRORS for t in types)


class _Analyzer:
    """Splits a module's source into what runs at import and what each module-level name needs."""

    def __init__(self, name: str, path: Path, is_pkg: bool, tree: ast.Module) -> None:
        self.name, self.path, self.is_pkg = name, path, is_pkg
        self.package = name if is_pkg else name.rpartition(".")[0]
        self.info = _ModuleInfo(name, path, is_pkg, _Scope(), {}, {}, {}, set())
        self._module_level(tree.body, guarded=False)
        if "__getattr__" not in self.info.top:
            return
        for node in ast.walk(tree):  # a lazy module __getattr__: the module names its strings may hold
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
                self.info.strings.add(node.value)
            if isinstance(node, ast.Dict) and node.keys and all(
                isinstance(k, ast.Constant) and isinstance(k.value, str)
                and isinstance(v, ast.Constant) and isinstance(v.value, str) and _MODULE_STRING.match(v.value)
                for k, v in zip(node.keys, node.values)
            ):
                self.info.lazy_map.update({k.value: v.value for k, v in zip(node.keys, node.values)})

    # -- module level ---------------------------------------------------------------------------------
    def _module_level(self, body: list[ast.stmt], guarded: bool) -> None:
        info = self.info
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for imp in self._imports(stmt, guarded):
                    info.load.imports.append(imp)
                    self._bind(imp, info.bindings)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._evaluated_at_definition(stmt, info.load)
                scope = info.top.setdefault(stmt.name, _Scope())
                self._function_body(stmt, scope, guarded)
            elif isinstance(stmt, ast.ClassDef):
                self._class(stmt, info.top.setdefault(stmt.name, _Scope()), guarded)
            elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                self._module_level(stmt.orelse, guarded)
            elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
                catches = any(_catches_import_error(h) for h in stmt.handlers)
                self._module_level(stmt.body, guarded or catches)
                for h in stmt.handlers:
                    self._module_level(h.body, guarded)
                self._module_level(stmt.orelse, guarded or catches)
                self._module_level(stmt.finalbody, guarded)
            elif isinstance(stmt, (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
                for part in ("test", "iter", "target", "items"):
                    value = getattr(stmt, part, None)
                    for node in value if isinstance(value, list) else [value] if value is not None else []:
                        self._expression(node, info.load)
                self._module_level(stmt.body, guarded)
                self._module_level(getattr(stmt, "orelse", []), guarded)
            elif isinstance(stmt, ast.Match):
                self._expression(stmt.subject, info.load)
                for case in stmt.cases:
                    self._module_level(case.body, guarded)
            else:  # assignments, expressions, asserts, ...: evaluated at import
                before = set(info.load.refs)
                self._expression(stmt, info.load)
                for target in self._assigned_names(stmt):  # using the name needs what its value refers to
                    info.top.setdefault(target, _Scope()).refs.update(info.load.refs - before)

    @staticmethod
    def _assigned_names(stmt: ast.stmt) -> list[str]:
        targets = []
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            targets = [stmt.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]

    def _class(self, cls: ast.ClassDef, scope: _Scope, guarded: bool) -> None:
        """A class: its body runs at import; its methods' bodies are what using the class needs."""
        for node in [*cls.decorator_list, *cls.bases, *cls.keywords]:
            self._expression(node, self.info.load)
        for stmt in cls.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._evaluated_at_definition(stmt, self.info.load)
                self._function_body(stmt, scope, guarded)
            elif isinstance(stmt, ast.ClassDef):
                self._class(stmt, scope, guarded)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                self.info.load.imports.extend(self._imports(stmt, guarded))
            else:  # runs at import; methods defined under an `if` belong to the class
                self._expression(stmt, self.info.load)
                self._statements([stmt], scope, guarded)

    def _evaluated_at_definition(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> None:
        for node in [*fn.decorator_list, *fn.args.defaults, *(d for d in fn.args.kw_defaults if d is not None)]:
            self._expression(node, scope)

    # -- function bodies (run only when the function is used) ----------------------------------------
    def _function_body(self, fn: ast.AST, scope: _Scope, guarded: bool) -> None:
        body = fn.body if isinstance(fn.body, list) else [fn.body]
        self._statements(body, scope, guarded)

    def _statements(self, body: list[ast.stmt], scope: _Scope, guarded: bool) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for imp in self._imports(stmt, guarded):
                    scope.imports.append(imp)
                    self._bind(imp, scope.locals)
            elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                self._statements(stmt.orelse, scope, guarded)
            elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
                catches = any(_catches_import_error(h) for h in stmt.handlers)
                self._statements(stmt.body, scope, guarded or catches)
                for h in stmt.handlers:
                    self._statements(h.body, scope, guarded)
                self._statements(stmt.orelse, scope, guarded or catches)
                self._statements(stmt.finalbody, scope, guarded)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for node in getattr(stmt, "decorator_list", []):
                    self._expression(node, scope)
                if isinstance(stmt, ast.ClassDef):
                    for node in [*stmt.bases, *stmt.keywords]:
                        self._expression(node, scope)
                else:
                    for node in [*stmt.args.defaults, *(d for d in stmt.args.kw_defaults if d is not None)]:
                        self._expression(node, scope)
                self._statements(stmt.body, scope, guarded)
            else:
                compound = [
                    getattr(stmt, part) for part in ("body", "orelse", "finalbody", "handlers", "cases")
                    if isinstance(getattr(stmt, part, None), list)
                ]
                if compound:  # if/for/while/with/match: the header is an expression, the bodies statements
                    for part in ("test", "iter", "target", "items", "subject"):
                        value = getattr(stmt, part, None)
                        for node in value if isinstance(value, list) else [value] if value is not None else []:
                            self._expression(node, scope)
                    for block in compound:
                        for item in block:
                            if isinstance(item, ast.match_case):
                                self._expression(item.pattern, scope)
                                if item.guard is not None:
                                    self._expression(item.guard, scope)
                            if isinstance(item, (ast.ExceptHandler, ast.match_case)):
                                self._statements(item.body, scope, guarded)
                            else:
                                self._statements([item], scope, guarded)
                else:
                    self._expression(stmt, scope)

    # -- expressions ---------------------------------------------------------------------------------
    def _expression(self, node: ast.AST, scope: _Scope) -> None:
        """Record the dotted names ``node`` refers to and the literal ``import_module`` calls it makes."""
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, ast.Name) and not isinstance(current.ctx, ast.Load):
                continue  # an assignment target
            if isinstance(current, (ast.Attribute, ast.Name)):
                chain = _chain(current)
                if chain is not None:
                    scope.refs.add(chain)
                    continue
            if isinstance(current, ast.Call):
                imp = self._dynamic_import(current)
                if imp is not None:
                    scope.imports.append(imp)
            if isinstance(current, ast.Lambda):
                stack.append(current.body)
                stack.extend(current.args.defaults)
                continue
            if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # handled as statements
            stack.extend(ast.iter_child_nodes(current))

    def _dynamic_import(self, call: ast.Call) -> _Import | None:
        chain = _chain(call.func)
        if chain is None or chain[-1] not in ("import_module", "__import__") or not call.args:
            return None
        first = call.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            return None
        name = first.value
        if name.startswith("."):
            level = len(name) - len(name.lstrip("."))
            anchor = call.args[1] if len(call.args) > 1 else next(
                (k.value for k in call.keywords if k.arg == "package"), None
            )
            if isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
                base = anchor.value
            elif isinstance(anchor, ast.Name) and anchor.id == "__name__":
                base = self.name
            else:
                base = self.package
            parts = base.split(".") if base else []
            if not parts or level - 1 >= len(parts):
                raise ImportScanError(f"{self.path}:{call.lineno}: cannot resolve the relative import {name!r}")
            rest = name.lstrip(".")
            name = ".".join(parts[: len(parts) - (level - 1)]) + (f".{rest}" if rest else "")
        return _Import(name, None, None, call.lineno, guarded=False, dynamic=True)

    # -- import statements ---------------------------------------------------------------------------
    def _absolute(self, module: str | None, level: int, line: int) -> str:
        if level == 0:
            return module or ""
        if not self.package:
            raise ImportScanError(
                f"{self.path}:{line}: relative import outside a package; write the absolute import "
                f"(from blobloss... import ...)"
            )
        parts = self.package.split(".")
        if level - 1 >= len(parts):
            raise ImportScanError(
                f"{self.path}:{line}: relative import goes above the top-level package {parts[0]!r}"
            )
        base = ".".join(parts[: len(parts) - (level - 1)])
        return f"{base}.{module}" if module else base

    def _imports(self, stmt: ast.Import | ast.ImportFrom, guarded: bool) -> list[_Import]:
        if isinstance(stmt, ast.Import):
            return [
                _Import(
                    alias.name,
                    None,
                    (alias.asname, alias.name) if alias.asname else (alias.name.split(".")[0],) * 2,
                    stmt.lineno,
                    guarded,
                )
                for alias in stmt.names
            ]
        module = self._absolute(stmt.module, stmt.level, stmt.lineno)
        names = tuple((a.name, a.asname or a.name) for a in stmt.names)
        return [_Import(module, names, None, stmt.lineno, guarded)]

    @staticmethod
    def _bind(imp: _Import, table: dict[str, tuple]) -> None:
        if imp.bound is not None:
            table[imp.bound[0]] = ("module", imp.bound[1])
        for name, bound in imp.names or ():
            if name != "*":
                table[bound] = ("attr", imp.module, name)


# ---------------------------------------------------------------------------------------------------
# The closure
# ---------------------------------------------------------------------------------------------------
_PARSED: dict[tuple[str, int, int, str, bool], _ModuleInfo] = {}


def _parse(path: Path, name: str, is_pkg: bool) -> _ModuleInfo:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, name, is_pkg)
    if key not in _PARSED:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError as err:
            raise ImportScanError(f"{path}:{err.lineno}: cannot scan its imports: {err.msg}") from None
        _PARSED[key] = _Analyzer(name, path, is_pkg, tree).info
    return _PARSED[key]


class _Closure:
    def __init__(self, src_root: Path, package: str, eager_only: bool) -> None:
        self.root, self.package, self.eager_only = src_root, package, eager_only
        self.loaded: set[str] = set()
        self._script_scopes: set[int] = set()  # the script's own top-level scopes already run
        self.used: set[tuple[str, str]] = set()
        self.all_used: set[str] = set()
        self.files: set[Path] = set()

    def _ours(self, module: str) -> bool:
        return module == self.package or module.startswith(self.package + ".")

    def _locate(self, module: str) -> tuple[Path | None, bool] | None:
        """(file, is_package) of a module of the package; file None for a namespace package; None: missing."""
        base = self.root.joinpath(*module.split("."))
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
        if base.is_dir():
            return None, True
        return None

    def is_module(self, module: str) -> bool:
        return self._ours(module) and self._locate(module) is not None

    def info(self, module: str) -> _ModuleInfo | None:
        located = self._locate(module)
        if located is None or located[0] is None:
            return None
        return _parse(located[0], module, located[1])

    # -- the work ------------------------------------------------------------------------------------
    def load(self, module: str, where: str = "", guarded: bool = False) -> bool:
        """Import ``module`` (and its parent packages); False when it is not a module of the package."""
        if not self._ours(module):
            return False
        if module in self.loaded:
            return True
        parent = module.rpartition(".")[0]
        if parent and not self.load(parent, where, guarded):
            return False
        located = self._locate(module)
        if located is None:
            if guarded:
                return False
            raise ImportScanError(
                f"{where}: imports {module!r}, which is not a module of {self.package!r} under {self.root}; "
                "fix the import (or guard an optional one with try/except ImportError)"
            )
        self.loaded.add(module)
        if located[0] is None:  # namespace package: nothing runs
            return True
        self.files.add(located[0])
        info = self.info(module)
        self.run(info, info.load)
        return True

    def run(self, info: _ModuleInfo, scope: _Scope) -> None:
        """Execute ``scope`` of module ``info``: its imports, then (unless eager only) the names it uses."""
        for imp in scope.imports:
            self.execute_import(info, imp)
        if self.eager_only:
            return
        for chain in scope.refs:
            self.resolve(info, scope.locals, chain)

    def execute_import(self, info: _ModuleInfo, imp: _Import) -> None:
        where = f"{info.path}:{imp.line}"
        if not self.load(imp.module, where, imp.guarded):
            return
        if imp.dynamic and not self.eager_only:
            self.use_all(imp.module)
        for name, _ in imp.names or ():
            if name == "*":
                if not self.eager_only:
                    self.use_all(imp.module)
            elif self.is_module(f"{imp.module}.{name}"):
                self.load(f"{imp.module}.{name}", where, imp.guarded)
            else:
                self.lazy_attribute(imp.module, name)

    def lazy_attribute(self, module: str, name: str) -> None:
        """``from module import name`` of a name the module does not define: its ``__getattr__`` runs."""
        info = self.info(module)
        if info is None or name in info.top or name in info.bindings or "__getattr__" not in info.top:
            return
        package = module if info.is_pkg else module.rpartition(".")[0]
        targets = [info.lazy_map[name]] if name in info.lazy_map else sorted(info.strings)
        for target in targets:
            absolute = target
            if target.startswith("."):
                level = len(target) - len(target.lstrip("."))
                parts = package.split(".")
                if level - 1 >= len(parts):
                    continue
                rest = target.lstrip(".")
                absolute = ".".join(parts[: len(parts) - (level - 1)]) + (f".{rest}" if rest else "")
            if not self.is_module(absolute) and self.is_module(f"{package}.{target}"):
                absolute = f"{package}.{target}"  # a bare submodule name, as importlib.import_module(f".{x}", pkg)
            if self.is_module(absolute):
                self.load(absolute, f"{info.path} (__getattr__)")
                if not self.eager_only:
                    self.use(absolute, name)

    def resolve(self, info: _ModuleInfo, local: dict[str, tuple], chain: Chain) -> None:
        """A reference ``a.b.c`` in module ``info``: use what it names."""
        root, rest = chain[0], chain[1:]
        binding = local.get(root)
        if binding is None:
            if root in info.top and info.name != "__main__":
                self.use(info.name, root)
            elif root in info.top and id(info.top[root]) not in self._script_scopes:
                self._script_scopes.add(id(info.top[root]))  # run each once: scopes may refer to each other
                self.run(info, info.top[root])  # a script's own function
            binding = info.bindings.get(root)
        if binding is None:
            return
        if binding[0] == "module":
            self.walk(binding[1], rest)
        else:
            self.walk(binding[1], (binding[2], *rest))

    def walk(self, module: str, rest: Chain) -> None:
        """Follow ``module.rest[0].rest[1]...`` through submodules to the name it uses."""
        if not self.load(module, guarded=True):  # another package, or an optional module that is missing
            return
        for attr in rest:
            sub = f"{module}.{attr}"
            if self.is_module(sub):
                self.load(sub)
                module = sub
                continue
            self.use(module, attr)
            return
        self.use_all(module)  # the module object itself is used as a value

    def use(self, module: str, name: str) -> None:
        if (module, name) in self.used or not self.load(module, guarded=True):
            return
        self.used.add((module, name))
        info = self.info(module)
        if info is None:  # namespace package
            if self.is_module(f"{module}.{name}"):
                self.walk(f"{module}.{name}", ())
            return
        known = False
        if name in info.top:
            known = True
            self.run(info, info.top[name])
        if name in info.bindings:
            known = True
            self.resolve(info, {}, (name,))
        if not known and self.is_module(f"{module}.{name}"):
            self.walk(f"{module}.{name}", ())
        elif not known and "__getattr__" in info.top:
            self.use(module, "__getattr__")
            self.lazy_attribute(module, name)
        elif not known:
            self.use_all(module)  # a name the source does not show (set at run time): count everything

    def use_all(self, module: str) -> None:
        if module in self.all_used or not self.load(module, guarded=True):
            return
        self.all_used.add(module)
        info = self.info(module)
        if info is None:
            return
        for name in list(info.top):
            self.use(module, name)
        for name in list(info.bindings):
            self.resolve(info, {}, (name,))
        if "__getattr__" in info.top:
            for name in list(info.lazy_map):
                self.lazy_attribute(module, name)


def import_closure(
    script: str | Path, src_root: str | Path, package: str = "blobloss", *, eager_only: bool = False
) -> list[Path]:
    """The files of ``package`` (under ``src_root``) that running ``script`` imports and uses.

    Args:
        script: A Python file (a pipeline script); it is read, never run or imported.
        src_root: The folder that holds the package folder (``src``: the one the jobs import from).
        package: The top-level package whose files are reported; imports of other packages are ignored.
        eager_only: Only what importing the script's imports loads (import statements outside function
            bodies, followed through the modules they load): the modules ``sys.modules`` holds after the
            script's import lines have run. Default False: also the imports inside every function the
            script uses, which is the set a rerun must depend on.

    Returns:
        Sorted absolute paths (``__init__.py`` files of the packages on the way included).

    Raises:
        ImportScanError: the script does not exist or has a syntax error, or it (or a module it reaches)
            imports a module of ``package`` that does not exist (outside ``try/except ImportError``).

    Example:
        >>> files = import_closure("scripts/tables.py", "src")  # doctest: +SKIP
        >>> [f.name for f in files][:2]  # doctest: +SKIP
        ['__init__.py', '_optional.py']
    """
    script = Path(script).resolve()
    src_root = Path(src_root).resolve()
    if not script.is_file():
        raise ImportScanError(f"{script}: no such script; check the rule's script path")
    if not (src_root / package).is_dir():
        raise ImportScanError(f"{src_root}: holds no package folder {package!r}; pass the folder above it")
    closure = _Closure(src_root, package, eager_only)
    info = _parse(script, "__main__", False)
    closure.run(info, info.load)
    if not eager_only:  # a script's own functions count as used
        for scope in info.top.values():
            closure.run(info, scope)
    return sorted(closure.files)


def package_modules(src_root: str | Path, package: str = "blobloss") -> list[Path]:
    """Every source file of ``package`` under ``src_root`` (sorted absolute paths, caches excluded)."""
    base = Path(src_root).resolve() / package
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)
