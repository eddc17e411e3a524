"""The closed-form solver: optimality, exactness, SVD-LLM equivalence, PD fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import ConfigError, NumericalError, solve_factors
from safesvd_core.plugin import (
    psd_root,
    singular_values,
    thin_svd,
    whitened_factorization,
    whitened_spectrum,
)
from safesvd_core.testing.strategies import layer_problems, second_moment


def moments(problem):
    x, xs = problem["inputs"], problem["shifted_inputs"]
    return second_moment(x), second_moment(xs), second_moment(x, xs), second_moment(problem["grads"])


def objective(weight, candidate, x, xs, fisher, alpha):
    """J(W') of docs/method.md (the paper's eq. 4), evaluated directly on the rows with S = chol(F)ᵀ."""
    s = torch.linalg.cholesky(fisher + 1e-9 * torch.eye(fisher.shape[0], dtype=fisher.dtype)).mT
    clean = ((s @ (weight - candidate) @ x.mT) ** 2).sum(0).mean()
    shifted = ((s @ (weight @ x.mT - candidate @ xs.mT)) ** 2).sum(0).mean()
    return (1 - alpha) * clean + alpha * shifted


@given(layer_problems(), st.integers(0, 2**31 - 1))
def test_solution_beats_random_rank_k_candidates(problem, seed):
    sigma, shift, cross, fisher = moments(problem)
    weight, rank, alpha = problem["weight"], problem["rank"], problem["alpha"]
    b, a = solve_factors(
        weight, rank, sigma, sigma_shift=shift, sigma_cross=cross, fisher=fisher, alpha=alpha
    )
    assert a.shape == (weight.shape[0], rank) and b.shape == (rank, weight.shape[1])
    x, xs = problem["inputs"], problem["shifted_inputs"]
    best = objective(weight, a @ b, x, xs, fisher, alpha)
    generator = torch.Generator().manual_seed(seed)
    m, n = weight.shape
    # random rank-k candidates, and small perturbations of the optimum (the hardest competitors)
    for scale in (1.0, 1e-2):
        for _ in range(5):
            left = a + scale * torch.randn(m, rank, generator=generator, dtype=torch.float64)
            right = b + scale * torch.randn(rank, n, generator=generator, dtype=torch.float64)
            other = objective(weight, left @ right, x, xs, fisher, alpha)
            assert best <= other * (1 + 1e-6) + 1e-9


@given(layer_problems(shifted=False))
def test_full_rank_is_exact_without_shift(problem):
    sigma = second_moment(problem["inputs"]) + torch.eye(problem["inputs"].shape[1], dtype=torch.float64)
    weight = problem["weight"]
    full = min(weight.shape)
    if full != weight.shape[1]:
        # at rank n the product can represent every W' exactly only when n ≤ m
        return
    b, a = solve_factors(weight, full, sigma, fisher=second_moment(problem["grads"]), alpha=problem["alpha"])
    torch.testing.assert_close(a @ b, weight, rtol=1e-7, atol=1e-7)


@given(layer_problems())
def test_full_rank_reaches_unconstrained_optimum(problem):
    sigma, shift, cross, fisher = moments(problem)
    weight, alpha = problem["weight"], problem["alpha"]
    m, n = weight.shape
    if n > m:
        return
    eye = torch.eye(n, dtype=torch.float64)
    sigma, shift, cross = sigma + eye, shift + eye, cross + eye  # keep C well conditioned
    b, a = solve_factors(weight, n, sigma, sigma_shift=shift, sigma_cross=cross, fisher=fisher, alpha=alpha)
    combined = (1 - alpha) * sigma + alpha * shift
    target = (1 - alpha) * sigma + alpha * cross
    ridge = 1e-6 * torch.diagonal(combined).mean() * eye  # the jitter acts on C and B alike
    optimum = weight @ (target + ridge) @ torch.linalg.inv(combined + ridge)  # ∂J/∂W' = 0
    torch.testing.assert_close(a @ b, optimum, rtol=1e-6, atol=1e-6)


@given(layer_problems(shifted=False))
def test_alpha_zero_without_fisher_is_svd_llm_whitening(problem):
    """SVD-LLM: H = L Lᵀ (Cholesky), SVD of W L, W' = U_k Σ_k V_kᵀ L⁻¹ — computed here in numpy."""
    weight, rank = problem["weight"], problem["rank"]
    sigma = second_moment(problem["inputs"])
    b, a = solve_factors(weight, rank, sigma, alpha=0.0)
    h = sigma.numpy()
    h = h + 1e-6 * np.mean(np.diag(h)) * np.eye(h.shape[0])
    try:
        lower = np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return  # the eigen path is tested separately
    u, s, vt = np.linalg.svd(weight.numpy() @ lower, full_matrices=False)
    expected = (u[:, :rank] * s[:rank]) @ vt[:rank] @ np.linalg.inv(lower)
    np.testing.assert_allclose((a @ b).numpy(), expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


@given(layer_problems(max_size=10))
def test_fewer_rows_than_inputs_still_solves(problem):
    weight = problem["weight"]
    n = weight.shape[1]
    rows = problem["inputs"][: max(1, n // 3)]
    sigma = second_moment(rows)
    result = whitened_factorization(
        weight, problem["rank"], sigma, fisher=second_moment(problem["grads"][:1])
    )
    assert torch.isfinite(result.first).all() and torch.isfinite(result.second).all()
    assert {result.record.paths["input"], result.record.paths["fisher"]} <= {"cholesky", "eigen"}


def test_eigen_fallback_is_recorded_and_correct():
    # Cholesky of a matrix with a hugely negative eigenvalue fails even after the jitter
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    matrix = q @ torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0, -1.0], dtype=torch.float64)) @ q.mT
    root = psd_root(matrix)
    assert root.path == "eigen"
    clamped = q @ torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0, root.jitter], dtype=torch.float64)) @ q.mT
    torch.testing.assert_close(root.factor @ root.factor.mT, clamped)
    rhs = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(root.factor @ root.solve(rhs), rhs)
    torch.testing.assert_close(root.factor.mT @ root.solve_transposed(rhs), rhs)


def test_zero_statistics_use_identity_and_say_so():
    weight = torch.randn(4, 6, dtype=torch.float64)
    result = whitened_factorization(weight, 2, torch.zeros(6, 6, dtype=torch.float64))
    assert result.record.paths["input"] == "identity" and result.record.fell_back
    u, s, vh = torch.linalg.svd(weight)
    torch.testing.assert_close(result.second @ result.first, (u[:, :2] * s[:2]) @ vh[:2])


@pytest.mark.parametrize("decomposition", ["svd", "gram"])
@pytest.mark.parametrize("shape", [(4, 6), (6, 4)])
@pytest.mark.parametrize("with_fisher", [False, True])
def test_a_layer_that_sees_no_input_has_a_zero_spectrum(decomposition, shape, with_fisher):
    """Zero input statistics: the solve falls back to the plain SVD (above), but the allocation must
    not read that as gain: no component of a layer without input is worth a rank."""
    weight = torch.randn(*shape, dtype=torch.float64)
    fisher = torch.eye(shape[0], dtype=torch.float64) if with_fisher else None
    sigma = torch.zeros(shape[1], shape[1], dtype=torch.float64)
    spectrum = whitened_spectrum(weight, sigma, fisher=fisher, decomposition=decomposition)
    assert spectrum.shape == (min(shape),) and not spectrum.any()
    busy = whitened_spectrum(weight, torch.eye(shape[1], dtype=torch.float64), fisher=fisher)
    assert busy.min() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": 0}, "rank must be an integer"),
        ({"rank": 5}, "rank must be an integer"),
        ({"alpha": 1.5}, "alpha must lie"),
        ({"sigma": torch.eye(3, dtype=torch.float64)}, "sigma must have shape"),
        ({"sigma_shift": torch.eye(4, dtype=torch.float64)}, "given together"),
        ({"fisher": torch.eye(4, dtype=torch.float64)}, "fisher must have shape"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message):
    arguments = {
        "weight": torch.randn(3, 4, dtype=torch.float64),
        "rank": 2,
        "sigma": torch.eye(4, dtype=torch.float64),
    }
    arguments.update(kwargs)
    weight, rank, sigma = arguments.pop("weight"), arguments.pop("rank"), arguments.pop("sigma")
    with pytest.raises(ConfigError, match=message):
        solve_factors(weight, rank, sigma, **arguments)


def test_nan_statistics_are_refused():
    sigma = torch.eye(4, dtype=torch.float64)
    sigma[0, 0] = float("nan")
    with pytest.raises(NumericalError, match="NaN"):
        solve_factors(torch.randn(3, 4), 2, sigma)


def test_factors_keep_the_weight_dtype():
    b, a = solve_factors(torch.randn(3, 4), 2, torch.eye(4))
    assert a.dtype == b.dtype == torch.float32


@given(rows=st.integers(1, 12), cols=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_thin_svd_on_either_orientation_is_a_thin_svd(rows, cols, seed):
    matrix = torch.randn(rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    u, s, vh = thin_svd(matrix)
    k = min(rows, cols)
    assert u.shape == (rows, k) and s.shape == (k,) and vh.shape == (k, cols)
    torch.testing.assert_close(u @ torch.diag(s) @ vh, matrix, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(u.mT @ u, torch.eye(k, dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(vh @ vh.mT, torch.eye(k, dtype=torch.float64), rtol=0, atol=1e-10)
    assert bool((s[:-1] >= s[1:]).all())
    torch.testing.assert_close(singular_values(matrix), s, rtol=1e-10, atol=1e-10)
