"""``compress(..., hooks=, distributed=)``: a user's run hooks and statistics reducer passed in directly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safesvd_core import ConfigError, compress
from safesvd_core.plugin import LocalReducer, RunHook, StatisticsReducer

from test_compress import small_data, small_transformer

OPTIONS = {
    "ratio": 0.5,
    "adapter_options": {"block_names": ["blocks.0", "blocks.1"], "include": ["blocks.*"]},
}


class Logging(RunHook):
    """Appends ``(label, event, name)`` to a log shared by several hooks."""

    def __init__(self, label: str, log: list) -> None:
        self.label, self.log = label, log

    def phase_started(self, state, phase) -> None:
        self.log.append((self.label, "started", phase.name))

    def phase_done(self, state, phase) -> None:
        self.log.append((self.label, "done", phase.name))

    def stage_done(self, state, stage) -> None:
        self.log.append((self.label, "stage", tuple(stage.layers)))


def never_iterated():
    raise AssertionError("the calibration items were read before the arguments were checked")
    yield


def test_hooks_are_called_around_every_phase_and_stage_in_the_order_given():
    log: list = []
    result = compress(
        small_transformer(), small_data(), hooks=[Logging("a", log), Logging("b", log)], **OPTIONS
    )
    assert [label for label, _, _ in log] == ["a", "b"] * (len(log) // 2)  # every call: a, then b
    events = [(event, name) for label, event, name in log if label == "a"]
    assert events == [(event, name) for label, event, name in log if label == "b"]
    assert [name for event, name in events if event == "stage"] == [tuple(stage) for stage in result.stages]
    phases = [name for event, name in events if event == "started"]
    assert phases == [name for event, name in events if event == "done"] and set(phases) <= set(
        result.timings
    )
    assert len(phases) >= 5 and phases[-1] == "stages"


class SeesTheCheckpoint(RunHook):
    """After the clean phase, the checkpoint's statistics are already written (its hook runs first)."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.seen = directory, None

    def phase_done(self, state, phase) -> None:
        if phase.name == "clean":
            self.seen = (self.directory / "statistics.safetensors").exists()


def test_hooks_run_after_the_checkpoint_and_change_nothing(tmp_path):
    hook = SeesTheCheckpoint(tmp_path / "checkpoint")
    hooked = compress(
        small_transformer(), small_data(), hooks=(hook,), checkpoint_dir=tmp_path / "checkpoint", **OPTIONS
    )
    plain = compress(small_transformer(), small_data(), **OPTIONS)
    assert hook.seen is True
    assert hooked.ranks == plain.ranks
    for key, value in plain.model.state_dict().items():
        assert torch.equal(hooked.model.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        (
            Logging("a", []),
            r"hooks must be a list or tuple of RunHook objects, got Logging: pass hooks=\[hook\]",
        ),
        ("progress", "hooks must be a list or tuple of RunHook objects, got str"),
        ([Logging("a", []), print], r"hooks\[1\] is a builtin_function_or_method, not a RunHook"),
    ],
)
def test_hooks_that_are_not_run_hooks_are_refused_before_any_pass(hooks, message):
    with pytest.raises(ConfigError, match=message):
        compress(small_transformer(), never_iterated(), hooks=hooks, **OPTIONS)


class Counting(LocalReducer):
    def __init__(self) -> None:
        self.reduced: list[list[str]] = []

    def reduce(self, statistics) -> None:
        self.reduced.append(sorted(statistics.layers))


def test_a_reducer_given_directly_shares_the_run():
    reducer = Counting()
    result = compress(small_transformer(), small_data(), distributed=reducer, **OPTIONS)
    assert reducer.reduced[0] == sorted(result.ranks)  # the clean statistics, every layer
    solved = {name for name, rank in result.ranks.items() if rank is not None}
    assert set().union(*reducer.reduced[1:]) == solved  # then the shifted statistics of every solved layer


def test_the_reducer_keyword_of_the_last_release_still_works_deprecated():
    reducer = Counting()
    with pytest.warns(
        DeprecationWarning, match=r"compress\(reducer=\) is deprecated .* use distributed=reducer"
    ):
        result = compress(small_transformer(), small_data(), reducer=reducer, **OPTIONS)
    assert reducer.reduced[0] == sorted(result.ranks)
    with pytest.raises(ConfigError, match=r"give distributed= only \(reducer are its deprecated spelling\)"):
        compress(small_transformer(), never_iterated(), reducer=LocalReducer(), distributed=False, **OPTIONS)


class ClaimsRank(StatisticsReducer):
    def __init__(self, rank, world) -> None:
        self._rank, self._world = rank, world

    @property
    def rank(self):
        return self._rank

    @property
    def world(self):
        return self._world

    def reduce(self, statistics) -> None:
        return None

    def __repr__(self) -> str:
        return f"ClaimsRank({self._rank!r}, {self._world!r})"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"distributed": "gloo"}, "distributed must be True, False, None or a StatisticsReducer .*, got str"),
        ({"distributed": ClaimsRank(2, 2)}, r"reducer ClaimsRank\(2, 2\) has rank 2 and world 2"),
        ({"distributed": ClaimsRank(0, 0)}, "the world must be a positive int"),
        ({"distributed": ClaimsRank(0, 1.0)}, "has rank 0 and world 1.0"),
    ],
)
def test_a_bad_reducer_is_refused_before_any_pass(options, message):
    with pytest.raises(ConfigError, match=message):
        compress(small_transformer(), never_iterated(), **options, **OPTIONS)
