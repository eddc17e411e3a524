"""The order of a run's phases: a phase added by name (:func:`insert_phase`), and the checks of
the list against what each phase declares it reads and writes (:func:`check_phases`, before any
phase runs; :func:`check_written`, after each)."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import ConfigError, SafeSVDError
from ._job import PARTS, Phase, RunState


def insert_phase(
    phases: Sequence[Phase], phase: Phase, *, before: str | None = None, after: str | None = None
) -> tuple[Phase, ...]:
    """``phases`` with ``phase`` right before the phase named ``before`` or right after the one
    named ``after`` (give one of the two), e.g.
    ``insert_phase(super().phases(), MyPhase(), before="stages")``."""
    if (before is None) == (after is None):
        raise ConfigError(
            f"insert_phase({phase.name!r}) takes one of before= and after=: the name of the phase to insert "
            "it next to"
        )
    names = [each.name for each in phases]
    anchor = before if before is not None else after
    if anchor not in names:
        where = "before" if before is not None else "after"
        raise ConfigError(
            f"cannot insert phase {phase.name!r} {where} {anchor!r}: no phase has that name; the phases are "
            f"{', '.join(names) or 'none'}"
        )
    if phase.name in names:
        raise ConfigError(f"a phase named {phase.name!r} is already in the run ({', '.join(names)})")
    index = names.index(anchor) + (after is not None)
    return (*phases[:index], phase, *phases[index:])


def check_phases(state: RunState, phases: Sequence[Phase], defaults: Sequence[Phase] = ()) -> None:
    """Refuse, before any phase runs, a list of phases that cannot work: two with one name, a
    declared part the state does not have, or a phase that reads a part which no earlier phase
    writes (and the start state does not hold); that error names the phase that writes it (in
    ``phases``, else in ``defaults``)."""
    names = [phase.name for phase in phases]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(
            f"the phases {', '.join(map(repr, twice))} appear twice; every phase needs a name of its own"
        )
    available = {part for part in PARTS if getattr(state, part) is not None}
    for position, phase in enumerate(phases):
        unknown = [part for part in (*phase.reads, *phase.writes) if part not in PARTS]
        if unknown:
            raise ConfigError(
                f"phase {phase.name!r} declares {', '.join(map(repr, unknown))}, which the run state does "
                f"not have; its parts are {', '.join(PARTS)}"
            )
        for part in phase.reads:
            if part not in available:
                raise ConfigError(
                    f"phase {phase.name!r} reads {part!r}, which no earlier phase writes: "
                    + _writer_hint(phase, part, phases[position + 1 :], defaults)
                )
        available.update(phase.writes)


def _writer_hint(phase: Phase, part: str, later: Sequence[Phase], defaults: Sequence[Phase]) -> str:
    """Which phase would write ``part`` for ``phase``: one that runs too late, or a default one."""
    writer = next((other.name for other in later if part in other.writes), None)
    if writer is not None:
        return f"phase {writer!r} writes it but runs later: put {phase.name!r} after {writer!r}"
    default = next((other.name for other in defaults if part in other.writes), None)
    if default is not None:
        return f"add the phase that writes it, {default!r}, before {phase.name!r}"
    return "no phase writes it"


def check_written(state: RunState, phase: Phase) -> None:
    """After ``phase`` ran: every part it declares it writes is there."""
    missing = [part for part in phase.writes if getattr(state, part) is None]
    if missing:
        raise SafeSVDError(
            f"phase {phase.name!r} declares that it writes {', '.join(map(repr, missing))} but left it unset"
        )
