"""Greedy and uniform allocation specifics (the generic contract is tests/test_conformance_allocators.py)."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import BudgetError, registry
from safesvd_core.methods._allocators import layer_cost
from safesvd_core.plugin import LayerCandidate

ALLOCATORS = ["greedy", "uniform"]


def cost(layers, ranks):
    return sum(layer_cost(layer, ranks[layer.name]) for layer in layers)


@pytest.mark.parametrize("name", ALLOCATORS)
def test_too_small_a_budget_is_an_error(name):
    layers = [LayerCandidate(name="a", out_features=8, in_features=8, spectrum=torch.ones(8), order=0)]
    with pytest.raises(BudgetError, match="rank 1 everywhere needs"):
        registry("allocator").create(name).allocate(layers, 15)


def test_greedy_prefers_energy_per_weight():
    big = LayerCandidate(
        name="big", out_features=64, in_features=64, spectrum=torch.linspace(10, 1, 64), order=0
    )
    small = LayerCandidate(
        name="small", out_features=8, in_features=8, spectrum=torch.full((8,), 0.1), order=1
    )
    ranks = registry("allocator").create("greedy").allocate([big, small], 20 * 128 + 16)
    assert ranks == {"big": 20, "small": 1}


def test_greedy_goes_dense_at_break_even():
    layer = LayerCandidate(name="a", out_features=4, in_features=12, spectrum=torch.ones(4), order=0)
    # break-even rank ⌊48 / 16⌋ = 3: reaching it turns the layer dense, charged 48
    assert layer.break_even_rank == 3
    assert registry("allocator").create("greedy").allocate([layer], 48) == {"a": None}
    assert registry("allocator").create("greedy").allocate([layer], 47) == {"a": 2}


def test_greedy_ties_break_by_layer_order():
    layers = [
        LayerCandidate(name=f"l{i}", out_features=8, in_features=8, spectrum=torch.ones(8), order=i)
        for i in range(2)
    ]
    ranks = registry("allocator").create("greedy").allocate(layers, 3 * 16)
    assert ranks == {"l0": 2, "l1": 1}


def test_uniform_uses_the_same_fraction():
    layers = [
        LayerCandidate(name="a", out_features=64, in_features=64, spectrum=torch.ones(64), order=0),
        LayerCandidate(name="b", out_features=32, in_features=128, spectrum=torch.ones(32), order=1),
    ]
    ranks = registry("allocator").create("uniform").allocate(layers, 4096)
    fractions = [ranks[layer.name] / layer.break_even_rank for layer in layers]
    assert abs(fractions[0] - fractions[1]) < 0.1
    assert cost(layers, ranks) <= 4096
