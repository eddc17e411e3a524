"""The engine's seams: phases, the batch source, the statistics reducer and stage hooks."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import ClassVar

import pytest
import torch

from safesvd_core import ConfigError, FieldDescription, SafeSVDError
from safesvd_core.plugin import (
    DEFAULT_PHASES,
    AllocationPhase,
    CompressionJob,
    PairSource,
    Phase,
    Reduction,
    RunHook,
    RunState,
    StatisticsReducer,
    insert_phase,
    make_adapter,
    registry,
    run_plan,
)

from test_compress import small_data, small_transformer

FIELD = FieldDescription(
    channels=("u", "v"), roles=("velocity_x", "velocity_y"), spacing=(0.1, 0.1), periodic=(True, True)
)


def _job(model=None, data=None, **options) -> CompressionJob:
    model = small_transformer() if model is None else model
    adapter = make_adapter("generic", {"block_names": model.block_names(), "include": ["blocks.*"]})
    return CompressionJob(
        original=model,
        model=copy.deepcopy(model),
        batches=small_data() if data is None else data,
        adapter=adapter,
        ratio=0.5,
        recipe="safe-svd",
        options={},
        **options,
    )


def _plan(**options):
    return registry("recipe").create("safe-svd", **options).plan()


def _weights(result) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in result.model.state_dict().items()}


class Recording(RunHook):
    def __init__(self) -> None:
        self.seen: list[tuple[int, tuple[str, ...], frozenset[str]]] = []

    def stage_done(self, state: RunState, stage) -> None:
        self.seen.append((state.progress.stage_index, stage.layers, frozenset(state.progress.records)))


def test_stage_hooks_run_after_every_stage_with_the_state_so_far():
    hook = Recording()
    result = run_plan(_job(hooks=(hook,)), _plan())
    assert [index for index, _, _ in hook.seen] == list(range(1, len(result.stages) + 1))
    assert [list(layers) for _, layers, _ in hook.seen] == result.stages
    solved = {name for name, rank in result.ranks.items() if rank is not None}
    for index, _layers, records in hook.seen:  # after stage k, exactly the solved layers of stages ≤ k
        done = {name for stage in result.stages[:index] for name in stage}
        assert records == done & solved


class Counting(StatisticsReducer):
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def reduce(self, statistics) -> None:
        self.calls.append(sorted(statistics.layers))


def test_the_reducer_sees_each_clean_group_and_each_stage():
    reducer = Counting()
    result = run_plan(_job(reducer=reducer), _plan(stage_mode="block"))
    assert reducer.calls[0] == sorted(result.ranks)  # the clean pass: one group, every layer
    # then each stage's shifted statistics, of its solved layers (a stage of dense layers has none)
    solved = [[name for name in stage if result.ranks[name] is not None] for stage in result.stages]
    assert reducer.calls[1:] == [sorted(names) for names in solved if names]
    reducer = Counting()
    result = run_plan(_job(reducer=reducer), _plan(stage_mode="layer"))  # then each solved layer's,
    groups: list[list[str]] = []  # query, key and value (one input) together
    for stage in result.stages:
        for name in (name for name in stage if result.ranks[name] is not None):
            sibling = name.endswith(("key", "value")) and groups and groups[-1][-1].endswith(("query", "key"))
            if sibling and groups[-1][-1].rsplit(".", 1)[0] == name.rsplit(".", 1)[0]:
                groups[-1].append(name)
            else:
                groups.append([name])
    assert reducer.calls[1:] == [sorted(group) for group in groups]


class TwoIdenticalProcesses(Reduction):
    """All-reduce as if a second process had seen the very same rows: every sum doubles."""

    def __init__(self) -> None:
        self.summed = 0

    def sum_(self, tensor: torch.Tensor) -> None:
        tensor.mul_(2)
        self.summed += 1

    def union(self, labels: Sequence[str]) -> list[str]:
        return sorted(labels)


class ReduceAll(StatisticsReducer):
    def __init__(self) -> None:
        self.reduction = TwoIdenticalProcesses()

    def reduce(self, statistics) -> None:
        statistics.reduce(self.reduction)


@pytest.mark.parametrize("recipe", ["safe-svd", "safe-svd-balanced"])
def test_reducing_every_statistic_goes_through_estimator_reduce(recipe):
    """Doubled sums and counts leave every mean as it was: the same factors, every estimator reduced."""
    data = [(x, y, "left" if i % 2 else "right") for i, (x, y) in enumerate(small_data(batches=4))]
    plan = registry("recipe").create(recipe).plan()
    local = run_plan(_job(data=data), plan)
    reducer = ReduceAll()
    reduced = run_plan(_job(data=data, reducer=reducer), plan)
    assert reducer.reduction.summed > 0
    assert reduced.ranks == local.ranks
    for key, value in _weights(local).items():
        torch.testing.assert_close(_weights(reduced)[key], value, rtol=1e-12, atol=0)


class TwiceThrough(PairSource):
    """A source whose items are run as two model calls (the second on the first's prediction)."""

    def predictions(self, adapter, model, item):
        first = adapter.predict(model, item)
        yield first, item
        yield adapter.predict(model, (first, item[1])), item

    def loss(self, objective, calls, group=None):
        return sum(objective(prediction, batch) for prediction, batch in calls)


class RowCounts(StatisticsReducer):
    """Records, for every statistics it is given, the rows each layer's first estimator counted."""

    def __init__(self) -> None:
        self.rows: list[dict[str, int]] = []

    def reduce(self, statistics) -> None:
        self.rows.append(
            {
                layer: [
                    moment.count for estimator in by_name.values() for moment in estimator.moments.values()
                ]
                for layer, by_name in statistics.estimators.items()
            }
        )


def test_every_pass_runs_items_through_the_plan_source():
    """Two model calls per item: the clean pass and every stage see twice the rows of one call."""
    import attrs

    counts = {}
    for source in (PairSource(), TwiceThrough()):
        reducer = RowCounts()
        plan = attrs.evolve(_plan(stage_mode="exact", family="ns-incompressible"), source=source)
        job = _job(reducer=reducer)
        job.adapter = attrs.evolve(job.adapter, block_names=None, field_description=FIELD)
        result = run_plan(job, plan)
        assert result.met_budget and result.passes["lambda"] == 1
        counts[type(source).__name__] = reducer.rows
    once, twice = counts["PairSource"], counts["TwiceThrough"]
    assert len(once) == len(twice) == 1 + len(result.stages)
    for one, two in zip(once, twice):
        assert {layer: [2 * count for count in rows] for layer, rows in one.items()} == two


class AfterAllocation(Phase):
    name: ClassVar[str] = "after-allocation"
    reads: ClassVar[tuple[str, ...]] = ("allocation",)

    def __init__(self) -> None:
        self.ranks = None

    def run(self, state: RunState) -> None:
        self.ranks = dict(state.allocation.ranks)
        state.log.notes.append("inspected the ranks")


def test_a_new_phase_plugs_in_between_the_default_ones():
    extra = AfterAllocation()
    phases = insert_phase(DEFAULT_PHASES, extra, after="allocate")
    with_extra = run_plan(_job(), _plan(), phases)
    default = run_plan(_job(), _plan())
    assert extra.ranks == default.ranks == with_extra.ranks
    assert with_extra.notes == ["inspected the ranks"] and "after-allocation" in with_extra.timings
    for key, value in _weights(default).items():
        assert torch.equal(_weights(with_extra)[key], value)


def test_a_phase_without_its_inputs_names_what_is_missing():
    with pytest.raises(
        ConfigError,
        match="phase 'allocate' reads 'probe', which no earlier phase writes: add the "
        "phase that writes it, 'probe', before 'allocate'",
    ):
        run_plan(_job(), _plan(), (AllocationPhase(),))


class Refusing(Phase):
    name: ClassVar[str] = "refusing"

    def check(self, state: RunState) -> None:
        raise SafeSVDError("refused before any pass")

    def run(self, state: RunState) -> None:
        raise AssertionError("never runs")


def test_every_check_runs_before_any_phase_runs():
    source = CountingSource()
    import attrs

    plan = attrs.evolve(_plan(), source=source)
    with pytest.raises(SafeSVDError, match="refused before any pass"):
        run_plan(_job(), plan, (*DEFAULT_PHASES, Refusing()))
    assert source.items == 0


class CountingSource(PairSource):
    def __init__(self) -> None:
        self.items = 0

    def predictions(self, adapter, model, item):
        self.items += 1
        yield from super().predictions(adapter, model, item)
