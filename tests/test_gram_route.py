"""The Gram route of the whitened solve (``decomposition="gram"``): the same minimiser and spectrum
as the full SVD, a recorded fallback when its accuracy check fails, and the recipes' choices."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given

from safesvd_core import ConfigError, compress
from safesvd_core.plugin import registry, whitened_factorization, whitened_spectrum
from safesvd_core.testing.strategies import layer_problems, second_moment


def _statistics(problem):
    x, xs = problem["inputs"], problem["shifted_inputs"]
    return {
        "sigma": second_moment(x),
        "sigma_shift": second_moment(xs),
        "sigma_cross": second_moment(x, xs),
        "fisher": second_moment(problem["grads"]),
    }


def _objective(problem, factors, stats) -> float:
    """``(1−α)‖S(W−W')‖²_Σ + α(…)`` from the moments, ``SᵀS`` = the Fisher with the routes' common ridge."""
    weight, alpha = problem["weight"], problem["alpha"]
    candidate = factors.second.double() @ factors.first.double()
    fisher = stats["fisher"] + 1e-6 * stats["fisher"].diagonal().mean() * torch.eye(
        weight.shape[0], dtype=torch.float64
    )
    clean = weight - candidate
    clean_term = torch.trace(fisher @ clean @ stats["sigma"] @ clean.mT)
    shifted_term = torch.trace(
        fisher
        @ (
            weight @ stats["sigma"] @ weight.mT
            - 2 * weight @ stats["sigma_cross"] @ candidate.mT
            + candidate @ stats["sigma_shift"] @ candidate.mT
        )
    )
    return float((1 - alpha) * clean_term + alpha * shifted_term)


@given(layer_problems())
def test_gram_route_reaches_the_full_svds_objective(problem):
    stats = _statistics(problem)
    options = {key: stats[key] for key in ("sigma_shift", "sigma_cross", "fisher")}
    routes = {
        decomposition: whitened_factorization(
            problem["weight"],
            problem["rank"],
            stats["sigma"],
            alpha=problem["alpha"],
            decomposition=decomposition,
            **options,
        )
        for decomposition in ("svd", "gram")
    }
    values = {name: _objective(problem, result, stats) for name, result in routes.items()}
    scale = float(
        problem["weight"].pow(2).sum() * stats["sigma"].diagonal().sum() * stats["fisher"].diagonal().sum()
    )
    assert values["gram"] <= values["svd"] * (1 + 1e-6) + 1e-9 * scale, values
    assert routes["gram"].record.paths["decomposition"] in ("gram", "svd-fallback")
    assert routes["svd"].record.paths["decomposition"] == "svd"


@given(layer_problems(shifted=False))
def test_gram_spectrum_matches_the_singular_values(problem):
    stats = _statistics(problem)
    spectra = {
        decomposition: whitened_spectrum(
            problem["weight"], stats["sigma"], fisher=stats["fisher"], decomposition=decomposition
        )
        for decomposition in ("svd", "gram")
    }
    assert spectra["gram"].shape == spectra["svd"].shape
    largest = float(spectra["svd"][0])
    # the Gram route squares the values: the small ones carry an error of about √ε₆₄ of the largest
    assert torch.allclose(spectra["gram"], spectra["svd"], rtol=1e-6, atol=1e-7 * largest + 1e-300)


@pytest.mark.parametrize("shape", [(6, 9), (9, 6)])
def test_failed_check_falls_back_to_the_svd_and_says_so(shape):
    generator = torch.Generator().manual_seed(0)
    m, n = shape
    weight = torch.randn(m, 1, generator=generator, dtype=torch.float64) @ torch.randn(
        1, n, generator=generator, dtype=torch.float64
    )
    inputs = torch.randn(50, n, generator=generator, dtype=torch.float64)
    sigma = second_moment(inputs)
    gram = whitened_factorization(weight, 3, sigma, decomposition="gram")  # rank 3 of a rank-1 weight
    svd = whitened_factorization(weight, 3, sigma, decomposition="svd")
    assert gram.record.paths["decomposition"] == "svd-fallback" and gram.record.fell_back
    assert "Gram check failed" in gram.record.note
    torch.testing.assert_close(gram.second @ gram.first, svd.second @ svd.first)


def test_clean_objective_on_a_wide_layer_factors_no_input_root():
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(4, 8, generator=generator, dtype=torch.float64)
    sigma = second_moment(torch.randn(40, 8, generator=generator, dtype=torch.float64))
    record = whitened_factorization(weight, 2, sigma, decomposition="gram").record
    assert record.paths == {"input": "not factored", "fisher": "none", "decomposition": "gram"}
    assert record.jitters["input"] == pytest.approx(1e-6 * float(sigma.diagonal().mean()))
    assert not record.fell_back


def test_unknown_decomposition_is_refused_everywhere():
    weight, sigma = torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="decomposition must be one of"):
        whitened_factorization(weight, 1, sigma, decomposition="qr")
    with pytest.raises(ConfigError, match="decomposition must be one of"):
        whitened_spectrum(weight, sigma, decomposition="qr")
    with pytest.raises((ConfigError, ValueError), match="decomposition"):
        registry("solver").create("whitened", decomposition="qr")
    with pytest.raises((ConfigError, ValueError), match="decomposition"):
        registry("recipe").create("safe-svd", decomposition="qr")


def test_safe_svd_takes_the_gram_route_and_svd_llm_its_published_svd():
    from safesvd_zoo import reference

    model = reference.load()
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    batches = reference.batches("calibration", batch_size=16)[:2]
    routes = {}
    for recipe in ("safe-svd", "svd-llm"):
        result = compress(model, batches, ratio=0.5, recipe=recipe, adapter_options=options, progress=False)
        routes[recipe] = {record.paths["decomposition"] for record in result.records.values()}
    assert routes == {"safe-svd": {"gram"}, "svd-llm": {"svd"}}


def _cuda_problem(shape: tuple[int, int], with_fisher: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A seeded float64 layer with full-rank moments (rows ``> n``), and a Fisher when asked."""
    generator = torch.Generator().manual_seed(sum(shape) + with_fisher)
    m, n = shape
    weight = torch.randn(m, n, generator=generator, dtype=torch.float64)
    inputs = torch.randn(4 * n, n, generator=generator, dtype=torch.float64)
    shifted = inputs + 0.3 * torch.randn(4 * n, n, generator=generator, dtype=torch.float64)
    stats = {
        "sigma": second_moment(inputs),
        "sigma_shift": second_moment(shifted),
        "sigma_cross": second_moment(inputs, shifted),
    }
    if with_fisher:
        stats["fisher"] = second_moment(torch.randn(4 * m, m, generator=generator, dtype=torch.float64))
    return weight, stats


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("with_fisher", [False, True], ids=["no-fisher", "fisher"])
@pytest.mark.parametrize("shape", [(48, 96), (96, 48)], ids=["wide", "tall"])
def test_gram_route_same_on_cuda(shape, with_fisher, alpha):
    """The Gram route on CUDA float64: the CPU's product ``second @ first``, spectrum and paths."""
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    weight, stats = _cuda_problem(shape, with_fisher)
    on_device = {key: value.cuda() for key, value in stats.items()}
    rank = min(shape) // 4
    routes = {
        device: whitened_factorization(
            weight.to(device),
            rank,
            **(stats if device == "cpu" else on_device),
            alpha=alpha,
            decomposition="gram",
        )
        for device in ("cpu", "cuda")
    }
    assert routes["cuda"].first.device.type == routes["cuda"].second.device.type == "cuda"
    products = {device: (result.second @ result.first).cpu() for device, result in routes.items()}
    difference = torch.linalg.norm(products["cuda"] - products["cpu"]) / torch.linalg.norm(products["cpu"])
    assert float(difference) <= 1e-8, float(difference)
    assert routes["cuda"].record.paths == routes["cpu"].record.paths
    fisher = stats.get("fisher")
    spectra = {
        "cpu": whitened_spectrum(weight, stats["sigma"], fisher=fisher, decomposition="gram"),
        "cuda": whitened_spectrum(
            weight.cuda(), on_device["sigma"], fisher=on_device.get("fisher"), decomposition="gram"
        ).cpu(),
    }
    largest = float(spectra["cpu"][0])
    torch.testing.assert_close(spectra["cuda"], spectra["cpu"], rtol=0.0, atol=1e-6 * largest)
