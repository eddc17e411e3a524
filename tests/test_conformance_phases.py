"""Every built-in phase runs the shipped phase conformance suite (``safesvd_core.testing.phases``):
the engine's five default phases in their own places, the safe-svd options' phases in theirs, and
the baselines' (ASVD's loss search, Dobi-SVD's training, the held-out tuning) with their recipes' plans."""

from __future__ import annotations

from typing import ClassVar

import pytest

from safesvd_core.plugin import (
    DEFAULT_PHASES,
    AllocationPhase,
    CleanStatisticsPhase,
    LambdaPhase,
    Phase,
    Plan,
    ProbePhase,
    RefinementPhase,
    RefinementRequest,
    RefineOptions,
    StagesPhase,
    registry,
)
from safesvd_core.testing._runs import tiny_items
from safesvd_core.testing.phases import PhaseConformance
from safesvd_methods.baselines.asvd import ASVDSensitivityPhase
from safesvd_methods.baselines.dobi import DobiTrainingPhase
from safesvd_methods.block_correction import BlockCorrectionPhase
from safesvd_methods.merge import MergeSlowPhase
from safesvd_methods.refine import RefinePhase
from safesvd_methods.tuning import TuningPhase

pytestmark = pytest.mark.filterwarnings("ignore:refine_epochs trains on the calibration items alone")


class DefaultPhase(PhaseConformance):
    """A default phase, run in its own place."""

    after: ClassVar[str | None] = None

    def make_phase(self) -> Phase:
        return self.implementation()


class TestProbe(DefaultPhase):
    implementation: ClassVar[type[Phase]] = ProbePhase


class TestLambda(DefaultPhase):
    implementation: ClassVar[type[Phase]] = LambdaPhase


class TestCleanStatistics(DefaultPhase):
    implementation: ClassVar[type[Phase]] = CleanStatisticsPhase


class TestAllocation(DefaultPhase):
    implementation: ClassVar[type[Phase]] = AllocationPhase


class TestStages(DefaultPhase):
    implementation: ClassVar[type[Phase]] = StagesPhase


def time_of_a_dense_call(out: int, inputs: int, rows: int, rank: int | None) -> float:
    """A cost model in which every factored layer is slower than dense: merge-slow merges what the
    budget allows."""
    return float(out * inputs if rank is None else 2 * out * inputs)


class TestMergeSlow(PhaseConformance):
    """With an injected cost model, so that the suite measures nothing."""

    implementation: ClassVar[type[Phase]] = MergeSlowPhase
    after: ClassVar[str | None] = "allocate"

    def make_phase(self) -> Phase:
        return MergeSlowPhase(timing=time_of_a_dense_call)


class TestBlockCorrection(PhaseConformance):
    implementation: ClassVar[type[Phase]] = BlockCorrectionPhase

    def make_phase(self) -> Phase:
        return BlockCorrectionPhase()


class TestRefinement(PhaseConformance):
    """Refinement with fresh data (``compress(..., refine=Refinement(...))``), the run's last phase."""

    implementation: ClassVar[type[Phase]] = RefinementPhase

    def make_phase(self) -> Phase:
        options = RefineOptions(steps=4, held_out=0.5, eval_every=2, warmup=0)
        request = RefinementRequest(
            items=tiny_items(count=4, seed=9), options=options, same_as_calibration=False
        )
        return RefinementPhase(request=request)


class TestRefine(PhaseConformance):
    implementation: ClassVar[type[Phase]] = RefinePhase

    def make_phase(self) -> Phase:
        return RefinePhase(epochs=1)


class TestASVDSensitivity(PhaseConformance):
    """ASVD's calibration-loss search, after the allocation, with ASVD's plan (its solver and statistics)."""

    implementation: ClassVar[type[Phase]] = ASVDSensitivityPhase
    after: ClassVar[str | None] = "allocate"

    def make_phase(self) -> Phase:
        return ASVDSensitivityPhase(ratios=(0.2, 0.5, 0.8))

    def make_plan(self) -> Plan:
        return (
            registry("recipe").create("asvd", sensitivity="calibration-loss", ratios=(0.2, 0.5, 0.8)).plan()
        )


class TestDobiTraining(PhaseConformance):
    """Dobi-SVD's training (one epoch), after the allocation, with Dobi-SVD's plan (clean covariances,
    the output projection)."""

    implementation: ClassVar[type[Phase]] = DobiTrainingPhase
    after: ClassVar[str | None] = "allocate"

    def make_phase(self) -> Phase:
        return DobiTrainingPhase(epochs=1)

    def make_plan(self) -> Plan:
        return registry("recipe").create("dobi-svd").plan()


class TestTuning(PhaseConformance):
    """The held-out choice of safe-svd's ``alpha="auto"``, in its own place: the first phase (before
    the probe, whose batch source it may change), the default plan standing in until it chooses."""

    implementation: ClassVar[type[Phase]] = TuningPhase

    def make_phase(self) -> Phase:
        tuning, *_ = registry("recipe").create("safe-svd", alpha="auto").phases()
        return tuning

    def placed(self, phase: Phase) -> tuple[Phase, ...]:
        return (phase, *DEFAULT_PHASES)
