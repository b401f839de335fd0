"""No import cycles among our modules, bench included, counting the imports
inside functions (and under TYPE_CHECKING) too: a cycle hidden in a function
still ties two modules together, and whichever loads first sees the other
half-built. Context types and shared helpers live in modules of their own,
and callables are passed down instead of imported up."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "service", "worker", "bench")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def our_modules() -> dict[str, Path]:
    paths = (path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py")))
    return {module_name(path): path for path in paths}


def imports_of(source: str, modules: set[str]) -> set[str]:
    """Our modules that `source` imports, anywhere in it; `from pkg import
    module` counts as importing the module, `from module import name` the module."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found & modules


def import_graph() -> dict[str, set[str]]:
    modules = our_modules()
    names = set(modules)
    return {name: imports_of(path.read_text(), names) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules of each cycle: every strongly connected component of more
    than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = [stack.pop()]
            while component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_imports_inside_functions_count_and_name_the_module() -> None:
    source = (
        "from models import errors\n"
        "from models.jobs.store import JobStore\n"
        "def later():\n"
        "    from worker import runner\n"
    )
    modules = {"models", "models.errors", "models.jobs.store", "worker", "worker.runner"}
    assert imports_of(source, modules) == {"models.errors", "models.jobs.store", "worker.runner"}


def test_a_cycle_is_found_with_every_module_on_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_through_others() -> None:
    assert cycles(import_graph()) == []
