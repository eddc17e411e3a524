"""The two public tiers, measured: every name they export is used or documented, none is a private
helper, both lists are sorted, and every public name the docs and examples mention exists.

- ``safesvd_core.__all__`` (users): each name is mentioned in README.md or docs/*.md (in backticks) or
  imported from ``safesvd_core`` by an example.
- ``safesvd_core.plugin.__all__`` (plugin authors): each name is imported from ``safesvd_core.plugin`` by a
  built-in plugin, an example or a benchmark, or documented in backticks without being a users' name
  (a users' name is not repeated in the plugin tier unless plugins import it from there).
- No exported name starts with ``_`` or is one of the helpers issue 21 found exported by mistake.
- Every backticked ``safesvd_core.…`` name and every ``from safesvd_core… import`` of an example exists;
  every backticked class name the docs use that a private core module defines is exported, unless the
  line names that module's file (a page describing the internals).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

import safesvd_core
import safesvd_core.plugin

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Helpers that were public by mistake (issue 21); they stay private.
PRIVATE_HELPERS = {
    "atomic_write",
    "sha256_file",
    "get_submodule",
    "start_state",
    "run_phases",
    "make_recipe",
    "KINDS",
    "set_plugin_manager",
}
BACKTICKED = re.compile(r"`([^`\n]+)`")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A file of the core's private modules named in a line (``_checkpoint.py``, ``safesvd_core/run/_engine.py``).
PRIVATE_FILE = re.compile(r"(?<![\w.])(?:[\w/]*/)?_[a-z][a-z0-9_]*\.py\b")


def _python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def imported_from(module: str, paths: Iterable[Path]) -> dict[str, set[str]]:
    """Name → the files that import it from ``module`` (``from module import name``) or read
    ``module.name``."""
    uses: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == module and not node.level:
                for alias in node.names:
                    uses.setdefault(alias.name, set()).add(str(path.relative_to(ROOT)))
            elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == module:
                uses.setdefault(node.attr, set()).add(str(path.relative_to(ROOT)))
    return uses


def backticked(texts: Iterable[str]) -> set[str]:
    """The leading identifier of every backticked span (``Name``, ``Name.attr``, ``Name(...)``), and for
    a span that starts with a tier (``safesvd_core.plugin.Name``), the name after it."""
    names = set()
    for text in texts:
        for span in BACKTICKED.findall(text):
            span = re.sub(r"^safesvd_core(\.plugin)?\.", "", span)
            match = IDENTIFIER.match(span)
            if match:
                names.add(match.group(0))
    return names


def unjustified(exported: Iterable[str], used: Iterable[str], documented: Iterable[str]) -> list[str]:
    """The exported names neither used nor documented."""
    justified = set(used) | set(documented)
    return sorted(name for name in exported if name not in justified)


def _doc_texts() -> list[str]:
    return [path.read_text() for path in DOCS]


def _prose(text: str) -> str:
    """A page without its fenced blocks (those are example files, checked as code)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


# -- the rules, on samples: each can fail -----------------------------------------------------------


def test_the_rules_find_what_they_look_for():
    sample = (
        "from safesvd_core.plugin import Phase, run_plan\n"
        "import safesvd_core.plugin\nsafesvd_core.plugin.Shared\n"
    )
    path = ROOT / "tests" / "sample_public_names.py"
    path.write_text(sample)
    try:
        assert imported_from("safesvd_core.plugin", [path]).keys() == {"Phase", "run_plan", "Shared"}
    finally:
        path.unlink()
    assert backticked(
        ["use `Checkpoint(dir, fingerprints)`, `safesvd_core.plugin.Shared` and `state.need`"]
    ) == {"Checkpoint", "Shared", "state"}
    assert unjustified(["run_plan", "atomic_write", "Shared"], used={"run_plan"}, documented={"Shared"}) == [
        "atomic_write"
    ]
    assert PRIVATE_FILE.search("a run hook (`safesvd_core/io/_checkpoint.py`)") and not PRIVATE_FILE.search(
        "`tests/test_x.py`"
    )


# -- the tiers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tier", [safesvd_core, safesvd_core.plugin], ids=["safesvd_core", "safesvd_core.plugin"]
)
def test_each_tier_is_a_sorted_list_of_existing_public_names(tier):
    names = tier.__all__
    assert isinstance(names, list) and names == sorted(names), f"{tier.__name__}.__all__ is not a sorted list"
    assert len(set(names)) == len(names), f"{tier.__name__}.__all__ repeats names"
    assert [name for name in names if not hasattr(tier, name)] == []
    assert [name for name in names if name.startswith("_")] == []
    assert sorted(PRIVATE_HELPERS & set(names)) == [], f"private helpers exported by {tier.__name__}"


def test_every_users_name_is_documented_or_used_by_an_example():
    documented = backticked(_doc_texts())
    used = imported_from("safesvd_core", _python_files("examples"))
    assert unjustified(safesvd_core.__all__, used, documented) == [], (
        "users' names nobody documents: document them (README.md, docs/*.md) or stop exporting them"
    )


def test_every_plugin_name_is_used_by_plugins_examples_benchmarks_or_documented_for_plugin_authors():
    used = imported_from("safesvd_core.plugin", _python_files("plugins", "examples", "benchmarks"))
    documented = backticked(_doc_texts()) - set(safesvd_core.__all__)
    missing = unjustified(safesvd_core.plugin.__all__, used, documented)
    assert missing == [], (
        "plugin-tier names no plugin, example or benchmark imports and no page documents for plugin "
        f"authors: {missing}; a private helper belongs in its module, a users' name in safesvd_core"
    )


# -- what the docs and examples name ---------------------------------------------------------------


def _resolve(dotted: str) -> bool:
    """Whether ``safesvd_core.a.b.c`` names something: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_backticked_safesvd_core_name_exists():
    spans = {span for text in _doc_texts() for span in BACKTICKED.findall(_prose(text))}
    dotted = {
        match.group(0)
        for span in spans
        for match in [re.match(r"safesvd_core(\.[A-Za-z_]\w*)+", span)]
        if match
    }
    assert dotted, "no backticked safesvd_core name found: the pattern is broken"
    assert (
        sorted(name for name in dotted if not name.startswith("safesvd_core._") and not _resolve(name)) == []
    )


def test_every_example_imports_existing_public_names():
    missing = []
    for path in _python_files("examples"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and not node.level
                and (node.module or "").startswith("safesvd_core")
            ):
                missing += [
                    f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if not _resolve(f"{node.module}.{alias.name}")
                ]
    assert missing == []


def _core_classes() -> dict[str, str]:
    """Class name → the private core module that defines it at top level (testing helpers apart)."""
    classes = {}
    for path in sorted((ROOT / "safesvd_core").rglob("*.py")):
        if path.name.startswith("_") and path.name != "__init__.py" and "testing" not in path.parts:
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    classes.setdefault(node.name, path.name)
    return classes


def test_every_documented_core_class_is_public():
    """A class the docs name (``Checkpoint``, ``Shared``, …) is importable from a public tier, unless the
    line names its private module file (a description of the internals)."""
    public = set(safesvd_core.__all__) | set(safesvd_core.plugin.__all__)
    classes = _core_classes()
    hidden = []
    for path in DOCS:
        for line in _prose(path.read_text()).splitlines():
            if PRIVATE_FILE.search(line):
                continue
            hidden += [
                f"{path.name}: `{name}` ({classes[name]})"
                for name in backticked([line])
                if name in classes and name not in public and re.fullmatch(r"[A-Z][a-z]\w*", name)
            ]
    assert sorted(set(hidden)) == [], (
        "documented classes that only a private module has: export them or name the module"
    )
