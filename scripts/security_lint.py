"""Fail on unsafe loading or execution in the package (SECURITY.md): pickle, ``torch.load`` without
``weights_only=True``, ``weights_only=False``, ``allow_pickle=True``, ``yaml.load``, ``shell=True``,
and the builtins ``eval``/``exec``.

    python scripts/security_lint.py [paths...]     # default: safesvd_core plugins

Prints one line per finding (``path:line: what``) and exits with 1 when there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("safesvd_core", "plugins")


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _is(value: ast.expr | None, constant: object) -> bool:
    return isinstance(value, ast.Constant) and value.value is constant


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def findings(source: str) -> Iterator[tuple[int, str]]:
    """``(line, what)`` for every unsafe construct in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve"):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("pickle", "dill", "marshal", "shelve"):
            yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("eval", "exec"):
                yield node.lineno, f"{name}() of a string"
            if name == "torch.load":  # safetensors.torch.load is safe
                if not _is(_keyword(node, "weights_only"), True):
                    yield node.lineno, "torch.load without weights_only=True"
            if _is(_keyword(node, "weights_only"), False):
                yield node.lineno, "weights_only=False"
            if _is(_keyword(node, "allow_pickle"), True):
                yield node.lineno, "allow_pickle=True"
            if _is(_keyword(node, "shell"), True):
                yield node.lineno, "shell=True"
            if name.endswith("yaml.load") or name.endswith("yaml.unsafe_load"):
                yield node.lineno, f"{name}() (use yaml.safe_load)"


def main(argv: list[str]) -> int:
    paths = [ROOT / p for p in (argv or DEFAULT)]
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    problems = [f"{file.relative_to(ROOT)}:{line}: {what}" for file in files for line, what in findings(file.read_text())]
    for problem in problems:
        print(problem)
    print(f"security lint: {len(files)} files, {len(problems)} finding(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
