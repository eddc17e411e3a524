"""Command line: ``python -m safesvd_core plugins`` plus the subcommands plugins add through the
``safesvd_cli_commands`` hook (the zoo adds ``demo``, ``safesvd_cli`` adds ``compress``,
``evaluate``, ``inspect`` and ``export``). Installed as ``safesvd``.

A user's mistake (a :class:`SafeSVDError`, or a file that cannot be read or written) prints one
line, with no traceback; ``--debug`` shows the traceback. Ctrl-C prints one line and exits with
130, the shell's status for an interrupt; once the command has ended, it is ignored while Python exits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ._errors import SafeSVDError
from .kinds._plugins import plugin_manager, registry

HINT = "run with --debug for the traceback"
#: The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def _plugins(args: argparse.Namespace) -> int:
    manager = plugin_manager()
    rows = [(r.kind, r.name, r.plugin, r.distribution) for r in manager.registrations()]
    headers = ("kind", "name", "plugin", "distribution")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for failure in manager.failures:
        print(f"failed to load: {failure}")
    return 0


def one_line(error: BaseException) -> str:
    """``error`` as one line: its kind (for an ``OSError``) and message, whitespace collapsed."""
    message = " ".join(str(error).split()) or type(error).__name__
    return message if isinstance(error, SafeSVDError) else f"{type(error).__name__}: {message}"


class _Parser(argparse.ArgumentParser):
    """A parser whose argument errors are one line too (no usage block above them)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (the process's own when ``None``) and return its exit status.

    When it reads the process's own command line, Ctrl-C is ignored once the command has ended (its
    files are whole by then): an interrupt during the interpreter's exit neither prints an ignored
    ``KeyboardInterrupt`` from a cleanup callback nor changes the status. A caller passing ``argv``
    keeps its own handler."""
    try:
        return _command(argv)
    finally:
        if argv is None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _command(argv: Sequence[str] | None) -> int:
    parser = _Parser(prog="safesvd", description="Physics-aware low-rank compression (SAFE-SVD).")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "plugins", help="list every registered plugin with its kind and distribution"
    ).set_defaults(run=_plugins)
    for entry in registry("cli_command"):
        command = entry.cls()
        sub = commands.add_parser(entry.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
        )
        sub.set_defaults(run=command.run)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (SafeSVDError, OSError) as error:
        if args.debug:
            raise
        print(f"safesvd {args.command}: error: {one_line(error)} ({HINT})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(
            f"safesvd {args.command}: interrupted (Ctrl-C); no file is half-written (each is written whole "
            "or not at all)",
            file=sys.stderr,
        )
        return INTERRUPTED


def _drop_current_folder() -> None:
    """``python -m`` puts the current folder first on ``sys.path``: a file there (a received output
    folder's ``safesvd_data.py``) must not shadow an installed module (SECURITY.md). Code a config
    names is imported from the config's folder and the current one explicitly, for its import alone."""
    if sys.path and Path(sys.path[0] or ".").resolve() == Path.cwd().resolve():
        del sys.path[0]


if __name__ == "__main__":
    _drop_current_folder()
    sys.exit(main())
