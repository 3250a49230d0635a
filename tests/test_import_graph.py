"""The import graph of ``synthetic/`` and ``fedsim/``, read from the source with :mod:`ast`.

Rules checked on the real tree (issue 8):

- no import cycle, function-level imports included;
- only modules under ``fedsim/federation/`` import ``flwr``;
- only ``fedsim/tracking.py`` imports ``mlflow``;
- ``synthetic/`` (the world generator) imports nothing from ``fedsim``.

How an import becomes an edge (the rules Python itself follows when it runs the import):

- Every ``import``/``from ... import`` statement anywhere in a module counts: module level, inside functions and
  methods, and under ``if TYPE_CHECKING:`` (a type-only import still ties the two modules together; it may avoid the
  runtime cost, it may not hide a cycle). ``importlib.import_module("...")`` with a literal name counts too.
- ``import a.b.c`` is an edge to ``a.b.c``; ``from a.b import c`` is an edge to ``a.b.c`` when ``c`` is a module,
  otherwise to ``a.b``. Relative imports are resolved against the importing module's package.
- A package counts as its ``__init__`` module: importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``
  first, so the edge to ``a.b.c`` also adds edges to the packages ``a.b`` and ``a``. The only exception is a
  package that contains the importing module: Python has already started running it before the importer, so
  importing it again cannot cause anything to be loaded (``fedsim.regimes.base`` importing
  ``fedsim.regimes.horizontal`` adds no edge to ``fedsim.regimes``). This is why a re-export in a package
  ``__init__`` matters: if ``fedsim/regimes/__init__.py`` imports ``fedsim.regimes.horizontal`` and that reaches
  ``fedsim.federation``, then ``fedsim.federation`` importing ``fedsim.regimes.base`` closes a cycle through
  ``fedsim.regimes``.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("synthetic", "fedsim")


@dataclass(repr=False)  # pytest prints the fixture on failure; the messages say what matters
class ImportGraph:
    """Edges between our own modules and the third-party top-level packages each module imports."""

    edges: dict[str, set[str]] = field(default_factory=dict)
    external: dict[str, set[str]] = field(default_factory=dict)


def discover_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name → source file, for every ``.py`` under the given top-level packages."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """Absolute name of ``from <level dots><module> import ...`` written in ``importer``."""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 > len(package):
        raise ValueError(f"{importer}: relative import beyond the top-level package")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def _literal_import_module(node: ast.Call) -> str | None:
    """The name in ``importlib.import_module("x.y")`` / ``import_module("x.y")`` when it is a literal."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name != "import_module" or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imported_names(name: str, path: Path) -> Iterator[str]:
    """Every absolute dotted name one module imports, wherever the statement is (``from x import y`` gives
    both ``x.y`` and ``x``; which of them is a module is decided later)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_relative(name, _is_package(path), node.level, node.module) if node.level else node.module
            assert source is not None  # `from import x` is a syntax error; only relative imports omit the module
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and (literal := _literal_import_module(node)):
            yield literal


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _targets(importer: str, dotted: str, modules: dict[str, Path]) -> set[str]:
    """Our modules that importing ``dotted`` from ``importer`` runs: the deepest module named, plus its
    packages' ``__init__`` modules, minus the packages that already contain ``importer``."""
    if dotted not in modules:
        return set()
    running = set(_ancestors(importer)) | {importer}
    return {m for m in [*_ancestors(dotted), dotted] if m in modules and m not in running}


def build_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> ImportGraph:
    modules = discover_modules(root, packages)
    graph = ImportGraph()
    for name, path in modules.items():
        edges, external = graph.edges.setdefault(name, set()), graph.external.setdefault(name, set())
        for dotted in imported_names(name, path):
            top = dotted.split(".")[0]
            if top in packages:
                edges |= _targets(name, dotted, modules)
            else:
                external.add(top)
    return graph


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, each as a path ``[a, b, ..., a]``: the shortest
    cycle through the component's first module (so the path printed is a short one to break)."""
    return [_shortest_cycle(edges, set(c), c[0]) for c in cyclic_components(edges)]


def cyclic_components(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components that contain a cycle (two or more modules, or a self-loop), sorted.

    Tarjan's algorithm (R. Tarjan, "Depth-first search and linear graph algorithms", SIAM J. Comput. 1972),
    written iteratively so a deep import chain cannot hit Python's recursion limit.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    components.append(sorted(component))
    return sorted(components)


def _shortest_cycle(edges: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """Shortest path ``start → ... → start`` inside one strongly connected component (breadth-first)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, ())):
                if child not in component:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in parent:
                    parent[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start}: no cycle inside its own strongly connected component")


def _describe(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def _describe_components(edges: dict[str, set[str]]) -> str:
    """Each cyclic component: a cycle to break, then all its modules (other cycles may run through them)."""
    return "\n".join(
        f"{' -> '.join(_shortest_cycle(edges, set(c), c[0]))}\n    modules on cycles here: {', '.join(c)}"
        for c in cyclic_components(edges)
    )


# ---------------------------------------------------------------- the checker, on planted trees


def _plant(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def test_cycle_through_function_level_relative_import_is_found(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from . import b\n    return b\n",
            "pkg/b.py": "import pkg.c\n",
            "pkg/c.py": "from pkg.a import f\n",
            "pkg/d.py": "import pkg.a\n",  # reaches the cycle but is not on it
        },
    )
    cycles = find_cycles(build_graph(root, ("pkg",)).edges)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]], _describe(cycles)


def test_acyclic_tree_has_no_cycle_and_own_package_is_not_an_edge(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import f\n",  # re-export
            "pkg/a.py": "from pkg import b\n\ndef f():\n    return b\n",  # own package: already running
            "pkg/b.py": "import json\n",
        },
    )
    graph = build_graph(root, ("pkg",))
    assert graph.edges == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": set()}
    assert graph.external["pkg.b"] == {"json"}
    assert find_cycles(graph.edges) == []


def test_cycle_through_a_package_init_reexport_is_found(tmp_path: Path) -> None:
    # The shape issue 8 names: regimes/__init__ re-exports a regime that calls federation, and federation
    # imports regimes.base at module level; importing regimes.base runs regimes/__init__ first.
    root = _plant(
        tmp_path,
        {
            "top/__init__.py": "",
            "top/regimes/__init__.py": "from top.regimes.horizontal import run\n",
            "top/regimes/base.py": "",
            "top/regimes/horizontal.py": "def run():\n    from top.federation import engine\n",
            "top/federation/__init__.py": "",
            "top/federation/engine.py": "from top.regimes.base import *\n",
        },
    )
    cycles = find_cycles(build_graph(root, ("top",)).edges)
    assert cycles == [["top.federation.engine", "top.regimes", "top.regimes.horizontal", "top.federation.engine"]]


def test_import_module_literal_counts_and_self_import_does_not(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import importlib\nmod = importlib.import_module('pkg.b')\n",
            "pkg/b.py": "import flwr.client\nfrom importlib import import_module\nimport_module('pkg.a')\n",
            "pkg/c.py": "import pkg.c\n",  # Python hands back the module already running: nothing loads
        },
    )
    graph = build_graph(root, ("pkg",))
    assert graph.external["pkg.b"] == {"flwr", "importlib"}
    assert find_cycles(graph.edges) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_find_cycles_reports_self_loop_and_one_path_per_component() -> None:
    edges = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c", "e"}, "e": {"e"}}
    assert find_cycles(edges) == [["a", "b", "a"], ["c", "d", "c"], ["e", "e"]]


# ---------------------------------------------------------------- the rules, on the real tree


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    built = build_graph(ROOT)
    assert "fedsim.tracking" in built.edges and "synthetic.world" in built.edges  # the walk found the tree
    return built


def _importers(graph: ImportGraph, top: str) -> set[str]:
    return {module for module, names in graph.external.items() if top in names}


def test_no_import_cycles(graph: ImportGraph) -> None:
    components = cyclic_components(graph.edges)
    assert not components, (
        f"{len(components)} group(s) of modules import each other in a cycle:\n" + _describe_components(graph.edges)
    )


def test_only_federation_imports_flwr(graph: ImportGraph) -> None:
    outside = {m for m in _importers(graph, "flwr") if not m.startswith("fedsim.federation.")}
    assert not outside, f"flwr imported outside fedsim/federation/: {sorted(outside)}"


def test_only_tracking_imports_mlflow(graph: ImportGraph) -> None:
    outside = _importers(graph, "mlflow") - {"fedsim.tracking"}
    assert not outside, f"mlflow imported outside fedsim/tracking.py: {sorted(outside)}"


def test_synthetic_imports_nothing_from_fedsim(graph: ImportGraph) -> None:
    crossing = {
        f"{module} -> {target}"
        for module, targets in graph.edges.items()
        if module.startswith("synthetic")
        for target in targets
        if target.split(".")[0] == "fedsim"
    }
    assert not crossing, f"synthetic/ imports fedsim: {sorted(crossing)}"
