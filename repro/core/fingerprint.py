"""Code fingerprints: which source a cached computation depends on, hashed after normalisation.

Every key of :func:`repro.core.cache.get_or_compute` contains the fingerprint of the code that
computes the entry, so an entry made by other code can never be loaded: it simply does not match
the key. This module answers two questions for the cache.

**Which modules.** The *closure* of a computation is the module that defines it plus every
``repro`` module it imports, transitively. Imports are read statically from the source (``import
repro.x``, ``from repro.x import y`` with ``y`` a submodule or a name, relative imports, imports
inside functions, and string constants that name a ``repro`` module, as a job's ``"module:function"``
does), so a module is counted whether or not this process has imported it yet. Importing a module
executes its parent packages' ``__init__`` files, so those count as well; a package whose
``__init__`` discovers its modules with ``pkgutil.iter_modules`` (the model and detector registries)
counts all of its direct submodules.

Presentation and run-layer code is **left out of every closure** (and its imports are not followed)
unless it is itself named as the computation's module with ``code=`` (a job function that lives in
the runner); a function *defined* there without ``code=`` is refused, since a runner's lambda would
otherwise stand in for the job it runs:

    repro.plots.*            figures
    repro.book.*             notebook context, tables, book staging
    repro.cli                the command line
    repro.launch.*           job runner and executors (where a job ran never changes its value)
    repro.studies.*.report   claim rows, verdicts and page tables
    repro.core.{cache, fingerprint, release, provenance, schema}
                             the machinery that keys, stores, records and validates values (a new
                             cache feature or profile key must not invalidate every entry); the
                             code that computes a value (config's seeding and device choice
                             included) counts

Why this is safe: these modules only draw, format, stage or schedule values that the cache already
holds; a value stored in the cache is produced by experiment / methods code, which never imports the
run layer (``tests/test_layout.py``) and whose imports of report or plot code would be a layering
bug (``tests/test_core_fingerprint.py`` checks that no module calling ``get_or_compute`` imports
plot, book, CLI, launch or report code, directly or through its closure). Why it is needed: a change
of a plot or of a verdict rule must not invalidate a zoo that costs an hour to train, or the cpu
book would be rebuilt from scratch after every cosmetic edit.

**Which text.** Each module's source is parsed, its docstrings (module, class, function) removed and
the tree printed back with :func:`ast.unparse`: comments, docstrings, blank lines, line wrapping and
quote style do not change the fingerprint; any change of code does (a renamed variable too, which
is the price of not trying to be clever). ``ast.unparse`` rather than ``ast.dump`` because the
dump's field layout changes between Python versions (3.13 drops empty fields), which would make
every released artifact look stale after a Python upgrade. Only Python source counts: profile
values and data enter the key through ``params``.

Fingerprints are computed once per process and memoised (a few hundred ms for the whole package
the first time, microseconds afterwards).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from repro.core.config import PACKAGE_DIR

PACKAGE = "repro"

#: Module prefixes (and one pattern) that are never part of a closure; see the module docstring.
EXCLUDED_PREFIXES: tuple[str, ...] = ("repro.plots", "repro.book", "repro.cli", "repro.launch", "repro.core.cache",
                                      "repro.core.fingerprint", "repro.core.release", "repro.core.provenance",
                                      "repro.core.schema")
EXCLUDED_PATTERNS: tuple[re.Pattern, ...] = (re.compile(r"^repro\.studies\.[A-Za-z0-9_]+\.report$"),)

_MODULE_STRING = re.compile(r"^repro(\.[A-Za-z_][A-Za-z0-9_]*)+(:[A-Za-z_][A-Za-z0-9_.]*)?$")


def is_excluded(module: str) -> bool:
    """True for presentation / run-layer modules that never count towards a code fingerprint."""
    for p in EXCLUDED_PREFIXES:
        if module == p or module.startswith(p + "."):
            return True
    return any(rx.match(module) for rx in EXCLUDED_PATTERNS)


class CodeError(ValueError):
    """The code of a computation cannot be located (no source file, excluded module, unknown name)."""


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalized_source(source: str, filename: str = "<source>") -> str:
    """The source as :func:`ast.unparse` prints it with every docstring removed."""
    return ast.unparse(_strip_docstrings(ast.parse(source, filename=filename)))


@dataclass(frozen=True)
class CodeFingerprint:
    """The fingerprint of a closure: ``digest`` over ``modules`` (name -> digest of normalised source)."""

    roots: tuple[str, ...]
    digest: str
    modules: tuple[tuple[str, str], ...]

    @property
    def module_names(self) -> list[str]:
        return [m for m, _ in self.modules]

    def __fingerprint__(self) -> str:  # lets the cache hash it inside a key
        return self.digest


# sha256 of a module's raw text -> (digest of its normalised source, docstring-free tree); read-only use
_PARSED: dict[bytes, tuple[str, ast.Module]] = {}


class ModuleGraph:
    """Static import graph of the ``repro`` package found at ``package_dir`` (memoised).

    ``package_dir`` defaults to the installed package; tests point it at an edited temporary copy.
    ``extra_files`` maps module names outside the package (a test module) to their source files.
    """

    def __init__(self, package_dir: Path | str = PACKAGE_DIR, read_source=None):
        self.package_dir = Path(package_dir)
        self._read = read_source or (lambda p: Path(p).read_text(encoding="utf-8"))
        self._files: dict[str, Path | None] = {}
        self._digest: dict[str, str] = {}
        self._deps: dict[str, frozenset[str]] = {}
        self._closure: dict[tuple[str, ...], CodeFingerprint] = {}
        self.extra_files: dict[str, Path] = {}
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- files
    def file_of(self, module: str) -> Path | None:
        """Source file of a module name (``pkg/__init__.py`` for a package), or None."""
        if module in self.extra_files:
            return self.extra_files[module]
        if module in self._files:
            return self._files[module]
        path = None
        parts = module.split(".")
        if parts[0] == PACKAGE:
            base = self.package_dir.joinpath(*parts[1:])
            if (base / "__init__.py").is_file():
                path = base / "__init__.py"
            elif base.with_suffix(".py").is_file() and len(parts) > 1:
                path = base.with_suffix(".py")
        self._files[module] = path
        return path

    def is_package(self, module: str) -> bool:
        f = self.file_of(module)
        return f is not None and f.name == "__init__.py" and module not in self.extra_files

    def _tree(self, module: str) -> tuple[str, ast.Module]:
        f = self.file_of(module)
        if f is None:
            raise CodeError(f"no source file for module {module!r}")
        src = self._read(f)
        raw = hashlib.sha256(src.encode()).digest()
        hit = _PARSED.get(raw)
        if hit is None:  # parsing + unparsing is the cost; identical text (another graph, a copy) is done once
            tree = _strip_docstrings(ast.parse(src, filename=str(f)))
            hit = _PARSED[raw] = (hashlib.sha256(ast.unparse(tree).encode()).hexdigest(), tree)
        return hit

    # ---------------------------------------------------------------- one module
    def _analyse(self, module: str) -> None:
        self._digest[module], tree = self._tree(module)
        pkg = module if self.is_package(module) else module.rpartition(".")[0]
        deps: set[str] = set()

        def add(name: str) -> None:
            # the module itself (when it exists) and the packages Python executes to reach it
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                cand = ".".join(parts[:i])
                if self.file_of(cand) is not None:
                    deps.add(cand)

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == PACKAGE:
                        add(a.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = pkg.split(".")
                    if node.level > 1:
                        base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != PACKAGE:
                    continue
                add(base)
                for a in node.names:
                    if a.name != "*" and self.file_of(f"{base}.{a.name}") is not None:
                        add(f"{base}.{a.name}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
                add(node.value.partition(":")[0])
            elif isinstance(node, ast.Attribute) and node.attr in ("iter_modules", "walk_packages") \
                    and self.is_package(module):
                # registry packages import every direct submodule at run time
                folder = self.file_of(module).parent
                for p in sorted(folder.iterdir()):
                    name = p.stem if p.suffix == ".py" else p.name
                    if name == "__init__" or name.startswith((".", "_")):
                        continue
                    if (p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file():
                        add(f"{module}.{name}")
        deps.discard(module)
        self._deps[module] = frozenset(deps)

    def digest(self, module: str) -> str:
        with self._lock:
            if module not in self._digest:
                self._analyse(module)
            return self._digest[module]

    def imports(self, module: str) -> frozenset[str]:
        with self._lock:
            if module not in self._deps:
                self._analyse(module)
            return self._deps[module]

    # ---------------------------------------------------------------- closures
    def closure(self, roots: Iterable[str]) -> list[str]:
        """Sorted module names the roots depend on (roots included, excluded modules left out)."""
        seen: set[str] = set()
        roots = list(roots)
        stack = list(roots)
        while stack:
            m = stack.pop()
            if m in seen or (is_excluded(m) and m not in roots):
                continue
            seen.add(m)
            stack.extend(self.imports(m))
        return sorted(seen)

    def fingerprint(self, roots: Sequence[str]) -> CodeFingerprint:
        roots = tuple(sorted(set(roots)))
        with self._lock:
            hit = self._closure.get(roots)
            if hit is not None:
                return hit
            for r in roots:
                check_root(r, self)
            mods = tuple((m, self.digest(m)) for m in self.closure(roots))
            h = hashlib.sha256()
            for m, d in mods:
                h.update(f"{m}={d};".encode())
            fp = CodeFingerprint(roots, h.hexdigest(), mods)
            self._closure[roots] = fp
            return fp

    def excluded_reached(self, roots: Iterable[str]) -> set[str]:
        """Excluded modules that the closure of ``roots`` imports (each edge is cut)."""
        out = set()
        for m in self.closure(roots):
            out |= {d for d in self.imports(m) if is_excluded(d)}
        return out


def check_root(module: str, graph: ModuleGraph) -> None:
    if module in ("__main__", "__mp_main__", "builtins") or module.startswith("<"):
        raise CodeError(
            f"the computation is defined in {module!r} (a notebook cell, the REPL, `python -c` or a script run "
            "as __main__), which has no importable source to fingerprint; pass code='package.module' naming the "
            "module whose code computes the value (e.g. code='repro.studies.ch3_ninco.zoo'), or move the "
            "function into a module")
    if graph.file_of(module) is None:
        raise CodeError(f"cannot find the source of module {module!r} to fingerprint it; pass code= naming an "
                        f"importable module with a .py file (package searched: {graph.package_dir})")


_DEFAULT: ModuleGraph | None = None
_DEFAULT_LOCK = threading.Lock()


def default_graph() -> ModuleGraph:
    """The process-wide graph of the installed package (memoised for the life of the process)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ModuleGraph()
        return _DEFAULT


def reset() -> None:
    """Forget every memoised fingerprint (tests that edit sources in place)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        _DEFAULT = None


def _module_name(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, str):
        return obj.partition(":")[0]
    raise TypeError(f"code= must be a module name, a module, or a list of them; got {type(obj).__name__}")


def roots_of(fn=None, code=None) -> tuple[str, ...]:
    """The modules whose closure a computation depends on: ``code`` if given, else ``fn``'s module.

    A function defined in a file outside the package (a test module, a user's script imported as
    a module) is fingerprinted by that file, registered with the default graph under its name."""
    if code is not None:
        items = [code] if isinstance(code, (str, types.ModuleType)) else list(code)
        if not items:
            raise ValueError("code= must name at least one module")
        names = tuple(_module_name(c) for c in items)
    else:
        target = fn
        while hasattr(target, "func") and not hasattr(target, "__code__"):  # functools.partial
            target = target.func
        target = getattr(target, "__func__", target)  # bound method
        mod = getattr(target, "__module__", None)
        if not mod:
            raise CodeError(f"cannot tell which module defines {fn!r}; pass code='package.module'")
        if is_excluded(mod):
            raise CodeError(
                f"{fn!r} is defined in {mod!r}, presentation / run-layer code that never counts towards cache keys "
                "(see repro.core.fingerprint); pass code='package.module' naming the module whose code computes the "
                "value (a job runner passes its job function's module)")
        names = (mod,)
    g = default_graph()
    for n in names:
        if n.split(".")[0] != PACKAGE and n not in g.extra_files and n not in ("__main__", "__mp_main__"):
            m = sys.modules.get(n)
            f = getattr(m, "__file__", None)
            if f is None and m is None:
                try:  # not imported yet (a job's module named by its import path): locate without importing
                    spec = importlib.util.find_spec(n)
                    f = spec.origin if spec else None
                except (ImportError, ValueError):
                    f = None
            if f and f.endswith(".py"):
                g.extra_files[n] = Path(f)
    return names


def code_fingerprint(roots: Sequence[str], graph: ModuleGraph | None = None) -> CodeFingerprint:
    """Fingerprint of ``roots`` and their closure (memoised in the default graph)."""
    return (graph or default_graph()).fingerprint(roots)
