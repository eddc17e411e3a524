"""The engine's seams for data and statistics, with the defaults that do the one-process, one-step thing.

- :class:`BatchSource`: how one calibration item becomes model calls and a calibration loss
  (:class:`PairSource`: one call on a one-step batch);
- :class:`StatisticsReducer`: how statistics gathered by several processes are combined before
  they are used (:class:`LocalReducer`: one process, nothing to combine).

The third seam, stage hooks, lives beside the run state it receives (:class:`~safesvd_core.plugin.StageHook`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from ._interfaces import ModelAdapter
from ._statistics import CalibrationStatistics

#: ``(prediction, batch) -> scalar``: the calibration objective of one model call.
Objective = Callable[[Tensor, Any], Tensor]


class BatchSource(ABC):
    """How one calibration item (an element of ``job.batches``) is run and scored.

    Every pass of the engine (probe, λ, clean statistics, stages) runs an item through
    :meth:`predictions`; a layer sees one row block per model call. The clean statistics are
    gathered per *group* (:meth:`groups`): the calls a group covers, with the gradients of that
    group's :meth:`loss`, labelled ``LayerSignals.group``.
    """

    @abstractmethod
    def predictions(self, adapter: ModelAdapter, model: nn.Module, item: Any) -> Iterator[tuple[Tensor, Any]]:
        """Run ``model`` on ``item``: yield ``(prediction, batch)`` per model call, in call order,
        where ``batch`` is the one-step batch the adapter scores the prediction against."""

    @abstractmethod
    def loss(self, objective: Objective, calls: Sequence[tuple[Tensor, Any]], group: str | None = None) -> Tensor:
        """The calibration loss of ``group`` for one item, from its :meth:`predictions` (in the autograd graph)."""

    def groups(self, calls: int) -> Mapping[str | None, Sequence[int]]:
        """Statistics group → the indices of the calls it covers. Default: one group (``None``), every call."""
        return {None: tuple(range(calls))}

    def first_batch(self, adapter: ModelAdapter, item: Any) -> Any:
        """A one-step batch of ``item``, to read its field description and domain from."""
        return item

    def run(self, adapter: ModelAdapter, model: nn.Module, item: Any) -> list[tuple[Tensor, Any]]:
        """Every ``(prediction, batch)`` of ``item``."""
        return list(self.predictions(adapter, model, item))


class PairSource(BatchSource):
    """The default: an item is one batch the adapter predicts in one call (``(input, target)`` for
    the generic adapter); its loss is the objective of that prediction."""

    def predictions(self, adapter: ModelAdapter, model: nn.Module, item: Any) -> Iterator[tuple[Tensor, Any]]:
        yield adapter.predict(model, item), item

    def loss(self, objective: Objective, calls: Sequence[tuple[Tensor, Any]], group: str | None = None) -> Tensor:
        (prediction, batch), = calls
        return objective(prediction, batch)

    def __repr__(self) -> str:
        return "PairSource()"


class StatisticsReducer(ABC):
    """Combines the statistics that several processes gathered on disjoint shards of the data."""

    @abstractmethod
    def reduce(self, statistics: CalibrationStatistics) -> None:
        """Make ``statistics`` (this process's partial sums) the sums over every process, in place."""


class LocalReducer(StatisticsReducer):
    """One process: its statistics are already the whole; nothing to do."""

    def reduce(self, statistics: CalibrationStatistics) -> None:
        return None

    def __repr__(self) -> str:
        return "LocalReducer()"
