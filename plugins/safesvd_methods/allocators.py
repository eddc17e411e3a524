"""Built-in rank allocators: greedy global benefit/cost (Algorithm 1) and uniform."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import attrs

from safesvd_core.plugin import Allocator, BudgetError, LayerCandidate, unit_interval


def layer_cost(layer: LayerCandidate, rank: int | None) -> int:
    """Kept weights of ``layer`` at ``rank`` (``None`` = dense)."""
    return layer.dense_params if rank is None else rank * layer.params_per_rank


def total_cost(layers: Sequence[LayerCandidate], ranks: Mapping[str, int | None]) -> int:
    """Kept weights of all ``layers`` at ``ranks``."""
    return sum(layer_cost(layer, ranks[layer.name]) for layer in layers)


def rank_at_fraction(layer: LayerCandidate, fraction: float, min_rank: int) -> int | None:
    """``max(min_rank, ⌊fraction · m n / (m + n)⌋)``, or ``None`` (dense) from the break-even rank on."""
    rank = max(min_rank, int(fraction * layer.dense_params / layer.params_per_rank))
    return None if rank >= layer.break_even_rank else rank


def largest_fitting(fits: Callable[[float], bool], high: float, *, steps: int = 60) -> float:
    """The largest ``x ∈ [0, high]`` with ``fits(x)``, by bisection (``fits(0)`` must hold)."""
    if fits(high):
        return high
    low = 0.0
    for _ in range(steps):
        middle = 0.5 * (low + high)
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def minimum_ranks(
    layers: Sequence[LayerCandidate], min_rank: int, budget: int
) -> tuple[dict[str, int | None], int]:
    """Every layer at its minimum: ``min_rank`` factors, or dense where factoring saves nothing."""
    ranks: dict[str, int | None] = {}
    for layer in layers:
        ranks[layer.name] = None if layer.break_even_rank <= min_rank else min_rank
    spent = total_cost(layers, ranks)
    if spent > budget:
        raise BudgetError(
            f"the budget of {budget:,} weights for the compressible layers is below the {spent:,} that "
            f"rank {min_rank} everywhere needs; raise the ratio or compress fewer layers"
        )
    return ranks, spent


def greedy_fill(
    layers: Sequence[LayerCandidate],
    ranks: dict[str, int | None],
    spent: int,
    budget: int,
    *,
    step_cost: Callable[[LayerCandidate], float] = lambda layer: layer.params_per_rank,
    tie_break: Callable[[LayerCandidate], float] = lambda layer: 0.0,
    admit: Callable[[LayerCandidate, int, int | None], bool] | None = None,
) -> dict[str, int | None]:
    """From ``ranks`` (``spent`` weights), add components by ``s_i² / step_cost(layer)`` while the
    weights fit ``budget`` (and ``admit(layer, rank, new_rank)`` agrees); a layer reaching its
    break-even rank goes dense. Ties by ``tie_break(layer)`` (smaller first), then layer order and
    component index: deterministic."""
    candidates = []
    for layer in layers:
        if ranks[layer.name] is None:
            continue
        energy = layer.spectrum.double() ** 2 / step_cost(layer)
        tie = tie_break(layer)
        for index in range(ranks[layer.name], layer.break_even_rank):
            candidates.append((-float(energy[index]), tie, layer.order, index, layer))
    candidates.sort(key=lambda item: item[:4])
    for _, _, _, index, layer in candidates:
        rank = ranks[layer.name]
        if rank is None or rank != index:
            continue
        new_rank: int | None = None if index + 1 >= layer.break_even_rank else index + 1
        extra = layer_cost(layer, new_rank) - layer_cost(layer, rank)
        if spent + extra <= budget and (admit is None or admit(layer, rank, new_rank)):
            ranks[layer.name] = new_rank
            spent += extra
    return ranks


@attrs.frozen(kw_only=True)
class GreedyAllocator(Allocator):
    """Global greedy: components by ``s_i² / (m + n)``; a layer at break-even rank goes dense.

    Ties are broken by layer order then component index, so the result is deterministic.

    ``uniform_floor`` (beyond the paper, a stability-aware option): before the greedy, every layer
    gets ``uniform_floor`` × the parameter fraction a uniform allocation would give it, so that no
    layer is cut to almost nothing (a rollout feeds every layer's error back in); 0 is the plain greedy.
    """

    name: ClassVar[str] = "greedy"

    uniform_floor: float = attrs.field(default=0.0, validator=unit_interval)

    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        ranks, spent = minimum_ranks(layers, self.min_rank, budget)
        if self.uniform_floor > 0:
            ranks, spent = self._floor(layers, ranks, budget)
        return greedy_fill(layers, ranks, spent, budget)

    def _floor(
        self, layers: Sequence[LayerCandidate], ranks: dict[str, int | None], budget: int
    ) -> tuple[dict[str, int | None], int]:
        """Each factored layer at ``uniform_floor`` × the uniform allocation's fraction (it fits:
        the uniform allocation itself does)."""
        fraction = self.uniform_floor * UniformAllocator(min_rank=self.min_rank).fraction(layers, budget)
        floored = {
            layer.name: None
            if ranks[layer.name] is None
            else rank_at_fraction(layer, fraction, self.min_rank)
            for layer in layers
        }
        return floored, total_cost(layers, floored)


@attrs.frozen(kw_only=True)
class UniformAllocator(Allocator):
    """The same fraction ``r`` everywhere: ``k = ⌊r · m n / (m + n)⌋``, ``r`` the largest that fits."""

    name: ClassVar[str] = "uniform"

    def _ranks(self, layers: Sequence[LayerCandidate], fraction: float) -> dict[str, int | None]:
        return {layer.name: rank_at_fraction(layer, fraction, self.min_rank) for layer in layers}

    def fraction(self, layers: Sequence[LayerCandidate], budget: int) -> float:
        """The largest ``r ∈ [0, 1]`` whose uniform ranks fit ``budget``."""
        minimum_ranks(layers, self.min_rank, budget)
        return largest_fitting(lambda r: total_cost(layers, self._ranks(layers, r)) <= budget, 1.0)

    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        return self._ranks(layers, self.fraction(layers, budget))
