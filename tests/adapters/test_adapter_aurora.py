"""Microsoft Aurora through the ``generic`` adapter, no wrapper: its ``Batch`` in and out (dicts of
surface, static and atmospheric variables plus metadata), compressed, evaluated one step and rolled
out. Runs where ``aurora`` imports (it needs timm, hence torchvision: the ``.venv-full`` of CI)."""

from __future__ import annotations

import datetime
import math

import pytest
import torch

from safesvd_core import IdleLayersWarning, compress, evaluate

from adapter_helpers import optional

aurora = optional("aurora")

SURFACE, STATIC, ATMOSPHERIC = ("2t", "10u", "10v", "msl"), ("lsm", "z", "slt"), ("z", "u", "v", "t", "q")
LEVELS = (100, 250, 500, 850)


def _batch(seed: int, steps: int = 1, *, trajectory: bool = False) -> aurora.Batch:
    """Random weather on a 16 × 32 grid, two samples; ``trajectory``: ``steps`` states of one step each."""
    generator = torch.Generator().manual_seed(seed)
    time_axis = (2, steps, 1) if trajectory else (2, steps)
    start = datetime.datetime(2020, 6, 1, 12)
    return aurora.Batch(
        surf_vars={name: torch.randn(*time_axis, 16, 32, generator=generator) for name in SURFACE},
        static_vars={name: torch.randn(16, 32, generator=generator) for name in STATIC},
        atmos_vars={name: torch.randn(*time_axis, 4, 16, 32, generator=generator) for name in ATMOSPHERIC},
        metadata=aurora.Metadata(
            lat=torch.linspace(90, -90, 16),
            lon=torch.linspace(0, 360, 33)[:-1],
            time=(start, start),
            atmos_levels=LEVELS,
        ),
    )


def _small_aurora() -> torch.nn.Module:
    """A small Aurora (two Swin levels, width 32, one history step), as Aurora initialises it."""
    torch.manual_seed(0)
    return aurora.Aurora(
        encoder_depths=(1, 1),
        encoder_num_heads=(2, 4),
        decoder_depths=(1, 1),
        decoder_num_heads=(4, 2),
        embed_dim=32,
        num_heads=2,
        use_lora=False,
        max_history_size=1,
        window_size=(1, 2, 4),
    )


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    net = _small_aurora()
    with torch.no_grad():  # off the adaLN-zero initialisation, so that every layer reaches the output
        for parameter in net.parameters():
            parameter.normal_(0.0, 0.05)
    return net.eval()


def _surface_change(compressed: torch.nn.Module, original: torch.nn.Module, batch: aurora.Batch) -> float:
    with torch.no_grad():
        new, old = compressed(batch), original(batch)
    error = sum(float((new.surf_vars[name] - old.surf_vars[name]).norm() ** 2) for name in SURFACE)
    return (error / sum(float(old.surf_vars[name].norm() ** 2) for name in SURFACE)) ** 0.5


def test_aurora_batches_compress_evaluate_and_roll_out_without_a_wrapper(model):
    with torch.no_grad():
        items = [(_batch(seed), model(_batch(seed))) for seed in range(4)]
    result = compress(model, items, ratio=0.5)
    assert result.params_after <= result.budget
    assert sum(rank is not None for rank in result.ranks.values()) > 10
    assert any(".blocks." in name and rank is not None for name, rank in result.ranks.items())
    change = _surface_change(result.model, model, _batch(9))
    assert 0.0 < change < 1.0
    prediction = result.model(_batch(9))
    assert isinstance(prediction, aurora.Batch) and prediction.metadata.time[0].hour == 18

    trajectory = _batch(11, steps=3, trajectory=True)
    report = evaluate(model, result.model, items, rollout=[(_batch(10), trajectory)], horizons=(1, 3))
    assert set(report.rollout) == {1, 3}
    assert all(math.isfinite(entry.compressed) for entries in report.rollout.values() for entry in entries)


def test_aurora_s_zero_initialised_modulation_is_warned_about():
    net = _small_aurora().eval()
    with torch.no_grad():
        items = [(_batch(seed), net(_batch(seed))) for seed in range(2)]
    with pytest.warns(IdleLayersWarning, match="get no gradient from the calibration loss"):
        compress(net, items, ratio=0.5)
