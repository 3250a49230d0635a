"""The generator package has no import cycle, counting imports inside functions too.

A function-level import hides a cycle from Python's import machinery but not from a reader: the modules
still depend on each other. So the graph is built from every ``import`` statement in the source (module
level and inside functions), resolved to modules of ``synthetic``; implicit parent-package imports are not
edges (importing ``synthetic.fraud.common`` does not make ``common`` depend on ``synthetic/fraud/__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "synthetic"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _imported(node: ast.Import | ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    """Dotted names an import statement may load: the module, and for ``from m import x`` also ``m.x``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative import: resolve against the importing module's package
        package = here if is_package else here.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        base = f"{package}.{base}" if base else package
    return [base, *(f"{base}.{a.name}" for a in node.names)]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its source."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                is_package = path.name == "__init__.py"
                deps.update(d for d in _imported(node, name, is_package) if d in modules and d != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first = last), or None; iterative depth-first search."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_synthetic_has_no_import_cycle() -> None:
    graph = import_graph(_modules())
    assert "synthetic.world" in graph and "synthetic.known_answer" in graph["synthetic.world"]  # the graph is real
    assert find_cycle(graph) is None, f"import cycle: {' → '.join(find_cycle(graph) or [])}"


@pytest.mark.parametrize(
    ("graph", "cyclic"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"a2"}, "a2": set(), "b": {"a"}}, False),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, False),  # a diamond is not a cycle
    ],
)
def test_cycle_finder_finds_cycles_and_only_cycles(graph: dict[str, set[str]], cyclic: bool) -> None:
    cycle = find_cycle(graph)
    assert (cycle is not None) == cyclic
    if cycle is not None:
        assert cycle[0] == cycle[-1] and all(b in graph[a] for a, b in zip(cycle, cycle[1:], strict=False))


def test_a_function_level_import_counts_as_an_edge(tmp_path: Path) -> None:
    # The cycle world ↔ generators of old was hidden in a function body; the graph must still see it.
    (tmp_path / "m1.py").write_text("def f():\n    from pkg.m2 import g\n")
    (tmp_path / "m2.py").write_text("from pkg.m1 import f\n")
    graph = import_graph({"pkg.m1": tmp_path / "m1.py", "pkg.m2": tmp_path / "m2.py"})
    assert find_cycle(graph) is not None
