"""No knots in ``pgprobe``'s import graph: no module imports one that imports it back.

The graph is read from the source with ``ast`` (nothing is imported, torch is not needed).
A node is a module of ``src/pgprobe`` (a package is its ``__init__``); there is an edge
A → B when A's source names B in an ``import`` statement **anywhere**: at module level, inside
a function or method (a lazy import is still a dependency, it only runs later), under
``if TYPE_CHECKING:``, or as a string literal passed to ``importlib.import_module``.
``from P import name`` is an edge to ``P.name`` when that is a module, else to ``P``.
Names computed at run time (``import_module(f"{__name__}.{short}")``) cannot be read and are
not edges.  The test fails naming each cycle as ``a -> b -> ... -> a``.  (The knot it found,
policies -> gradient_model -> estimators -> update -> algos.sb3_ppo -> policies, ran through
two function-level imports: a reading of module-level imports alone saw no cycle.)
"""
from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "pgprobe"


def module_files(root: Path = SOURCE, package: str = PACKAGE) -> dict[str, Path]:
    """{dotted module name: file} for every module of the package."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` (source file ``path``) imports, at any depth."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(target: str) -> None:
        # ``import pgprobe.a.b`` also names its packages; keep the deepest known module.
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != module:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node.level, node.module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                add(submodule if submodule in known else source)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "import_module"))):
            add(node.args[0].value)
    return found


def import_graph(root: Path = SOURCE, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(root, package)
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def knots(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan): each module of
    a knot imports, through the others, every other module of it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a closed path, first module repeated at the end) per knot."""
    return [_cycle_through(component, graph) for component in knots(graph)]


def _cycle_through(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest closed path inside a strongly connected component, from its first module."""
    start = min(component)
    previous = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    path = [node]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"not strongly connected: {sorted(component)}")


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    found = knots(graph)
    assert not found, "import cycles in pgprobe:\n" + "\n".join(
        f"{' -> '.join(_cycle_through(knot, graph))}  (knot: {', '.join(sorted(knot))})" for knot in found)


def test_the_walk_sees_every_kind_of_import(tmp_path):
    """The reader itself: absolute, relative, function-level and import_module edges, and a
    planted cycle named in full (so the test above cannot pass by reading nothing)."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("import pkg.b\n")
    (package / "b.py").write_text("def f():\n    from .sub import c\n")
    (package / "sub" / "c.py").write_text("import importlib\nimportlib.import_module('pkg.d')\n")
    (package / "d.py").write_text("from . import a\n")
    (package / "e.py").write_text("from pkg.sub.c import name\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.d"}
    assert graph["pkg.d"] == {"pkg.a"}
    assert graph["pkg.e"] == {"pkg.sub.c"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.d", "pkg.a"]]
    graph["pkg.d"] = set()
    assert cycles(graph) == []
