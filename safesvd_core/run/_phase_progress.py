"""What a person watching a long run sees: a line per phase on the standard error, naming the recipe,
the ratio and the phase, and the phase's time when it is done (the loops inside draw their own bars,
with an estimate of the time left)."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

from ._job import Phase, RunHook, RunState


class PhaseProgress(RunHook):
    """The run hook ``compress(..., progress=True)`` adds: ``[safe-svd, ratio 0.4] stages …`` when a
    phase starts, ``… 12.3 s`` when it is done."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._started = 0.0

    def phase_started(self, state: RunState, phase: Phase) -> None:
        self._started = time.perf_counter()
        tqdm.write(f"[{self.label}] {phase.name} …", file=sys.stderr)

    def phase_done(self, state: RunState, phase: Phase) -> None:
        tqdm.write(
            f"[{self.label}] {phase.name} done in {time.perf_counter() - self._started:.1f} s",
            file=sys.stderr,
        )
