"""Each baseline's layer solution against a direct numpy/scipy computation of its formula (BASELINES.md)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from safesvd_core import ConfigError, NumericalError
from safesvd_core.plugin import linear_map
from safesvd_core.testing.strategies import channel_scales, gram_problems, layer_problems, second_moment
from safesvd_methods.baselines.aces import BETA_RANGE, aces_beta
from safesvd_methods.baselines.asvd import ASVD
from safesvd_methods.baselines.dobi import DobiSVD, MaskedMap
from safesvd_methods.baselines.projection import output_basis
from safesvd_methods.baselines.recipes import FWSVD, SAESSVD, SVDLLM, SVDLLMV2, PlainSVD

JITTER = 1e-6


def product(factors) -> np.ndarray:
    return (factors.second @ factors.first).numpy()


def truncate(matrix: np.ndarray, rank: int) -> np.ndarray:
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def gap(matrix: np.ndarray, rank: int) -> bool:
    """The rank-``rank`` truncation is unique (a clear gap after the kept singular values)."""
    s = np.linalg.svd(matrix, compute_uv=False)
    return rank >= len(s) or s[rank - 1] - s[rank] > 1e-6 * max(s[0], 1e-300)


def close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-6) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(np.abs(expected).max(), 1e-12))


def scaled_reference(weight: np.ndarray, rank: int, scale: np.ndarray, exponent: float) -> np.ndarray:
    """ASVD / FWSVD: ``D = diag(√(s^{2a} + ε))`` (relative ε), ``W' = [W D]_k D⁻¹``."""
    squared = scale ** (2 * exponent)
    d = np.sqrt(squared + JITTER * squared.mean())
    return truncate(weight * d, rank) / d


@given(layer_problems())
def test_svd_is_the_truncated_svd(problem):
    weight, rank = problem["weight"], problem["rank"]
    assume(gap(weight.numpy(), rank))
    factors = PlainSVD().plan().solver.solve(weight, rank, {})
    close(product(factors), truncate(weight.numpy(), rank))
    # √Σ split evenly: A = U_k √S_k, so AᵀA = BBᵀ = S_k
    close((factors.second.mT @ factors.second).numpy(), (factors.first @ factors.first.mT).numpy())


@given(layer_problems(), st.data())
def test_asvd_scales_by_activation_magnitude(problem, data):
    weight, rank = problem["weight"], problem["rank"]
    scale = data.draw(channel_scales(weight.shape[1]))
    exponent = data.draw(st.sampled_from([0.5, 0.25, 1.0]))
    squared = scale.numpy() ** (2 * exponent)
    assume(squared.max() > 0 and gap(weight.numpy() * np.sqrt(squared + JITTER * squared.mean()), rank))
    factors = ASVD(scaling_exponent=exponent).plan().solver.solve(weight, rank, {"input_abs_mean": scale})
    close(product(factors), scaled_reference(weight.numpy(), rank, scale.numpy(), exponent), rtol=1e-5)


@given(layer_problems(), st.data())
def test_asvd_with_exponent_zero_is_plain_svd(problem, data):
    weight, rank = problem["weight"], problem["rank"]
    assume(gap(weight.numpy(), rank))
    scale = data.draw(channel_scales(weight.shape[1]))
    factors = ASVD(scaling_exponent=0.0).plan().solver.solve(weight, rank, {"input_abs_mean": scale})
    close(product(factors), truncate(weight.numpy(), rank))


@given(layer_problems(), st.data())
def test_fwsvd_weights_by_the_input_channel_fisher(problem, data):
    weight, rank = problem["weight"], problem["rank"]
    fisher = data.draw(channel_scales(weight.shape[1]))
    assume(
        fisher.max() > 0
        and gap(weight.numpy() * np.sqrt(fisher.numpy() + JITTER * fisher.numpy().mean()), rank)
    )
    factors = FWSVD().plan().solver.solve(weight, rank, {"weight_fisher": fisher})
    close(product(factors), scaled_reference(weight.numpy(), rank, fisher.numpy(), 0.5), rtol=1e-5)


@given(layer_problems(), st.floats(1e-3, 1e3))
def test_fwsvd_with_uniform_fisher_is_plain_svd(problem, level):
    weight, rank = problem["weight"], problem["rank"]
    assume(gap(weight.numpy(), rank))
    fisher = torch.full((weight.shape[1],), level, dtype=torch.float64)
    factors = FWSVD().plan().solver.solve(weight, rank, {"weight_fisher": fisher})
    close(product(factors), truncate(weight.numpy(), rank))


def whitening_reference(weight: np.ndarray, rank: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SVD-LLM: ``H + εI = L Lᵀ`` (float64 Cholesky), ``W' = [W L]_k L⁻¹`` by a triangular solve."""
    lower = np.linalg.cholesky(h + JITTER * np.mean(np.diag(h)) * np.eye(h.shape[0]))
    best = truncate(weight @ lower, rank)
    return scipy.linalg.solve_triangular(lower.T, best.T, lower=False).T, lower


@given(gram_problems())
def test_svd_llm_at_alpha_zero_is_eckart_young_in_the_whitened_space(problem):
    weight, rank, gram = problem["weight"], problem["rank"], problem["gram"]
    sigma = gram / problem["inputs"].shape[0]
    h = sigma.numpy()
    try:
        expected, lower = whitening_reference(weight.numpy(), rank, h)
    except np.linalg.LinAlgError:
        return  # the eigen fallback of the Cholesky is tested in tests/test_solver.py
    assume(gap(weight.numpy() @ lower, rank))
    factors = SVDLLM().plan().solver.solve(weight, rank, {"sigma": sigma})
    close(product(factors), expected, rtol=1e-5)
    close(product(factors) @ lower, truncate(weight.numpy() @ lower, rank), rtol=1e-5)  # [W L]_k


def eigen_reference(weight: np.ndarray, rank: int, h: np.ndarray) -> np.ndarray:
    """SVD-LLM V2: ``H = QΛQᵀ``, ``D = W Q Λ^{1/2}``, ``W' = [D]_k Λ^{+1/2} Qᵀ`` (pseudo-inverse root)."""
    values, q = np.linalg.eigh(h)
    keep = values > h.shape[0] * np.finfo(np.float64).eps * values.max()
    q, root = q[:, keep], np.sqrt(values[keep])
    return truncate(weight @ q * root, rank) / root @ q.T


@given(gram_problems())
def test_svd_llm_v2_eigen_route(problem):
    weight, rank, gram = problem["weight"], problem["rank"], problem["gram"]
    values, q = np.linalg.eigh(gram.numpy())
    keep = values > gram.shape[0] * np.finfo(np.float64).eps * values.max()
    assume(gap(weight.numpy() @ q[:, keep] * np.sqrt(values[keep]), rank))
    factors = SVDLLMV2().plan().solver.solve(weight, rank, {"gram": gram})
    assert factors.record.paths == {"input": "eigen-route"} and not factors.record.fell_back
    close(product(factors), eigen_reference(weight.numpy(), rank, gram.numpy()), rtol=1e-5)


@given(gram_problems(full_rank=True))
def test_svd_llm_v2_equals_svd_llm_on_a_full_rank_gram(problem):
    weight, rank, gram = problem["weight"], problem["rank"], problem["gram"]
    lower = np.linalg.cholesky(gram.numpy())
    assume(gap(weight.numpy() @ lower, rank) and np.linalg.cond(gram.numpy()) < 1e8)
    eigen = SVDLLMV2().plan().solver.solve(weight, rank, {"gram": gram})
    cholesky = (
        SVDLLM(jitter=1e-13).plan().solver.solve(weight, rank, {"sigma": gram / problem["inputs"].shape[0]})
    )
    close(product(eigen), product(cholesky), rtol=1e-6)


@given(gram_problems(full_rank=False))
def test_svd_llm_v2_pseudo_inverse_leaves_unseen_directions_at_zero(problem):
    weight, rank, gram, inputs = problem["weight"], problem["rank"], problem["gram"], problem["inputs"]
    factors = SVDLLMV2().plan().solver.solve(weight, rank, {"gram": gram})
    null = scipy.linalg.null_space(inputs.numpy())  # directions no calibration row reaches
    assert null.shape[1] >= 1
    np.testing.assert_allclose(
        product(factors) @ null, 0.0, atol=1e-8 * max(np.abs(weight.numpy()).max(), 1.0)
    )
    assert "dropped" in factors.record.note


def shift_moments(problem) -> dict[str, torch.Tensor]:
    x, xs = problem["inputs"], problem["shifted_inputs"]
    return {"sigma": second_moment(x), "sigma_shift": second_moment(xs), "sigma_cross": second_moment(x, xs)}


@given(layer_problems())
def test_saes_svd_at_beta_zero_is_svd_llm_on_the_shifted_inputs(problem):
    weight, rank = problem["weight"], problem["rank"]
    stats = shift_moments(problem)
    saes = SAESSVD(beta=0.0).plan().solver.solve(weight, rank, stats)
    svd_llm = SVDLLM().plan().solver.solve(weight, rank, {"sigma": stats["sigma_shift"]})
    close(product(saes), product(svd_llm), rtol=1e-7)


def saes_reference(
    weight: np.ndarray, rank: int, x: np.ndarray, xs: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """``H̃ = X̃ᵀX̃/N (+εI) = LLᵀ``, ``Δ = (X − X̃)ᵀX̃/N``, ``G(β) = W(H̃ + βΔ)L⁻ᵀ``, ``W' = [G]_k L⁻¹``."""
    rows = x.shape[0]
    h = xs.T @ xs / rows
    h = h + JITTER * np.mean(np.diag(h)) * np.eye(h.shape[0])
    delta = (x - xs).T @ xs / rows
    lower = np.linalg.cholesky(h)
    g = scipy.linalg.solve_triangular(lower, (weight @ (h + beta * delta)).T, lower=True).T
    return scipy.linalg.solve_triangular(lower.T, truncate(g, rank).T, lower=False).T, g


@given(layer_problems(max_size=8), st.floats(0.0, 1.0))
def test_saes_svd_with_a_fixed_beta(problem, beta):
    weight, rank = problem["weight"], problem["rank"]
    x, xs = problem["inputs"].numpy(), problem["shifted_inputs"].numpy()
    assume(x.shape[0] > x.shape[1] + 1)
    try:
        expected, g = saes_reference(weight.numpy(), rank, x, xs, beta)
    except np.linalg.LinAlgError:
        return
    assume(gap(g, rank))
    factors = SAESSVD(beta=beta).plan().solver.solve(weight, rank, shift_moments(problem))
    assert factors.record.note == f"beta={beta:.4f}"
    close(product(factors), expected, rtol=1e-5)


@given(layer_problems(max_size=8))
def test_aces_beta_minimises_the_tail_energy_fraction_within_its_range(problem):
    weight, rank = problem["weight"], problem["rank"]
    x, xs = problem["inputs"].numpy(), problem["shifted_inputs"].numpy()
    assume(x.shape[0] > x.shape[1] + 1)
    try:
        _, g0 = saes_reference(weight.numpy(), rank, x, xs, 0.0)
        _, g_one = saes_reference(weight.numpy(), rank, x, xs, 1.0)
    except np.linalg.LinAlgError:
        return
    g1 = g_one - g0
    u, _, vt = np.linalg.svd(g0)
    left, right = u[:, :rank], vt[:rank].T

    def fraction(beta: float) -> float:
        g = g0 + beta * g1
        tail = g - left @ (left.T @ g)
        tail = tail - tail @ right @ right.T
        return float((tail**2).sum() / max((g**2).sum(), 1e-300))

    low, high = BETA_RANGE
    beta = aces_beta(torch.from_numpy(g0), torch.from_numpy(g1), rank, low, high)
    grid = np.linspace(low, high, 2001)
    assert low <= beta <= high
    assert fraction(beta) <= min(fraction(b) for b in grid) + 1e-9
    chosen = SAESSVD().plan().solver.choose_beta(weight, rank, shift_moments(problem))
    assert low <= chosen <= high and fraction(chosen) == pytest.approx(fraction(beta), rel=1e-6, abs=1e-9)


@given(gram_problems())
def test_dobi_weight_update_projects_onto_the_top_output_directions(problem):
    weight, rank, gram = problem["weight"], problem["rank"], problem["gram"]
    sigma = gram / problem["inputs"].shape[0]
    covariance = weight.numpy() @ sigma.numpy() @ weight.numpy().T
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    assume(rank >= len(values) or values[order[rank - 1]] - values[order[rank]] > 1e-6 * values.max())
    top = vectors[:, order[:rank]]
    factors = DobiSVD().plan(None).solver.solve(weight, rank, {"sigma": sigma})
    close(product(factors), top @ top.T @ weight.numpy(), rtol=1e-6)


@given(gram_problems(full_rank=True))
def test_dobi_weight_update_equals_svd_llm_on_a_full_rank_covariance(problem):
    weight, rank, gram = problem["weight"], problem["rank"], problem["gram"]
    sigma = gram / problem["inputs"].shape[0]
    lower = np.linalg.cholesky(sigma.numpy())
    assume(gap(weight.numpy() @ lower, rank) and np.linalg.cond(sigma.numpy()) < 1e8)
    dobi = DobiSVD().plan(None).solver.solve(weight, rank, {"sigma": sigma})
    svd_llm = SVDLLM(jitter=1e-13).plan().solver.solve(weight, rank, {"sigma": sigma})
    close(product(dobi), product(svd_llm), rtol=1e-6)


@pytest.mark.parametrize(
    ("recipe", "statistics", "error", "message"),
    [
        (ASVD(), {}, ConfigError, "needs the statistic 'input_abs_mean'"),
        (ASVD(), {"input_abs_mean": -torch.ones(4, dtype=torch.float64)}, NumericalError, "non-negative"),
        (FWSVD(), {"weight_fisher": torch.ones(3, dtype=torch.float64)}, ConfigError, "3 entries"),
        (SVDLLMV2(), {"gram": torch.full((4, 4), float("nan"), dtype=torch.float64)}, NumericalError, "NaN"),
        (SAESSVD(), {"sigma": torch.eye(4, dtype=torch.float64)}, ConfigError, "shifted-covariance"),
    ],
)
def test_bad_statistics_are_clear_errors(recipe, statistics, error, message):
    with pytest.raises(error, match=message):
        recipe.plan().solver.solve(torch.randn(3, 4, dtype=torch.float64), 2, statistics)


@given(gram_problems(), st.floats(1.0, 12.0))
def test_dobi_soft_mask_is_the_tanh_truncation(problem, gamma):
    weight, rank, inputs = problem["weight"], problem["rank"], problem["inputs"]
    layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(weight)
    basis = output_basis(weight, problem["gram"] / inputs.shape[0])
    window = basis.vectors.shape[1]
    view = linear_map(nn.Sequential(layer), "0")
    masked = MaskedMap(view, basis, nn.Parameter(torch.tensor(gamma, dtype=torch.float64)), 10.0)
    positions = np.arange(1, window + 1)
    expected_mask = 0.5 * np.tanh(10.0 * (min(gamma, window + 0.5) - positions)) + 0.5  # γ ≤ min(m, n) + ½
    np.testing.assert_allclose(masked.mask().detach().numpy(), expected_mask, rtol=1e-12, atol=1e-15)
    v = basis.vectors.numpy()
    expected = (
        inputs.numpy() @ (v @ np.diag(expected_mask) @ v.T @ weight.numpy()).T + layer.bias.detach().numpy()
    )
    close(masked(inputs).detach().numpy(), expected, rtol=1e-9)
    # at γ = k + ½ the soft mask is the hard truncation to k components, up to tanh(5) ≈ 1 − 9e-5
    hard = MaskedMap(view, basis, nn.Parameter(torch.tensor(rank + 0.5, dtype=torch.float64)), 10.0)
    top = v[:, :rank]
    np.testing.assert_allclose(hard.mask().detach().numpy()[:rank], 1.0, atol=1e-4)
    np.testing.assert_allclose(hard.mask().detach().numpy()[rank:], 0.0, atol=1e-4)
    close(
        hard(inputs).detach().numpy(),
        inputs.numpy() @ (top @ top.T @ weight.numpy()).T + layer.bias.detach().numpy(),
        rtol=1e-3,
    )
