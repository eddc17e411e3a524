"""Gradient taps hand over each tapped output's gradient during one backward pass: the gradients
``torch.autograd.grad`` gives at the outputs, a layer called twice once per call, an output the
loss does not depend on none, outputs changed in place afterwards their own; the values the model
computes are unchanged, and neither outputs nor gradients are held after the pass."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from safesvd_core import SafeSVDError
from safesvd_core.model._gradient_taps import GradientTaps


class Twice(nn.Module):
    """``first`` is called twice; ``unused`` runs but the output does not depend on it; ``second``'s
    output is changed in place by a ReLU."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.first, self.second, self.unused = (nn.Linear(width, width) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.first(x))
        self.unused(h)
        h = torch.relu_(self.second(h))
        return self.first(h) * 0.5 + h


NAMES = ("first", "second", "unused")


def _reference(model: Twice, x: torch.Tensor) -> tuple[torch.Tensor, dict[tuple[str, int], torch.Tensor]]:
    """The model's output and ``∂L/∂y`` at each call's output, by ``torch.autograd.grad``."""
    outputs: dict[tuple[str, int], torch.Tensor] = {}
    handles = []
    for name in NAMES:

        def keep(module, args, output, name=name):
            call = sum(1 for key in outputs if key[0] == name)
            outputs[(name, call)] = output
            return output.clone()  # the in-place ReLU changes the clone, not the output kept

        handles.append(model.get_submodule(name).register_forward_hook(keep))
    try:
        prediction = model(x)
    finally:
        for handle in handles:
            handle.remove()
    loss = (prediction**2).mean()
    grads = torch.autograd.grad(loss, list(outputs.values()), allow_unused=True)
    return prediction.detach(), dict(zip(outputs, grads))


@settings(max_examples=25, deadline=None)
@given(width=st.integers(1, 6), rows=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_taps_hand_over_the_gradients_autograd_gives(width, rows, seed):
    torch.manual_seed(seed)
    model = Twice(width).double()
    x = torch.randn(rows, width, dtype=torch.float64)
    expected_prediction, expected = _reference(model, x)

    taps = GradientTaps(model, NAMES)
    received: dict[tuple[str, int], torch.Tensor] = {}
    with taps.attached():
        prediction = model(x)
    assert torch.equal(prediction.detach(), expected_prediction)  # adding an exact zero changes nothing
    taps.backward((prediction**2).mean(), lambda name, call, grad: received.__setitem__((name, call), grad))
    assert taps.calls == {"first": 2, "second": 1, "unused": 1}
    assert set(received) == {key for key, grad in expected.items() if grad is not None}
    assert ("unused", 0) not in received and torch.equal(
        taps.zeros("unused", 0), torch.zeros(rows, width).double()
    )
    for key, grad in received.items():
        torch.testing.assert_close(grad, expected[key], rtol=1e-12, atol=1e-14)


def test_nothing_holds_the_outputs_or_the_gradients_after_the_pass():
    model, x = Twice(4), torch.randn(3, 4)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    taps, refs = GradientTaps(model, NAMES), []
    with taps.attached():
        prediction = model(x)
    taps.backward(prediction.sum(), lambda name, call, grad: refs.append(weakref.ref(grad)))
    del prediction
    gc.collect()
    assert refs and all(ref() is None for ref in refs)


def test_an_output_without_gradient_is_a_clear_error():
    model = Twice(3).requires_grad_(False)
    with GradientTaps(model, NAMES).attached(), pytest.raises(SafeSVDError, match="requires grad"):
        model(torch.randn(2, 3))
