"""``--threads`` of the long commands: how many CPU threads torch uses.

torch starts one thread per core. On a machine whose cores are busy with other work that is several
times slower than one thread for small models (measured on 2 cores with two other CPU-bound
processes: the demo at one ratio did not finish in 420 s with torch's default, and took 107 s with one
thread), so by default the thread count is fitted to the cores the load leaves free, and a busy
machine is said out loud. ``OMP_NUM_THREADS`` (the user's own choice) is kept as it is, up to the cores.

A count above the cores this process may use is refused by the parser, before any lock or work: torch
would start that many threads (``--threads 30000`` ends in ``libgomp: Thread creation failed``,
``--threads 99999`` in a segmentation fault). An ``OMP_NUM_THREADS`` above them is lowered to them,
said out loud.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """Declare ``--threads N`` on ``parser`` (default: fitted to the free cores)."""
    parser.add_argument(
        "--threads",
        type=_thread_count,
        default=None,
        metavar="N",
        help="CPU threads for torch, at most the machine's cores (default: the cores the machine's load "
        "leaves free, at least 1; OMP_NUM_THREADS, when set, is kept)",
    )


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 thread, got {value}")
    cores = available_cores()
    if value > cores:
        raise argparse.ArgumentTypeError(
            f"{value} threads is more than the {cores} cores this process may use; "
            f"pass --threads {cores} or fewer"
        )
    return value


def free_cores(cores: int, load: float) -> int:
    """The cores a 1-minute load average of ``load`` leaves free on ``cores`` cores (at least 1)."""
    return max(1, min(cores, round(cores - load)))


def choose_threads(
    requested: int | None, *, cores: int, load: float | None, environment: str | None
) -> tuple[int, str | None]:
    """The thread count and, when the choice was made for the user on a busy machine, why (else ``None``).

    ``requested`` (``--threads``, bounded by the parser) wins; then ``environment``
    (``OMP_NUM_THREADS``, lowered to ``cores``); then the free cores.
    """
    if requested is not None:
        return requested, None
    if environment and environment.strip().isdigit() and int(environment) >= 1:
        if int(environment) > cores:
            return cores, (
                f"safesvd: OMP_NUM_THREADS={environment.strip()} is more than the {cores} cores this "
                f"process may use: using {cores} (set it to {cores} or fewer)"
            )
        return int(environment), None
    if load is None:
        return cores, None
    threads = free_cores(cores, load)
    if threads < cores:
        return threads, (
            f"safesvd: the machine is busy (load {load:.1f} on {cores} cores): using {threads} "
            f"thread{'s' if threads > 1 else ''} (pass --threads N to choose)"
        )
    return threads, None


def apply_threads(args: argparse.Namespace) -> int:
    """Set torch's thread count from ``--threads`` (or the default) and return it; a busy machine is
    reported on the standard error."""
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform: torch's default
        load = None
    threads, message = choose_threads(
        args.threads, cores=available_cores(), load=load, environment=os.environ.get("OMP_NUM_THREADS")
    )
    if message:
        print(message, file=sys.stderr, flush=True)
    torch.set_num_threads(threads)
    return threads
