"""The block-output correction phase (``block_correction=True``): each block's output layer solved
again against the original block's output."""

from __future__ import annotations

import torch
from torch import nn

from safesvd_core import compress

from test_compress import small_transformer
from test_rollout import trajectories


def test_the_output_layer_of_each_residual_block_is_corrected_and_the_ranks_kept():
    model, items = small_transformer(), trajectories(steps=2)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    plain = compress(model, items, ratio=0.5, adapter_options=options)
    corrected = compress(model, items, ratio=0.5, adapter_options=options, block_correction=True)
    report = corrected.reports["block-correction"]
    factored_outputs = {
        block: f"{block}.output_dense"
        for block in model.block_names()
        if plain.ranks.get(f"{block}.output_dense") is not None
    }
    assert {block: row["layer"] for block, row in report["corrected"].items()} == factored_outputs
    assert corrected.ranks == plain.ranks and corrected.params_after == plain.params_after
    assert corrected.passes["block-correction"] == 2 * len(factored_outputs)
    changed = [
        name
        for name in factored_outputs.values()
        if not torch.equal(corrected.model.get_submodule(name).weight, plain.model.get_submodule(name).weight)
    ]
    assert changed == list(factored_outputs.values())


class Chain(nn.Module):
    """Blocks without a residual path: no layer's output reaches the block's output unchanged."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh()) for _ in range(2)
        )

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def test_a_block_without_a_pass_through_layer_is_skipped_with_the_reason():
    generator = torch.Generator().manual_seed(1)
    items = [
        (torch.randn(32, 12, generator=generator), torch.randn(32, 12, generator=generator)) for _ in range(2)
    ]
    result = compress(
        Chain(),
        items,
        ratio=0.6,
        adapter_options={"block_names": ["blocks.0", "blocks.1"]},
        block_correction=True,
    )
    report = result.reports["block-correction"]
    assert report["corrected"] == {} and set(report["skipped"]) == {"blocks.0", "blocks.1"}
    assert "unchanged" in report["skipped"]["blocks.0"]
