"""``--progress`` / ``--no-progress`` of the long commands: on by default when the standard error
is a terminal (a person is watching), off when it is a file or a pipe (logs stay clean)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """Declare ``--progress/--no-progress`` on ``parser`` (default: on in a terminal)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress bars (default: on when the output is a terminal)",
    )


def wants_progress(args: argparse.Namespace) -> bool:
    """The choice made with :func:`add_progress_option`, the default resolved."""
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


def announce_run(index: int, total: int, label: str, left: float | None) -> None:
    """Write ``run index/total: label`` to the standard error, with ``left``, the estimated seconds
    to the end (``None``: no estimate yet)."""
    estimate = "" if left is None else f", about {left:.0f} s left"
    print(f"run {index}/{total}: {label}{estimate}", file=sys.stderr, flush=True)


def time_left(seconds: Sequence[float], remaining: int) -> float | None:
    """``remaining`` runs at the mean time of the finished ones (``None`` before the first)."""
    return None if not seconds else sum(seconds) / len(seconds) * remaining
