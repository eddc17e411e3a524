"""Estimators: streaming equals the one-shot formulas, energy balancing, calibration statistics.

The generic contract (merging, reducing, states, errors) is tests/test_conformance_estimators.py."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import CalibrationStatistics, ConfigError, registry
from safesvd_core.methods._estimators import balance
from safesvd_core.plugin import LayerSignals
from safesvd_core.testing.strategies import second_moment


@st.composite
def chunked_rows(draw):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(1, 8))
    rows = draw(st.integers(1, 40))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    data = {
        "x": torch.randn(rows, n, generator=generator),
        "xs": torch.randn(rows, n, generator=generator),
        "g": torch.randn(rows, m, generator=generator),
    }
    cuts = sorted(draw(st.lists(st.integers(0, rows), max_size=6)))
    bounds = [0, *cuts, rows]
    chunks = [(a, b) for a, b in pairwise(bounds) if b > a]
    return n, m, data, chunks


def feed(estimator, data, chunks):
    for a, b in chunks:
        estimator.update(
            LayerSignals(inputs=data["x"][a:b], shifted_inputs=data["xs"][a:b], output_grads=data["g"][a:b])
        )


EXPECTED = {
    "clean-covariance": lambda d: {"sigma": second_moment(d["x"].double())},
    "shifted-covariance": lambda d: {
        "sigma_shift": second_moment(d["xs"].double()),
        "sigma_cross": second_moment(d["x"].double(), d["xs"].double()),
    },
    "output-fisher": lambda d: {"fisher": second_moment(d["g"].double())},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@given(chunked_rows())
def test_streaming_over_any_chunking_equals_one_shot(name, case):
    n, m, data, chunks = case
    estimator = registry("estimator").create(name, in_features=n, out_features=m)
    feed(estimator, data, chunks)
    stats = estimator.statistics()
    for key, value in EXPECTED[name](data).items():
        assert stats[key].dtype == torch.float64
        torch.testing.assert_close(stats[key], value)


def test_energy_balanced_weights_domains_by_trace():
    estimator = registry("estimator").create(
        "energy-balanced", in_features=2, out_features=2, inner=("clean-covariance", "output-fisher")
    )
    loud = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    quiet = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    estimator.update(LayerSignals(inputs=loud, output_grads=loud, domain="a"))
    estimator.update(LayerSignals(inputs=quiet, output_grads=quiet, domain="b"))
    sigma = estimator.statistics()["sigma"]
    # per-domain means: diag(50, 50) (trace 100) and diag(.5, .5) (trace 1); τ̄ = 50.5
    per_domain = [torch.diag(torch.tensor([50.0, 50.0])), torch.diag(torch.tensor([0.5, 0.5]))]
    expected = sum(50.5 / torch.trace(m) * m for m in per_domain) / 2
    torch.testing.assert_close(sigma, expected.double())
    # balanced: both domains contribute equal trace, and the average energy is kept
    assert abs(float(torch.trace(sigma)) - 50.5) < 1e-6
    restored = registry("estimator").create(
        "energy-balanced", in_features=2, out_features=2, inner=("clean-covariance", "output-fisher")
    )
    restored.load_state_dict(estimator.state_dict())
    torch.testing.assert_close(restored.statistics()["fisher"], estimator.statistics()["fisher"])


def test_energy_balanced_needs_domains():
    estimator = registry("estimator").create("energy-balanced", in_features=2, out_features=2)
    with pytest.raises(ConfigError, match="domain label"):
        estimator.update(LayerSignals(inputs=torch.randn(3, 2)))


def test_balance_of_one_domain_is_identity():
    matrix = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(balance([matrix]), matrix)


def test_calibration_statistics_save_load_and_merge(tmp_path):
    def make(name, n, m):
        return registry("estimator").create(name, in_features=n, out_features=m)

    layers = {"a": (3, 2), "b.c": (4, 4)}
    first = CalibrationStatistics.create(layers, ("clean-covariance", "output-fisher"), make)
    second = CalibrationStatistics.create(layers, ("clean-covariance", "output-fisher"), make)
    for stats in (first, second):
        for layer, (n, m) in layers.items():
            stats.update(layer, LayerSignals(inputs=torch.randn(5, n), output_grads=torch.randn(5, m)))
    first.metadata["lam"] = 0.5
    path = tmp_path / "stats.safetensors"
    first.save(path)
    loaded = CalibrationStatistics.create(layers, ("clean-covariance", "output-fisher"), make)
    loaded.load(path)
    assert loaded.metadata == {"lam": 0.5}
    torch.testing.assert_close(loaded.layer("b.c")["sigma"], first.layer("b.c")["sigma"])
    expected = (first.layer("a")["fisher"] + second.layer("a")["fisher"]) / 2
    first.merge(second)
    torch.testing.assert_close(first.layer("a")["fisher"], expected)
