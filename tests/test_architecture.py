"""Meta-tests of the code's shape: no import cycle in the whole tree (between modules and between
packages), the core imports no plugin, its module sizes, and the rule that plugins, examples and
benchmarks use public names only."""

from __future__ import annotations

import ast
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "safesvd_core"
PLUGIN_PACKAGES = (
    "safesvd_methods",
    "safesvd_adapters",
    "safesvd_pde",
    "safesvd_zoo",
    "safesvd_data",
    "safesvd_cli",
)
MAX_MODULE_LINES = 400
MAX_ENGINE_LINES = 150


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(CORE.rglob("*.py"))}


#: The folders an installation puts on ``sys.path``: pyproject.toml's ``packages.find`` folders (the
#: core, benchmarks, the built-in plugins) and the example third-party plugin's. Every other folder of
#: scripts (tests, examples, scripts) is a namespace of its own: its files import each other by bare name.
_FIND = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
INSTALLED = (*(ROOT / where for where in _FIND["where"]), ROOT / "examples" / "safesvd-enstrophy")
#: A module: the parts of its dotted name, behind its folder (``"tests/adapters/"``) when it is a script:
#: ``("safesvd_cli", "demo")``, ``("tests/adapters/", "adapter_helpers")``.
Node = tuple[str, ...]


def _label(node: Node) -> str:
    return node[0] + ".".join(node[1:]) if node[0].endswith("/") else ".".join(node)


def _render(cycle: list[Node]) -> str:
    return " -> ".join(map(_label, cycle))


def _python_files(root: Path) -> list[Path]:
    """The tree's Python files: hidden folders (virtual environments, git), caches and builds aside."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith((".", "__pycache__"))
            and not name.endswith(".egg-info")
            and name not in ("build", "dist")
        )
        found += [Path(folder) / name for name in sorted(files) if name.endswith(".py")]
    return found


def _node(path: Path, root: Path, installed: tuple[Path, ...]) -> Node:
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder != root:
        folder = folder.parent
    parts = path.relative_to(folder).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return parts if folder in installed else (f"{folder.relative_to(root).as_posix()}/", *parts)


def _imports(path: Path, node: Node, known: dict[str, Node]) -> set[Node]:
    """The modules of ``known`` (dotted name → module) that ``path`` imports, anywhere in the file:
    top level, ``TYPE_CHECKING`` blocks and function bodies alike."""
    module = ".".join(node[1:] if node[0].endswith("/") else node)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for statement in ast.walk(ast.parse(path.read_text())):
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                base = package.split(".")
                base = base[: len(base) - statement.level + 1]
                target = ".".join(base + ([statement.module] if statement.module else []))
            else:
                target = statement.module or ""
            submodules = [f"{target}.{alias.name}" for alias in statement.names]
            found.update([name for name in submodules if name in known] or [target])
    return {known[name] for name in found if name in known and known[name] != node}


def _import_graph(root: Path = ROOT, installed: tuple[Path, ...] = INSTALLED) -> dict[Node, set[Node]]:
    """Every module of the tree under ``root`` → the modules of the tree it imports. A name resolves in
    the module's own folder of scripts first (a script's ``import helper``), then among the installed
    packages; imports of anything else (torch, a module put on ``sys.path`` by hand) are no edge."""
    nodes = {path: _node(path, root, installed) for path in _python_files(root)}
    installed_names = {".".join(node): node for node in nodes.values() if not node[0].endswith("/")}
    scripts: dict[str, dict[str, Node]] = {}
    for node in nodes.values():
        if node[0].endswith("/"):
            scripts.setdefault(node[0], {})[".".join(node[1:])] = node
    return {
        node: _imports(path, node, {**installed_names, **scripts.get(node[0], {})})
        for path, node in nodes.items()
    }


def _member_graphs(graph: dict[Node, set[Node]]) -> dict[Node, dict[Node, set[Node]]]:
    """Package → the imports between its direct members (sub-packages, modules), ``()`` being the tree
    (its members: the top-level packages and the folders of scripts). A member imports another when a
    module inside the one imports a module inside the other. An import between a package's ``__init__``
    and a module inside the package stays inside it: the module graph checks those."""
    levels: dict[Node, dict[Node, set[Node]]] = {}
    for source, targets in graph.items():
        for target in targets:
            depth = next((i for i, (a, b) in enumerate(zip(source, target)) if a != b), None)
            if depth is not None:  # else one contains the other
                members = levels.setdefault(source[:depth], {})
                members.setdefault(source[: depth + 1], set()).add(target[: depth + 1])
    return levels


def _cycles(graph: dict[Any, set[Any]]) -> list[list[Any]]:
    """One import cycle per strongly connected component of ``graph`` (so none when it is acyclic),
    each the shortest through the component's smallest node: ``[a, b, ..., a]``."""
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    stack: list[Any] = []
    components: list[set[Any]] = []

    def visit(node: Any) -> None:  # Tarjan: the recursion is as deep as the longest import chain
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:  # the root of a component: it is the stack from node up
            component = set(stack[stack.index(node) :])
            del stack[stack.index(node) :]
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for component in sorted(components, key=min):
        start = min(component)
        paths = {start: [start]}
        queue = [start]
        while queue:  # breadth first, inside the component, back to its start
            node = queue.pop(0)
            for target in sorted(graph[node] & component):
                if target == start:
                    cycles.append([*paths[node], start])
                    queue = []
                    break
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    queue.append(target)
    return cycles


def test_the_cycle_finder_finds_one_cycle_per_tangle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "a"}, "f": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["d", "e", "d"]]
    assert _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_a_function_level_import_that_closes_a_package_cycle_is_found(tmp_path):
    """The shape of the old safesvd_zoo ↔ safesvd_cli cycle: no module cycle between the packages, but
    the low one imports the high one inside a function, and the high one imports the low one; beside
    it, a module cycle that a ``TYPE_CHECKING`` import closes, and scripts that import by bare name."""
    files = {
        "plugins/low/__init__.py": "",
        "plugins/low/models.py": "def load(name):\n    from high import config\n    return config\n",
        "plugins/high/__init__.py": "",
        "plugins/high/config.py": "import typing\nif typing.TYPE_CHECKING:\n    from .app import App\n",
        "plugins/high/app.py": "from . import config\nfrom low import models\n",
        "tests/test_low.py": "import helper\nfrom low.models import load\n",
        "tests/helper.py": "",
        "examples/a/helper.py": "import test_low\n",  # another folder's module: no edge
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = _import_graph(tmp_path, (tmp_path / "plugins",))
    assert {_label(node): sorted(map(_label, targets)) for node, targets in graph.items()} == {
        "low": [],
        "low.models": ["high.config"],
        "high": [],
        "high.config": ["high.app"],
        "high.app": ["high.config", "low.models"],
        "tests/test_low": ["low.models", "tests/helper"],
        "tests/helper": [],
        "examples/a/helper": [],
    }
    assert [list(map(_label, cycle)) for cycle in _cycles(graph)] == [["high.app", "high.config", "high.app"]]
    members = _member_graphs(graph)
    assert [list(map(_label, cycle)) for cycle in _cycles(members[()])] == [["high", "low", "high"]]
    assert _cycles(members[("high",)]) == [[("high", "app"), ("high", "config"), ("high", "app")]]


def test_the_import_graph_covers_the_whole_tree():
    tops = {node[0] for node in _import_graph()}
    expected = {"safesvd_core", *PLUGIN_PACKAGES, "benchmarks", "safesvd_enstrophy", "tests/", "scripts/"}
    assert expected | {"examples/own_model/", "examples/safesvd-enstrophy/tests/"} <= tops


def test_no_import_cycle_between_the_modules_of_the_tree():
    """Modules of the core, the plugins, benchmarks, examples and tests; ``TYPE_CHECKING`` and
    function-level imports included."""
    cycles = _cycles(_import_graph())
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(_render(cycle) for cycle in cycles)


def test_no_import_cycle_between_the_packages_of_the_tree():
    """At every level: between the top-level packages (safesvd_cli ↔ safesvd_zoo was one), and between
    the members of each package (a core sub-package may not import one that imports it back)."""
    cycles = [cycle for members in _member_graphs(_import_graph()).values() for cycle in _cycles(members)]
    assert not cycles, f"{len(cycles)} package cycle(s):\n" + "\n".join(_render(cycle) for cycle in cycles)


def test_the_core_imports_no_plugin():
    for name, path in _core_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            plugins = [m for m in modules if m.split(".")[0] in PLUGIN_PACKAGES]
            assert not plugins, f"{name} imports the plugin {plugins}"


@pytest.mark.parametrize("module", sorted(_core_modules()))
def test_core_modules_stay_small(module):
    lines = len(_core_modules()[module].read_text().splitlines())
    limit = MAX_ENGINE_LINES if module == "safesvd_core.run._engine" else MAX_MODULE_LINES
    assert lines <= limit, f"{module} has {lines} lines (limit {limit}): split it by concept"


def _private_core_uses(source: str, label: str) -> list[str]:
    uses = []
    for node in ast.walk(ast.parse(source)):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("safesvd_core"):
            names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
        uses += [f"{label}:{node.lineno}: {name}" for name in names if _is_private_core(name)]
    return uses


#: The core's public modules: the users' tier, the plugin authors' tier and the conformance suites.
PUBLIC_CORE = ("safesvd_core", "safesvd_core.plugin", "safesvd_core.testing", "safesvd_core.__main__")


def _is_private_core(name: str) -> bool:
    """A core module or package other than the public ones (its sub-packages, e.g. ``safesvd_core.run``,
    are the layout, not an API), or any module whose name starts with ``_``."""
    parts = name.split(".")
    if parts[0] != "safesvd_core" or name in PUBLIC_CORE:
        return False
    return parts[1] not in ("plugin", "testing") or any(part.startswith("_") for part in parts[2:])


def test_plugins_examples_and_benchmarks_use_public_core_names_only():
    files = [
        path
        for folder in ("plugins", "examples", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]
    assert files
    uses = [
        use for path in files for use in _private_core_uses(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not uses, "private core imports (use safesvd_core or safesvd_core.plugin):\n" + "\n".join(uses)
    text = "\n".join(path.read_text() for path in files)
    named = {name.rstrip(".") for name in re.findall(r"safesvd_core\.[\w.]+", text)}
    modules = {
        name
        for name in named
        if (ROOT / name.split(".")[0] / name.split(".")[1]).exists()
        or (ROOT / name.split(".")[0] / f"{name.split('.')[1]}.py").exists()
    }
    private = sorted(name for name in modules if _is_private_core(name))
    assert not private, f"private core modules named outside the core: {private}"


def test_the_private_import_check_catches_each_form():
    sample = (
        "from safesvd_core.run._engine import run_plan\nimport safesvd_core.kinds._plugins\n"
        "from safesvd_core.kinds import _hookspecs\nfrom safesvd_core.run import phases\n"
        "from safesvd_core.plugin import Plan\nfrom safesvd_core.testing import EstimatorConformance\n"
    )
    assert [use.split(": ")[1] for use in _private_core_uses(sample, "sample")] == [
        "safesvd_core.run._engine",
        "safesvd_core.kinds._plugins",
        "safesvd_core.kinds",
        "safesvd_core.kinds._hookspecs",
        "safesvd_core.run",
    ]
