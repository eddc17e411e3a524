"""Fail on unsafe loading or execution anywhere in the repository (SECURITY.md): pickle and its kin
(``pandas.read_pickle``, ``joblib.load`` too), ``torch.load`` (or ``torch.serialization.load``)
without ``weights_only=True``, ``weights_only=False``, ``allow_pickle=True`` (also positional in
``numpy.load``), ``torch.jit.load``, ``torch.package.PackageImporter``, ``yaml.load`` and the other
unsafe yaml loaders, ``runpy``, ``shell=`` anything true, ``os.system``/``os.popen``,
``subprocess.getoutput``, and the builtins ``eval``/``exec``, however they are reached: through an
alias (``import torch as t``, ``from torch import load``), ``getattr(torch, "load")``,
``builtins.eval``, a dynamic import (``__import__("pickle")``, ``importlib.import_module("pickle")``)
or a reference passed on (``loader = runpy.run_path``). Names built at run time
(``getattr(torch, "lo" + "ad")``) are out of its scope.

    python scripts/security_lint.py [paths...]  # default: the whole repository (virtual environments aside)

A file named on the command line is always checked; folders are walked with virtual environments,
``.git`` and caches left out (``build/`` and ``dist/`` are checked: a folder of that name may hold
code). A line may carry ``# security-lint: allow: <reason>`` for a use that handles no untrusted
data (a test that round-trips the package's own errors through pickle, as multiprocessing does); the
allowed lines are counted in the summary.

Prints one line per finding (``path:line: what``) and exits with 1 when there is any.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Folders that are not code of the repository: virtual environments (also any folder holding a
#: ``pyvenv.cfg``), ``.git`` and caches. Left out when walking a folder, never when a file is named.
SKIPPED = (".venv", ".venv-full", ".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache")
FORBIDDEN_MODULES = ("pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve")
#: Calls that run code or a shell by themselves, or unpickle, by their full dotted name.
FORBIDDEN_CALLS = {
    "eval": "eval() of a string",
    "exec": "exec() of a string",
    "builtins.eval": "eval() of a string",
    "builtins.exec": "exec() of a string",
    "os.system": "os.system() (use subprocess with a list)",
    "os.popen": "os.popen() (use subprocess with a list)",
    "subprocess.getoutput": "subprocess.getoutput() (a shell; use subprocess.run with a list)",
    "subprocess.getstatusoutput": "subprocess.getstatusoutput() (a shell; use subprocess.run with a list)",
    "runpy.run_path": "runpy.run_path (runs a file's code)",
    "runpy.run_module": "runpy.run_module (runs a module's code)",
    "torch.jit.load": "torch.jit.load (a TorchScript archive carries code)",
    "torch.package.PackageImporter": "torch.package.PackageImporter (a torch.package archive carries code)",
    "pandas.read_pickle": "pandas.read_pickle (a pickle)",
    "joblib.load": "joblib.load (a pickle)",
}
#: ``torch.load`` under its names: safe only with ``weights_only=True``.
TORCH_LOADS = ("torch.load", "torch.serialization.load")
#: yaml loaders that build arbitrary objects (``safe_load``/``safe_load_all`` are the safe ones).
YAML_LOADERS = ("load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all")
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


def _yaml_loader(name: str) -> bool:
    head, _, last = name.rpartition(".")
    return last in YAML_LOADERS and (head == "yaml" or head.endswith(".yaml"))


def _named_findings(name: str) -> Iterator[str]:
    """What is wrong with calling or passing on ``name`` (a full dotted name) whatever its arguments."""
    if name in FORBIDDEN_CALLS:
        yield FORBIDDEN_CALLS[name]
    if _yaml_loader(name):
        yield f"{name}() (use yaml.safe_load)"
    if _forbidden_module(name):
        yield f"{name}() of a pickle-like module"


def _call_findings(node: ast.Call, aliases: dict[str, str]) -> Iterator[str]:
    name = _resolved(_dotted(node.func), aliases)
    yield from _named_findings(name)
    if name in TORCH_LOADS and not _is(_keyword(node, "weights_only"), True):
        yield "torch.load without weights_only=True"  # safetensors.torch.load is safe
    if _is(_keyword(node, "weights_only"), False):
        yield "weights_only=False"
    if _truthy(_keyword(node, "allow_pickle")) or (
        name == "numpy.load" and len(node.args) >= 3 and _truthy(node.args[2])
    ):
        yield "allow_pickle=True"
    if _truthy(_keyword(node, "shell")):
        yield "shell=True"
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
        if target in TORCH_LOADS or any(_named_findings(target)):
            yield f"getattr() reaching {target}"


def _reference_findings(node: ast.expr, aliases: dict[str, str]) -> Iterator[str]:
    """A forbidden callable named but not called here (``loader = runpy.run_path``, ``map(torch.load, ...)``):
    it is called elsewhere, where its arguments cannot be checked."""
    name = _resolved(_dotted(node), aliases)
    if name in FORBIDDEN_CALLS or name in TORCH_LOADS or _yaml_loader(name):
        yield f"{name} passed on without a call (call it here, or not at all)"


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
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _forbidden_module(alias.name):
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and _forbidden_module(node.module or ""):
            yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in FORBIDDEN_CALLS:
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Call):
            for what in _call_findings(node, aliases):
                yield node.lineno, what
        elif (
            isinstance(node, (ast.Name, ast.Attribute))
            and isinstance(node.ctx, ast.Load)
            and id(node) not in called
        ):
            for what in _reference_findings(node, aliases):
                yield node.lineno, what


def python_files(paths: list[Path]) -> list[Path]:
    """The files named in ``paths`` (always) and every ``.py`` file under the folders named, the
    folders of :data:`SKIPPED` and virtual environments left out. A path that does not exist is an error."""
    files = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(
                    sub
                    for sub in subfolders
                    if sub not in SKIPPED and not (Path(folder, sub) / "pyvenv.cfg").is_file()
                )
                files += [Path(folder, name) for name in sorted(names) if name.endswith(".py")]
        else:
            raise FileNotFoundError(f"security lint: no such file or folder: {path}")
    return files


def _shown(file: Path) -> str:
    return str(file.relative_to(ROOT)) if file.is_relative_to(ROOT) else str(file)


def main(argv: list[str]) -> int:
    try:
        files = python_files([ROOT / p for p in argv] if argv else [ROOT])
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    problems, allowances = [], 0
    for file in files:
        source = file.read_text()
        try:
            found = list(findings(source))
        except SyntaxError as error:  # a file the lint cannot read is not a file it passed
            problems.append(f"{_shown(file)}:{error.lineno}: not Python the lint can parse ({error.msg})")
            continue
        for line, what in found:
            if allowed(source, line):
                allowances += 1
            else:
                problems.append(f"{_shown(file)}:{line}: {what}")
    for problem in problems:
        print(problem)
    print(
        f"security lint: {len(files)} files, {len(problems)} finding(s), {allowances} allowed with a reason",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
