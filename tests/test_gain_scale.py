"""The greedy's ``gains``: per calibration input (rows × calls weigh a layer's gains) or per row."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safesvd_core import ConfigError, registry
from safesvd_core.plugin import LayerCandidate


def candidate(name: str, order: int, spectrum: torch.Tensor, rows: int, calls: int = 1) -> LayerCandidate:
    size = spectrum.numel()
    return LayerCandidate(
        name=name, out_features=size, in_features=size, spectrum=spectrum, order=order, rows=rows, calls=calls
    )


def greedy(**options):
    return registry("allocator").create("greedy", **options)


def test_a_layer_seeing_more_rows_per_input_weighs_more():
    """A mode (one row per input) with larger per-row gains than a grid convolution (1,024 rows):
    per row the mode wins the budget, per input the convolution does."""
    mode = candidate("mode", 0, torch.full((8,), 4.0), rows=32)
    conv = candidate("conv", 1, torch.full((8,), 1.0), rows=32 * 1024)
    budget = 2 * 16  # two components of one 8 × 8 layer, one each at the floor (rank 1)
    assert greedy(gains="per-row").allocate([mode, conv], budget + 16) == {"mode": 2, "conv": 1}
    assert greedy().allocate([mode, conv], budget + 16) == {"mode": 1, "conv": 2}


def test_calls_count_like_rows():
    """A layer called K times per input (a rollout) gains K times its rows."""
    once = candidate("once", 0, torch.full((8,), 1.3), rows=64)
    twice = candidate("twice", 1, torch.full((8,), 1.0), rows=64, calls=2)
    assert greedy().allocate([once, twice], 3 * 16) == {"once": 1, "twice": 2}
    assert greedy(gains="per-row").allocate([once, twice], 3 * 16) == {"once": 2, "twice": 1}


@settings(max_examples=40, deadline=None)
@given(
    spectra=st.lists(
        st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=4, max_size=4), min_size=1, max_size=4
    ),
    rows=st.integers(1, 4096),
    extra=st.integers(0, 64),
)
def test_equal_rows_change_nothing(spectra, rows, extra):
    """Where every layer sees the same rows per input, per input and per row give the same ranks."""
    layers = [
        candidate(f"l{i}", i, torch.tensor(sorted(values, reverse=True), dtype=torch.float64), rows)
        for i, values in enumerate(spectra)
    ]
    budget = 8 * len(layers) + extra
    assert greedy().allocate(layers, budget) == greedy(gains="per-row").allocate(layers, budget)


def test_candidates_without_rows_weigh_the_same():
    """Candidates that all lack rows (built by hand) allocate as per row."""
    layers = [candidate("a", 0, torch.full((8,), 2.0), rows=0), candidate("b", 1, torch.ones(8), rows=0)]
    assert greedy().allocate(layers, 48) == greedy(gains="per-row").allocate(layers, 48)


def test_some_candidates_without_rows_are_refused():
    layers = [candidate("a", 0, torch.ones(8), rows=0), candidate("b", 1, torch.ones(8), rows=16)]
    with pytest.raises(ConfigError, match="needs every candidate's rows.*'a'"):
        greedy().allocate(layers, 48)


def test_an_unknown_gain_scale_is_refused():
    with pytest.raises(ConfigError, match="gains"):
        greedy(gains="per-token")
