"""The import graph keeps the design card's layers: data flows one way, configs -> pipelines ->
shards and manifests -> trainers, with the CLI and the benchmarks on top.

The graph is read from the source (every `import` and `from ... import`, at module level or
inside a function, except under `if TYPE_CHECKING:`), so a lazy import inside a function
counts as what it is: a dependency at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vfcache

CHECKOUT = Path(vfcache.__file__).resolve().parent.parent
FOLDERS = {
    "vfcache": "vfcache",
    "pipelines": "vfcache.pipelines",
    "manifests": "vfcache.manifests",
    "cache_tools": "vfcache.cache_tools",
    "trainers": "vfcache.trainers",
}
GROUND = (
    "vfcache.config",
    "vfcache.errors",
    "vfcache.cores",
    "vfcache.pixels",
    "vfcache.layout",
    "vfcache.atomic",
    "vfcache.checksums",
    "vfcache.validation",
    "vfcache.archive_paths",
)


def _module_name(path: Path) -> str:
    relative = path.relative_to(CHECKOUT).with_suffix("")
    parts = list(relative.parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = {}
    for folder in FOLDERS:
        for path in (CHECKOUT / folder).rglob("*.py"):
            files[_module_name(path)] = path
    modules = set(files)
    return {name: _imports(path, name, modules) for name, path in files.items()}


def _layer(module: str) -> str:
    for prefix in (
        "vfcache.cli",
        "vfcache.bench",
        "vfcache.trainers",
        "vfcache.pipelines",
        "vfcache.manifests",
        "vfcache.cache_tools",
    ):
        if module == prefix or module.startswith(prefix + "."):
            return prefix.split(".")[1]
    return "ground" if module in GROUND or module == "vfcache" else "other"


# what each layer may import, besides itself
ALLOWED = {
    "ground": {"ground"},
    "cache_tools": {"ground", "manifests"},
    "manifests": {"ground"},
    "pipelines": {"ground", "manifests", "cache_tools"},
    "trainers": {"ground", "manifests", "cache_tools"},
    "bench": {"ground", "manifests", "cache_tools", "pipelines", "trainers"},
    "cli": {"ground", "manifests", "cache_tools", "pipelines", "trainers", "bench"},
}


def test_every_module_belongs_to_a_layer(graph):
    assert [m for m in graph if _layer(m) == "other"] == []


def test_layers_import_only_what_lies_below_them(graph):
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if _layer(target) != _layer(module) and _layer(target) not in ALLOWED[_layer(module)]
    )
    assert wrong == []


def test_no_module_below_the_cli_imports_it(graph):
    assert (
        sorted(
            m
            for m, targets in graph.items()
            if _layer(m) != "cli" and any(_layer(t) == "cli" for t in targets)
        )
        == []
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_benchmarks_use_only_public_names():
    """`vfcache.bench` measures the library as a user would call it: no private module or name
    of another package."""
    private = []
    for path in (CHECKOUT / "vfcache" / "bench").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module != "__future__"
                and not node.module.startswith("vfcache.bench")
            ):
                names = [alias.name for alias in node.names]
                if any(part.startswith("_") for part in node.module.split(".")) or any(
                    name.startswith("_") for name in names
                ):
                    private.append(f"{path.name}: from {node.module} import {', '.join(names)}")
            elif isinstance(node, ast.Import):
                private += [
                    f"{path.name}: import {a.name}"
                    for a in node.names
                    if any(part.startswith("_") for part in a.name.split("."))
                ]
    assert private == []
