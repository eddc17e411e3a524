"""The contract every :class:`~safesvd_core.plugin.Allocator` must meet, as a pytest suite to subclass.

::

    class TestMyAllocator(AllocatorConformance):
        plugin_name = "my-allocator"  # created from the registry with ``min_rank`` and ``options``

Budgets are drawn between :meth:`~AllocatorConformance.smallest_budget` (by default what
``min_rank`` everywhere costs) and a little over the dense model. Set ``monotone_in_budget`` to
False, with the reason, for an allocator that may keep fewer weights under a larger budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .._errors import BudgetError
from ..kinds._interfaces import Allocator, LayerCandidate
from ..kinds._plugins import registry
from ._shared import across_subclasses
from .strategies import layer_candidates

_MIN_RANKS = st.integers(1, 3)
_FRACTIONS = st.floats(0.0, 1.2)
#: Layers named by type (``0.query``, ``1.value``, …), for allocators that group layers by type.
_LAYERS = layer_candidates(types=("query", "value", "dense"))
#: How much larger the second budget is: a few weights (where rounding bites) or any fraction of the span.
_MORE = st.one_of(st.integers(1, 48), _FRACTIONS)


def allocation_cost(layers: Sequence[LayerCandidate], ranks: Mapping[str, int | None]) -> int:
    """Kept weights: ``rank (m + n)`` per factored layer, ``m n`` per dense one."""
    return sum(
        layer.dense_params if ranks[layer.name] is None else ranks[layer.name] * layer.params_per_rank
        for layer in layers
    )


def minimum_cost(layers: Sequence[LayerCandidate], min_rank: int) -> int:
    """The cost of ``min_rank`` everywhere (dense where that rank saves nothing): no allocation is cheaper."""
    return sum(
        layer.dense_params if layer.break_even_rank <= min_rank else min_rank * layer.params_per_rank
        for layer in layers
    )


def dense_cost(layers: Sequence[LayerCandidate]) -> int:
    """The cost of every layer dense."""
    return sum(layer.dense_params for layer in layers)


class AllocatorConformance:
    """Within budget, ranks in ``[min_rank, break-even)``, deterministic, monotone in the budget, and
    a :class:`BudgetError` when even ``min_rank`` everywhere does not fit."""

    #: The registered name; the default :meth:`make_allocator` creates it with ``options``.
    plugin_name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    #: Whether a larger budget never keeps fewer weights.
    monotone_in_budget: ClassVar[bool] = True

    # -- hooks --------------------------------------------------------------------------------

    def make_allocator(self, min_rank: int) -> Allocator:
        """The allocator under test, keeping at least ``min_rank`` per factored layer."""
        return registry("allocator").create(self.plugin_name, min_rank=min_rank, **self.options)

    def smallest_budget(self, allocator: Allocator, layers: Sequence[LayerCandidate]) -> int:
        """The smallest budget the allocator must meet; by default what ``min_rank`` everywhere costs.
        An allocator with a coarser floor (e.g. a smallest ratio) says so here."""
        return minimum_cost(layers, allocator.min_rank)

    # -- helpers ------------------------------------------------------------------------------

    def _budget(self, allocator: Allocator, layers: Sequence[LayerCandidate], fraction: float) -> int:
        low = self.smallest_budget(allocator, layers)
        return low + int(fraction * (dense_cost(layers) - low))

    # -- the contract -------------------------------------------------------------------------

    def test_has_a_name_and_min_rank(self) -> None:
        allocator = self.make_allocator(2)
        assert isinstance(allocator, Allocator), f"{type(allocator).__name__} is not an Allocator"
        name = type(allocator).name
        assert isinstance(name, str) and name, "an allocator needs a non-empty string `name`"
        expected = getattr(self, "plugin_name", name)
        assert name == expected, f"the allocator is named {name!r}, registered as {expected!r}"
        assert allocator.min_rank == 2, f"make_allocator(2) has min_rank {allocator.min_rank}"

    @across_subclasses()
    @given(layers=_LAYERS, min_rank=_MIN_RANKS, fraction=_FRACTIONS)
    def test_meets_the_budget_with_ranks_from_min_rank_to_break_even(
        self, layers: list[LayerCandidate], min_rank: int, fraction: float
    ) -> None:
        allocator = self.make_allocator(min_rank)
        budget = self._budget(allocator, layers, fraction)
        ranks = allocator.allocate(layers, budget)
        assert set(ranks) == {layer.name for layer in layers}, (
            f"ranks for {sorted(ranks)}, layers {[layer.name for layer in layers]}"
        )
        for layer in layers:
            rank = ranks[layer.name]
            if rank is None:
                continue
            assert isinstance(rank, int) and not isinstance(rank, bool), (
                f"{layer.name}: rank {rank!r} is not an int"
            )
            assert min_rank <= rank < layer.break_even_rank, (
                f"{layer.name}: rank {rank} outside [min_rank {min_rank}, break-even {layer.break_even_rank})"
            )
        cost = allocation_cost(layers, ranks)
        assert cost <= budget, f"the allocation keeps {cost} weights, over the budget of {budget}: {ranks}"

    @across_subclasses()
    @given(layers=_LAYERS, min_rank=_MIN_RANKS, fraction=_FRACTIONS)
    def test_is_deterministic(self, layers: list[LayerCandidate], min_rank: int, fraction: float) -> None:
        budget = self._budget(self.make_allocator(min_rank), layers, fraction)
        first = self.make_allocator(min_rank).allocate(layers, budget)
        assert self.make_allocator(min_rank).allocate(list(layers), budget) == first, "two allocations differ"

    @across_subclasses()
    @given(layers=_LAYERS, min_rank=_MIN_RANKS, low=_FRACTIONS, more=_MORE)
    def test_a_larger_budget_never_keeps_fewer_weights(
        self, layers: list[LayerCandidate], min_rank: int, low: float, more: int | float
    ) -> None:
        if not self.monotone_in_budget:
            pytest.skip("monotone_in_budget is off for this allocator")
        allocator = self.make_allocator(min_rank)
        small = self._budget(allocator, layers, low)
        large = small + more if isinstance(more, int) else max(small, self._budget(allocator, layers, more))
        kept_small = allocation_cost(layers, allocator.allocate(layers, small))
        kept_large = allocation_cost(layers, allocator.allocate(layers, large))
        assert kept_small <= kept_large, (
            f"budget {small} keeps {kept_small} weights, the larger budget {large} only {kept_large}"
        )

    @across_subclasses()
    @given(layers=_LAYERS, min_rank=_MIN_RANKS)
    def test_the_dense_budget_keeps_every_layer_dense(
        self, layers: list[LayerCandidate], min_rank: int
    ) -> None:
        ranks = self.make_allocator(min_rank).allocate(layers, dense_cost(layers))
        assert all(rank is None for rank in ranks.values()), (
            f"compressed without need at the dense budget: {ranks}"
        )

    @across_subclasses()
    @given(layers=_LAYERS, min_rank=_MIN_RANKS)
    def test_a_budget_below_min_rank_everywhere_is_a_budget_error(
        self, layers: list[LayerCandidate], min_rank: int
    ) -> None:
        with pytest.raises(BudgetError):
            self.make_allocator(min_rank).allocate(layers, minimum_cost(layers, min_rank) - 1)
