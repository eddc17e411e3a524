"""Rank 0: a Fourier mode the greedy allocator drops (only a layer marked ``droppable``), carried by a
weightless ``LowRankLinear`` through the solve, saving and loading."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import LowRankLinear, registry
from safesvd_core.methods._allocators import total_cost
from safesvd_core.plugin import LayerCandidate


def _candidate(name: str, order: int, spectrum: list[float], *, droppable: bool) -> LayerCandidate:
    return LayerCandidate(
        name=name,
        out_features=8,
        in_features=8,
        spectrum=torch.tensor(spectrum, dtype=torch.float64),
        order=order,
        droppable=droppable,
    )


@given(
    st.lists(st.floats(0.0, 10.0), min_size=4, max_size=4),
    st.lists(st.booleans(), min_size=4, max_size=4),
    st.integers(16, 200),
    st.integers(1, 2),
)
def test_only_droppable_layers_get_rank_zero_and_the_budget_holds(scales, droppable, budget, min_rank):
    layers = [
        _candidate(f"layer{i}", i, [scale * 0.5**j for j in range(8)], droppable=drop)
        for i, (scale, drop) in enumerate(zip(scales, droppable, strict=True))
    ]
    floor = sum(0 if layer.droppable else min_rank * layer.params_per_rank for layer in layers)
    if floor > budget:
        return
    ranks = registry("allocator").create("greedy", min_rank=min_rank).allocate(layers, budget)
    assert total_cost(layers, ranks) <= budget
    for layer in layers:
        rank = ranks[layer.name]
        assert rank != 0 or layer.droppable
        assert rank is None or rank == 0 or rank >= min_rank


def test_a_droppable_layer_without_energy_is_dropped_and_one_with_energy_kept():
    layers = [
        _candidate("silent", 0, [0.0] * 8, droppable=True),
        _candidate("busy", 1, [4.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.0, 0.0], droppable=True),
    ]
    ranks = registry("allocator").create("greedy").allocate(layers, 2 * 16)
    assert ranks == {"silent": 0, "busy": 2}


def test_rank_zero_outputs_the_bias_and_saves_no_weights():
    layer = LowRankLinear.from_factors(torch.zeros(0, 5), torch.zeros(3, 0), torch.tensor([1.0, 2.0, 3.0]))
    assert layer.rank == 0 and sum(p.numel() for p in layer.parameters()) == 3
    torch.testing.assert_close(layer(torch.randn(4, 5)), torch.tensor([1.0, 2.0, 3.0]).expand(4, 3))
    complex_mode = LowRankLinear.from_factors(
        torch.zeros(0, 5, dtype=torch.complex64), torch.zeros(3, 0, dtype=torch.complex64), None
    )
    assert torch.equal(
        complex_mode(torch.randn(2, 5, dtype=torch.complex64)), torch.zeros(2, 3, dtype=torch.complex64)
    )
