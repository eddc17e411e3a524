"""``compress`` end to end: budget, untouched original, stages, λ, resume, errors."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
from torch import nn

import safesvd_core
from safesvd_core import BudgetError, ConfigError, LowRankLinear, NumericalError, compress
from safesvd_core.plugin import PhysicsLoss
from safesvd_zoo import reference
from safesvd_zoo.operator import FieldTransformer, OperatorConfig

UNIFORM_WHITENING = {"allocator": "uniform", "sensitivity": False, "sequential": False}


@pytest.fixture(scope="module")
def trained():
    model = reference.load()
    calibration = reference.batches("calibration", batch_size=16)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    return model, calibration, options


def calibration_loss(model, batches):
    with torch.no_grad():
        return sum(float(torch.mean((model(x) - y) ** 2)) for x, y in batches) / len(batches)


def small_transformer(depth=2, width=32):
    torch.manual_seed(0)
    return FieldTransformer(
        OperatorConfig(channels=2, size=8, patch=2, width=width, depth=depth, heads=2)
    ).eval()


def small_data(batches=2, size=8):
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(4, 2, size, size, generator=generator),
            torch.randn(4, 2, size, size, generator=generator),
        )
        for _ in range(batches)
    ]


def test_safe_svd_beats_uniform_whitening_on_a_trained_transformer(trained):
    model, calibration, options = trained
    ours = compress(model, calibration, ratio=0.5, adapter_options=options)
    baseline = compress(model, calibration, ratio=0.5, adapter_options=options, **UNIFORM_WHITENING)
    ours_loss, baseline_loss = (
        calibration_loss(ours.model, calibration),
        calibration_loss(baseline.model, calibration),
    )
    assert math.isfinite(ours_loss) and ours_loss < baseline_loss
    for result in (ours, baseline):
        assert result.params_after <= 0.5 * result.params_before
        out = result.model(calibration[0][0])
        assert out.shape == calibration[0][1].shape and torch.isfinite(out).all()


def test_plain_module_with_no_other_argument():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 16))
    data = [(torch.randn(32, 16), torch.randn(32, 16)) for _ in range(3)]
    result = compress(model, data, ratio=0.5)
    assert result.params_after == sum(p.numel() for p in result.model.parameters())
    assert result.params_after <= 0.5 * result.params_before
    assert set(result.ranks) == {"0", "2", "4"}
    assert all(
        isinstance(result.model.get_submodule(n), LowRankLinear)
        for n, r in result.ranks.items()
        if r is not None
    )
    assert set(result.records) == {n for n, r in result.ranks.items() if r is not None}
    assert result.timings["total"] > 0 and result.passes["clean"] == 1


def test_original_is_untouched_unless_inplace():
    model = small_transformer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = compress(model, small_data(), ratio=0.6)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(isinstance(m, LowRankLinear) for m in model.modules())
    assert result.model is not model
    inplace = compress(model, small_data(), ratio=0.6, inplace=True)
    assert inplace.model is model and any(isinstance(m, LowRankLinear) for m in model.modules())


def test_dataloader_is_accepted():
    inputs = torch.randn(16, 2, 8, 8)
    targets = torch.randn(16, 2, 8, 8)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets), batch_size=8)
    result = compress(small_transformer(), loader, ratio=0.7)
    assert result.met_budget


@pytest.mark.parametrize("ratio", [0.9, 0.7, 0.5, 0.3])
def test_budget_holds_at_every_ratio(ratio):
    result = compress(small_transformer(), small_data(), ratio=ratio)
    assert result.params_after <= ratio * result.params_before
    assert torch.isfinite(result.model(small_data()[0][0])).all()


def test_block_stages_take_one_pass_per_block_and_exact_one_per_layer():
    model = small_transformer(depth=3)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    data = small_data()
    blocks = compress(model, data, ratio=0.5, adapter_options=options)
    exact = compress(model, data, ratio=0.5, adapter_options=options, stage_mode="exact")
    assert blocks.passes["stages"] == 3 and blocks.passes["prefix"] == 1
    assert blocks.stages == [
        [f"blocks.{b}.{n}" for n in ("query", "key", "value", "output", "intermediate", "output_dense")]
        for b in range(3)
    ]
    # exact: one stage per layer, query, key and value (siblings: one input) sharing one
    assert exact.passes["stages"] == 12 and "prefix" not in exact.passes
    assert exact.stages[:4] == [
        ["blocks.0.query", "blocks.0.key", "blocks.0.value"],
        ["blocks.0.output"],
        ["blocks.0.intermediate"],
        ["blocks.0.output_dense"],
    ]
    assert blocks.ranks == exact.ranks  # allocation uses clean statistics only
    # the in-block approximation is measurable: both losses are finite and close
    loss_blocks, loss_exact = calibration_loss(blocks.model, data), calibration_loss(exact.model, data)
    assert math.isfinite(loss_blocks) and math.isfinite(loss_exact)
    assert abs(loss_blocks - loss_exact) <= 0.05 * loss_exact


def test_first_block_matches_exact_mode():
    """In the first block both modes see the same shifted inputs for the block's first layer."""
    model = small_transformer(depth=2)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    blocks = compress(model, small_data(), ratio=0.5, adapter_options=options)
    exact = compress(model, small_data(), ratio=0.5, adapter_options=options, stage_mode="exact")
    for name in (
        "blocks.0.query",
        "blocks.0.key",
        "blocks.0.value",
    ):  # inputs unaffected by earlier compression
        torch.testing.assert_close(
            blocks.model.get_submodule(name).weight, exact.model.get_submodule(name).weight
        )


class SkipChain(nn.Module):
    """Two blocks that both read the model input: not a sequential chain."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(8, 8))
        self.b = nn.Sequential(nn.Linear(8, 8))

    def forward(self, x):
        return self.a(x) + self.b(x)


def test_blocks_that_are_not_a_chain_take_their_inputs_by_a_prefix_pass():
    # block b does not read block a's output: its inputs come from a forward pass up to b, so the
    # block stages give exactly what per-layer stages give, at the cost of one more prefix pass
    data = [(torch.randn(16, 8), torch.randn(16, 8)), (torch.randn(16, 8), torch.randn(16, 8))]
    options = {"adapter_options": {"block_names": ["a", "b"]}}
    model = SkipChain()
    blocks = compress(model, data, ratio=0.8, **options)
    exact = compress(model, data, ratio=0.8, stage_mode="exact", **options)
    assert blocks.passes["stages"] == 2 and blocks.passes["prefix"] == 2
    for name in ("a.0", "b.0"):
        torch.testing.assert_close(
            blocks.model.get_submodule(name).weight, exact.model.get_submodule(name).weight
        )


class Roughness(PhysicsLoss):
    """A simple physics term for the core tests: mean |Δ_last (prediction − reference)|."""

    name: ClassVar[str] = "roughness"

    def __call__(self, prediction, reference, field):
        return torch.mean(torch.abs(torch.diff(prediction - reference, dim=-1)))


def test_auto_lambda_balances_base_and_physics():
    model = small_transformer()
    data = small_data()
    field = object()  # the generic adapter passes it through; Roughness ignores it
    options = {"field_description": field}
    result = compress(model, data, ratio=0.6, physics=[Roughness()], adapter_options=options)
    with torch.no_grad():
        base = sum(float(torch.mean((model(x) - y) ** 2)) for x, y in data)
        physics = sum(float(Roughness()(model(x), y, field)) for x, y in data)
    assert result.lam == pytest.approx(10 * base / physics, rel=1e-6)
    assert result.passes["lambda"] == 1
    fixed = compress(model, data, ratio=0.6, physics=[Roughness()], lam=0.0, adapter_options=options)
    assert fixed.lam == 0.0 and "lambda" not in fixed.passes
    fisher_with = result.statistics.layer("blocks.0.query")["fisher"]
    fisher_without = fixed.statistics.layer("blocks.0.query")["fisher"]
    assert not torch.allclose(fisher_with, fisher_without, rtol=1e-3, atol=0.0)


def test_physics_without_a_field_is_a_clear_error():
    with pytest.raises(ConfigError, match="need a field description"):
        compress(small_transformer(), small_data(), ratio=0.6, physics=[Roughness()])


def test_resume_from_saved_statistics(tmp_path):
    model = small_transformer()
    data = small_data()
    physics = {"physics": [Roughness()], "adapter_options": {"field_description": object()}}
    first = compress(model, data, ratio=0.5, **physics)
    path = tmp_path / "clean.safetensors"
    first.statistics.save(path)
    stats = safesvd_core.CalibrationStatistics(
        {layer: dict(by) for layer, by in first.statistics.estimators.items()}
    )
    stats.load(path)
    second = compress(model, data, ratio=0.5, statistics=stats, **physics)
    assert "clean" not in second.passes and "lambda" not in second.passes
    assert second.lam == first.lam
    assert first.ranks == second.ranks
    for name, rank in first.ranks.items():
        if rank is not None:
            torch.testing.assert_close(
                first.model.get_submodule(name).weight, second.model.get_submodule(name).weight
            )


def test_fallbacks_are_recorded_per_layer():
    # one calibration row: every input covariance is rank one, the Cholesky may or may not pass;
    # whichever path each layer took is recorded, and fallbacks are the non-Cholesky ones
    result = compress(small_transformer(), [(torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8))], ratio=0.5)
    assert set(result.records) == {n for n, r in result.ranks.items() if r is not None}
    for name, record in result.records.items():
        assert set(record.paths) == {"input", "fisher", "decomposition"}
        assert (name in result.fallbacks) == record.fell_back


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ratio": 0.0}, ConfigError, "ratio must be a number in"),
        ({"ratio": 1.5}, ConfigError, "ratio must be a number in"),
        ({"ratio": 0.5, "recipe": "safe-svdd"}, safesvd_core.UnknownPluginError, "Did you mean 'safe-svd'"),
        ({"ratio": 0.5, "alpah": 0.3}, ConfigError, "has no option.*alpah.*alpha"),
        ({"ratio": 0.5, "alpha": 2.0}, ConfigError, "alpha must be a number in"),
        ({"ratio": 0.5, "allocator": "gredy"}, safesvd_core.UnknownPluginError, "Did you mean 'greedy'"),
        ({"ratio": 0.5, "stage_mode": "fast"}, ConfigError, "stage_mode must be one of"),
        ({"ratio": 0.01}, BudgetError, "budget"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        compress(small_transformer(), small_data(), **kwargs)


def test_empty_or_non_finite_calibration_is_refused():
    with pytest.raises(ConfigError, match="empty"):
        compress(small_transformer(), [], ratio=0.5)
    bad = small_data()
    bad[1][0][0, 0, 0, 0] = float("nan")
    with pytest.raises(NumericalError):
        compress(small_transformer(), bad, ratio=0.5)


def test_result_summary_reports_budget():
    result = compress(small_transformer(), small_data(), ratio=0.5)
    text = result.summary()
    assert "budget" in text and "met" in text and "blocks.0.query" in text


def test_block_names_must_be_a_sequence_of_names():
    with pytest.raises(ConfigError, match="expected a sequence of strings"):
        compress(small_transformer(), small_data(), ratio=0.6, adapter_options={"block_names": "blocks.0"})


def test_unreachable_ratio_is_refused_before_any_calibration_pass():
    model = small_transformer()
    calls = {"forward": 0}
    model.register_forward_pre_hook(lambda *_: calls.__setitem__("forward", calls["forward"] + 1))
    with pytest.raises(BudgetError, match="no ratio below"):
        compress(model, small_data(), ratio=0.01)
    assert calls["forward"] == 0


def test_a_stage_whose_layers_all_stay_dense_takes_no_pass():
    model = small_transformer(depth=2)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    result = compress(model, small_data(), ratio=0.95, adapter_options=options, stage_mode="exact")
    dense = {name for name, rank in result.ranks.items() if rank is None}
    assert dense, "the case needs a layer kept dense"
    with_factors = [stage for stage in result.stages if set(stage) - dense]
    assert result.passes["stages"] == len(with_factors) < len(result.stages)
