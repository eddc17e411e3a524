"""``--progress`` / ``--no-progress`` of the long commands: on by default when the standard error
is a terminal (a person is watching), off when it is a file or a pipe (logs stay clean)."""

from __future__ import annotations

import argparse
import sys


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """Declare ``--progress/--no-progress`` on ``parser`` (default: on in a terminal)."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress bars (default: on when the output is a terminal)")


def wants_progress(args: argparse.Namespace) -> bool:
    """The choice made with :func:`add_progress_option`, the default resolved."""
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def announce_run(index: int, total: int, label: str, seconds: list[float]) -> None:
    """Write ``run index/total: label`` to the standard error, with an estimate of the time left from
    the mean of the runs finished so far (``seconds``; none yet: no estimate)."""
    left = "" if not seconds else f", about {sum(seconds) / len(seconds) * (total - index + 1):.0f} s left"
    print(f"run {index}/{total}: {label}{left}", file=sys.stderr, flush=True)
