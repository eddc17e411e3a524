"""The Sobolev loss against an independent numpy implementation, plus its options."""

from __future__ import annotations

import itertools

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from safesvd_core import ConfigError, FieldDescription, Role
from safesvd_core.testing.strategies import field_descriptions, grids
from safesvd_pde.sobolev import Sobolev


def _np_derivative(a: np.ndarray, axis: int, order: int, h: float, periodic: bool) -> np.ndarray:
    """One-axis second-order stencil, written out point by point."""
    if periodic:
        plus, minus = np.roll(a, -1, axis), np.roll(a, 1, axis)
        return (plus - minus) / (2 * h) if order == 1 else (plus - 2 * a + minus) / h**2
    a = np.moveaxis(a, axis, 0)
    out = np.empty_like(a)
    n = a.shape[0]
    for i in range(1, n - 1):
        out[i] = (a[i + 1] - a[i - 1]) / (2 * h) if order == 1 else (a[i + 1] - 2 * a[i] + a[i - 1]) / h**2
    if order == 1:
        out[0] = (-3 * a[0] + 4 * a[1] - a[2]) / (2 * h)
        out[-1] = (3 * a[-1] - 4 * a[-2] + a[-3]) / (2 * h)
    else:
        out[0] = (2 * a[0] - 5 * a[1] + 4 * a[2] - a[3]) / h**2
        out[-1] = (2 * a[-1] - 5 * a[-2] + 4 * a[-3] - a[-4]) / h**2
    return np.moveaxis(out, 0, axis)


def _np_sobolev(u, v, field: FieldDescription, order: int, p: int, weight) -> float:
    keep = [i for i, name in enumerate(field.channels) if name not in field.masked]
    u, v = u[:, keep], v[:, keep]
    total = 0.0
    for beta in itertools.product(range(order + 1), repeat=field.dim):
        if sum(beta) > order:
            continue
        du, dv = u, v
        for axis, k in enumerate(beta):
            if k:
                du = _np_derivative(du, 2 + axis, k, field.spacing[axis], field.periodic[axis])
                dv = _np_derivative(dv, 2 + axis, k, field.spacing[axis], field.periodic[axis])
        total += weight(beta) * np.mean(np.abs(du - dv) ** p)
    return total


@given(
    data=st.data(),
    field=field_descriptions(max_channels=3),
    order=st.sampled_from([0, 1, 2]),
    p=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_numpy(data, field: FieldDescription, order: int, p: int, seed: int) -> None:
    grid = data.draw(grids(field.dim, max_size=9 if field.dim < 3 else 5), label="grid")
    order_weights = data.draw(
        st.lists(st.floats(0.0, 3.0), min_size=order + 1, max_size=order + 1), label="c"
    )
    rng = np.random.default_rng(seed)
    u, v = (rng.normal(size=(2, len(field.channels), *grid)) for _ in range(2))
    loss = Sobolev(order=order, p=p, weights=dict(enumerate(order_weights)))
    value = loss(torch.from_numpy(u), torch.from_numpy(v), field)
    expected = _np_sobolev(u, v, field, order, p, lambda beta: order_weights[sum(beta)])
    assert float(value) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _field() -> FieldDescription:
    return FieldDescription(
        channels=("a", "b"), roles=(Role.SCALAR, Role.SCALAR), spacing=(0.2, 0.3), periodic=(True, False)
    )


def test_multi_index_weights_override_order_weights() -> None:
    u, v = torch.randn(2, 2, 2, 6, 5, dtype=torch.float64)
    loss = Sobolev(order=2, weights={2: 0.0, (1, 1): 2.0})
    terms = loss.terms(u, v, _field())
    expected = sum(terms[beta] for beta in [(0, 0), (1, 0), (0, 1)]) + 2.0 * terms[(1, 1)]
    torch.testing.assert_close(loss(u, v, _field()), expected)
    assert set(loss.order_terms(u, v, _field())) == {0, 1, 2}


def test_masked_channels_are_ignored() -> None:
    field = FieldDescription(
        channels=("a", "b"),
        roles=(Role.SCALAR, Role.SCALAR),
        spacing=(0.2, 0.3),
        periodic=(True, False),
        masked=("b",),
    )
    u = torch.randn(2, 2, 6, 5, dtype=torch.float64)
    v = u.clone()
    v[:, 1] += 1.0
    assert float(Sobolev(order=2)(u, v, field)) == 0.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"order": 3}, "sobolev order must be one of 0, 1, 2, got 3"),
        ({"p": 3}, "sobolev p must be one of 1, 2, got 3"),
        ({"order": True}, "sobolev order"),
        ({"order": 1, "weights": {2: 1.0}}, "above the loss order 1"),
        ({"weights": {0: -1.0}}, "expected a finite number ≥ 0"),
        ({"weights": {"x": 1.0}}, "expected keys"),
        ({"weights": [1.0]}, "expected a mapping"),
        ({"weights": "c"}, "expected a mapping"),
    ],
)
def test_bad_options_raise_config_errors(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Sobolev(**options)


def test_a_multi_index_weight_must_fit_the_field() -> None:
    u = torch.randn(1, 2, 6, 5)
    with pytest.raises(ConfigError, match="does not fit a 2-D field"):
        Sobolev(order=1, weights={(1,): 1.0})(u, u, _field())


def test_every_channel_masked_is_an_error() -> None:
    field = FieldDescription(
        channels=("a",), roles=(Role.SCALAR,), spacing=(1.0,), periodic=(True,), masked=("a",)
    )
    with pytest.raises(ConfigError, match="every channel is masked"):
        Sobolev()(torch.zeros(1, 1, 5), torch.zeros(1, 1, 5), field)


def test_options_survive_evolve_and_pairs() -> None:
    loss = Sobolev(order=1, weights={(1, 0): 2.0, 0: 0.5})
    assert attrs.evolve(loss, order=2).weights == loss.weights
    assert Sobolev(order=1, weights=[[[1, 0], 2.0], [0, 0.5]]) == loss
    assert hash(loss) == hash(Sobolev(order=1, weights={0: 0.5, (1, 0): 2.0}))
