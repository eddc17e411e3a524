"""Meta-tests of the code's shape: the core's import graph, its module sizes, and the rule that
plugins, examples and benchmarks use public names only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "safesvd_core"
PLUGIN_PACKAGES = ("safesvd_methods", "safesvd_adapters", "safesvd_pde", "safesvd_zoo", "safesvd_data", "safesvd_cli")
MAX_MODULE_LINES = 400
MAX_ENGINE_LINES = 150


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(CORE.rglob("*.py"))}


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Every core module ``path`` imports, anywhere in the file: top level, ``TYPE_CHECKING``
    blocks and function bodies alike."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known]
            found.update(submodules or [target])
    return {name for name in found if name in known and name != module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_core_modules_type_checking_imports_included():
    modules = _core_modules()
    graph = {name: _imports(path, name, set(modules)) for name, path in modules.items()}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_the_core_imports_no_plugin():
    for name, path in _core_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            plugins = [m for m in modules if m.split(".")[0] in PLUGIN_PACKAGES]
            assert not plugins, f"{name} imports the plugin {plugins}"


@pytest.mark.parametrize("module", sorted(_core_modules()))
def test_core_modules_stay_small(module):
    lines = len(_core_modules()[module].read_text().splitlines())
    limit = MAX_ENGINE_LINES if module == "safesvd_core._engine" else MAX_MODULE_LINES
    assert lines <= limit, f"{module} has {lines} lines (limit {limit}): split it by concept"


def _private_core_uses(source: str, label: str) -> list[str]:
    uses = []
    for node in ast.walk(ast.parse(source)):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        if isinstance(node, ast.ImportFrom) and node.module == "safesvd_core":
            names += [f"safesvd_core.{alias.name}" for alias in node.names]
        uses += [f"{label}:{node.lineno}: {name}" for name in names
                 if name.startswith("safesvd_core._") or name.startswith("safesvd_core.testing._")]
    return uses


def test_plugins_examples_and_benchmarks_use_public_core_names_only():
    files = [path for folder in ("plugins", "examples", "benchmarks") for path in sorted((ROOT / folder).rglob("*.py"))]
    assert files
    uses = [use for path in files for use in _private_core_uses(path.read_text(), str(path.relative_to(ROOT)))]
    assert not uses, "private core imports (use safesvd_core or safesvd_core.plugin):\n" + "\n".join(uses)
    text = "\n".join(path.read_text() for path in files)
    assert "safesvd_core._" not in text, "a private core module is named outside the core"


def test_the_private_import_check_catches_each_form():
    sample = ("from safesvd_core._engine import run_plan\nimport safesvd_core._plugins\n"
              "from safesvd_core import _hookspecs\nfrom safesvd_core.plugin import Plan\n")
    assert [use.split(": ")[1] for use in _private_core_uses(sample, "sample")] == [
        "safesvd_core._engine", "safesvd_core._plugins", "safesvd_core._hookspecs"]
