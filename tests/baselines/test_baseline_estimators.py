"""Baseline estimators: streaming equals a one-shot numpy computation, merging equals the union, states round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from safesvd_core import ConfigError, NumericalError, registry
from safesvd_core.plugin import LayerSignals


@st.composite
def calls(draw):
    """Calls of one layer: each with its own rows of inputs and output gradients."""
    n, m = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    sizes = draw(st.lists(st.integers(1, 9), min_size=1, max_size=5))
    return n, m, [(torch.randn(r, n, generator=generator), torch.randn(r, m, generator=generator)) for r in sizes]


def expected(name: str, chunks) -> dict[str, np.ndarray]:
    x = np.concatenate([c[0].double().numpy() for c in chunks])
    if name == "input-abs-mean":
        return {"input_abs_mean": np.abs(x).mean(0)}
    if name == "clean-gram":
        return {"gram": x.T @ x}
    per_call = [((g.double().numpy().T @ xi.double().numpy()) ** 2).sum(0) for xi, g in chunks]  # Σ_i (∂L/∂W_ij)²
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


@pytest.mark.parametrize("name", NAMES)
@given(calls(), st.integers(0, 5))
def test_merging_and_state_round_trip(name, case, cut):
    n, m, chunks = case
    cut = min(cut, len(chunks))
    make = lambda: registry("estimator").create(name, in_features=n, out_features=m)  # noqa: E731
    whole, first, second = make(), make(), make()
    feed(whole, chunks)
    feed(first, chunks[:cut])
    feed(second, chunks[cut:])
    if cut == 0:
        first.load_state_dict(second.state_dict())
    else:
        first.merge(second)
    restored = make()
    restored.load_state_dict(first.state_dict())
    for key, value in whole.statistics().items():
        torch.testing.assert_close(restored.statistics()[key], value)


def test_missing_signals_and_bad_rows_are_clear_errors():
    fisher = registry("estimator").create("weight-fisher", in_features=3, out_features=2)
    with pytest.raises(ConfigError, match="output_grads"):
        fisher.update(LayerSignals(inputs=torch.randn(4, 3)))
    magnitude = registry("estimator").create("input-abs-mean", in_features=3, out_features=2)
    bad = torch.randn(4, 3)
    bad[1, 2] = float("nan")
    with pytest.raises(NumericalError, match="not skipped"):
        magnitude.update(LayerSignals(inputs=bad))
    with pytest.raises(NumericalError, match="no calibration rows"):
        registry("estimator").create("clean-gram", in_features=3, out_features=2).statistics()
