"""A block run of a layer stage stops once the stage's layers made their calls: the rest of the block
computes nothing a statistic reads. The factors are those of the whole block run."""

from __future__ import annotations

import torch

import safesvd_core.run.phases._stage_inputs as stage_inputs
from safesvd_core import compress

from test_compress import small_transformer
from test_refine import options
from test_rollout import trajectories


def _compress(model, stops: list[bool]):
    real = stage_inputs.run_until_stopped

    def counted(call, *args, **kwargs):
        stopped = real(call, *args, **kwargs)
        if call is stage_inputs._run_block:
            stops.append(stopped)
        return stopped

    stage_inputs.run_until_stopped = counted
    try:
        pairs = [(x, t[:, 0]) for x, t in trajectories(steps=1)]
        return compress(model, pairs, ratio=0.4, adapter_options=options(model))
    finally:
        stage_inputs.run_until_stopped = real


def test_layer_runs_stop_inside_the_block_and_change_nothing(monkeypatch):
    torch.manual_seed(0)
    model = small_transformer()
    stops: list[bool] = []
    result = _compress(model, stops)
    assert result.passes["layer runs"] > 0
    assert len(stops) >= result.passes["layer runs"] and all(stops)  # each stops at its layers' last call
    never: list[bool] = []
    monkeypatch.setattr(
        stage_inputs.LayerRecorder, "__init__", _without_stop(stage_inputs.LayerRecorder.__init__)
    )
    whole = _compress(model, never)
    assert not any(never)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(result.model.state_dict()[key], value), key


def _without_stop(init):
    def patched(self, model, names, *, stop_after=None, **kwargs):
        init(self, model, names, stop_after=None, **kwargs)

    return patched
