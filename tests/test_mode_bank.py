"""``ModeBank``: the grouped forward (dense, factored of mixed ranks, dropped, other maps) equals the
per-mode one that calibration hooks see."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from safesvd_core import LowRankLinear
from safesvd_core.plugin import ModeBank


@given(
    st.lists(st.sampled_from(["dense", "factored", "dropped", "biased"]), min_size=1, max_size=8),
    st.integers(0, 999),
)
def test_grouped_forward_equals_the_per_mode_forward(kinds, seed):
    generator = torch.Generator().manual_seed(seed)
    modes, out_features, in_features = len(kinds), 5, 4
    weights = torch.randn(modes, out_features, in_features, generator=generator, dtype=torch.complex128)
    bank = ModeBank(weights)
    for index, kind in enumerate(kinds):
        if kind == "factored":
            rank = 1 + index % 4
            first = torch.randn(rank, in_features, generator=generator, dtype=torch.complex128)
            second = torch.randn(out_features, rank, generator=generator, dtype=torch.complex128)
            bank.maps[index] = LowRankLinear.from_factors(first, second, None)
        elif kind == "dropped":
            empty = torch.zeros(0, in_features, dtype=torch.complex128)
            bank.maps[index] = LowRankLinear.from_factors(empty, empty.new_zeros(out_features, 0), None)
        elif kind == "biased":  # a map of another kind runs itself
            bank.maps[index] = nn.Linear(in_features, out_features, dtype=torch.complex128)
    coefficients = torch.randn(3, in_features, modes, generator=generator, dtype=torch.complex128)
    grouped = bank(coefficients)
    hook = bank.maps[0].register_forward_hook(lambda *args: None)  # a capture: every mode on its own
    looped = bank(coefficients)
    hook.remove()
    torch.testing.assert_close(grouped, looped, rtol=1e-12, atol=1e-12)
    for index, kind in enumerate(kinds):
        if kind == "dropped":
            assert torch.equal(grouped[..., index], torch.zeros_like(grouped[..., index]))
