"""Baseline estimators: streaming equals a one-shot numpy computation (the generic contract is
tests/test_conformance_estimators.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import registry
from safesvd_core.plugin import LayerSignals


@st.composite
def calls(draw):
    """Calls of one layer: each with its own rows of inputs and output gradients."""
    n, m = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    sizes = draw(st.lists(st.integers(1, 9), min_size=1, max_size=5))
    return (
        n,
        m,
        [(torch.randn(r, n, generator=generator), torch.randn(r, m, generator=generator)) for r in sizes],
    )


def expected(name: str, chunks) -> dict[str, np.ndarray]:
    x = np.concatenate([c[0].double().numpy() for c in chunks])
    if name == "input-abs-mean":
        return {"input_abs_mean": np.abs(x).mean(0)}
    if name == "clean-gram":
        return {"gram": x.T @ x}
    per_call = [
        ((g.double().numpy().T @ xi.double().numpy()) ** 2).sum(0) for xi, g in chunks
    ]  # Σ_i (∂L/∂W_ij)²
    return {"weight_fisher": np.mean(per_call, axis=0)}


def feed(estimator, chunks):
    for inputs, grads in chunks:
        estimator.update(LayerSignals(inputs=inputs, output_grads=grads))


NAMES = ["input-abs-mean", "weight-fisher", "clean-gram"]


@pytest.mark.parametrize("name", NAMES)
@given(calls())
def test_streaming_equals_one_shot(name, case):
    n, m, chunks = case
    estimator = registry("estimator").create(name, in_features=n, out_features=m)
    feed(estimator, chunks)
    for key, value in expected(name, chunks).items():
        stat = estimator.statistics()[key]
        assert stat.dtype == torch.float64
        np.testing.assert_allclose(stat.numpy(), value, rtol=1e-10, atol=1e-12)
