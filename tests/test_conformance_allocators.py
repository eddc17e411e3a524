"""Every built-in allocator runs the shipped conformance suite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from safesvd_core.methods._allocators import rank_at_fraction
from safesvd_core.plugin import Allocator, LayerCandidate
from safesvd_core.testing.allocators import AllocatorConformance, allocation_cost
from safesvd_methods.baselines.grouped import GroupedAllocator


class TestGreedy(AllocatorConformance):
    plugin_name: ClassVar[str] = "greedy"


class TestGreedyWithUniformFloor(AllocatorConformance):
    """The stability-aware option: every layer keeps at least half the uniform allocation's fraction."""

    plugin_name: ClassVar[str] = "greedy"
    options: ClassVar = {"uniform_floor": 0.5}


def time_proportional_to_parameters(out: int, inputs: int, rows: int, rank: int | None) -> float:
    """A cost model in which a layer's time is its parameter count:
    the latency allocator is then the greedy."""
    return float(out * inputs if rank is None else rank * (out + inputs))


class TestLatency(AllocatorConformance):
    """With an injected cost model, so that the suite measures nothing."""

    plugin_name: ClassVar[str] = "latency"
    options: ClassVar = {"timing": time_proportional_to_parameters}


class TestUniform(AllocatorConformance):
    plugin_name: ClassVar[str] = "uniform"


class TestASVD(AllocatorConformance):
    """The stable-rank search (no loss table)."""

    plugin_name: ClassVar[str] = "asvd"

    def smallest_budget(self, allocator: Allocator, layers: Sequence[LayerCandidate]) -> int:
        """Every layer at ASVD's smallest ratio: its search compresses no further."""
        smallest = {
            layer.name: rank_at_fraction(layer, allocator.ratios[0], allocator.min_rank) for layer in layers
        }
        return allocation_cost(layers, smallest)


class TestGrouped(AllocatorConformance):
    """With the budget fix (default); ``fix_budget=False`` reproduces SVD-LLM V2's budget miss on purpose."""

    plugin_name: ClassVar[str] = "grouped"
    #: Not monotone, by design: the kept fractions are redistributed around each budget's uniform
    #: fraction (by the truncation loss at the uniform rank, per type group) and then scaled by one
    #: common factor; a larger budget moves the redistribution, and the new fractions' common scale can
    #: step over the budget where the old one did not (test_grouped_can_keep_fewer_weights_under_more_budget).
    monotone_in_budget: ClassVar[bool] = False


def test_grouped_can_keep_fewer_weights_under_more_budget():
    """Why TestGrouped turns monotonicity off; if this fails, grouped became monotone: turn it on."""
    shapes = {
        "0.q": (3, 9, [6.0, 5.0, 3.0]),
        "1.q": (7, 3, [8.0, 6.0, 5.0]),
        "2.q": (3, 10, [6.0, 3.0, 0.0]),
        "3.q": (3, 10, [3.0, 2.0, 0.0]),
    }
    layers = [
        LayerCandidate(
            name=name, out_features=m, in_features=n, spectrum=torch.tensor(s, dtype=torch.float64), order=i
        )
        for i, (name, (m, n, s)) in enumerate(shapes.items())
    ]
    allocator = GroupedAllocator()
    assert allocation_cost(layers, allocator.allocate(layers, 81)) == 80
    assert allocation_cost(layers, allocator.allocate(layers, 82)) == 74
