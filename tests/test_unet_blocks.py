"""``block_names`` on a model that is not a chain (docs/own-model.md, "Blocks that do not chain"): a
U-Net's encoder, middle and decoder blocks, with skips and 1×1 merges between them. Each block's inputs
come from a prefix pass, the layers outside blocks get a stage each, and the result is the per-layer
one; a container named as a block is refused with its children named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from safesvd_core import ConfigError, compress

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "own_model"))
from unet_model import UNet  # the U-Net docs/own-model.md shows

BLOCKS = ["encoder.0", "encoder.1", "middle", "decoder.0", "decoder.1"]


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = UNet(width=8).eval()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(24, 2, 16, 16, generator=generator)
    batches = [
        (x[i : i + 8], x[i : i + 8] + 0.1 * torch.randn(8, 2, 16, 16, generator=generator))
        for i in range(0, 24, 8)
    ]
    return model, batches


def test_unet_blocks_take_a_prefix_pass_each_and_give_the_per_layer_result(setting):
    model, batches = setting
    blocked = compress(model, batches, ratio=0.7, adapter_options={"block_names": BLOCKS})
    assert blocked.stages == [
        ["encoder.0.expand", "encoder.0.contract"],
        ["encoder.1.expand", "encoder.1.contract"],
        ["middle.expand", "middle.contract"],
        ["merge.0"],
        ["decoder.0.expand", "decoder.0.contract"],
        ["merge.1"],
        ["decoder.1.expand", "decoder.1.contract"],
        ["project"],
    ]
    # no block takes the previous block's output: one prefix pass per block, one block run per factored layer
    # (a block whose layers all stay dense costs no pass)
    factored = [
        name
        for name, rank in blocked.ranks.items()
        if rank is not None and name.split(".")[0] in ("encoder", "middle", "decoder")
    ]
    # a stage whose layers all stay dense takes no pass
    with_factors = [stage for stage in blocked.stages if any(blocked.ranks[name] for name in stage)]
    assert blocked.passes["stages"] == len(with_factors) and blocked.passes["layer runs"] == len(factored)
    assert blocked.passes["prefix"] == len({name.rsplit(".", 1)[0] for name in factored}) >= 3
    plain = compress(model, batches, ratio=0.7)
    assert len(plain.stages) == 13 and "prefix" not in plain.passes
    assert plain.passes["stages"] == sum(any(plain.ranks[name] for name in stage) for stage in plain.stages)
    assert blocked.ranks == plain.ranks
    with torch.no_grad():
        x = batches[0][0]
        assert torch.allclose(blocked.model(x), plain.model(x), atol=1e-5)
        assert not torch.allclose(blocked.model(x), model(x), atol=1e-3)  # it did compress


@pytest.mark.parametrize(
    ("names", "children"),
    [(["encoder", "middle"], "encoder.0, encoder.1"), (["decoder"], "decoder.0, decoder.1")],
)
def test_a_container_named_as_a_block_is_refused_with_its_children(setting, names, children):
    model, batches = setting
    with pytest.raises(
        ConfigError,
        match=rf"block\(s\) {names[0]} of block_names hold layers but are never called.*"
        rf"e\.g\. {children}",
    ):
        compress(model, batches, ratio=0.5, adapter_options={"block_names": names})


def test_the_recorded_original_gives_the_same_factors_as_running_it(setting, monkeypatch):
    """Prefix passes and the stages of layers outside blocks read the original's recorded side;
    without the record (over its cap, noted) the original runs per stage: the same bits."""
    import safesvd_core.run.phases._original_inputs as original_inputs

    model, batches = setting
    recorded = compress(model, batches, ratio=0.7, adapter_options={"block_names": BLOCKS})
    monkeypatch.setattr(original_inputs, "ORIGINAL_CACHE_BYTES", 0)
    running = compress(model, batches, ratio=0.7, adapter_options={"block_names": BLOCKS})
    assert recorded.passes["original"] == 1 and "original" not in running.passes
    assert any("recorded inputs exceed" in note for note in running.notes)
    assert recorded.passes["prefix"] == running.passes["prefix"] >= 3
    for key, value in running.model.state_dict().items():
        assert torch.equal(recorded.model.state_dict()[key], value), key
