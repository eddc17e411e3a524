"""Blocks recomputed in the backward pass: the taps and the recorder see each call once and hand
over the gradients of a run without recomputation, the graph between the passes holds fewer saved
tensors, the blocks' own forward comes back afterwards, and a compression with recomputation (one
step and rollouts) gives the model of one without; a block that changes its input in place is a
clear error, not a wrong Fisher."""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from safesvd_core import SafeSVDError, SpillPolicy, compress
from safesvd_core.model._capture import LayerRecorder
from safesvd_core.model._gradient_taps import GradientTaps
from safesvd_core.model._recompute import recomputed_blocks, recomputing

from test_compress import small_data, small_transformer
from test_refine import options
from test_rollout import trajectories


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner, self.outer = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(torch.relu_(self.inner(x)).sin())


class Stack(nn.Module):
    """Two blocks, the first called twice."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.first, self.second = Block(width), Block(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(self.first(x)))


LAYERS = ("first.inner", "first.outer", "second.inner", "second.outer")


def _pass(model: Stack, x: torch.Tensor, recompute: bool) -> tuple[dict, dict, int]:
    """The gradients the taps hand over, the inputs recorded, and the bytes the graph saved
    outside the recomputed blocks."""
    recorder, taps, received, saved = LayerRecorder(model, LAYERS), GradientTaps(model, LAYERS), {}, [0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    blocks = recomputed_blocks(model, ("first", "second")) if recompute else contextlib.nullcontext()
    with recorder.attached(), taps.attached(), blocks:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = (model(x) ** 2).mean()
        taps.backward(loss, lambda name, call, grad: received.__setitem__((name, call), grad.clone()))
    return received, {name: len(calls) for name, calls in recorder.inputs.items()}, saved[0]


@settings(max_examples=15, deadline=None)
@given(width=st.integers(2, 12), rows=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_recomputed_blocks_hand_over_the_gradients_of_a_plain_pass_with_fewer_saved_tensors(
    width, rows, seed
):
    torch.manual_seed(seed)
    model = Stack(width)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    x = torch.randn(rows, width)
    plain, plain_calls, plain_saved = _pass(model, x, recompute=False)
    again, again_calls, again_saved = _pass(model, x, recompute=True)
    assert (
        again_calls
        == plain_calls
        == {"first.inner": 2, "first.outer": 2, "second.inner": 1, "second.outer": 1}
    )
    assert again.keys() == plain.keys()
    for key, grad in plain.items():
        torch.testing.assert_close(again[key], grad, rtol=1e-6, atol=1e-7)
    assert again_saved < plain_saved  # only the blocks' arguments are saved
    assert "forward" not in vars(model.first) and not recomputing()


def test_a_forward_set_on_the_instance_is_put_back():
    model = Stack(3)
    own = model.first.forward
    model.first.forward = own
    with recomputed_blocks(model, ("first",)):
        assert model.first.forward is not own
    assert model.first.forward is own


def _same_model(one, other, data) -> None:
    assert one.ranks == other.ranks
    for inputs, _ in data:
        with torch.no_grad():
            ours, theirs = one.model(inputs), other.model(inputs)
        assert float((ours - theirs).norm() / theirs.norm()) < 1e-5


@pytest.mark.parametrize(
    "calibration", [small_data, lambda: trajectories(steps=2)], ids=["pairs", "rollouts"]
)
def test_a_compression_with_recomputed_blocks_gives_the_model_of_one_without(calibration):
    model, data = small_transformer(), calibration()
    runs = [
        compress(model, data, ratio=0.4, adapter_options=options(model), recompute_blocks=flag)
        for flag in (True, False)
    ]
    _same_model(*runs, data)


def test_a_block_whose_argument_changes_in_place_is_a_clear_error():
    class Mutating(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16))
            self.head = nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x * 1.0
            out = self.block(h)
            h.add_(1.0)  # the block's argument, changed after the block ran
            return self.head(out + h)

    model = Mutating().eval()
    data = [(torch.randn(32, 16), torch.randn(32, 16)) for _ in range(2)]
    with pytest.raises(SafeSVDError, match="recompute_blocks=False"):
        compress(model, data, ratio=0.5, adapter_options={"block_names": ["block"]}, recompute_blocks=True)
    compress(model, data, ratio=0.5, adapter_options={"block_names": ["block"]}, recompute_blocks=False)


def _block_runs(model, **keywords) -> int:
    """How often the first block's inner layers ran in a compression."""
    runs = [0]
    inside = next(module for name, module in model.named_modules() if name.startswith("blocks.0."))
    handle = inside.register_forward_pre_hook(lambda module, args: runs.__setitem__(0, runs[0] + 1))
    try:
        compress(model, small_data(), ratio=0.4, adapter_options=options(model), **keywords)
    finally:
        handle.remove()
    return runs[0]


def test_blocks_are_recomputed_by_default_only_when_the_statistics_are_capped(tmp_path):
    model = small_transformer()
    plain = _block_runs(model)
    assert (
        _block_runs(model, statistics=SpillPolicy(tmp_path / "off", "1GiB"), recompute_blocks=False) == plain
    )
    assert _block_runs(model, statistics=SpillPolicy(tmp_path / "default", "1GiB")) > plain
    assert _block_runs(model, recompute_blocks=True) > plain
