"""The package's layout is its architecture: no import cycles, and a pure ``trionet.core``.

Imports are read from the source with :mod:`ast`, not by importing: every ``import`` and
``from ... import`` in a module counts, at any depth (inside functions, under
``if TYPE_CHECKING:``), since each one is a dependency a reader has to follow. A module's edge
goes to the module it names (``from . import protocol`` is an edge to ``trionet.protocol``, not
to ``trionet``); the parent packages Python initialises on the way are not edges, or every
module would depend on ``trionet/__init__.py`` and through it on everything.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trionet"

#: third-party and standard modules that mean I/O or an event loop: never in trionet.core
CORE_FORBIDDEN_EXTERNAL = frozenset({
    "trio", "trio_websocket", "hypercorn", "quart", "quart_trio", "werkzeug", "wsproto",
    "sqlite3", "sqlite_utils", "psycopg", "psycopg_pool", "asyncio", "socket", "threading",
    "subprocess", "prometheus_client",
})
#: what trionet.core may import of trionet besides itself
CORE_ALLOWED = frozenset({"trionet.interfaces"})

#: old import paths kept for integrators (and the modules they re-export); trionet's own code
#: imports the new paths
SHIMS = {
    "trionet.errors": "trionet.core.errors",
    "trionet.messagetypes": "trionet.realtime.messagetypes",
    "trionet.ext_typing": "trionet.realtime.ext_typing",
}
@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a trionet module, or the top-level name of any other
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str:
    """The longest prefix of a dotted name that is a trionet module."""
    parts = name.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) if parts else name


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: 1 - node.level]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # `from X import name`: the module X.name when there is one, else X itself
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name == "trionet" or name.startswith("trionet."):
                target = _resolve(name)
            else:
                target = name.partition(".")[0]
            found.append(Import(module, target, node.lineno))
    return found


def import_graph() -> dict[str, set[str]]:
    """trionet module -> the trionet modules it imports."""
    return {m: {i.target for i in imports_of(m) if i.target in MODULES and i.target != m}
            for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)

    found = []
    for component in components:
        start = min(component)
        # breadth-first from start, inside the component, back to start
        paths = {start: [start]}
        frontier = [start]
        cycle: list[str] | None = None
        while frontier and cycle is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & component):
                    if w == start:
                        cycle = [*paths[v], start]
                        break
                    if w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
                if cycle:
                    break
            frontier = nxt
        assert cycle is not None
        found.append(cycle)
    return found


def test_the_graph_sees_the_imports() -> None:
    graph = import_graph()
    assert len(MODULES) > 60
    assert "trionet.services" in graph["trionet.api.common"]
    assert "trionet.api" in graph["trionet.app"]  # an import inside a function counts
    assert "trionet.store" in graph["trionet.cli"]  # under TYPE_CHECKING
    assert "trionet.core.protocol" in graph["trionet.api.ws"]  # from .. import protocol
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    report = []
    for cycle in found:  # the cycle, and every module caught in the same knot
        knot = sorted(m for m in graph if m in _reachable(graph, cycle[0])
                      and cycle[0] in _reachable(graph, m))
        report.append(" -> ".join(cycle) + f"\n    (knot of {len(knot)}: {', '.join(knot)})")
    assert not found, "import cycles:\n" + "\n".join(report)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


CORE = sorted(m for m in MODULES if m == "trionet.core" or m.startswith("trionet.core."))


def test_core_holds_the_pure_modules() -> None:
    assert {"trionet.core.protocol", "trionet.core.routing", "trionet.core.dedupe",
            "trionet.core.errors"} <= set(CORE)


@pytest.mark.parametrize("module", CORE)
def test_core_is_pure(module: str) -> None:
    """No trio, no server, no database, and nothing of trionet outside core but its
    interfaces: directly, or through what it imports."""
    seen, todo, bad = {module}, [module], []
    while todo:
        current = todo.pop()
        for imp in imports_of(current):
            if imp.target in MODULES:
                inside = imp.target.startswith("trionet.core") or imp.target in CORE_ALLOWED
                if not inside:
                    bad.append(f"{current}:{imp.line} imports {imp.target}")
                elif imp.target not in seen:
                    seen.add(imp.target)
                    todo.append(imp.target)
            elif imp.target in CORE_FORBIDDEN_EXTERNAL:
                bad.append(f"{current}:{imp.line} imports {imp.target}")
    assert not bad, "\n".join(bad)


#: the layers, lowest first: a module imports only from its own layer and the ones below
LAYERS: tuple[tuple[str, ...], ...] = (
    # pure code, and the leaves every layer may use
    ("trionet.core", "trionet.interfaces", "trionet.settings", "trionet.metrics"),
    ("trionet.store", "trionet.asgi", "trionet.backplane"),
    ("trionet.realtime", "trionet.auth", "trionet.jwtkeys"),
    ("trionet.services",),
    ("trionet.api",),
)  # everything else (app, server, cli, testing, client, the package itself) is the top


def layer_of(module: str) -> int:
    module = SHIMS.get(module, module)  # a shim is where its module is
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return len(LAYERS)


def test_layers_import_downwards() -> None:
    """The store and the realtime machinery never reach up into the services, the endpoints
    or the entry points; the endpoints reach the services, never the app factory."""
    bad = [
        f"{imp.importer}:{imp.line} imports {imp.target}"
        for module in MODULES if module not in SHIMS
        for imp in imports_of(module)
        if imp.target in MODULES and layer_of(imp.target) > layer_of(module)
    ]
    assert not bad, "\n".join(bad)


def test_trionet_code_imports_new_paths_not_the_shims() -> None:
    bad = [
        f"{imp.importer}:{imp.line} imports {imp.target} (use {SHIMS[imp.target]})"
        for module in MODULES if module not in SHIMS
        for imp in imports_of(module)
        if imp.target in SHIMS
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("shim", sorted(SHIMS))
def test_shims_re_export_their_module(shim: str) -> None:
    old, new = importlib.import_module(shim), importlib.import_module(SHIMS[shim])
    assert old.__doc__ and SHIMS[shim] in old.__doc__
    assert sorted(old.__all__) == sorted(new.__all__)
    assert all(getattr(old, name) is getattr(new, name) for name in new.__all__)
