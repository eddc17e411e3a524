"""A stage pass replays the compressed model's finished submodules (every layer called before their
call ends is solved) instead of running them again: the factors are those of full passes, bit for
bit, even where the model adds into a replayed output in place."""

from __future__ import annotations

import torch
from chain_helpers import BlockChain, random_pairs
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import safesvd_core.run.phases._finished_modules as finished_modules
from safesvd_core import compress


class EncoderMiddleHead(nn.Module):
    """Two containers called once, then a head; the output of each container is added into in place
    where no gradient is recorded."""

    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, width), nn.GELU(), nn.Linear(width, width))
        self.middle = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))
        self.head = nn.Linear(width, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(x)
        hidden = hidden + 1.0 if torch.is_grad_enabled() else hidden.add_(1.0)
        hidden = self.middle(hidden)
        hidden = hidden * 2.0 if torch.is_grad_enabled() else hidden.mul_(2.0)
        return self.head(hidden)


def _items(seed: int, count: int = 3):
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(10, 6, generator=generator), torch.randn(10, 6, generator=generator))
        for _ in range(count)
    ]


def _weights(result) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in result.model.state_dict().items()}


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), ratio=st.sampled_from([0.4, 0.6]))
def test_replayed_submodules_give_the_factors_of_full_passes(seed, ratio):
    torch.manual_seed(seed)
    model = EncoderMiddleHead().eval()
    items = _items(seed)
    replayed = compress(model, items, ratio=ratio)
    # the first pass after the encoder is finished records it; every later pass replays it
    later = [name for name in ("middle.0", "middle.2", "head") if replayed.ranks[name] is not None]
    expected = len(later) - 1
    assert expected >= 1 and replayed.passes["replays"] == expected
    original_cap = finished_modules.REPLAY_BYTES
    finished_modules.REPLAY_BYTES = 0
    try:
        full = compress(model, items, ratio=ratio)
    finally:
        finished_modules.REPLAY_BYTES = original_cap
    assert "replays" not in full.passes
    first, second = _weights(replayed), _weights(full)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_a_rollout_replays_nothing():
    from test_rollout import trajectories

    class Stepper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(2, 64, 1), nn.GELU(), nn.Conv2d(64, 64, 1), nn.GELU(), nn.Conv2d(64, 2, 1)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x)

    torch.manual_seed(0)
    result = compress(Stepper().eval(), trajectories(steps=3), ratio=0.6)
    assert "replays" not in result.passes  # every module runs K times per item


class BlockWithParts(nn.Module):
    """A residual block of two parts, each a container of layers."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.mix = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))
        self.feed = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mix(x)
        return x + self.feed(x)


def test_a_block_run_alone_replays_its_finished_parts(monkeypatch):
    torch.manual_seed(0)
    model = BlockChain(BlockWithParts() for _ in range(3)).eval()
    items = random_pairs(3, 12, 16, seed=2)
    options = {"adapter_options": {"block_names": model.block_names()}}
    replayed = compress(model, items, ratio=0.5, **options)
    assert (
        replayed.passes["layer runs"] > 3 and replayed.passes["replays"] >= 1
    )  # the feed's runs replay the mix
    monkeypatch.setattr(finished_modules, "REPLAY_BYTES", 0)
    full = compress(model, items, ratio=0.5, **options)
    assert "replays" not in full.passes
    first, second = _weights(replayed), _weights(full)
    assert all(torch.equal(first[key], second[key]) for key in first)
