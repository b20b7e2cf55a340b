"""No import cycle between the modules of one package of src/medseg, and nothing imports cli.

Every import counts: module level, inside functions (lazy) and under ``TYPE_CHECKING``; a
package reads top-down only when its shared pieces live below the modules that use them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SOURCE / "medseg").rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of src/medseg that ``name`` imports (``from pkg import module`` included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found & known


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycles_within_packages(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups (> 1 module, or a self-import) among siblings of a package."""
    cycles = []
    packages = {name.rpartition(".")[0] for name in graph}
    for package in sorted(packages):
        siblings = {
            n for n in graph if n.rpartition(".")[0] == package and n != package and n in graph
        }
        siblings -= {
            n for n in siblings if any(m.startswith(n + ".") for m in graph)
        }  # subpackages
        edges = {n: graph[n] & siblings for n in siblings}
        cycles.extend(_strongly_connected(edges))
    return cycles


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; returns the groups that form a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_a_package() -> None:
    cycles = _cycles_within_packages(_graph())
    assert not cycles, f"import cycles (move the shared piece below its users): {cycles}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}, "p": set()}
    assert _cycles_within_packages(graph) == [["p.a", "p.b", "p.c"]]


def test_nothing_imports_the_cli() -> None:
    """Only the CLI itself and ``python -m medseg`` (``medseg.__main__``) import the CLI."""
    importers = [
        name
        for name, imported in _graph().items()
        if not name.startswith(("medseg.cli", "medseg.__main__"))
        and any(m.startswith("medseg.cli") for m in imported)
    ]
    assert not importers
