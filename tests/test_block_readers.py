"""A layer outside the blocks that reads a block's input (an FNO's skip convolution beside its
Fourier layer) shares that block's stage: its inputs are the block's recorded ones, no pass of its own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from safesvd_core import compress
from safesvd_core.run.phases._stages import plan_stages


def test_a_reader_right_before_its_block_joins_the_block_stage():
    order = ["skip", "block.a", "block.b", "head"]
    stages = plan_stages(order, ["block"], "layer", {}, {"skip": "block"})
    assert [(stage.layers, stage.block) for stage in stages] == [
        (("skip", "block.a", "block.b"), "block"),
        (("head",), None),
    ]
    after = plan_stages(["block.a", "block.b", "skip", "head"], ["block"], "layer", {}, {"skip": "block"})
    assert after[0].layers == ("block.a", "block.b", "skip") and after[0].block == "block"
    # not next to its block (another layer between), or the exact mode: a stage of its own
    apart = plan_stages(["skip", "other", "block.a"], ["block"], "layer", {}, {"skip": "block"})
    assert apart[0].layers == ("skip",) and apart[0].block is None
    exact = plan_stages(order, ["block"], "exact", {}, {"skip": "block"})
    assert exact[0].layers == ("skip",) and exact[0].block is None


class Mixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv1d(16, 32, 1), nn.Conv1d(32, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


class SkipNet(nn.Module):
    """``y = mixer(x) + skip(x.view(B, C, -1))``: the skip reads the block's input as a view."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mixer, self.skip, self.head = Mixer(), nn.Conv1d(16, 16, 1), nn.Conv1d(16, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.mixer(x) + self.skip(x.view(*x.shape[:2], -1))
        return self.head(torch.tanh(hidden))


@pytest.mark.parametrize("readers", [True, False])
def test_the_reader_compresses_from_the_block_inputs_without_a_pass_of_its_own(readers, monkeypatch):
    generator = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 16, 12, generator=generator), torch.randn(16, 16, 12, generator=generator))]
    if not readers:  # the plan without readers: the skip takes an exact pass of its own
        monkeypatch.setattr("safesvd_core.run.phases._probe.block_readers", lambda *args: {})
    options = {"block_names": ["mixer"]}
    result = compress(SkipNet(), data, ratio=0.5, allocator="uniform", adapter_options=options)
    assert result.ranks["skip"] is not None
    assert result.passes["stages"] == (2 if readers else 3)
    if readers:
        with torch.no_grad():
            output = result.model(data[0][0])
        assert torch.isfinite(output).all()
        monkeypatch.setattr("safesvd_core.run.phases._probe.block_readers", lambda *args: {})
        apart = compress(SkipNet(), data, ratio=0.5, allocator="uniform", adapter_options=options)
        # the skip's statistics are the same rows either way: its factors agree to rounding
        torch.testing.assert_close(result.model.skip.weight, apart.model.skip.weight, rtol=1e-4, atol=1e-6)
        assert result.ranks == apart.ranks
