"""What the one-step row and the horizon rows of an evaluation are scored on (docs/cli.md, "One step
and horizon 1"): the same metric on different test items. One step scores every test pair
``(u[t], u[t + 1])``; horizon h scores step h of the rollouts from the starts that leave room for the
largest horizon H. On the same starts horizon 1 and one step agree; the one-step row also holds the
last H − 1 starts of each test trajectory, which is why the two differ."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from safesvd_core import evaluate

h5py = pytest.importorskip("h5py", reason="the data extra (h5py) is not installed")

from safesvd_cli import config as configs  # noqa: E402 - after the h5py check
from safesvd_cli import pipeline  # noqa: E402
from safesvd_data import PDEBenchIncompressibleNS  # noqa: E402

TRAJECTORIES, FRAMES, SIZE, LARGEST = 8, 8, 8, 3
FACTORY = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 8, 1), nn.GELU(), nn.Conv2d(8, 2, 1))
"""
CONFIG = f"""
[model]
factory = "horizons_model:build"

[data]
pdebench = "ns.h5"
options = {{ particles = false }}
batch_size = 4
test_fraction = 0.25

[evaluate]
horizons = [{LARGEST}]
figures = false
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("horizons")
    (folder / "horizons_model.py").write_text(FACTORY)
    frames = (
        np.random.default_rng(0).standard_normal((TRAJECTORIES, FRAMES, SIZE, SIZE, 2)).astype(np.float32)
    )
    frames = np.cumsum(frames, axis=1) / 4  # trajectories that drift: later states differ from earlier ones
    with h5py.File(folder / "ns.h5", "w") as file:
        file["velocity"] = frames
        file["particles"] = np.zeros((*frames.shape[:-1], 1), dtype=np.float32)
        file["force"] = np.zeros((TRAJECTORIES, SIZE, SIZE, 2), dtype=np.float32)
        file["t"] = np.tile(np.arange(FRAMES, dtype=np.float32), (TRAJECTORIES, 1))
    (folder / "config.toml").write_text(CONFIG)
    config = configs.RunConfig.from_dict(
        configs.read_toml(folder / "config.toml"), base=folder, label="config.toml"
    )
    return pipeline.prepare(config, calibration=False), folder


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """A stand-in for the compressed model: the original with its weights moved."""
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return other


def test_horizon_one_is_the_one_step_error_on_the_starts_with_room_for_the_largest_horizon(prepared):
    prepared, folder = prepared
    test_trajectories = TRAJECTORIES // 4  # test_fraction 0.25: the last two trajectories, in both listings
    pairs, starts = pipeline.test_sizes(prepared)
    assert (pairs, starts) == (test_trajectories * (FRAMES - 1), test_trajectories * (FRAMES - LARGEST))
    compressed = _perturbed(prepared.model)
    report = pipeline.evaluation(prepared, compressed)

    # the pairs of the file, split by start: those with room for LARGEST steps, and the last LARGEST − 1
    everything = PDEBenchIncompressibleNS(path=folder / "ns.h5", particles=False).read()
    t = np.tile(np.arange(FRAMES - 1), TRAJECTORIES)
    test = np.repeat(np.arange(TRAJECTORIES), FRAMES - 1) >= TRAJECTORIES - test_trajectories
    options = {"adapter_options": {"field_description": everything.field}}
    scores = {}
    for label, chosen in (("room", test & (t < FRAMES - LARGEST)), ("late", test & (t >= FRAMES - LARGEST))):
        index = torch.from_numpy(np.flatnonzero(chosen))
        scores[label] = evaluate(
            prepared.model, compressed, [(everything.inputs[index], everything.targets[index])], **options
        ).metric("base loss")
    assert (int((test & (t < FRAMES - LARGEST)).sum()), int((test & (t >= FRAMES - LARGEST)).sum())) == (
        starts,
        pairs - starts,
    )

    horizon_one, one_step = report.metric("base loss", 1), report.metric("base loss")
    for side in ("original", "compressed"):
        # horizon 1 = the one-step error on the starts with room for the largest horizon
        assert getattr(horizon_one, side) == pytest.approx(getattr(scores["room"], side), rel=1e-5)
        # the one-step row = the mean over those starts and the late ones, weighted by their counts
        mixed = (
            starts * getattr(scores["room"], side) + (pairs - starts) * getattr(scores["late"], side)
        ) / pairs
        assert getattr(one_step, side) == pytest.approx(mixed, rel=1e-5)
    # and the change differs because the late starts differ: not a rounding matter
    assert abs(one_step.signed_change_percent - horizon_one.signed_change_percent) > 1.0


def test_the_evaluation_table_says_what_each_row_is_scored_on(prepared):
    from safesvd_cli import report

    prepared, _ = prepared
    evaluation = pipeline.evaluation(prepared, _perturbed(prepared.model))
    pairs, starts = pipeline.test_sizes(prepared)
    text = report.evaluation_table(evaluation, (LARGEST,), legend=pipeline.rows_legend(prepared))
    assert "So horizon 1 is the one-step error on those starts only" in text
    assert f"every test pair ({pairs});" in text and f"room for the largest horizon ({starts})." in text
    assert "horizon h" not in report.evaluation_table(evaluation, (), legend=pipeline.rows_legend(prepared))
    # a data function's one-step items and trajectories may be different data: no such claim
    told = report.rows_legend((pairs, starts), function=True)
    assert "need not agree" in told and "those starts only" not in told
    assert report.rows_legend((pairs, None)) is None
