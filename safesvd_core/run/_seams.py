"""The engine's seams for data and statistics, with the defaults that do the one-process, one-step thing.

- :class:`BatchSource`: how one calibration item becomes model calls and a calibration loss
  (:class:`PairSource`: one call on a one-step batch);
- :class:`StatisticsReducer`: how the processes of one compression share their work: statistics
  gathered on disjoint shards are combined before they are used, scalars summed, and per-layer
  work done once by its owner and shared (:class:`LocalReducer`: one process, nothing to share).

The third seam, run hooks, lives beside the run state it receives (:class:`~safesvd_core.plugin.RunHook`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from torch import Tensor, nn

from ..kinds._interfaces import ModelAdapter
from ..statistics._statistics import CalibrationStatistics

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
    def loss(
        self, objective: Objective, calls: Sequence[tuple[Tensor, Any]], group: str | None = None
    ) -> Tensor:
        """The calibration loss of ``group`` for one item, from its :meth:`predictions` (in the autograd
        graph)."""

    def groups(self, calls: int) -> Mapping[str | None, Sequence[int]]:
        """Statistics group → the indices of the calls it covers. Default: one group (``None``), every
        call."""
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

    def loss(
        self, objective: Objective, calls: Sequence[tuple[Tensor, Any]], group: str | None = None
    ) -> Tensor:
        ((prediction, batch),) = calls
        return objective(prediction, batch)

    def __repr__(self) -> str:
        return "PairSource()"


@attrs.frozen
class Shared:
    """A piece of per-layer work as the processes exchange it: tensors plus JSON-able metadata."""

    tensors: Mapping[str, Tensor] = attrs.field(factory=dict)
    meta: Mapping[str, Any] = attrs.field(factory=dict)


class StatisticsReducer(ABC):
    """How the processes of one compression share their work. Each process holds a shard of the
    calibration items (item ``i`` of the shard is item :meth:`global_index` of the whole);
    :meth:`reduce` makes statistics the sums over every shard; per-layer work (a spectrum, a solve)
    is done by its :meth:`owner` and given to every process by :meth:`share`."""

    @property
    def rank(self) -> int:
        """This process's index (0 … ``world − 1``); process 0 writes the outputs."""
        return 0

    @property
    def world(self) -> int:
        """The number of processes."""
        return 1

    @abstractmethod
    def reduce(self, statistics: CalibrationStatistics) -> None:
        """Make ``statistics`` (this process's partial sums) the sums over every process, in place."""

    def sum_values(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over every process (e.g. λ's loss totals)."""
        return [float(value) for value in values]

    def sum_tensors(self, tensors: Sequence[Tensor]) -> None:
        """Make every tensor of ``tensors`` (this process's, e.g. gradients) the sum over every
        process, in place: what distributed refinement needs of a reducer. One process: nothing."""
        if self.world > 1:
            raise NotImplementedError(
                f"{type(self).__name__} does not sum tensors across its {self.world} processes: "
                "implement sum_tensors to refine distributed"
            )

    def union(self, labels: Iterable[str]) -> list[str]:
        """The sorted union of ``labels`` over every process."""
        return sorted(set(labels))

    def texts(self, text: str) -> list[str]:
        """Every process's ``text``, in rank order."""
        return [text]

    def agreed(self, value: Any) -> Any:
        """Process 0's ``value`` (JSON-able), on every process: one decision where each process's
        own could differ (e.g. by measured times)."""
        if self.world == 1:
            return value
        return json.loads(self.texts(json.dumps(value, sort_keys=True))[0])

    def global_index(self, local: int) -> int:
        """The index, among every process's items, of this process's item ``local``."""
        return local

    def owner(self, index: int) -> int:
        """The process that does work item ``index`` (a deterministic schedule: round robin)."""
        return index % self.world

    def share(self, indices: Sequence[int], compute: Callable[[int], Shared]) -> dict[int, Shared]:
        """``compute(index)`` for every index: each process computes the items it owns, then every
        process receives every result (the same on all of them)."""
        return {index: compute(index) for index in indices}


class LocalReducer(StatisticsReducer):
    """One process: its statistics are already the whole, and it does every piece of work."""

    def reduce(self, statistics: CalibrationStatistics) -> None:
        return None

    def __repr__(self) -> str:
        return "LocalReducer()"
