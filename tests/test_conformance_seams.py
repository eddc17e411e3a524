"""Every built-in batch source, statistics reducer and run hook runs its shipped conformance suite
(``safesvd_core.testing.sources``, ``.reducers``, ``.hooks``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.distributed as dist

from safesvd_core.plugin import (
    BatchSource,
    Checkpoint,
    DistributedReducer,
    LocalReducer,
    PairSource,
    RolloutSource,
    RunHook,
    StatisticsReducer,
)
from safesvd_core.run._phase_progress import (
    PhaseProgress,  # the hook of compress(progress=True); not a plugin name
)
from safesvd_core.testing.hooks import RunHookConformance
from safesvd_core.testing.loopback import free_port
from safesvd_core.testing.recipes import RecipeConformance
from safesvd_core.testing.reducers import StatisticsReducerConformance
from safesvd_core.testing.sources import BatchSourceConformance

# -- batch sources ---------------------------------------------------------------------------------


class TestPairSource(BatchSourceConformance):
    implementation: ClassVar[type[BatchSource]] = PairSource

    def make_source(self) -> BatchSource:
        return PairSource()


class TestRolloutSource(BatchSourceConformance):
    """Two-step trajectories, the one-step and the rollout statistics in two groups."""

    implementation: ClassVar[type[BatchSource]] = RolloutSource

    def make_source(self) -> BatchSource:
        return RolloutSource(steps=2, one_step_group=True)

    def make_items(self) -> list[Any]:
        return RecipeConformance().make_trajectories()


# -- statistics reducers ---------------------------------------------------------------------------


class TestLocalReducer(StatisticsReducerConformance):
    implementation: ClassVar[type[StatisticsReducer]] = LocalReducer

    def make_reducer(self) -> StatisticsReducer:
        return LocalReducer()


@pytest.fixture(scope="class")
def group_of_one() -> Iterator[None]:
    """A gloo process group of this process alone (two-process runs: tests/test_distributed.py)."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
@pytest.mark.usefixtures("group_of_one")
class TestDistributedReducer(StatisticsReducerConformance):
    implementation: ClassVar[type[StatisticsReducer]] = DistributedReducer

    def make_reducer(self) -> StatisticsReducer:
        return DistributedReducer()


# -- run hooks -------------------------------------------------------------------------------------


class TestCheckpoint(RunHookConformance):
    """Writing a new checkpoint directory (resuming from one: tests/test_checkpoint.py)."""

    implementation: ClassVar[type[RunHook]] = Checkpoint

    def make_hook(self, directory: Path) -> RunHook:
        return Checkpoint(directory, {"weights": "w", "calibration": "c", "config": "x"})

    def test_it_wrote_the_manifest_and_every_stage(self, tmp_path: Path) -> None:
        self.test_compress_with_it_gives_the_same_result_and_phases(tmp_path)
        written = sorted(path.name for path in (tmp_path / "hook").iterdir())
        assert "checkpoint.json" in written and "statistics.safetensors" in written
        # the tiny model's two block stages
        assert sum(name.startswith("stage-") for name in written) == 2, written


class TestPhaseProgress(RunHookConformance):
    implementation: ClassVar[type[RunHook]] = PhaseProgress

    def make_hook(self, directory: Path) -> RunHook:
        return PhaseProgress("conformance")

    def test_it_wrote_a_line_per_phase(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.test_takes_a_phase_it_does_not_know(tmp_path)
        lines = capsys.readouterr().err.splitlines()
        done = [line for line in lines if line.startswith("[conformance] ") and " done in " in line]
        assert len(done) == 6, lines  # the five default phases and the unknown one


def test_the_rollout_source_runs_each_item_as_its_steps():
    """Beyond the suite: a K-step source makes K calls per item."""
    source = RolloutSource(steps=2)
    case = TestRolloutSource()
    adapter, model = case.make_adapter(), case.make_model()
    with torch.no_grad():
        assert all(len(source.run(adapter, model, item)) == 2 for item in case.make_items())
