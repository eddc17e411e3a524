"""Every baseline end to end on a small transformer: budget, finite outputs, same layers, options, errors."""

from __future__ import annotations

import pytest
import torch

import safesvd_core
from safesvd_core import BudgetError, ConfigError, LowRankLinear, compress
from safesvd_zoo.operator import FieldTransformer, OperatorConfig

BASELINES = ("svd", "asvd", "fwsvd", "svd-llm", "svd-llm-v2", "saes-svd", "dobi-svd")
#: Options that keep a test run short (Dobi-SVD's training loop: two epochs instead of twenty).
FAST = {"dobi-svd": {"epochs": 2}}


def small_transformer():
    torch.manual_seed(0)
    return FieldTransformer(OperatorConfig(channels=2, size=8, patch=2, width=32, depth=2, heads=2)).eval()


def small_data(batches=2):
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(4, 2, 8, 8, generator=generator), torch.randn(4, 2, 8, 8, generator=generator))
        for _ in range(batches)
    ]


@pytest.fixture(scope="module")
def setup():
    model = small_transformer()
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    layers = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith("blocks.")
    ]
    return model, small_data(), options, layers


def test_all_nine_recipes_are_available():
    assert set(safesvd_core.available("recipe")) >= {*BASELINES, "safe-svd", "safe-svd-balanced"}
    assert len(safesvd_core.available("recipe")) >= 9


@pytest.mark.parametrize("ratio", [0.8, 0.6, 0.4, 0.2])
@pytest.mark.parametrize("recipe", BASELINES)
def test_budget_holds_and_outputs_are_finite(setup, recipe, ratio):
    model, data, options, layers = setup
    result = compress(
        model, data, ratio=ratio, recipe=recipe, adapter_options=options, **FAST.get(recipe, {})
    )
    assert result.params_after <= ratio * result.params_before and result.met_budget
    assert result.params_after == sum(p.numel() for p in result.model.parameters())
    assert list(result.ranks) == layers  # the adapter's layers, the same for every recipe
    for name, rank in result.ranks.items():
        module = result.model.get_submodule(name)
        assert isinstance(module, LowRankLinear) == (rank is not None) and (
            rank is None or module.rank == rank
        )
    assert not result.fallbacks
    output = result.model(data[0][0])
    assert output.shape == data[0][1].shape and torch.isfinite(output).all()


@pytest.mark.parametrize("allocator", ["greedy", "uniform", "asvd", "grouped"])
@pytest.mark.parametrize("recipe", [r for r in BASELINES if r != "dobi-svd"] + ["safe-svd"])
def test_any_recipe_takes_any_allocator(setup, recipe, allocator):
    model, data, options, _ = setup
    result = compress(model, data, ratio=0.5, recipe=recipe, allocator=allocator, adapter_options=options)
    assert result.met_budget and result.options["allocator"] == allocator


def test_dobi_svd_learns_its_ranks_and_takes_no_allocator(setup):
    model, data, options, _ = setup
    with pytest.raises(ConfigError, match="has no option.*allocator"):
        compress(model, data, ratio=0.5, recipe="dobi-svd", allocator="greedy", adapter_options=options)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = compress(
        model, data, ratio=0.5, recipe="dobi-svd", epochs=3, init_allocator="greedy", adapter_options=options
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched
    assert not any(isinstance(m, LowRankLinear) for m in model.modules())
    assert (
        result.passes["dobi-training"] == 3
        and "6 steps" in result.notes[0]
        and "budget projection" in result.notes[0]
    )
    assert all(p.requires_grad for p in model.parameters())


def test_svd_llm_v2_reports_its_miss_without_the_budget_fix(setup):
    model, data, options, _ = setup
    result = compress(model, data, ratio=0.4, recipe="svd-llm-v2", fix_budget=False, adapter_options=options)
    assert not result.met_budget
    over = result.params_after - result.budget
    assert result.notes == [
        f"compressed model keeps {result.params_after:,} parameters, over the budget of "
        f"{result.budget:,} by {over:,} ({100 * over / result.budget:.1f} %)"
    ]
    with_fix = compress(model, data, ratio=0.4, recipe="svd-llm-v2", adapter_options=options)
    assert with_fix.met_budget and not with_fix.notes


def test_asvd_calibration_loss_sensitivity(setup):
    model, data, options, _ = setup
    result = compress(
        model,
        data,
        ratio=0.5,
        recipe="asvd",
        sensitivity="calibration-loss",
        sensitivity_batches=1,
        ratios=(0.2, 0.5, 0.8),
        adapter_options=options,
    )
    assert (
        result.met_budget and result.passes["asvd-sensitivity"] == 12 * 3 + 1 and result.passes["clean"] == 1
    )
    assert "calibration loss" in result.notes[0]
    for name, rank in result.ranks.items():  # only the three candidate ratios (or dense)
        m, n = model.get_submodule(name).weight.shape
        assert rank is None or rank in {int(r * m * n / (m + n)) for r in (0.2, 0.5, 0.8)}
    stable = compress(model, data, ratio=0.5, recipe="asvd", adapter_options=options)
    assert stable.ranks != result.ranks


def test_saes_svd_records_beta_per_layer(setup):
    model, data, options, _ = setup
    result = compress(model, data, ratio=0.5, recipe="saes-svd", adapter_options=options)
    betas = [float(record.note.split("=")[1].split()[0]) for record in result.records.values()]
    assert betas and all(0.2 <= beta <= 0.75 / 1.75 + 1e-12 for beta in betas)
    assert result.passes["stages"] == 2  # sequential, one stage per block
    fixed = compress(model, data, ratio=0.5, recipe="saes-svd", beta=0.0, adapter_options=options)
    plain = compress(model, data, ratio=0.5, recipe="svd-llm", adapter_options=options)
    first = "blocks.0.query"  # its shifted inputs equal the clean ones: β = 0 is exactly SVD-LLM there
    torch.testing.assert_close(
        fixed.model.get_submodule(first).weight, plain.model.get_submodule(first).weight
    )


@pytest.mark.parametrize(
    ("recipe", "options", "error", "message"),
    [
        ("saes-svd", {"beta": 1.5}, ConfigError, "beta must be None"),
        ("saes-svd", {"beta_range": (0.5, 0.2)}, ConfigError, "beta_range must be a pair"),
        ("asvd", {"ratios": (0.0, 0.5)}, ConfigError, "ratios must be"),
        ("asvd", {"sensitivity": "ppl"}, ConfigError, "sensitivity must be one of"),
        (
            "asvd",
            {"sensitivity": "calibration-loss", "allocator": "greedy"},
            ConfigError,
            "feeds the 'asvd' allocator",
        ),
        ("asvd", {"scaling_exponent": -1}, ConfigError, "scaling_exponent must be"),
        ("dobi-svd", {"loss_scale": 0}, ConfigError, "loss_scale must be"),
        ("dobi-svd", {"epochs": 0}, ConfigError, "epochs must be"),
        ("svd-llm-v2", {"allocator": "gredy"}, safesvd_core.UnknownPluginError, "Did you mean 'greedy'"),
        ("svd", {"ratio": 0.01}, BudgetError, "budget"),
    ],
)
def test_bad_options_are_clear_errors(setup, recipe, options, error, message):
    model, data, adapter_options, _ = setup
    options = dict(options)
    ratio = options.pop("ratio", 0.5)
    with pytest.raises(error, match=message):
        compress(model, data, ratio=ratio, recipe=recipe, adapter_options=adapter_options, **options)


def test_safe_svd_balanced_gathers_the_fisher_inside_its_wrapper(setup):
    """The energy-balanced estimator wraps output-fisher: the clean pass must take gradients for it."""
    model, data, options, _ = setup
    labelled = [(x, y, domain) for (x, y), domain in zip(data, ("a", "b"), strict=True)]
    result = compress(model, labelled, ratio=0.5, recipe="safe-svd-balanced", adapter_options=options)
    assert result.met_budget and "fisher" in result.statistics.layer("blocks.0.query")
