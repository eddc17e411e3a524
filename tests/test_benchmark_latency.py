"""The latency benchmark's pieces on a small model: input shapes seen in the forward pass, random
factors of given ranks, per-layer timing rows, their summary and the page's targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ lives at the repository root
from benchmarks import latency
from safesvd_core import LowRankLinear


class Twice(nn.Module):
    """One linear layer called twice (on two shapes), one called once, one 1×1 convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.shared, self.head, self.mix = nn.Linear(8, 8), nn.Linear(8, 4), nn.Conv2d(3, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            self.head(self.shared(self.shared(x))[:, :2]).sum() + self.mix(x[:, :3].reshape(5, 3, 4, 2)).sum()
        )


def _model() -> Twice:
    torch.manual_seed(0)
    return Twice()


def test_input_shapes_counts_each_call_of_each_layer():
    model = _model()
    shapes = latency.input_shapes(model, ["shared", "head", "mix"], lambda m: m(torch.randn(5, 6, 8)))
    assert shapes["shared"] == {(5, 6, 8): 2}
    assert shapes["head"] == {(5, 2, 8): 1}
    assert shapes["mix"] == {(5, 3, 4, 2): 1}
    assert not model.shared._forward_pre_hooks, "the hooks are removed"


def test_random_factors_replace_exactly_the_ranked_layers_and_leave_the_original():
    model = _model()
    copied = latency.with_random_factors(model, {"shared": 3, "head": None, "mix": 2})
    assert isinstance(copied.shared, LowRankLinear) and copied.shared.rank == 3
    assert isinstance(copied.mix, LowRankLinear) and copied.mix.channel_dim == 1 and copied.mix.rank == 2
    assert copied.head is not model.head and isinstance(copied.head, nn.Linear)
    assert isinstance(model.shared, nn.Linear), "the original model is not changed"
    torch.testing.assert_close(copied.shared.bias, model.shared.bias)
    assert torch.isfinite(copied(torch.randn(5, 6, 8)))


def test_rows_time_every_factored_layer_and_the_summary_adds_them():
    model = _model()
    ranks = {"shared": 3, "head": None, "mix": 2}
    row = latency.measure(
        "x",
        model,
        latency.with_random_factors(model, ranks),
        ranks,
        lambda m: m(torch.randn(5, 6, 8)),
        torch.device("cpu"),
        repeats=3,
    )
    layers = {layer["layer"]: layer for layer in row["layers"]}
    assert set(layers) == {"shared", "mix"} and row["factored"] == 2 and row["layers_total"] == 3
    assert layers["shared"]["calls"] == 2 and layers["shared"]["rank"] == 3
    assert layers["shared"]["dense_params"] == 8 * 8 + 8 and layers["shared"]["factored_params"] == 3 * 16 + 8
    assert all(layer["dense_seconds"] > 0 and layer["factored_seconds"] > 0 for layer in row["layers"])
    params = (3 * 16 + 8 + 2 * 9 + 6) / (8 * 8 + 8 + 3 * 6 + 6)
    assert row["param_ratio"] == pytest.approx(params)
    assert row["time_ratio"] == pytest.approx(
        sum(r["factored_seconds"] for r in row["layers"]) / sum(r["dense_seconds"] for r in row["layers"])
    )
    assert row["model_ratio"] == pytest.approx(
        row["model_seconds_compressed"] / row["model_seconds_original"]
    )
    assert latency.line(row).startswith("compressed layers: time ratio ")


def test_a_rank_without_a_factored_layer_is_an_error():
    model = _model()
    with pytest.raises(ValueError, match="has rank 3 but is a Linear"):
        latency.time_layers(
            model, model, {"shared": 3}, lambda m: m(torch.randn(5, 6, 8)), torch.device("cpu"), 3
        )


@pytest.mark.parametrize(
    ("time_ratio", "model_ratio", "verdicts"),
    [(0.45, 0.6, ["met", "met"]), (0.47, 0.66, ["MISSED", "MISSED"])],
)
def test_targets_are_judged_against_the_parameter_ratio_and_the_model_bound(
    time_ratio, model_ratio, verdicts
):
    row = {
        "config": "safe-svd",
        "device": "cpu",
        "time_ratio": time_ratio,
        "param_ratio": 0.4,
        "model_ratio": model_ratio,
    }
    lines = latency.targets([row, {**row, "device": "cuda"}])
    assert len(lines) == 2, "CPU rows only"
    assert [line.rsplit("**", 2)[-2] for line in lines] == verdicts
