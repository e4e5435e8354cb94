"""The package's dependency rules, held by static analysis of every module under ``embstore/``.

Why: embstore's promises -- ``import embstore`` costs NumPy only, the format spec depends on
nothing, the kernels compile and test alone, there is exactly one writer, an adapter pulls in
its framework only when it is used -- are properties of the import graph.  One convenient
import breaks them silently, so they are checked here by reading the source with :mod:`ast`
(nothing is imported), plus subprocess checks of what an import and a first read really load.

Each rule is a checker: a function of a :class:`Package` (any directory tree of ``.py`` files)
returning its violations as ``file:line: what``.  The real package must give none.  Scratch
copies of the package with one violation injected must give exactly that violation, and copies
with allowed constructs injected must give none (``test_checker_*``): a checker that silently
stops seeing imports cannot pass.  Modules are discovered, not listed, so adding ``serve.py``,
``dask.py`` or ``_kernels/subword.py`` needs no change here unless it breaks a rule.

Which imports count: every ``import`` / ``from ... import`` anywhere in a module (module level,
inside functions, inside ``if TYPE_CHECKING:``) and ``importlib.import_module`` calls whose
name is a literal or comes from a literal allow-list (``if name in ("a", "b"):``).  The layering
rules (1-6) count them all, since even a type-only import ties one layer to another; the cycle
rule (7) leaves out ``if TYPE_CHECKING:`` imports, which never run.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import embstore

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "embstore"
EXAMPLE_STORE = REPO / "tests" / "data" / "v1_0" / "example.emb"  # holds the word "list"

STDLIB = frozenset(sys.stdlib_module_names)
#: What a kernel may import besides the standard library (rule 2).
KERNEL_EXTERNALS = frozenset({"numpy", "numba", "llvmlite"})
#: Frameworks that only adapters use, and only when called (rule 5).
FRAMEWORKS = frozenset({"keras", "tensorflow", "gensim", "dask", "distributed", "gunicorn",
                        "flask"})
#: Adapters and front ends, by module name in the package; listed whether or not they exist yet.
FRONT_ENDS = ("keras", "gensim", "cli", "demo", "__main__", "serve", "dask")
#: The only imports of one front end by another: ``python -m embstore`` runs the CLI, and the
#: CLI's ``embstore demo`` command runs :mod:`embstore.demo`.
FRONT_END_IMPORTS = frozenset({("__main__", "cli"), ("cli", "demo")})
#: Adapters ``embstore.__getattr__`` may import lazily, by name from its literal allow-list.
LAZY_ADAPTERS = frozenset({"keras", "gensim"})
#: The foundation: the format spec and the kernels, built on nothing else of embstore (rule 3).
FOUNDATION = ("format", "errors", "_version", "_kernels")
#: Modules that ``import embstore`` and reading a store must not load (rule 8).
HEAVY = ("numba", "llvmlite", "scipy", *sorted(FRAMEWORKS))

Checker = Callable[["Package"], list[str]]


# ---------------------------------------------------------------------------------------------
# Reading the package


def within(name: str, prefix: str) -> bool:
    """``name`` is the module ``prefix`` or inside the package ``prefix``."""
    return name == prefix or name.startswith(prefix + ".")


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_stdlib(module: str) -> bool:
    return module.split(".")[0] in STDLIB


@dataclass(frozen=True)
class Import:
    """One module named by one import statement (or ``import_module`` call)."""

    file: str  # as shown in messages: "embstore/_convert/run.py"
    line: int
    importer: str  # the module holding the statement: "embstore._convert.run"
    module: str  # the module the statement names, resolved: X in "from X import n"
    name: str | None  # n in "from X import n"; None for "import X" and import_module
    target: str  # the module depended on: X.n when that is a submodule, else X
    lazy: bool  # inside a function: runs when the function is called
    type_checking: bool  # under "if TYPE_CHECKING:": never runs
    dynamic: bool = False  # importlib.import_module
    function: str = ""  # the enclosing function, if any
    binds: str | None = None  # the local name the statement binds to a module, if any
    binds_module: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def how(self) -> str:
        if self.type_checking:
            return " (under TYPE_CHECKING)"
        if self.dynamic:
            return " (importlib.import_module)"
        return f" (inside {self.function}())" if self.lazy else ""


@dataclass(frozen=True)
class _Context:
    lazy: bool = False
    type_checking: bool = False
    function: str = ""
    guards: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (name, allowed values) from `if`s


@dataclass(frozen=True)
class Module:
    name: str
    file: str
    is_package: bool
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _literal_guard(test: ast.expr) -> tuple[str, tuple[str, ...]] | None:
    """``name in ("a", "b")`` (tuple, list or set of str literals) as ``(name, values)``."""
    if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In)
            and isinstance(test.left, ast.Name)
            and isinstance(test.comparators[0], (ast.Tuple, ast.List, ast.Set))):
        elts = test.comparators[0].elts
        if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elts):
            return test.left.id, tuple(str(e.value) for e in elts)  # type: ignore[attr-defined]
    return None


def _walk(tree: ast.Module) -> Iterator[tuple[ast.AST, _Context]]:
    """Every node with where it runs: in a function or not, under TYPE_CHECKING or not, and
    inside which ``if name in (literals):`` bodies.  A class body runs at import: module level."""
    stack: list[tuple[ast.AST, _Context]] = [(tree, _Context())]
    while stack:
        node, ctx = stack.pop()
        yield node, ctx
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = replace(ctx, lazy=True, function=getattr(node, "name", "<lambda>"))
            stack.extend((child, inner) for child in ast.iter_child_nodes(node))
        elif isinstance(node, ast.If):
            body = ctx
            guard = _literal_guard(node.test)
            if _is_type_checking(node.test):
                body = replace(ctx, type_checking=True)
            elif guard is not None:
                body = replace(ctx, guards=(*ctx.guards, guard))
            stack.append((node.test, ctx))
            stack.extend((child, body) for child in node.body)
            stack.extend((child, ctx) for child in node.orelse)
        else:
            stack.extend((child, ctx) for child in ast.iter_child_nodes(node))


def _string_options(node: ast.expr, guards: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """Every value a string expression can take, if it is built from literals and names from
    literal allow-lists (``f".{name}"``, ``"." + name``); None if it cannot be known."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        return list(guards[node.id]) if node.id in guards else None
    if isinstance(node, ast.FormattedValue):
        plain = node.conversion == -1 and node.format_spec is None
        return _string_options(node.value, guards) if plain else None
    parts: list[ast.expr]
    if isinstance(node, ast.JoinedStr):
        parts = list(node.values)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [node.left, node.right]
    else:
        return None
    options = [_string_options(p, guards) for p in parts]
    if any(o is None for o in options):
        return None
    return ["".join(combo) for combo in itertools.product(*options)]  # type: ignore[arg-type]


def _static_prefix(node: ast.expr) -> str:
    """The literal start of a string expression, if any."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _static_prefix(node.values[0])
    if isinstance(node, ast.BinOp):
        return _static_prefix(node.left)
    return ""


class Package:
    """Every ``.py`` file under ``root`` (recursively) as a module of the package named
    ``root.name``, with its imports resolved to absolute module names."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.top = root.name
        self.modules: dict[str, Module] = {}
        self.dirs = {self.top}
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            parts = [self.top, *rel.with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join(parts)
            file = f"{self.top}/{rel.as_posix()}"
            tree = ast.parse(path.read_text(encoding="utf-8"), file)
            self.modules[name] = Module(name, file, is_package, tree)
            self.dirs.update(".".join(parts[:i]) for i in range(1, len(parts)))
        self.problems: list[str] = []  # imports that cannot be resolved
        self.imports: list[Import] = []
        for module in self.modules.values():
            self.imports.extend(self._imports_of(module))
        self.imports.sort(key=lambda i: (i.file, i.line))

    def qual(self, short: str) -> str:
        return f"{self.top}.{short}" if short else self.top

    def is_internal(self, name: str) -> bool:
        return within(name, self.top)

    def exists(self, name: str) -> bool:
        """A module or (possibly namespace) package of this package."""
        return name in self.modules or name in self.dirs

    def _absolute(self, module: Module, level: int, name: str | None) -> str | None:
        if level == 0:
            return name
        parts = module.package.split(".")
        if level - 1 >= len(parts):
            return None
        base = ".".join(parts[:len(parts) - (level - 1)])
        return f"{base}.{name}" if name else base

    def _imports_of(self, module: Module) -> Iterator[Import]:
        for node, ctx in _walk(module.tree):
            common: dict[str, Any] = {
                "file": module.file, "importer": module.name, "lazy": ctx.lazy,
                "type_checking": ctx.type_checking, "function": ctx.function}
            if isinstance(node, ast.Import):
                for alias in node.names:
                    binds = alias.asname or alias.name.split(".")[0]
                    bound = alias.name if alias.asname else binds
                    yield Import(line=node.lineno, module=alias.name, name=None,
                                 target=alias.name, binds=binds, binds_module=bound, **common)
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(module, node.level, node.module)
                if base is None:
                    self.problems.append(f"{module.file}:{node.lineno}: relative import beyond "
                                         f"the top-level package")
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    is_sub = self.is_internal(sub) and self.exists(sub)
                    target = sub if is_sub else base
                    yield Import(line=node.lineno, module=base, name=alias.name, target=target,
                                 binds=alias.asname or alias.name,
                                 binds_module=target if is_sub else None, **common)
            elif isinstance(node, ast.Call) and (
                    getattr(node.func, "attr", None) == "import_module"
                    or getattr(node.func, "id", None) == "import_module"):
                yield from self._dynamic(module, node, ctx, common)

    def _dynamic(self, module: Module, call: ast.Call, ctx: _Context,
                 common: dict[str, Any]) -> Iterator[Import]:
        """``importlib.import_module(name, package)`` with the names it can import."""
        args = {k.arg: k.value for k in call.keywords if k.arg}
        name_arg = call.args[0] if call.args else args.get("name")
        anchor_arg = call.args[1] if len(call.args) > 1 else args.get("package")
        if name_arg is None:
            return
        anchor: str | None = None
        if isinstance(anchor_arg, ast.Name) and anchor_arg.id == "__name__":
            anchor = module.name
        elif isinstance(anchor_arg, ast.Name) and anchor_arg.id == "__package__":
            anchor = module.package
        elif isinstance(anchor_arg, ast.Constant) and isinstance(anchor_arg.value, str):
            anchor = anchor_arg.value
        options = _string_options(name_arg, dict(ctx.guards))
        prefix = _static_prefix(name_arg)
        looks_internal = anchor_arg is not None or prefix.startswith(".") or within(
            prefix.rstrip("."), self.top)
        if options is None or (anchor is None and any(o.startswith(".") for o in options)):
            if looks_internal:
                self.problems.append(f"{module.file}:{call.lineno}: import_module of a name that "
                                     f"is not a literal or from a literal allow-list")
            return
        for option in options:
            level = len(option) - len(option.lstrip("."))
            if level and anchor is not None:
                base = anchor.rsplit(".", level - 1)[0]
                rest = option[level:]
                target = f"{base}.{rest}" if rest else base
            else:
                target = option
            yield Import(line=call.lineno, module=target, name=None, target=target,
                         dynamic=True, **common)

    def internal_imports(self) -> Iterator[Import]:
        return (i for i in self.imports if self.is_internal(i.target))


def report(rule: str, violations: list[str]) -> str:
    return f"{rule}\n" + "\n".join(f"  {v}" for v in violations)


# ---------------------------------------------------------------------------------------------
# The rules


def check_spec_is_standalone(pkg: Package) -> list[str]:
    """Rule 1: ``errors`` and ``_version`` import nothing of embstore, ``format`` only
    ``errors``, and all three only the standard library.

    Why: ``format`` is the spec as code -- anyone (a reader in another tool, a fuzzer, a
    migration script) must be able to load it without NumPy, Numba or the rest of embstore;
    ``errors`` and ``_version`` sit under it, so they must be as light (``format`` imports
    ``errors``: a NumPy import there would be one in the spec)."""
    allowed = {"errors": (), "_version": (), "format": ("errors",)}
    out = []
    for imp in pkg.imports:
        short = imp.importer.removeprefix(pkg.top + ".")
        if imp.importer == pkg.top or short not in allowed:
            continue
        may = allowed[short]
        if pkg.is_internal(imp.target):
            if imp.target not in {pkg.qual(m) for m in may}:
                what = ", ".join(pkg.qual(m) for m in may) or "nothing"
                out.append(f"{imp.where}: imports {imp.target}{imp.how}; {short}.py may import "
                           f"{what} from {pkg.top}")
        elif not is_stdlib(imp.target):
            out.append(f"{imp.where}: imports {imp.target}{imp.how}, which is not in the "
                       f"standard library")
    return out


def check_kernels_are_self_contained(pkg: Package) -> list[str]:
    """Rule 2: ``_kernels/*`` import only NumPy, Numba, llvmlite, the standard library,
    ``embstore.format`` and each other.

    Why: the kernels read untrusted bytes with bounds the launch policy proves; they are
    compiled, benchmarked and fuzzed alone, and what they may rely on must stay what the spec
    says (the format constants), never the store's Python objects."""
    kernels, spec = pkg.qual("_kernels"), pkg.qual("format")
    out = []
    for imp in pkg.imports:
        if not within(imp.importer, kernels):
            continue
        if pkg.is_internal(imp.target):
            if not (within(imp.target, kernels) or imp.target == spec):
                out.append(f"{imp.where}: imports {imp.target}{imp.how}; kernels may import "
                           f"only {spec} and each other from {pkg.top}")
        elif imp.target.split(".")[0] not in KERNEL_EXTERNALS and not is_stdlib(imp.target):
            out.append(f"{imp.where}: imports {imp.target}{imp.how}; kernels may import only "
                       f"{', '.join(sorted(KERNEL_EXTERNALS))} and the standard library")
    return out


def check_foundation_does_not_reach_up(pkg: Package) -> list[str]:
    """Rule 3: ``format``, ``errors``, ``_version`` and ``_kernels`` never import anything of
    embstore outside those four (``store``, ``matrix``, ``lookup``, the builder, adapters...).

    Why: the layers above (store, lookup, matrix, builder, converter) are built on the spec and
    the kernels; an import the other way round makes the foundation load the whole package and
    is a cycle waiting for its second half.  (Rules 1 and 2 are narrower still; this one holds
    the direction even if they are relaxed.)"""
    base = [pkg.qual(m) for m in FOUNDATION]
    out = []
    for imp in pkg.internal_imports():
        if any(within(imp.importer, b) for b in base) and not any(
                within(imp.target, b) for b in base):
            out.append(f"{imp.where}: imports {imp.target}{imp.how}; the foundation "
                       f"({', '.join(FOUNDATION)}) must not import the layers above it")
    return out


def check_one_writer(pkg: Package) -> list[str]:
    """Rule 4: ``_build`` never imports ``_convert``; outside ``_build`` the only module of it
    that may be imported is ``_build.builder`` (so ``_convert`` never imports ``_build.writer``
    or ``_build.vocabulary``).

    Why: ``StoreBuilder`` is the only writer -- atomic output, checksums, the vocabulary index
    and the provenance are done once, there; a reader of a foreign format feeds it and knows
    nothing of how a store is laid out, and the writer knows nothing of foreign formats."""
    build, convert = pkg.qual("_build"), pkg.qual("_convert")
    public = {build, pkg.qual("_build.builder")}
    out = []
    for imp in pkg.internal_imports():
        if within(imp.importer, build) and within(imp.target, convert):
            out.append(f"{imp.where}: imports {imp.target}{imp.how}; {build} must not depend "
                       f"on the converter")
        if within(imp.target, build) and not within(imp.importer, build) and (
                imp.target not in public):
            out.append(f"{imp.where}: imports {imp.target}{imp.how}; outside {build} write "
                       f"through {pkg.qual('_build.builder')} only")
    return out


def check_front_ends(pkg: Package) -> list[str]:
    """Rule 5: adapters and front ends (``keras``, ``gensim``, ``cli``, ``demo``,
    ``__main__``, ``serve``, ``dask``) are imported by no other embstore module, except
    ``__main__`` -> ``cli``, ``cli`` -> ``demo`` (the ``embstore demo`` command) and the names in
    the literal allow-list of ``embstore.__getattr__`` (``keras``, ``gensim``); and no module
    imports a framework (Keras, TensorFlow, gensim, Dask, gunicorn, Flask) at module level --
    only inside functions or under ``if TYPE_CHECKING:``.

    Why: the core must work, and ``import embstore`` must stay fast, without any framework
    installed; a framework is imported when its adapter is used, never before."""
    fronts = [pkg.qual(f) for f in FRONT_ENDS]
    allowed = {(pkg.qual(a), pkg.qual(b)) for a, b in FRONT_END_IMPORTS}
    lazy_ok = {pkg.qual(a) for a in LAZY_ADAPTERS}
    out = []
    for imp in pkg.imports:
        front = next((f for f in fronts if within(imp.target, f)), None)
        if front is not None and not within(imp.importer, front):
            via_getattr = (imp.dynamic and imp.importer == pkg.top
                           and imp.function == "__getattr__" and front in lazy_ok)
            if (imp.importer, front) not in allowed and not via_getattr:
                out.append(f"{imp.where}: imports {imp.target}{imp.how}; adapters and front "
                           f"ends are not imported by the rest of {pkg.top}")
        if (not pkg.is_internal(imp.target) and imp.target.split(".")[0] in FRAMEWORKS
                and not imp.lazy and not imp.type_checking):
            out.append(f"{imp.where}: imports {imp.target} at module level; import a framework "
                       f"inside the function that needs it")
    return out


def _aliases(pkg: Package, module: Module) -> dict[str, str]:
    """Local names bound to embstore modules by the module's imports."""
    return {i.binds: i.binds_module for i in pkg.imports
            if i.importer == module.name and i.binds and i.binds_module
            and pkg.is_internal(i.binds_module)}


def _hidden_module(pkg: Package, importer: str, module: str) -> str | None:
    """The first private module on the path to ``module`` that ``importer`` may not name: a
    private module is visible only inside the package that holds it."""
    parts = module.split(".")
    for i in range(1, len(parts)):
        if is_private(parts[i]) and not within(importer, ".".join(parts[:i])):
            return ".".join(parts[:i + 1])
    return None


def check_private_names(pkg: Package) -> list[str]:
    """Rule 6: no module reads another module's private names -- neither ``from X import _n``
    nor ``alias._n`` where ``alias`` is bound by an import of an embstore module.  A private
    *module* is visible inside the package that holds it: everything in embstore may name
    ``_kernels``, ``_build``, ``_convert``, ``_atomic``, ``_version``; only ``_kernels/*`` may
    name ``_kernels._core``.  Dunders (``__version__``) are public.

    Why: the underscore is the only thing that lets a module change its internals (the launch
    state, a writer's buffers) without auditing the whole package; every cross-module use must
    go through a public name, so the contract is visible where it is defined."""
    out = []
    for imp in pkg.imports:
        if not pkg.is_internal(imp.module):
            continue
        hidden = _hidden_module(pkg, imp.importer, imp.module)
        if hidden is None and imp.target != imp.module:
            hidden = _hidden_module(pkg, imp.importer, imp.target)
        if hidden is not None:
            out.append(f"{imp.where}: imports {imp.target}{imp.how}; {hidden} is private to "
                       f"{hidden.rpartition('.')[0]}")
        elif imp.name and imp.target == imp.module and is_private(imp.name):
            out.append(f"{imp.where}: imports the private name {imp.name} from {imp.module}")
    for module in pkg.modules.values():
        aliases = _aliases(pkg, module)
        if not aliases:
            continue

        def resolve(node: ast.expr, aliases: dict[str, str] = aliases) -> str | None:
            if isinstance(node, ast.Name):
                return aliases.get(node.id)
            if isinstance(node, ast.Attribute):
                base = resolve(node.value)
                if base is not None and pkg.exists(f"{base}.{node.attr}"):
                    return f"{base}.{node.attr}"
            return None

        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Attribute):
                continue
            base = resolve(node.value)
            if base is None:
                continue
            full = f"{base}.{node.attr}"
            if pkg.exists(full):
                hidden = _hidden_module(pkg, module.name, full)
                if hidden is not None:
                    out.append(f"{module.file}:{node.lineno}: uses {full}; {hidden} is private "
                               f"to {hidden.rpartition('.')[0]}")
            elif is_private(node.attr):
                out.append(f"{module.file}:{node.lineno}: reads the private name {node.attr} "
                           f"of {base}")
    return sorted(set(out))


def import_graph(pkg: Package) -> dict[str, dict[str, tuple[Import, str]]]:
    """Module -> module -> (the import that makes the edge, how), for the imports that run
    (module level and lazy; not TYPE_CHECKING).  Importing ``a.b.c`` runs the ``__init__`` of
    ``a.b`` first, so the edge goes to every package on the way that the importer is not
    already inside."""
    graph: dict[str, dict[str, tuple[Import, str]]] = {m: {} for m in pkg.modules}
    for imp in pkg.internal_imports():
        if imp.type_checking:
            continue
        parts = imp.target.split(".")
        for i in range(1, len(parts) + 1):
            dst = ".".join(parts[:i])
            if dst == imp.importer or dst not in pkg.modules or (
                    dst != imp.target and within(imp.importer, dst)):
                continue
            how = "" if dst == imp.target else f", so its package {dst}"
            graph[imp.importer].setdefault(dst, (imp, how))
    return graph


def _cycles(graph: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """Shortest cycles covering every module of each strongly connected component: one
    through its first module, then one through the first module not yet on a cycle, ..."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            components.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for comp in components:
        members = set(comp)
        uncovered = sorted(comp) if len(comp) > 1 else []
        while uncovered:
            start = uncovered[0]
            paths = {start: [start]}
            queue = [start]
            found: list[str] | None = None
            while queue and found is None:  # breadth first: a shortest cycle
                v = queue.pop(0)
                for w in sorted(graph[v]):
                    if w == start:
                        found = [*paths[v], start]
                        break
                    if w in members and w not in paths:
                        paths[w] = [*paths[v], w]
                        queue.append(w)
            assert found is not None
            cycles.append(found)
            uncovered = [m for m in uncovered if m not in found]
    return sorted(cycles)


def check_no_cycles(pkg: Package) -> list[str]:
    """Rule 7: no import cycles among embstore modules, counting module-level and lazy
    (function-level) imports but not ``if TYPE_CHECKING:`` ones; an ``import_module`` that
    cannot be resolved to literal names is a violation too (the graph would be incomplete).

    Why: a cycle makes what works depend on which module is imported first (a partially
    initialised module, an ``ImportError`` in one entry point and not another); a lazy import
    only postpones that to the first call, in a worker thread or a forked process."""
    graph = import_graph(pkg)
    out = list(pkg.problems)
    for cycle in _cycles(graph):
        steps = []
        for a, b in itertools.pairwise(cycle):
            imp, how = graph[a][b]
            steps.append(f"{imp.where} imports {imp.target}{imp.how}{how}")
        out.append(f"{' -> '.join(cycle)}: " + "; ".join(steps))
    return out


RULES: dict[str, Checker] = {
    "1-spec": check_spec_is_standalone,
    "2-kernels": check_kernels_are_self_contained,
    "3-foundation": check_foundation_does_not_reach_up,
    "4-writer": check_one_writer,
    "5-front-ends": check_front_ends,
    "6-private": check_private_names,
    "7-cycles": check_no_cycles,
}


# ---------------------------------------------------------------------------------------------
# The real package


@pytest.fixture(scope="module")
def package() -> Package:
    return Package(PACKAGE_DIR)


def test_the_import_graph_is_complete(package: Package) -> None:
    """Guards the checkers themselves: every relative import resolves inside the package and
    every embstore module named exists -- a resolver that went wrong would make every rule
    pass vacuously."""
    assert len(package.modules) > 30, sorted(package.modules)
    internal = list(package.internal_imports())
    assert len(internal) > 50, internal
    missing = [f"{i.where}: imports {i.target}{i.how}, which is not a module of {package.top}"
               for i in internal if not package.exists(i.target)]
    problems = package.problems + missing
    assert not problems, report("Unresolved imports:", problems)


def test_spec_is_standalone(package: Package) -> None:
    violations = check_spec_is_standalone(package)
    assert not violations, report(
        "errors.py and _version.py must import nothing of embstore, format.py only errors; all "
        "three only the standard library:", violations)


def test_kernels_are_self_contained(package: Package) -> None:
    violations = check_kernels_are_self_contained(package)
    assert not violations, report(
        "_kernels may import only numpy, numba, llvmlite, the standard library, embstore.format "
        "and each other:", violations)


def test_foundation_does_not_reach_up(package: Package) -> None:
    violations = check_foundation_does_not_reach_up(package)
    assert not violations, report(
        "format, errors, _version and _kernels must not import the rest of embstore:",
        violations)


def test_one_writer(package: Package) -> None:
    violations = check_one_writer(package)
    assert not violations, report(
        "_build must not import _convert, and the rest of embstore writes through "
        "_build.builder only:", violations)


def test_front_ends_are_leaves(package: Package) -> None:
    violations = check_front_ends(package)
    assert not violations, report(
        "Adapters/front ends are imported by no other module (but __main__ -> cli, cli -> demo, "
        "embstore.__getattr__ -> keras/gensim), and frameworks only inside functions:",
        violations)


def test_no_private_names_across_modules(package: Package) -> None:
    violations = check_private_names(package)
    assert not violations, report("Private names used outside their module:", violations)


def test_no_import_cycles(package: Package) -> None:
    violations = check_no_cycles(package)
    assert not violations, report("Import cycles (module-level and lazy imports):", violations)


# ---------------------------------------------------------------------------------------------
# The checkers, tested both ways on scratch copies of the package


def scratch_copy(tmp_path: Path, files: Mapping[str, str], source: Path = PACKAGE_DIR
                 ) -> tuple[Package, list[str]]:
    """A copy of the package (``source``) with ``files`` (path in the package -> code) appended
    to existing modules or written as new ones; returns it and the ``file:line`` of every
    injected line marked ``# VIOLATION``.  Appending keeps the line numbers of the original."""
    root = tmp_path / PACKAGE_DIR.name
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    markers = []
    for rel, code in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        start = text.count("\n")
        code = textwrap.dedent(code).lstrip("\n")
        path.write_text(text + code, encoding="utf-8")
        markers += [f"{root.name}/{rel}:{start + n}" for n, line in
                    enumerate(code.splitlines(), 1) if "# VIOLATION" in line]
    return Package(root), markers


# (rule, files to inject); a case is bad if a line is marked "# VIOLATION", else it is allowed.
CASES: list[tuple[str, str, dict[str, str]]] = [
    ("1-spec", "format-imports-numpy", {"format.py": "import numpy as np  # VIOLATION\n"}),
    ("1-spec", "format-imports-store-type-only", {"format.py": """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .store import EmbeddingStore  # VIOLATION
        """}),
    ("1-spec", "errors-imports-format", {"errors.py": "from . import format  # VIOLATION\n"}),
    ("1-spec", "version-imports-errors-lazily", {"_version.py": """
        def f():
            from .errors import FormatError  # VIOLATION
            return FormatError
        """}),
    ("1-spec", "errors-imports-numpy", {"errors.py": "import numpy  # VIOLATION\n"}),
    ("1-spec", "allowed:format-imports-errors-and-stdlib", {"format.py": """
        import struct
        from . import errors
        from .errors import EmbstoreError
        """}),
    ("2-kernels", "kernel-imports-errors", {
        "_kernels/gather.py": "from ..errors import FormatError  # VIOLATION\n"}),
    ("2-kernels", "new-kernel-imports-scipy", {"_kernels/subword.py": """
        import numpy as np
        from numba import njit
        from ._core import JIT
        import scipy.sparse  # VIOLATION
        """}),
    ("2-kernels", "kernel-imports-store-absolutely", {
        "_kernels/index.py": "import embstore.store  # VIOLATION\n"}),
    ("2-kernels", "allowed:new-kernel", {"_kernels/subword.py": """
        import math
        import llvmlite.ir
        import numpy as np
        from numba import njit
        from .. import format as fmt
        from ..format import FormatError
        from . import strings
        from ._core import JIT as _JIT
        """}),
    ("3-foundation", "new-kernel-imports-lookup-lazily", {"_kernels/subword.py": """
        def f():
            from ..lookup import resolve_rows  # VIOLATION
            return resolve_rows
        """}),
    ("3-foundation", "format-imports-matrix", {"format.py": "from . import matrix  # VIOLATION\n"}),
    ("3-foundation", "kernels-package-imports-the-top-package", {
        "_kernels/__init__.py": "from .. import FormatError  # VIOLATION\n"}),
    ("3-foundation", "allowed:kernel-imports-format", {
        "_kernels/stats.py": "from .. import format as fmt\n"}),
    ("4-writer", "build-imports-convert", {"_build/writer.py": """
        def f():
            from .._convert import limits  # VIOLATION
            return limits
        """}),
    ("4-writer", "convert-imports-writer", {
        "_convert/text.py": "from .._build.writer import StoreWriter  # VIOLATION\n"}),
    ("4-writer", "convert-imports-vocabulary-module", {
        "_convert/run.py": "from .._build import vocabulary  # VIOLATION\n"}),
    ("4-writer", "subset-imports-writer", {
        "subset.py": "import embstore._build.writer  # VIOLATION\n"}),
    ("4-writer", "allowed:builder", {
        "_convert/text.py": "from .._build import builder\n",
        "gensim.py": "from ._build.builder import StoreBuilder as SB\n"}),
    ("5-front-ends", "store-imports-keras", {"store.py": """
        def f():
            from . import keras  # VIOLATION
            return keras
        """}),
    ("5-front-ends", "demo-imports-cli", {"demo.py": "from .cli import main  # VIOLATION\n"}),
    ("5-front-ends", "lookup-imports-cli-type-only", {"lookup.py": """
        if TYPE_CHECKING:
            from .cli import main  # VIOLATION
        """}),
    ("5-front-ends", "getattr-allows-cli", {"__init__.py": """
        def _lazy(name):
            import importlib
            if name in ("cli",):
                return importlib.import_module(f".{name}", __name__)  # VIOLATION
        """}),
    ("5-front-ends", "new-serve-imports-flask", {"serve.py": "import flask  # VIOLATION\n"}),
    ("5-front-ends", "gensim-imports-gensim-in-try", {"gensim.py": """
        try:
            import gensim  # VIOLATION
        except ImportError:
            gensim = None
        """}),
    ("5-front-ends", "keras-imports-tensorflow-in-class-body", {"keras.py": """
        class Layer:
            import tensorflow  # VIOLATION
        """}),
    ("5-front-ends", "new-dask-imported-by-matrix", {
        "dask.py": "def f():\n    import dask\n    return dask\n",
        "matrix.py": "from . import dask  # VIOLATION\n"}),
    ("5-front-ends", "allowed:frameworks-inside-functions", {
        "keras.py": "def f():\n    import tensorflow\n    return tensorflow\n",
        "serve.py": """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import flask
        from .store import open

        def app():
            import gunicorn
            import flask
            return flask, gunicorn
        """}),
    ("6-private", "private-module-outside-its-package", {
        "store.py": "from ._kernels._core import JIT  # VIOLATION\n"}),
    ("6-private", "private-module-alias-and-attribute", {"lookup.py": """
        from ._kernels import _core as kcore  # VIOLATION

        def f():
            return kcore._LaunchState  # VIOLATION
        """}),
    ("6-private", "private-function", {
        "matrix.py": "from .vocab import _private_helper  # VIOLATION\n"}),
    ("6-private", "private-name-inside-kernels", {
        "_kernels/gather.py": "from ._core import _LaunchState  # VIOLATION\n"}),
    ("6-private", "private-attribute-through-package", {"cli.py": """
        import embstore.store

        def f():
            return embstore.store._reopen  # VIOLATION
        """}),
    ("6-private", "private-attribute-of-module-alias", {"_build/writer.py": """
        def f():
            return fmt._secret  # VIOLATION
        """}),
    ("6-private", "allowed:public-names-and-private-packages", {
        "_kernels/subword.py": """
        from ._core import JIT as _JIT
        from .._version import __version__
        from . import _core
        """,
        "cli.py": """
        import embstore
        from ._kernels import index as kindex2

        def h():
            return embstore._kernels.index, kindex2.__name__, embstore.__version__
        """}),
    ("7-cycles", "module-level-cycle", {"store.py": "from . import verifier  # VIOLATION\n"}),
    ("7-cycles", "lazy-cycle", {"lookup.py": """
        def f():
            from . import matrix  # VIOLATION
            return matrix
        """}),
    ("7-cycles", "cycle-through-a-package-init", {
        "_build/__init__.py": "from .. import subset  # VIOLATION\n"}),
    ("7-cycles", "unresolvable-dynamic-import", {"__init__.py": """
        def _dyn(name):
            import importlib
            return importlib.import_module("." + name, __name__)  # VIOLATION
        """}),
    ("7-cycles", "allowed:type-checking-cycle", {"store.py": """
        if TYPE_CHECKING:
            from . import verifier
        """}),
]


@pytest.mark.parametrize(("rule", "files"), [pytest.param(r, f, id=f"{r}:{i}")
                                             for r, i, f in CASES])
def test_checker(tmp_path: Path, rule: str, files: dict[str, str]) -> None:
    """Each checker finds every injected violation, at its line, and nothing else; and finds
    nothing in the allowed constructs."""
    checker = RULES[rule]
    clean, _ = scratch_copy(tmp_path / "clean", {})  # a snapshot: others may be editing
    scratch, markers = scratch_copy(tmp_path / "injected", files, source=clean.root)
    baseline = set(checker(clean))  # the unmodified lines keep their numbers in the copy
    found = [v for v in checker(scratch) if v not in baseline]
    for marker in markers:
        assert any(re.search(re.escape(marker) + r"(?!\d)", v) for v in found), (
            f"{checker.__name__} missed {marker}", found)
    injected = [f"{scratch.top}/{rel}:" for rel in files]
    unexpected = [v for v in found if not any(i in v for i in injected)]
    assert not unexpected, unexpected
    if not markers:
        assert not found, found
    else:
        assert found


def test_relative_imports_resolve_like_python(tmp_path: Path) -> None:
    """``from . import x`` names the submodule x if it exists, else the package; ``from .x
    import y`` names x.y if that is a module, else x; relative levels count from the package
    (``__init__`` is its own package); ``import_module`` expands a literal allow-list."""
    root = tmp_path / "embstore"
    sources = {
        "__init__.py": """
            from . import format
            from .store import open
            from ._sub import deep
            def __getattr__(name):
                import importlib
                if name in ("keras", "store"):
                    return importlib.import_module(f".{name}", __name__)
            """,
        "format.py": "from . import NAME\n",
        "store.py": "from .format import Header\nimport embstore._sub.deep as d\n",
        "keras.py": "",
        "_sub/__init__.py": "from .. import format\nfrom .deep import thing\n",
        "_sub/deep.py": "from .. import store\nfrom ..format import X\n",
    }
    for rel, code in sources.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(code).lstrip("\n"))
    pkg = Package(root)
    edges = {(i.importer, i.target, i.dynamic) for i in pkg.imports}
    assert edges == {
        ("embstore", "embstore.format", False), ("embstore", "embstore.store", False),
        ("embstore", "embstore._sub.deep", False), ("embstore", "importlib", False),
        ("embstore", "embstore.keras", True), ("embstore", "embstore.store", True),
        ("embstore.format", "embstore", False),
        ("embstore.store", "embstore.format", False),
        ("embstore.store", "embstore._sub.deep", False),
        ("embstore._sub", "embstore.format", False), ("embstore._sub", "embstore._sub.deep", False),
        ("embstore._sub.deep", "embstore.store", False),
        ("embstore._sub.deep", "embstore.format", False),
    }, sorted(edges)
    graph = import_graph(pkg)
    assert set(graph["embstore.store"]) == {"embstore.format", "embstore._sub",
                                            "embstore._sub.deep"}
    assert _cycles(graph) == [["embstore", "embstore.format", "embstore"],
                              ["embstore._sub", "embstore._sub.deep", "embstore.store",
                               "embstore._sub"]]
    assert check_private_names(pkg) == []


# ---------------------------------------------------------------------------------------------
# What an import really loads (rule 8)

PROBE = r"""
import json, sys
heavy = json.loads(sys.argv[1])
import embstore
if len(sys.argv) > 2:
    s = embstore.open(sys.argv[2]); s[sys.argv[3]]; s.get('zzz'); list(s.words[:3])
loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)
print(json.dumps({"file": embstore.__file__, "loaded": loaded}))
"""


def probe(package_parent: Path, cwd: Path, *args: str) -> list[str]:
    """Run ``import embstore`` (and with ``store, word``: open, one lookup, a miss, three
    words) in a fresh interpreter, with the package found in ``package_parent``; returns the
    heavy modules it loaded."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_parent),
                                                    env.get("PYTHONPATH")) if p)
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), *args], cwd=cwd,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-5000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve() == (package_parent / "embstore" / "__init__.py").resolve()
    return list(out["loaded"])


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("layers")
    src = d / "tiny.txt"
    src.write_text("alpha 0.1 0.2 0.3\nbeta 0.4 0.5 0.6\ngamma 0.7 0.8 0.9\ndelta 1 2 3\n",
                   encoding="utf-8")
    embstore.convert(src, d / "tiny.emb", quiet=True)
    return d / "tiny.emb"


def test_import_embstore_is_light(tmp_path: Path) -> None:
    """Rule 8a: ``import embstore`` loads NumPy only -- no Numba (seconds of import and JIT
    setup), no framework, no SciPy -- so that a CLI call or a worker process starts fast."""
    loaded = probe(REPO, tmp_path)
    assert not loaded, f"import embstore loaded {loaded}"


@pytest.mark.parametrize("which", ["converted", "v1_0-example"])
def test_reading_a_store_does_not_load_numba(request: pytest.FixtureRequest, tmp_path: Path,
                                             which: str) -> None:
    """Rule 8b: open, one ``store[word]``, a miss and ``store.words[:3]`` stay in pure
    Python/NumPy: Numba is imported on the first conversion or batch lookup only."""
    store, word = ((request.getfixturevalue("tiny_store"), "alpha") if which == "converted"
                   else (EXAMPLE_STORE, "list"))
    loaded = probe(REPO, tmp_path, str(store), word)
    assert not loaded, f"reading {store.name} loaded {loaded}"


def test_probe_catches_a_heavy_import(tmp_path: Path) -> None:
    """The probes fail on a violation: a scratch copy whose store.py imports Numba."""
    scratch, _ = scratch_copy(tmp_path / "pkg", {"store.py": "import numba  # VIOLATION\n"})
    assert "numba" in probe(scratch.root.parent, tmp_path)
    assert "numba" in probe(scratch.root.parent, tmp_path, str(EXAMPLE_STORE), "list")
