"""Entry point of the zoo: the ``safesvd demo`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

from safesvd_cli.progress_option import add_progress_option, wants_progress
from safesvd_core.plugin import CliCommand, hookimpl


class DemoCommand(CliCommand):
    """``safesvd demo``: compress the bundled reference PFM at several ratios and print a table."""

    name: ClassVar[str] = "demo"
    help: ClassVar[str] = "compress the bundled reference PFM, print a table (and with --out write its output folder)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--ratios", type=float, nargs="+", default=[0.8, 0.6, 0.4], help="kept-parameter fractions")
        add_progress_option(parser)
        parser.add_argument("--out", type=Path, help="also write the output folder `safesvd compress` writes "
                                                     "(models, manifests, reports, figures)")
        parser.add_argument("--overwrite", action="store_true", help="replace an output folder that holds other models")

    def run(self, args: argparse.Namespace) -> int:
        from . import demo  # loads the reference model's code only when the demo runs

        print(demo.run(args.ratios, progress=wants_progress(args), out=args.out, overwrite=args.overwrite))
        return 0


@hookimpl
def safesvd_cli_commands():
    return [DemoCommand]
