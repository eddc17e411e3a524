"""Command line: ``python -m safesvd_core {plugins,demo}`` (also installed as ``safesvd``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._plugins import plugin_manager


def _plugins(args: argparse.Namespace) -> int:
    rows = [(r.kind, r.name, r.plugin, r.distribution) for r in plugin_manager().registrations()]
    headers = ("kind", "name", "plugin", "distribution")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from safesvd_zoo import demo

    print(demo.run(args.ratios, progress=args.progress))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="safesvd", description="Physics-aware low-rank compression (SAFE-SVD).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list every registered plugin with its kind and distribution").set_defaults(run=_plugins)
    demo = commands.add_parser("demo", help="compress the bundled reference PFM and print a table")
    demo.add_argument("--ratios", type=float, nargs="+", default=[0.8, 0.6, 0.4], help="kept-parameter fractions")
    demo.add_argument("--progress", action="store_true", help="show progress bars")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
