"""Fail on unsafe loading or execution anywhere in the repository (SECURITY.md): pickle and its kin,
``torch.load`` without ``weights_only=True``, ``weights_only=False``, ``allow_pickle=True``,
``torch.jit.load``, ``yaml.load``, ``shell=`` anything true, ``os.system``/``os.popen``, and the
builtins ``eval``/``exec``, however they are reached: through an alias (``import torch as t``,
``from torch import load``), ``getattr(torch, "load")``, ``builtins.eval``, or a dynamic import
(``__import__("pickle")``, ``importlib.import_module("pickle")``).

    python scripts/security_lint.py [paths...]  # default: the whole repository (virtual environments aside)

A line may carry ``# security-lint: allow: <reason>`` for a use that handles no untrusted data (a
test that round-trips the package's own errors through pickle, as multiprocessing does); the
allowed lines are counted in the summary.

Prints one line per finding (``path:line: what``) and exits with 1 when there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Folders of the repository that are not its code: virtual environments, caches, builds.
SKIPPED = (".venv", ".venv-full", ".git", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis")
FORBIDDEN_MODULES = ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve")
#: Calls that run code or a shell by themselves, by their full dotted name.
FORBIDDEN_CALLS = {
    "eval": "eval() of a string",
    "exec": "exec() of a string",
    "builtins.eval": "eval() of a string",
    "builtins.exec": "exec() of a string",
    "os.system": "os.system() (use subprocess with a list)",
    "os.popen": "os.popen() (use subprocess with a list)",
    "torch.jit.load": "torch.jit.load (a TorchScript archive carries code)",
}
DYNAMIC_IMPORTS = ("__import__", "importlib.import_module", "importlib.__import__")


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _is(value: ast.expr | None, constant: object) -> bool:
    return isinstance(value, ast.Constant) and value.value is constant


def _truthy(value: ast.expr | None) -> bool:
    """A keyword value that is not a literal false: ``shell=1``, ``shell=flag`` count as true."""
    return value is not None and not (isinstance(value, ast.Constant) and not value.value)


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → the dotted name it stands for, from every import in the file."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _resolved(name: str, aliases: dict[str, str]) -> str:
    head, _, rest = name.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def _forbidden_module(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN_MODULES


def _call_findings(node: ast.Call, aliases: dict[str, str]) -> Iterator[str]:
    name = _resolved(_dotted(node.func), aliases)
    if name in FORBIDDEN_CALLS:
        yield FORBIDDEN_CALLS[name]
    if name == "torch.load" and not _is(
        _keyword(node, "weights_only"), True
    ):  # safetensors.torch.load is safe
        yield "torch.load without weights_only=True"
    if _is(_keyword(node, "weights_only"), False):
        yield "weights_only=False"
    if _truthy(_keyword(node, "allow_pickle")):
        yield "allow_pickle=True"
    if _truthy(_keyword(node, "shell")):
        yield "shell=True"
    if name.endswith("yaml.load") or name.endswith("yaml.unsafe_load"):
        yield f"{name}() (use yaml.safe_load)"
    if _forbidden_module(name):
        yield f"{name}() of a pickle-like module"
    if (
        name in DYNAMIC_IMPORTS
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and _forbidden_module(node.args[0].value)
    ):
        yield f"{name}({node.args[0].value!r})"
    if (
        name in ("getattr", "builtins.getattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
    ):
        target = f"{_resolved(_dotted(node.args[0]), aliases)}.{node.args[1].value}"
        if target in FORBIDDEN_CALLS or target == "torch.load" or _forbidden_module(target):
            yield f"getattr() reaching {target}"


ALLOW = "# security-lint: allow: "


def allowed(source: str, line: int) -> bool:
    """Whether ``line`` (1-based) of ``source`` carries the allow marker with a reason."""
    text = source.splitlines()[line - 1]
    return ALLOW in text and bool(text.split(ALLOW, 1)[1].strip())


def findings(source: str) -> Iterator[tuple[int, str]]:
    """``(line, what)`` for every unsafe construct in ``source``
    (allowed lines included: see :func:`allowed`)."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _forbidden_module(alias.name):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and _forbidden_module(node.module or ""):
            yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.ImportFrom) and node.module in ("builtins", "os", "torch.jit"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in FORBIDDEN_CALLS:
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Call):
            for what in _call_findings(node, aliases):
                yield node.lineno, what


def python_files(paths: list[Path]) -> list[Path]:
    """Every ``.py`` file under ``paths``, the folders of :data:`SKIPPED` left out."""
    files = []
    for path in paths:
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        files += [
            file for file in candidates if not any(part in SKIPPED for part in file.relative_to(ROOT).parts)
        ]
    return files


def main(argv: list[str]) -> int:
    files = python_files([ROOT / p for p in argv] if argv else [ROOT])
    problems, allowances = [], 0
    for file in files:
        source = file.read_text()
        for line, what in findings(source):
            if allowed(source, line):
                allowances += 1
            else:
                problems.append(f"{file.relative_to(ROOT)}:{line}: {what}")
    for problem in problems:
        print(problem)
    print(
        f"security lint: {len(files)} files, {len(problems)} finding(s), {allowances} allowed with a reason",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
