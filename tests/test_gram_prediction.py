"""The Gram route's fallback predicted from the allocation's proxy spectrum: a layer whose proxy
``(σ_k/σ₁)²`` lies below the check's floor takes the full SVD at once, recorded as the fallback,
instead of paying for the Gram route and throwing it away. The factors are those of the fallback."""

from __future__ import annotations

import torch
from chain_helpers import random_pairs
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from safesvd_core import compress
from safesvd_core.kinds._interfaces import Solver
from safesvd_core.methods._whitened_solver import WhitenedSolver
from safesvd_core.statistics._gram import gram_floor


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=1, max_size=40),
    rank=st.integers(1, 40),
    decomposition=st.sampled_from(["gram", "svd"]),
)
def test_the_full_svd_is_chosen_exactly_when_the_proxy_ratio_is_below_the_floor(values, rank, decomposition):
    spectrum = torch.tensor(sorted(values, reverse=True), dtype=torch.float64)
    solver = WhitenedSolver(decomposition=decomposition)
    chosen, note = solver.for_layer(rank, spectrum)
    if decomposition == "svd" or rank > len(values):
        assert chosen is solver and note == ""
        return
    largest = float(spectrum[0])
    ratio = (float(spectrum[rank - 1]) / largest) ** 2 if largest > 0 else 0.0
    below = ratio < gram_floor(len(values))
    assert (chosen.decomposition == "svd") == below
    assert bool(note) == below and (not below or "predicted" in note)
    assert chosen.alpha == solver.alpha and chosen.jitter == solver.jitter


def test_an_unknown_spectrum_keeps_the_solver():
    solver = WhitenedSolver()
    assert solver.for_layer(3, None) == (solver, "")


class Wide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(64, 256), nn.Linear(256, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.tanh(self.up(x)))


def test_predicted_layers_are_those_that_fall_back_and_get_the_same_factors(monkeypatch):
    torch.manual_seed(0)
    model = Wide().eval()
    # 4 calibration rows for 64 and 256 features: both covariances are of rank 4, so the kept
    # components beyond it stand at the jitter of both, below the Gram check's floor
    items = random_pairs(2, 2, 64, seed=1)
    predicted = compress(model, items, ratio=0.6)
    noted = {name for name, record in predicted.records.items() if "predicted" in record.note}
    assert noted and noted <= set(predicted.fallbacks)
    monkeypatch.setattr(WhitenedSolver, "for_layer", Solver.for_layer)
    attempted = compress(model, items, ratio=0.6)
    fell_back = {
        name for name, record in attempted.records.items() if record.paths["decomposition"] == "svd-fallback"
    }
    assert fell_back == noted
    first, second = predicted.model.state_dict(), attempted.model.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
