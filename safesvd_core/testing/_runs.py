"""What the run-level suites (recipes, batch sources, reducers, run hooks, phases) share: a tiny
residual model with blocks, its calibration items, a job of it, a recording hook and a counting source."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..plugin import (
    BatchSource,
    CompressionJob,
    LocalReducer,
    ModelAdapter,
    Phase,
    RunHook,
    RunState,
    Stage,
    StatisticsReducer,
    make_adapter,
)

WIDTH, CHANNELS = 24, 6


class Block(nn.Module):
    """``x + fc2(gelu(fc1(x)))``: a residual block of two linear layers."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(nn.functional.gelu(self.fc1(x)))


class TinyModel(nn.Module):
    """``embed → two residual blocks → out`` on ``(batch, tokens, CHANNELS)`` inputs; the blocks are
    compressed."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(CHANNELS, WIDTH)
        self.blocks = nn.Sequential(Block(WIDTH), Block(WIDTH))
        self.out = nn.Linear(WIDTH, CHANNELS)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(self.embed(x)))


def tiny_model(seed: int = 0) -> TinyModel:
    """A :class:`TinyModel` with seeded weights, in eval mode."""
    torch.manual_seed(seed)
    return TinyModel().eval()


#: The generic adapter's options for :class:`TinyModel`: its blocks' layers compressed, in stages per block.
ADAPTER_OPTIONS: Mapping[str, Any] = {"include": ["blocks.*"], "block_names": ["blocks.0", "blocks.1"]}


def tiny_items(count: int = 3, rows: int = 16, seed: int = 1) -> list[tuple[Tensor, Tensor]]:
    """``count`` seeded ``(input, target)`` pairs for :class:`TinyModel`."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(rows, 4, CHANNELS, generator=generator),
            torch.randn(rows, 4, CHANNELS, generator=generator),
        )
        for _ in range(count)
    ]


def tiny_adapter() -> ModelAdapter:
    return make_adapter("generic", ADAPTER_OPTIONS)


def job_of(
    model: nn.Module,
    items: Sequence[Any],
    adapter: ModelAdapter,
    *,
    ratio: float = 0.5,
    reducer: StatisticsReducer | None = None,
    hooks: Sequence[RunHook] = (),
) -> CompressionJob:
    """A job that compresses a copy of ``model`` (``compress``'s job without its checks and fingerprints)."""
    adapter = adapter.for_model(model)
    return CompressionJob(
        original=model,
        model=copy.deepcopy(model),
        batches=list(items),
        adapter=adapter,
        ratio=ratio,
        recipe="conformance",
        options={},
        reducer=reducer or LocalReducer(),
        hooks=tuple(hooks),
    )


def weights(model: nn.Module) -> dict[str, Tensor]:
    """A copy of ``model``'s state dict."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def assert_same_weights(actual: nn.Module, expected: nn.Module, what: str) -> None:
    """The two models hold bit-identical tensors under the same keys."""
    left, right = weights(actual), weights(expected)
    assert left.keys() == right.keys(), f"{what}: other parameters {sorted(left.keys() ^ right.keys())[:5]}"
    changed = [key for key in right if not torch.equal(left[key], right[key])]
    assert not changed, f"{what}: these tensors differ: {changed[:5]}"


class RecordingHook(RunHook):
    """Records every call as ``(event, phase or stage)``: ``("started", "probe")``,
    ``("stage", ("a.fc1",))``, …"""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def phase_started(self, state: RunState, phase: Phase) -> None:
        self.events.append(("started", phase.name))

    def phase_done(self, state: RunState, phase: Phase) -> None:
        self.events.append(("done", phase.name))

    def stage_done(self, state: RunState, stage: Stage) -> None:
        self.events.append(("stage", tuple(stage.layers)))


def assert_well_nested(events: Sequence[tuple[str, Any]], what: str) -> list[str]:
    """Every phase started once and done before the next starts; stages only inside a phase. Returns
    the phases in order."""
    phases, open_phase = [], None
    for event, name in events:
        if event == "started":
            assert open_phase is None, f"{what}: phase {name!r} started inside phase {open_phase!r}: {events}"
            open_phase = name
            phases.append(name)
        elif event == "done":
            assert open_phase == name, (
                f"{what}: phase {name!r} done, but {open_phase!r} was running: {events}"
            )
            open_phase = None
        else:
            assert open_phase is not None, f"{what}: a stage finished outside any phase: {events}"
    assert open_phase is None, f"{what}: phase {open_phase!r} never finished: {events}"
    return phases


class CountingSource(BatchSource):
    """Wraps a source and counts the items it runs (every pass of the engine runs items through it)."""

    def __init__(self, inner: BatchSource) -> None:
        self.inner = inner
        self.items = 0

    def predictions(self, adapter: ModelAdapter, model: nn.Module, item: Any) -> Iterator[tuple[Tensor, Any]]:
        self.items += 1
        yield from self.inner.predictions(adapter, model, item)

    def loss(
        self,
        objective: Callable[[Tensor, Any], Tensor],
        calls: Sequence[tuple[Tensor, Any]],
        group: str | None = None,
    ) -> Tensor:
        return self.inner.loss(objective, calls, group)

    def groups(self, calls: int) -> Mapping[str | None, Sequence[int]]:
        return self.inner.groups(calls)

    def first_batch(self, adapter: ModelAdapter, item: Any) -> Any:
        return self.inner.first_batch(adapter, item)

    def __repr__(self) -> str:
        return f"CountingSource({self.inner!r})"
