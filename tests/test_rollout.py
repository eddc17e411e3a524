"""Rollout calibration: trajectory items, the K-step Fisher, horizon balancing, held-out choices."""

from __future__ import annotations

import copy

import attrs
import pytest
import torch
from torch import nn

from safesvd_core import ConfigError, RefineDataWarning, compress, registry
from safesvd_core.methods._allocators import GreedyAllocator, UniformAllocator, rank_at_fraction
from safesvd_core.plugin import (
    CompressionJob,
    RolloutSource,
    clean_statistics,
    make_adapter,
    one_step_batches,
    trajectory_length,
)
from safesvd_methods.tuning import ALPHA_GRID, held_out_losses
from safesvd_zoo import reference

from test_compress import small_transformer

FIELD = reference.FIELD


def trajectories(samples=8, steps=3, size=8, seed=0, batch=4):
    """Random smooth-ish trajectory items ``(input, (batch, steps, 2, size, size))``."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(samples, 2, size, size, generator=generator)
    frames, state = [], start
    for _ in range(steps):
        state = 0.9 * state + 0.1 * torch.roll(state, 1, dims=-1)
        frames.append(state + 0.01 * torch.randn(state.shape, generator=generator))
    trajectory = torch.stack(frames, dim=1)
    return [(start[i : i + batch], trajectory[i : i + batch]) for i in range(0, samples, batch)]


def weights(result) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in result.model.state_dict().items()}


def assert_identical(first, second) -> None:
    assert first.ranks == second.ranks
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.parametrize("fisher", ["empirical", "sampled"])
def test_one_rollout_step_is_the_one_step_recipe_exactly(fisher):
    model, items = small_transformer(), trajectories()
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    one_step = [(start, trajectory[:, 0]) for start, trajectory in items]
    rolled = compress(model, items, ratio=0.5, rollout_steps=1, fisher=fisher, adapter_options=options)
    pairs = compress(model, one_step, ratio=0.5, fisher=fisher, adapter_options=options)
    assert_identical(rolled, pairs)
    assert (
        "RolloutSource(steps=1" in rolled.objective["source"] and pairs.objective["source"] == "PairSource()"
    )


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.first, self.second = nn.Linear(6, 10), nn.Linear(10, 6)

    def forward(self, x):
        return x + 0.5 * self.second(torch.tanh(self.first(x)))


def test_the_k_step_fisher_is_the_autograd_one():
    """F = Σ_items Σ_k g⁽ᵏ⁾ᵀ g⁽ᵏ⁾ / rows with g⁽ᵏ⁾ = ∂L_K/∂z⁽ᵏ⁾, L_K the mean one-step MSE over K
    unrolled steps, computed here directly by autograd on each call's pre-activation."""
    model, steps = Tiny().double().eval(), 3  # float64 throughout: both sides agree to rounding
    generator = torch.Generator().manual_seed(1)
    items = [
        (
            torch.randn(5, 6, generator=generator, dtype=torch.float64),
            torch.randn(5, steps, 6, generator=generator, dtype=torch.float64),
        )
        for _ in range(2)
    ]
    job = CompressionJob(
        original=model,
        model=copy.deepcopy(model),
        batches=items,
        adapter=make_adapter("generic", None),
        ratio=0.9,
        recipe="safe-svd",
        options={},
    )
    plan = attrs.evolve(
        registry("recipe").create("safe-svd", fisher="empirical", balance_horizons=False).plan(steps),
        source=RolloutSource(steps=steps),
    )
    fisher = clean_statistics(job, plan).layer("first")["fisher"]

    total, rows = torch.zeros(10, 10, dtype=torch.float64), 0
    for start, trajectory in items:
        state, hidden, loss = start, [], 0.0
        for k in range(steps):
            z = model.first(state)
            z.retain_grad()
            hidden.append(z)
            state = state + 0.5 * model.second(torch.tanh(z))
            loss = loss + torch.mean((state - trajectory[:, k]) ** 2)
        (loss / steps).backward()
        for z in hidden:
            total += z.grad.double().mT @ z.grad.double()
            rows += z.shape[0]
    torch.testing.assert_close(fisher, total / rows, rtol=1e-10, atol=1e-14)


def test_balanced_horizons_keep_one_step_and_rollout_statistics_apart():
    model, items = small_transformer(), trajectories(steps=3)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    result = compress(model, items, ratio=0.5, adapter_options=options)
    layer = result.layer_order[0]
    (estimator,) = result.statistics.estimators[layer].values()
    assert estimator.name == "energy-balanced" and estimator.by == ("group",)
    assert sorted(estimator.domains) == ["one-step", "rollout"]
    counts = {
        label: inner["clean-covariance"].moments["sigma"].count for label, inner in estimator.domains.items()
    }
    assert counts["rollout"] == 3 * counts["one-step"]  # every call, against the first call only
    plain = compress(model, items, ratio=0.5, adapter_options=options, balance_horizons=False)
    assert [e.name for e in plain.statistics.estimators[layer].values()] == [
        "clean-covariance",
        "output-fisher",
    ]


def test_rollout_off_calibrates_on_teacher_forced_one_step_batches():
    model, items = small_transformer(), trajectories(steps=3)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    adapter = make_adapter("generic", options)
    forced = one_step_batches(adapter, items)
    assert len(forced) == 3 * len(items)
    torch.testing.assert_close(forced[1][0], items[0][1][:, 0])  # step 2 starts from the true state 1
    assert_identical(
        compress(model, items, ratio=0.5, rollout=False, adapter_options=options),
        compress(model, forced, ratio=0.5, adapter_options=options),
    )
    # a recipe without rollouts gets the same teacher-forced batches from compress itself
    assert_identical(
        compress(model, items, ratio=0.5, recipe="svd-llm", adapter_options=options),
        compress(model, forced, ratio=0.5, recipe="svd-llm", adapter_options=options),
    )


def test_block_and_layer_stages_run_every_call_of_a_rollout():
    model, items = small_transformer(depth=2), trajectories(steps=3)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    for mode in ("block", "layer", "exact", "auto"):
        result = compress(model, items, ratio=0.5, stage_mode=mode, adapter_options=options)
        assert result.met_budget and torch.isfinite(result.model(items[0][0])).all()
        if mode in ("block", "layer"):  # blocks run 3 times per item: no carry, a prefix pass for each block
            assert result.passes["prefix"] == 2 and result.passes["stages"] == 2
        else:  # "auto" is exact when blocks run several times per item: one full rollout per layer,
            # query, key and value (one input) sharing one; the original's side recorded once
            assert "prefix" not in result.passes and result.passes["stages"] == len(result.ranks) - 4
            assert result.passes["original"] == 1


def test_layer_stages_equal_exact_stages_on_one_step_batches():
    model = small_transformer(depth=2)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    items = [(start, trajectory[:, 0]) for start, trajectory in trajectories()]
    layer = compress(model, items, ratio=0.5, stage_mode="layer", adapter_options=options)
    exact = compress(model, items, ratio=0.5, stage_mode="exact", adapter_options=options)
    # one block run per factored layer, the factored ones of query, key and value (one input) sharing it
    runs = {
        (name.rsplit(".", 1)[0], "qkv" if name.endswith(("query", "key", "value")) else name)
        for name, rank in layer.ranks.items()
        if rank is not None
    }
    assert layer.ranks == exact.ranks and layer.passes["layer runs"] == len(runs)
    for key, value in weights(exact).items():
        torch.testing.assert_close(weights(layer)[key], value, rtol=1e-4, atol=1e-6)


def test_trajectory_items_are_checked():
    adapter = make_adapter("generic", None)
    items = trajectories(steps=3)
    assert trajectory_length(adapter, items) == 3
    assert trajectory_length(adapter, [(s, t[:, 0]) for s, t in items]) is None
    with pytest.raises(ConfigError, match="mix lengths \\(one-step, 3 steps\\)"):
        trajectory_length(adapter, [items[0], (items[1][0], items[1][1][:, 0])])
    with pytest.raises(ConfigError, match="rollout step 4 is beyond the trajectory's 3 steps"):
        adapter.rollout_step(items[0], None, 4)
    with pytest.raises(ConfigError, match="rollout_steps=5, but the trajectories hold 3 steps"):
        compress(small_transformer(), items, ratio=0.5, rollout_steps=5)


def _candidates():
    generator = torch.Generator().manual_seed(0)
    from safesvd_core.plugin import LayerCandidate

    shapes = [(32, 32), (32, 64), (64, 32), (16, 16)]
    return [
        LayerCandidate(
            name=f"l{i}",
            out_features=m,
            in_features=n,
            order=i,
            spectrum=torch.sort(
                torch.rand(min(m, n), generator=generator) ** (4 * i + 1), descending=True
            ).values,
        )
        for i, (m, n) in enumerate(shapes)
    ]


@pytest.mark.parametrize("floor", [0.25, 0.5, 1.0])
def test_uniform_floor_ranks_are_at_least_the_floor(floor):
    layers = _candidates()
    budget = sum(layer.dense_params for layer in layers) // 3
    ranks = GreedyAllocator(uniform_floor=floor).allocate(layers, budget)
    fraction = floor * UniformAllocator().fraction(layers, budget)
    for layer in layers:
        least = rank_at_fraction(layer, fraction, 1)
        assert ranks[layer.name] is None or (least is not None and ranks[layer.name] >= least)
    assert GreedyAllocator(uniform_floor=0.0).allocate(layers, budget) == GreedyAllocator().allocate(
        layers, budget
    )


def test_alpha_auto_picks_the_grid_point_with_the_lowest_held_out_objective():
    """Each α of the grid compresses on the fitting items; the auto choice is the one whose
    compressed model has the lowest mean held-out loss ratio, recomputed here independently."""
    model, items = small_transformer(depth=2), trajectories(samples=12, steps=2, batch=3)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    result = compress(model, items, ratio=0.4, alpha="auto", adapter_options=options)
    fit, held_out = items[:3], items[3:]
    adapter = make_adapter("generic", options)
    original = held_out_losses(adapter, model, held_out, 2)
    scores = {}
    for alpha in ALPHA_GRID:
        candidate = compress(model, fit, ratio=0.4, alpha=alpha, adapter_options=options)
        losses = held_out_losses(adapter, candidate.model, held_out, 2)
        scores[alpha] = sum(c / o for c, o in zip(losses, original)) / 2
    assert [row["alpha"] for row in result.tuning["candidates"]] == list(ALPHA_GRID)
    for row in result.tuning["candidates"]:
        assert row["score"] == pytest.approx(scores[row["alpha"]], rel=1e-9)
    assert (
        result.tuning["chosen"] == {"alpha": min(scores, key=scores.get)}
        and result.tuning["held_out_items"] == 1
    )
    assert "held-out choice" in result.notes[-1]
    chosen = compress(
        model, items, ratio=0.4, alpha=result.tuning["chosen"]["alpha"], adapter_options=options
    )
    assert_identical(result, chosen)  # the final run is the plain run at the chosen α


def test_held_out_choice_needs_two_items_and_a_resolved_plan():
    with pytest.raises(ConfigError, match="needs at least 2 calibration items"):
        compress(small_transformer(), trajectories(samples=4, batch=4), ratio=0.5, alpha="auto")
    with pytest.raises(ConfigError, match="alpha='auto' is chosen by compress"):
        registry("recipe").create("safe-svd", alpha="auto").plan()


def test_refinement_brings_the_compressed_model_closer_to_the_original_on_calibration():
    model, items = small_transformer(), trajectories(steps=2)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    plain = compress(model, items, ratio=0.4, adapter_options=options)
    with pytest.warns(RefineDataWarning, match="calibration items alone"):
        refined = compress(model, items, ratio=0.4, refine_epochs=5, refine_lr=1e-3, adapter_options=options)
    assert (
        refined.passes["refine"] == 5
        and refined.ranks == plain.ranks
        and refined.params_after == plain.params_after
    )

    def distance(compressed):
        with torch.no_grad():
            return sum(float(torch.mean((compressed(x) - model(x)) ** 2)) for x, _ in items)

    assert distance(refined.model) < distance(plain.model)
    assert "refine: 5 epochs of Adam" in refined.notes[-1]
    with pytest.warns(RefineDataWarning):
        again = compress(model, items, ratio=0.4, refine_epochs=5, refine_lr=1e-3, adapter_options=options)
    assert_identical(refined, again)  # deterministic
    assert all(parameter.requires_grad for parameter in refined.model.parameters())  # the flags are restored


def test_exact_stages_on_the_recorded_original_equal_running_it(monkeypatch):
    import safesvd_core.run.phases._original_inputs as original_inputs

    model, items = small_transformer(depth=2), trajectories(steps=3)
    options = {"block_names": model.block_names(), "include": ["blocks.*"]}
    recorded = compress(model, items, ratio=0.5, adapter_options=options)
    monkeypatch.setattr(original_inputs, "ORIGINAL_CACHE_BYTES", 0)
    running = compress(model, items, ratio=0.5, adapter_options=options)
    assert recorded.passes["original"] == 1 and "original" not in running.passes
    assert recorded.passes["stages"] == running.passes["stages"]
    for key, value in weights(running).items():
        assert torch.equal(weights(recorded)[key], value), key
