"""ASVD's search, SVD-LLM V2's grouped allocation and Dobi-SVD's budget projection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from safesvd_core import BudgetError
from safesvd_core.methods._allocators import rank_at_fraction, total_cost
from safesvd_core.plugin import LayerCandidate
from safesvd_core.testing.strategies import layer_candidates
from safesvd_methods.baselines.asvd_search import ASVD_RATIOS, ASVDAllocator
from safesvd_methods.baselines.dobi import ranks_within_budget
from safesvd_methods.baselines.grouped import GroupedAllocator


def floor_cost(layers, fraction):
    return total_cost(layers, {layer.name: rank_at_fraction(layer, fraction, 1) for layer in layers})


def full(layers):
    return sum(layer.dense_params for layer in layers)


def asvd_reference(layers, budget, sensitivity):
    """The search done by a linear scan: the shortest suffix of the most-damaging-first list that fits."""
    triples = [(layer.name, r, sensitivity(layer, r)) for layer in layers for r in ASVD_RATIOS]
    ordered = sorted(triples, key=lambda t: -t[2])
    for start in range(len(ordered), -1, -1):
        smallest = {}
        for name, r, _ in ordered[start:]:
            smallest[name] = min(smallest.get(name, 1.0), r)
        ranks = {
            layer.name: rank_at_fraction(layer, smallest[layer.name], 1) if layer.name in smallest else None
            for layer in layers
        }
        if total_cost(layers, ranks) <= budget:
            return ranks
    return None


def stable_rank_sensitivity(layer, ratio):
    s = layer.spectrum.numpy()
    sr = np.linalg.norm(s) / s.max() if s.max() > 0 else 0.0
    return -sr * ratio**0.1


@given(layers=layer_candidates(), fraction=st.floats(0.0, 1.1))
def test_asvd_search_is_the_shortest_fitting_suffix(layers, fraction):
    low = floor_cost(layers, ASVD_RATIOS[0])
    budget = low + int(fraction * (full(layers) - low))
    ranks = ASVDAllocator().allocate(layers, budget)
    assert total_cost(layers, ranks) <= budget
    assert ranks == asvd_reference(layers, budget, stable_rank_sensitivity)


def test_asvd_search_with_a_loss_table():
    layers = [
        LayerCandidate(name=name, out_features=64, in_features=64, spectrum=torch.ones(64), order=i)
        for i, name in enumerate(("a", "b"))
    ]
    # layer a barely suffers from compression, layer b a lot
    losses = {
        "a": {r: 1.0 + 0.01 * (1 - r) for r in ASVD_RATIOS},
        "b": {r: 1.0 + 10.0 * (1 - r) for r in ASVD_RATIOS},
    }
    allocator = ASVDAllocator(losses=losses)
    dense = 4096  # one dense 64 × 64 layer
    ranks = allocator.allocate(layers, dense + 8 * 128)  # room for layer a at rank ≤ 8
    assert ranks == {"a": 6, "b": None}  # a at ratio 0.2 (rank ⌊0.2 · 4096 / 128⌋) before b is touched
    assert allocator.allocate(layers, 2 * 4096) == {"a": None, "b": None}
    with pytest.raises(BudgetError, match="smallest ratio 0.1"):
        allocator.allocate(layers, 2 * 3 * 128 - 1)
    with pytest.raises(Exception, match="lacks layer 'b'"):
        ASVDAllocator(losses={"a": losses["a"]}).allocate(layers, 8192)


def v2_weight(loss):
    return 1 / math.log(loss) if loss > 1 else 1 / math.log1p(loss)


def test_grouped_kept_fractions_follow_the_inverse_log_rule():
    spectra = {
        "0.query": [8.0, 4.0, 3.0, 2.0],
        "1.query": [8.0, 1.0, 0.5, 0.25],
        "0.value": [2.0, 1.0, 1.0, 1.0],
    }
    layers = [
        LayerCandidate(
            name=name,
            out_features=8,
            in_features=8,
            spectrum=torch.tensor(s + [0.0] * 4, dtype=torch.float64),
            order=i,
        )
        for i, (name, s) in enumerate(spectra.items())
    ]
    fraction = 0.5  # uniform rank ⌊0.5 · 64 / 16⌋ = 2
    kept = GroupedAllocator().kept_fractions(layers, fraction)
    tails = {name: float(np.linalg.norm(s[2:])) for name, s in spectra.items()}
    w0, w1 = v2_weight(tails["0.query"]), v2_weight(tails["1.query"])
    assert kept["0.query"] == pytest.approx(1 - 2 * 0.5 * w0 / (w0 + w1))
    assert kept["1.query"] == pytest.approx(max(0.0, 1 - 2 * 0.5 * w1 / (w0 + w1)))
    assert kept["0.value"] == pytest.approx(0.5)  # a group of one keeps the uniform fraction
    assert kept["0.query"] > kept["1.query"]  # more truncation loss, less reduction


def test_grouped_without_the_fix_can_miss_the_budget():
    # one group of two 16 × 16 layers: a near-singular one (tiny loss, huge weight) and a full one
    layers = [
        LayerCandidate(name=f"{i}.fc", out_features=16, in_features=16, spectrum=spectrum, order=i)
        for i, spectrum in enumerate(
            (
                torch.tensor([9.0] + [1e-3] * 15, dtype=torch.float64),
                torch.linspace(9.0, 5.0, 16, dtype=torch.float64),
            )
        )
    ]
    budget = 256  # half of the dense weights
    unfixed = GroupedAllocator(fix_budget=False).allocate(layers, budget)
    assert total_cost(layers, unfixed) > budget  # the near-singular layer's reduction is clipped at 1
    assert total_cost(layers, GroupedAllocator().allocate(layers, budget)) <= budget


@given(layers=layer_candidates(), fraction=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_dobi_projection_onto_the_budget(layers, fraction, seed):
    low = sum(layer.dense_params if layer.break_even_rank <= 1 else layer.params_per_rank for layer in layers)
    budget = low + int(fraction * (full(layers) - low))
    generator = torch.Generator().manual_seed(seed)
    gammas = {
        layer.name: float(
            1 + torch.rand((), generator=generator) * min(layer.out_features, layer.in_features)
        )
        for layer in layers
    }
    ranks, scale = ranks_within_budget(layers, gammas, budget, 1)
    assert total_cost(layers, ranks) <= budget and scale >= 0
    assume(scale > 0)
    for layer in layers:
        if ranks[layer.name] is not None:
            assert ranks[layer.name] == max(1, math.floor(scale * gammas[layer.name]))
