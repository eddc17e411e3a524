"""The complex solve of a Fourier mode: the weighted optimum (Eckart–Young after whitening), exact at
full rank, a dropped mode gives exactly zero, and the Hermitian statistics it is fed."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import LowRankLinear
from safesvd_core.plugin import ModeBank, RunningMoment, whitened_factorization


def _complex(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.complex(
        torch.randn(*shape, generator=generator, dtype=torch.float64),
        torch.randn(*shape, generator=generator, dtype=torch.float64),
    )


def _problem(seed: int, m: int, n: int, rows: int):
    generator = torch.Generator().manual_seed(seed)
    weight = _complex(generator, m, n)
    x = _complex(generator, rows, n) @ _complex(generator, n, n)  # correlated coefficients
    g = _complex(generator, rows, m)
    sigma, fisher = RunningMoment(n, n), RunningMoment(m, m)
    sigma.add(x)
    fisher.add(g)
    return weight, x, g, sigma.mean(), fisher.mean()


def _objective(
    weight: torch.Tensor, candidate: torch.Tensor, sigma: torch.Tensor, fisher: torch.Tensor
) -> float:
    """tr(F (W − W') Σ (W − W')ᴴ): the Fisher-weighted error over the inputs."""
    delta = weight - candidate
    return float(torch.trace(fisher @ delta @ sigma @ delta.mH).real)


shapes = st.tuples(st.integers(2, 7), st.integers(2, 7), st.integers(0, 2**31 - 1))


@given(shapes, st.sampled_from(["svd", "gram"]))
def test_reaches_the_weighted_optimum(shape, decomposition):
    m, n, seed = shape
    weight, _, _, sigma, fisher = _problem(seed, m, n, rows=4 * (m + n))
    rank = max(1, min(m, n) - 1)
    result = whitened_factorization(
        weight, rank, sigma, fisher=fisher, decomposition=decomposition, jitter=1e-12
    )
    assert result.first.is_complex() and result.second.is_complex()
    got = _objective(weight, result.second @ result.first, sigma, fisher)
    # Eckart–Young: the discarded squared singular values of S W L, S = chol(F)ᴴ, Σ = L Lᴴ
    s_root = torch.linalg.cholesky(fisher).mH
    l_root = torch.linalg.cholesky(sigma)
    values = torch.linalg.svdvals(s_root @ weight @ l_root)
    optimum = float(values[rank:].pow(2).sum())
    assert abs(got - optimum) <= 1e-6 * float(values.pow(2).sum()) + 1e-9
    generator = torch.Generator().manual_seed(seed + 1)
    for _ in range(3):  # nearby rank-k candidates are never better
        first = result.first + 1e-2 * _complex(generator, *result.first.shape)
        second = result.second + 1e-2 * _complex(generator, *result.second.shape)
        assert got <= _objective(weight, second @ first, sigma, fisher) * (1 + 1e-9) + 1e-12


@given(shapes)
def test_full_rank_leaves_the_mode_unchanged(shape):
    m, n, seed = shape
    weight, _, _, sigma, fisher = _problem(seed, m, n, rows=4 * (m + n))
    result = whitened_factorization(weight, min(m, n), sigma, fisher=fisher)
    torch.testing.assert_close(result.second @ result.first, weight, rtol=1e-8, atol=1e-8)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**31 - 1))
def test_a_dropped_mode_gives_exactly_zero_and_the_others_are_untouched(m, n, modes, seed):
    generator = torch.Generator().manual_seed(seed)
    weights = _complex(generator, modes, m, n).to(torch.complex64)
    bank = ModeBank(weights)
    coefficients = _complex(generator, 3, n, modes).to(torch.complex64)
    before = bank(coefficients)
    bank.maps[0] = LowRankLinear.from_factors(
        weights.new_zeros(0, n), weights.new_zeros(m, 0), None
    )  # rank 0
    after = bank(coefficients)
    assert torch.equal(after[..., 0], torch.zeros_like(after[..., 0]))
    torch.testing.assert_close(
        after[..., 1:], before[..., 1:], rtol=1e-6, atol=1e-6
    )  # one product, other grouping
    assert torch.equal(bank.weight[0], torch.zeros(m, n, dtype=torch.complex64))


def test_complex_rows_give_hermitian_moments():
    generator = torch.Generator().manual_seed(0)
    rows = _complex(generator, 50, 4)
    moment = RunningMoment(4, 4)
    moment.add(rows[:20])
    moment.add(rows[20:])
    mean = moment.mean()
    assert mean.dtype == torch.complex128
    torch.testing.assert_close(mean, mean.mH)
    torch.testing.assert_close(mean, rows.mT @ rows.conj() / 50)  # E[x xᴴ] of column vectors x
