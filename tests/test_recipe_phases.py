"""A recipe is a list of configured phases: ``recipe_phases(name, **options)`` gives a named recipe's
list, ``compress(recipe=[...])`` runs one, and the string form builds the same list."""

from __future__ import annotations

import inspect
import warnings
from typing import ClassVar

import attrs
import pytest
import torch

from safesvd_core import (
    AllocationPhase,
    CleanStatisticsPhase,
    CompressionResult,
    ConfigError,
    LambdaPhase,
    ProbePhase,
    RefineDataWarning,
    Refinement,
    StagesPhase,
    compress,
    recipe_phases,
    registry,
)
from safesvd_core.plugin import CompressionJob, Phase, Plan, RunHook, RunState, run_plan
from safesvd_core.testing._runs import job_of, tiny_adapter, tiny_items, tiny_model

from test_compress import small_data, small_transformer
from test_rollout import trajectories

OPTIONS = {"block_names": ["blocks.0", "blocks.1"], "include": ["blocks.*"]}
CONFIGURED = (LambdaPhase, CleanStatisticsPhase, AllocationPhase, StagesPhase)


def weights(result: CompressionResult) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in result.model.state_dict().items()}


def assert_same(left: CompressionResult, right: CompressionResult) -> None:
    assert left.ranks == right.ranks
    first, second = weights(left), weights(right)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), f"{name} differs"


def test_the_listed_recipe_gives_the_same_factors_as_its_name():
    model, data = small_transformer(), small_data(batches=3)
    by_name = compress(model, data, ratio=0.5, recipe="safe-svd", adapter_options=OPTIONS)
    by_list = compress(model, data, ratio=0.5, recipe=recipe_phases("safe-svd"), adapter_options=OPTIONS)
    assert_same(by_name, by_list)


def test_options_become_the_phases_options_and_give_the_same_run_on_rollouts():
    model, items = small_transformer(), trajectories(samples=8, steps=2)
    options = {"alpha": 0.7, "lam_ratio": 3.0, "fisher": "empirical", "allocator": "uniform"}
    phases = recipe_phases("safe-svd", **options)
    assert [phase.name for phase in phases] == ["probe", "lambda", "clean", "allocate", "stages"]
    assert phases[4].alpha == 0.7 and phases[1].lam_ratio == 3.0 and phases[2].fisher == "empirical"
    assert phases[3].allocator == "uniform"
    by_name = compress(model, items, ratio=0.5, adapter_options=OPTIONS, **options)
    by_list = compress(model, items, ratio=0.5, recipe=phases, adapter_options=OPTIONS)
    assert "RolloutSource(steps=2" in by_list.objective["source"]
    assert_same(by_name, by_list)


def test_an_edited_list_runs_the_edit():
    model, data = small_transformer(), small_data(batches=3)
    phases = recipe_phases("safe-svd")
    phases[-1] = attrs.evolve(phases[-1], alpha=0.0)  # one option of one phase
    edited = compress(model, data, ratio=0.5, recipe=phases, adapter_options=OPTIONS)
    assert_same(edited, compress(model, data, ratio=0.5, alpha=0.0, adapter_options=OPTIONS))


class Count(Phase):
    """Counts the layers the allocation made dense."""

    name: ClassVar[str] = "count"
    reads: ClassVar[tuple[str, ...]] = ("allocation",)

    def run(self, state: RunState) -> None:
        state.log.reports[self.name] = sum(rank is None for rank in state.allocation.ranks.values())


def test_a_list_with_a_phase_removed_or_inserted_runs():
    model, data = small_transformer(), small_data(batches=3)
    merged = recipe_phases("safe-svd", block_correction=True)
    assert [phase.name for phase in merged][-1] == "block-correction"
    removed = compress(model, data, ratio=0.5, recipe=merged[:-1], adapter_options=OPTIONS)
    assert "block-correction" not in removed.timings
    assert_same(removed, compress(model, data, ratio=0.5, adapter_options=OPTIONS))
    inserted = recipe_phases("safe-svd")
    inserted.insert(-1, Count())
    result = compress(model, data, ratio=0.5, recipe=inserted, adapter_options=OPTIONS)
    assert result.reports["count"] == sum(rank is None for rank in result.ranks.values())
    assert list(result.timings)[:6] == ["probe", "lambda", "clean", "allocate", "count", "stages"]


def test_every_configured_phase_owns_at_most_eight_options_and_the_bags_are_small():
    for kind in CONFIGURED:
        assert len(attrs.fields(kind)) <= 8, kind.__name__
    for kind in (CompressionJob, CompressionResult, RunState, Plan):
        assert len(attrs.fields(kind)) <= 10, kind.__name__
    keywords = [
        name
        for name, parameter in inspect.signature(compress).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "recipe"
    ]
    assert len(keywords) <= 10, keywords


def test_the_result_is_frozen_and_reads_its_groups_flat():
    result = compress(small_transformer(), small_data(), ratio=0.5, adapter_options=OPTIONS)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.ranks = {}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.model = None
    assert result.ranks is result.choice.ranks and result.recipe == result.setting.recipe == "safe-svd"
    assert result.params_after == result.parameters.params_after <= result.budget
    assert result.fingerprints["weights"] and result.configs["recipe"] is not None


class AllocateAgain(AllocationPhase):
    name: ClassVar[str] = "allocate-again"


def test_contradictions_and_ignored_options_are_refused():
    model, data = small_transformer(), small_data()
    with pytest.raises(ConfigError, match="beside a list of phases"):
        compress(model, data, ratio=0.5, recipe=recipe_phases("safe-svd"), alpha=0.3, adapter_options=OPTIONS)
    with pytest.raises(ConfigError, match="recipe\\[1\\] is a str, not a Phase"):
        compress(model, data, ratio=0.5, recipe=[ProbePhase(), "stages"], adapter_options=OPTIONS)
    with pytest.raises(ConfigError, match="sets no solver"):
        compress(model, data, ratio=0.5, recipe=recipe_phases("safe-svd")[:-1], adapter_options=OPTIONS)
    untuned = recipe_phases("safe-svd", alpha="auto")[1:]  # the tuning phase removed
    with pytest.raises(ConfigError, match="stages.alpha = 'auto' is chosen on a held-out split"):
        compress(model, data, ratio=0.5, recipe=untuned, adapter_options=OPTIONS)
    with pytest.raises(ConfigError, match="has no list of configured phases; the recipes that have one"):
        recipe_phases("svd-llm")
    twice = [*recipe_phases("safe-svd"), AllocateAgain(allocator="uniform")]
    with pytest.raises(ConfigError, match="both set the plan's 'allocator'"):
        compress(model, data, ratio=0.5, recipe=twice, adapter_options=OPTIONS)


def test_run_plan_refuses_phase_options_it_would_ignore():
    job = job_of(tiny_model(), tiny_items(), tiny_adapter(), ratio=0.5)
    given = Plan(
        clean_estimators=("clean-covariance",),
        solver=registry("solver").create("whitened", sensitivity=False, alpha=0.0),
        allocator=registry("allocator").create("greedy"),
    )
    phases = (ProbePhase(), LambdaPhase(), CleanStatisticsPhase(), AllocationPhase(), StagesPhase(alpha=0.9))
    with pytest.raises(ConfigError, match="'stages' were given options, but run_plan takes its plan"):
        run_plan(job, given, phases)


class Seen(RunHook):
    def __init__(self) -> None:
        self.started: list[str] = []

    def phase_started(self, state: RunState, phase: Phase) -> None:
        self.started.append(phase.name)


def test_refinement_with_data_is_the_runs_last_phase_seen_by_hooks():
    model, calibration = small_transformer(), trajectories(samples=8, steps=2)
    seen = Seen()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefineDataWarning)
        result = compress(
            model,
            calibration,
            ratio=0.5,
            adapter_options=OPTIONS,
            hooks=[seen],
            refine=Refinement(trajectories(samples=16, steps=2, seed=5), steps=4, eval_every=2),
        )
    assert seen.started == ["probe", "lambda", "clean", "allocate", "stages", "refine"]
    assert "refine" in result.timings and result.reports["refine"]["items"]["fit"] >= 1
    assert result.timings["total"] >= result.timings["refine"]


def test_the_job_names_its_saved_statistics_and_its_progress_flag_apart_from_the_run_state():
    job = job_of(tiny_model(), tiny_items(), tiny_adapter())
    assert job.saved_statistics is None and job.show_progress is False
    with pytest.warns(
        DeprecationWarning, match=r"CompressionJob\.progress .* use CompressionJob\.show_progress"
    ):
        assert job.progress is False
    with pytest.warns(DeprecationWarning, match=r"use CompressionJob\.saved_statistics"):
        assert job.statistics is None
    with pytest.warns(DeprecationWarning, match=r"CompressionJob\(progress=\.\.\.\) is deprecated"):
        old = CompressionJob(
            **{**{f.name: getattr(job, f.name) for f in attrs.fields(CompressionJob)}, "progress": True}
        )
    assert old.show_progress is True
