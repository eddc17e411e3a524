"""A block stage's original side is one run of the block per item: its layers' inputs and outputs are
recorded and serve every layer group and the carry to the next block. The factors are those of a
run per group, bit for bit; a record too large, or one the block changed in place, is not used."""

from __future__ import annotations

import torch
from chain_helpers import BlockChain, random_pairs
from torch import nn

import safesvd_core.run.phases._block_record as block_record
from safesvd_core import compress

from test_compress import small_transformer
from test_refine import options
from test_rollout import trajectories


def _pairs():
    return [(x, t[:, 0]) for x, t in trajectories(steps=1)]


def _weights(result) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in result.model.state_dict().items()}


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def test_one_original_run_per_block_gives_the_factors_of_a_run_per_group(monkeypatch):
    model = small_transformer()
    recorded = compress(model, _pairs(), ratio=0.4, adapter_options=options(model))
    assert recorded.passes["original blocks"] == len(model.block_names())
    assert recorded.passes["layer runs"] > recorded.passes["original blocks"]  # groups share the record
    monkeypatch.setattr(block_record, "BLOCK_RECORD_BYTES", 0)
    per_group = compress(model, _pairs(), ratio=0.4, adapter_options=options(model))
    assert "original blocks" not in per_group.passes
    assert any("exceed 0 MiB" in note for note in per_group.log.notes)
    assert _same(_weights(recorded), _weights(per_group))


class MutatingBlock(nn.Module):
    """Adds into its first layer's input in place once the layer has read it, where no gradient is
    recorded (an inference path that saves memory; the same values as the training path)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = x + 1.0
        out = self.first(hidden)
        if torch.is_grad_enabled():
            hidden = hidden + out
        else:
            hidden += out
        return x + self.second(torch.relu(hidden))


def test_a_block_that_changes_a_recorded_input_in_place_runs_per_group(monkeypatch):
    torch.manual_seed(0)
    model = BlockChain(MutatingBlock(12) for _ in range(2)).eval()
    items = random_pairs(3, 16, 12, seed=0)
    adapter_options = {"block_names": model.block_names()}
    guarded = compress(model, items, ratio=0.5, adapter_options=adapter_options)
    assert "original blocks" not in guarded.passes
    assert any("in place" in note for note in guarded.log.notes)
    monkeypatch.setattr(block_record, "BLOCK_RECORD_BYTES", 0)
    per_group = compress(model, items, ratio=0.5, adapter_options=adapter_options)
    assert _same(_weights(guarded), _weights(per_group))
    # without the check the record would hold the scaled rows, and the factors would differ
    monkeypatch.setattr(block_record, "BLOCK_RECORD_BYTES", 2**28)
    monkeypatch.setattr(block_record.LayerRecorder, "changed_in_place", lambda self: [])
    unguarded = compress(model, items, ratio=0.5, adapter_options=adapter_options)
    assert unguarded.passes["original blocks"] == 2
    assert not _same(_weights(guarded), _weights(unguarded))


def test_exact_stages_of_a_rollout_share_one_original_run_per_block(monkeypatch):
    model = small_transformer()
    items = trajectories(steps=3)
    recorded = compress(model, items, ratio=0.4, adapter_options=options(model))
    assert recorded.passes["original blocks"] == len(model.block_names())
    assert recorded.passes["stages"] > recorded.passes["original blocks"]  # exact stages, one per group
    monkeypatch.setattr(block_record, "BLOCK_RECORD_BYTES", 0)
    per_stage = compress(model, items, ratio=0.4, adapter_options=options(model))
    assert "original blocks" not in per_stage.passes
    assert _same(_weights(recorded), _weights(per_stage))
