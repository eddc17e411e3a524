"""The contract every :class:`~safesvd_core.plugin.RunHook` must meet, as a pytest suite to subclass.

::

    class TestMyHook(RunHookConformance):
        implementation = MyHook

        def make_hook(self, directory):  # a new, empty directory the hook may write to
            return MyHook(directory)

A run hook observes: a run with it gives the weights, ranks and phase sequence of a run without
it, through ``compress(..., hooks=[hook])`` and through ``run_plan`` with a phase it does not know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .. import compress
from ..plugin import DEFAULT_PHASES, Phase, Plan, RunHook, RunState, clean_statistics, registry, run_plan
from ._runs import (
    ADAPTER_OPTIONS,
    RecordingHook,
    assert_same_weights,
    job_of,
    tiny_adapter,
    tiny_items,
    tiny_model,
)


class Unknown(Phase):
    """A phase no hook knows of (after the allocation): it only leaves a note."""

    name: ClassVar[str] = "conformance-unknown"

    def run(self, state: RunState) -> None:
        state.log.notes.append("an unknown phase ran")


def _with_unknown() -> tuple[Phase, ...]:
    names = [phase.name for phase in DEFAULT_PHASES]
    at = names.index("allocate") + 1 if "allocate" in names else len(names)
    return (*DEFAULT_PHASES[:at], Unknown(), *DEFAULT_PHASES[at:])


class RunHookConformance:
    """Changes no result and no phase sequence, with ``compress`` and with ``run_plan`` (a phase it
    does not know included), and takes a run that stops after the clean statistics."""

    #: The class under test (``make_hook`` must return exactly one of these).
    implementation: ClassVar[type[RunHook]]
    ratio: ClassVar[float] = 0.5

    def make_hook(self, directory: Path) -> RunHook:
        """A new hook; ``directory`` is new and empty, for a hook that writes files."""
        raise NotImplementedError("subclasses return the hook under test")

    def make_plan(self) -> Plan:
        return registry("recipe").create("safe-svd").plan()

    # -- the contract -------------------------------------------------------------------------

    def test_is_the_declared_run_hook(self, tmp_path: Path) -> None:
        hook = self.make_hook(tmp_path / "hook")
        assert isinstance(hook, RunHook) and type(hook) is self.implementation, (
            f"make_hook gave a {type(hook).__name__}, the suite covers {self.implementation.__name__}"
        )

    def test_compress_with_it_gives_the_same_result_and_phases(self, tmp_path: Path) -> None:
        model, items = tiny_model(), tiny_items()
        options: dict[str, Any] = {"ratio": self.ratio, "adapter_options": dict(ADAPTER_OPTIONS)}
        alone, beside = RecordingHook(), RecordingHook()
        plain = compress(model, items, hooks=[alone], **options)
        hooked = compress(model, items, hooks=[self.make_hook(tmp_path / "hook"), beside], **options)
        assert beside.events == alone.events, "with the hook, the run went through other phases or stages"
        assert hooked.ranks == plain.ranks, f"ranks {hooked.ranks} with the hook, {plain.ranks} without"
        assert_same_weights(hooked.model, plain.model, "compress with the hook against without")

    def test_takes_a_phase_it_does_not_know(self, tmp_path: Path) -> None:
        model, items, plan, phases = tiny_model(), tiny_items(), self.make_plan(), _with_unknown()
        recording = RecordingHook()
        hooked = run_plan(
            job_of(
                model,
                items,
                tiny_adapter(),
                ratio=self.ratio,
                hooks=(self.make_hook(tmp_path / "hook"), recording),
            ),
            plan,
            phases,
        )
        plain = run_plan(job_of(model, items, tiny_adapter(), ratio=self.ratio), plan, phases)
        assert ("done", Unknown.name) in recording.events and "an unknown phase ran" in hooked.notes
        assert_same_weights(hooked.model, plain.model, "run_plan with the hook against without")

    def test_takes_a_run_that_stops_after_the_clean_statistics(self, tmp_path: Path) -> None:
        model, items, plan = tiny_model(), tiny_items(), self.make_plan()
        job = job_of(
            model, items, tiny_adapter(), ratio=self.ratio, hooks=(self.make_hook(tmp_path / "hook"),)
        )
        statistics = clean_statistics(job, plan)
        plain = clean_statistics(job_of(model, items, tiny_adapter(), ratio=self.ratio), plan)
        assert sorted(statistics.layers) == sorted(plain.layers), (
            "the hook changed the clean statistics' layers"
        )
