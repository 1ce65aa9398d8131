"""Who may import whom (docs/architecture.md, "Layout"), read from the source without importing it.

Every ``import`` statement of collector/, pipelines/ and bench/ counts, wherever it is: at the top, inside a
function (imported late), under ``if TYPE_CHECKING:``. Relative imports are resolved. A module's import of
``a.b.c`` is an edge to the longest of ``a.b.c``, ``a.b``, ``a`` that is a module of the tree; ``from a.b import
c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``. Parent packages that Python initialises on
the way (``a/__init__.py`` for ``a.b``) are not edges of their own.

The rules:
* no import cycles, anywhere (a cycle makes the import order matter and hides which module owns what);
* the runtime (collector/, pipelines/) never imports a tool (bench/) or the tests;
* nothing in collector/ imports pipelines/ except collector/registry.py, which finds processors by name.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("collector", "pipelines", "bench")
RUNTIME = ("collector", "pipelines")
TOOLS = ("bench", "tests")
PIPELINES_IMPORTER = "collector.registry"

# Cycles tolerated for now (none): each would be the set of modules of one cycle (a strongly connected part of
# the graph); any other cycle, or one of these grown by a module, fails, and so does one that is gone.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str  # module name
    name: str  # the absolute name imported (``from a import b``: ``a.b``)
    module: str | None  # the module of the tree it resolves to, if any
    where: str  # path:line


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``packages`` under ``root``."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def read_imports(root: Path, modules: Mapping[str, Path]) -> list[Import]:
    found: list[Import] = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        file = path.relative_to(root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            where = f"{file}:{node.lineno}"
            if isinstance(node, ast.Import):
                found += [Import(module, a.name, _resolve(a.name, modules), where) for a in node.names]
                continue
            if node.level:  # relative: level 1 is the importer's own package
                parts = package.split(".")
                source = ".".join([*parts[: len(parts) - node.level + 1], *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                name = f"{source}.{alias.name}"
                found.append(Import(module, name, name if name in modules else _resolve(source, modules), where))
    return found


def build_graph(modules: Iterable[str], imports: Iterable[Import]) -> dict[str, dict[str, str]]:
    """module -> {imported module: where (the first import of it)}."""
    graph: dict[str, dict[str, str]] = {m: {} for m in modules}
    for imp in imports:
        if imp.module is not None and imp.module != imp.importer:
            graph[imp.importer].setdefault(imp.module, imp.where)
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's algorithm without recursion: the parts of the graph where every module reaches every other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    part: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        part.add(member)
                        if member == node:
                            break
                    parts.append(part)
    return parts


def find_cycles(graph: Mapping[str, Iterable[str]]) -> dict[frozenset[str], list[str]]:
    """Every cycle, as {its modules: a shortest path around it from its first module, ending where it starts}."""
    cycles: dict[frozenset[str], list[str]] = {}
    for part in strongly_connected(graph):
        start = min(part)
        if len(part) == 1 and start not in graph[start]:
            continue
        came_from: dict[str, str] = {}
        queue = deque([start])
        while queue:  # breadth first, inside the part, back to the start
            node = queue.popleft()
            if start in graph[node]:
                path = [start]
                while node != start:
                    path.append(node)
                    node = came_from[node]
                cycles[frozenset(part)] = [start, *reversed(path[1:]), start]
                break
            for child in sorted(graph[node]):
                if child in part and child not in came_from and child != start:
                    came_from[child] = node
                    queue.append(child)
    return cycles


def describe(part: frozenset[str], path: list[str], graph: Mapping[str, Mapping[str, str]]) -> str:
    steps = "; ".join(f"{a} imports {b} ({graph[a][b]})" for a, b in pairwise(path))
    more = f" [more cycles through {', '.join(sorted(part - set(path)))}]" if part - set(path) else ""
    return f"{' -> '.join(path)}: {steps}{more}"


def unexpected_cycles(graph: Mapping[str, Mapping[str, str]], known: Iterable[frozenset[str]] = ()) -> list[str]:
    return [describe(part, path, graph) for part, path in find_cycles(graph).items() if part not in set(known)]


def _in(name: str, packages: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def forbidden_imports(imports: Iterable[Import]) -> list[str]:
    """Runtime modules importing a tool or the tests; collector modules other than the registry importing
    pipelines."""
    problems = []
    for imp in imports:
        if _in(imp.importer, RUNTIME) and _in(imp.name, TOOLS):
            problems.append(f"{imp.where}: {imp.importer} imports {imp.name}: the runtime never imports a tool")
        elif (_in(imp.importer, ("collector",)) and imp.importer != PIPELINES_IMPORTER
              and _in(imp.name, ("pipelines",))):
            problems.append(f"{imp.where}: {imp.importer} imports {imp.name}: only {PIPELINES_IMPORTER} "
                            "reaches into pipelines")
    return problems


@cache
def _tree() -> tuple[dict[str, Path], list[Import]]:
    modules = find_modules(ROOT, PACKAGES)
    return modules, read_imports(ROOT, modules)


def test_no_import_cycles() -> None:
    modules, imports = _tree()
    graph = build_graph(modules, imports)
    found = unexpected_cycles(graph, KNOWN_CYCLES)
    assert not found, "import cycles:\n" + "\n".join(found)
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in find_cycles(graph)]
    assert not gone, f"these known cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_runtime_imports_no_tool_and_only_the_registry_imports_pipelines() -> None:
    _, imports = _tree()
    problems = forbidden_imports(imports)
    assert not problems, "\n".join(problems)


# The checks themselves, on small made-up trees: they must fail where they should.


def test_cycle_finder_reports_each_cycle_with_its_path() -> None:
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2", "d": "b.py:3"}, "c": {"a": "c.py:4"}, "d": {},
             "e": {"e": "e.py:5"}, "f": {"a": "f.py:6", "g": "f.py:7"}, "g": {"f": "g.py:8"}}
    cycles = find_cycles(graph)
    assert cycles == {frozenset("abc"): ["a", "b", "c", "a"], frozenset("e"): ["e", "e"],
                      frozenset("fg"): ["f", "g", "f"]}
    assert unexpected_cycles(graph, [frozenset("abc"), frozenset("e")]) == [
        "f -> g -> f: f imports g (f.py:7); g imports f (g.py:8)"]
    # a known cycle that grows by one module is a new cycle
    graph["d"]["a"] = "d.py:9"
    assert unexpected_cycles(graph, [frozenset("abc"), frozenset("e"), frozenset("fg")]) == [
        "a -> b -> c -> a: a imports b (a.py:1); b imports c (b.py:2); c imports a (c.py:4) [more cycles through d]"]
    assert find_cycles({"a": {"b": ""}, "b": {"c": ""}, "c": {}}) == {}


def test_cycle_finder_on_a_long_chain_does_not_recurse() -> None:
    n = 20_000
    graph = {str(i): {str(i + 1): ""} for i in range(n)} | {str(n): {"0": ""}}
    (path,) = find_cycles(graph).values()
    assert len(path) == n + 2


def test_imports_are_read_everywhere_and_resolved(tmp_path: Path) -> None:
    files = {
        "collector/__init__.py": "from collector.batch import B\n",
        "collector/batch.py": "B = 1\n",
        "collector/cli.py": (
            "from . import batch\n"
            "from .config import schema\n"
            "import collector.config.schema as s\n"
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pipelines.x import Y\n"
            "def main():\n    from bench.demo.run import command\n    return command\n"
        ),
        "collector/config/__init__.py": "",
        "collector/config/schema.py": "from ..cli import main\nfrom .. import __name__ as n\n",
        "collector/registry.py": "import pipelines.x\n",
        "pipelines/__init__.py": "",
        "pipelines/x.py": "import tests.helpers\nfrom collector import B\nY = 1\n",
        "bench/__init__.py": "",
        "bench/demo/__init__.py": "",
        "bench/demo/run.py": "from collector.cli import main\ncommand = main\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = find_modules(tmp_path, PACKAGES)
    imports = read_imports(tmp_path, modules)
    graph = build_graph(modules, imports)
    assert set(graph["collector.cli"]) == {"collector.batch", "collector.config.schema", "pipelines.x",
                                           "bench.demo.run"}
    assert graph["collector.cli"]["bench.demo.run"] == "collector/cli.py:8"
    assert set(graph["collector.config.schema"]) == {"collector.cli", "collector"}
    assert set(graph["pipelines.x"]) == {"collector"}
    assert unexpected_cycles(graph) == [
        "bench.demo.run -> collector.cli -> bench.demo.run: bench.demo.run imports collector.cli (bench/demo/run.py:1);"
        " collector.cli imports bench.demo.run (collector/cli.py:8) [more cycles through collector.config.schema]"]
    assert forbidden_imports(imports) == [
        "collector/cli.py:6: collector.cli imports pipelines.x.Y: only collector.registry reaches into pipelines",
        "collector/cli.py:8: collector.cli imports bench.demo.run.command: the runtime never imports a tool",
        "pipelines/x.py:1: pipelines.x imports tests.helpers: the runtime never imports a tool",
    ]


# -- tests mirror the source ----------------------------------------------------------------------------------

TEST_ROOTS = {"collector", "pipelines", "bench"}  # mirror the packages of the same names
# the image and manifests, the docs, whole-product runs, fixtures, the atheris fuzz harness (it spans packages)
TEST_EXTRAS = {"deploy", "docs", "e2e", "data", "fuzz"}
# Test folders with no source folder of their name, and why.
UNMIRRORED = {"collector/kafka": "the Kafka receiver and exporter together, against a real broker"}


def test_tests_mirror_the_source_layout() -> None:
    tests = ROOT / "tests"
    loose = sorted(p.name for p in tests.glob("test_*.py") if p.name != "test_layout.py")
    assert not loose, f"test files belong in the folder of the code they test: {loose}"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= TEST_ROOTS | TEST_EXTRAS, f"unexpected test folders: {sorted(folders - TEST_ROOTS - TEST_EXTRAS)}"
    for top in sorted(TEST_ROOTS & folders):
        skip = ("__pycache__", "data")
        for folder in sorted(p for p in (tests / top).rglob("*") if p.is_dir() and p.name not in skip):
            rel = folder.relative_to(tests).as_posix()
            if rel in UNMIRRORED or any(rel.startswith(u + "/") for u in UNMIRRORED):
                continue
            assert (ROOT / rel).is_dir(), f"tests/{rel} mirrors no source folder {rel}/"
