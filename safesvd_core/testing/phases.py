"""The contract every :class:`~safesvd_core.plugin.Phase` must meet, as a pytest suite to subclass.

::

    class TestMyPhase(PhaseConformance):
        implementation = MyPhase
        after = "allocate"          # its place: after this default phase (None: it is a default phase)

        def make_phase(self):
            return MyPhase()

The suite runs the engine's default phases with the phase in its place on a tiny residual model
(``run_plan``, the ``safe-svd`` plan unless :meth:`~PhaseConformance.make_plan` says otherwise):
its check makes no pass over the data, the run meets the budget with the phase timed and seen by
the run hooks, the original is untouched, two runs give the same weights, and placed before what
it needs it stops the run with a :class:`~safesvd_core.SafeSVDError` that names it, not a crash.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest
import torch

from .. import CompressionResult, SafeSVDError
from ..plugin import DEFAULT_PHASES, Phase, Plan, RunState, registry, run_plan
from ._runs import (
    CountingSource,
    RecordingHook,
    assert_same_weights,
    assert_well_nested,
    job_of,
    tiny_adapter,
    tiny_items,
    tiny_model,
    weights,
)


class _Checked(Exception):
    """Raised by :class:`_StopAfterChecks` once every other phase's check has run."""


class _StopAfterChecks(Phase):
    name: ClassVar[str] = "conformance-stop"

    def check(self, state: RunState) -> None:
        raise _Checked

    def run(self, state: RunState) -> None:
        raise AssertionError("never runs")


class PhaseConformance:
    """Named, checked without a pass over the data, placed by name among the default phases, within
    budget, timed, seen by hooks, deterministic, the original untouched, and clear when out of place."""

    #: The class under test (``make_phase`` must return exactly one of these).
    implementation: ClassVar[type[Phase]]
    #: The default phase it runs after; ``None`` for a default phase (it replaces the one of its name).
    after: ClassVar[str | None] = "stages"
    ratio: ClassVar[float] = 0.5

    # -- hooks --------------------------------------------------------------------------------

    def make_phase(self) -> Phase:
        """The phase under test."""
        raise NotImplementedError("subclasses return the phase under test")

    def make_plan(self) -> Plan:
        return registry("recipe").create("safe-svd").plan()

    # -- helpers ------------------------------------------------------------------------------

    def placed(self, phase: Phase) -> tuple[Phase, ...]:
        """The default phases with ``phase`` in its place."""
        names = [default.name for default in DEFAULT_PHASES]
        if self.after is None:
            assert phase.name in names, (
                f"after is None, but {phase.name!r} is not one of the default phases {names}"
            )
            return tuple(phase if default.name == phase.name else default for default in DEFAULT_PHASES)
        assert self.after in names, f"after = {self.after!r} is not one of the default phases {names}"
        at = names.index(self.after) + 1
        return (*DEFAULT_PHASES[:at], phase, *DEFAULT_PHASES[at:])

    def _run(self, phases: tuple[Phase, ...], **job: object) -> CompressionResult:
        return run_plan(
            job_of(tiny_model(), tiny_items(), tiny_adapter(), ratio=self.ratio, **job),
            self.make_plan(),
            phases,
        )

    # -- the contract -------------------------------------------------------------------------

    def test_is_the_declared_phase_with_a_name(self) -> None:
        phase = self.make_phase()
        assert isinstance(phase, Phase) and type(phase) is self.implementation, (
            f"make_phase gave a {type(phase).__name__}, the suite covers {self.implementation.__name__}"
        )
        assert isinstance(phase.name, str) and phase.name, "a phase needs a non-empty string `name`"
        if self.after is not None:
            assert phase.name not in {default.name for default in DEFAULT_PHASES}, (
                f"{phase.name!r} is the name of a default phase: timings and hooks would mix the two up"
            )

    def test_its_check_makes_no_pass_over_the_data(self) -> None:
        counting = CountingSource(self.make_plan().source)
        plan = attrs.evolve(self.make_plan(), source=counting)
        model = tiny_model()
        with pytest.raises(_Checked):
            run_plan(
                job_of(model, tiny_items(), tiny_adapter(), ratio=self.ratio),
                plan,
                (*self.placed(self.make_phase()), _StopAfterChecks()),
            )
        assert counting.items == 0, f"the checks ran {counting.items} item(s) through the model"

    def test_runs_in_its_place_within_budget_timed_and_seen_by_hooks(self) -> None:
        phase, hook = self.make_phase(), RecordingHook()
        model = tiny_model()
        before = weights(model)
        result = run_plan(
            job_of(model, tiny_items(), tiny_adapter(), ratio=self.ratio, hooks=(hook,)),
            self.make_plan(),
            self.placed(phase),
        )
        assert result.params_after <= result.budget, (
            f"{result.params_after} parameters kept, budget {result.budget}"
        )
        assert phase.name in result.timings, (
            f"no time recorded under {phase.name!r}: {sorted(result.timings)}"
        )
        order = assert_well_nested(hook.events, "run hooks")
        assert order == [placed.name for placed in self.placed(phase)], f"the hooks saw the phases {order}"
        assert all(torch.equal(value, before[key]) for key, value in weights(model).items()), (
            "the original changed"
        )

    def test_the_same_run_gives_the_same_weights(self) -> None:
        first, second = self._run(self.placed(self.make_phase())), self._run(self.placed(self.make_phase()))
        assert first.ranks == second.ranks, f"ranks {first.ranks} then {second.ranks}"
        assert_same_weights(second.model, first.model, "two runs with the phase")

    def test_placed_first_it_names_itself_or_runs(self) -> None:
        """Before the phases it reads from, it stops the run with a SafeSVDError naming it (or has what
        it needs)."""
        phase = self.make_phase()
        rest = tuple(default for default in DEFAULT_PHASES if default.name != phase.name)
        try:
            self._run((phase, *rest))
        except SafeSVDError as error:
            assert phase.name in str(error), (
                f"placed first, {phase.name!r} stopped the run with an error that does not name it: {error}"
            )
