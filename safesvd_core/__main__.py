"""Command line: ``python -m safesvd_core plugins`` plus the subcommands plugins add through the
``safesvd_cli_commands`` hook (the zoo adds ``demo``). Installed as ``safesvd``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._plugins import plugin_manager, registry


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="safesvd", description="Physics-aware low-rank compression (SAFE-SVD).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list every registered plugin with its kind and distribution").set_defaults(run=_plugins)
    for entry in registry("cli_command"):
        command = entry.cls()
        sub = commands.add_parser(entry.name, help=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
