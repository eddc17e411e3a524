"""The seam suites can fail: each runs on a deliberately broken implementation and names the break."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
import torch

from safesvd_core.plugin import LocalReducer, PairSource, Phase, RunHook, RunState, registry
from safesvd_core.testing.hooks import RunHookConformance
from safesvd_core.testing.phases import PhaseConformance
from safesvd_core.testing.recipes import RecipeConformance
from safesvd_core.testing.reducers import StatisticsReducerConformance
from safesvd_core.testing.sources import BatchSourceConformance


class OffByOne(LocalReducer):
    def global_index(self, local: int) -> int:
        return local + 1


def test_the_reducer_suite_catches_a_shard_compress_does_not_take():
    case = type(
        "Case",
        (StatisticsReducerConformance,),
        {"implementation": OffByOne, "make_reducer": lambda self: OffByOne()},
    )()
    with pytest.raises(AssertionError, match=r"global_index\(0\) is 1"):
        case.test_global_index_is_the_shard_compress_takes()


class Meddling(RunHook):
    def stage_done(self, state: RunState, stage: Any) -> None:
        with torch.no_grad():
            state.job.model.get_submodule(stage.layers[0]).first.weight.mul_(2.0)


def test_the_hook_suite_catches_a_hook_that_changes_the_result(tmp_path):
    case = type(
        "Case",
        (RunHookConformance,),
        {"implementation": Meddling, "make_hook": lambda self, directory: Meddling()},
    )()
    with pytest.raises(AssertionError, match="compress with the hook against without: these tensors differ"):
        case.test_compress_with_it_gives_the_same_result_and_phases(tmp_path)


class Peeking(Phase):
    name: ClassVar[str] = "peeking"

    def check(self, state: RunState) -> None:
        next(iter(state.plan.source.predictions(state.job.adapter, state.job.model, state.job.batches[0])))

    def run(self, state: RunState) -> None:
        return None


def test_the_phase_suite_catches_a_check_that_runs_the_model():
    case = type(
        "Case", (PhaseConformance,), {"implementation": Peeking, "make_phase": lambda self: Peeking()}
    )()
    with pytest.raises(AssertionError, match=r"the checks ran 1 item\(s\) through the model"):
        case.test_its_check_makes_no_pass_over_the_data()


class Unnamed(PairSource):
    __repr__ = object.__repr__


def test_the_source_suite_catches_a_repr_with_an_address():
    case = type(
        "Case", (BatchSourceConformance,), {"implementation": Unnamed, "make_source": lambda self: Unnamed()}
    )()
    with pytest.raises(AssertionError, match="is not stable"):
        case.test_repr_is_stable()


class OffTheEngine(RecipeConformance):
    """svd-llm, run with the job's hooks dropped (as a recipe with a loop of its own would)."""

    plugin_name: ClassVar[str] = "svd-llm"

    def make_recipe(self):
        inner = registry("recipe").create("svd-llm")

        class Quiet(type(inner)):
            def compress(self, job):
                return super().compress(attrs.evolve(job, hooks=()))

        return Quiet()


def test_the_recipe_suite_catches_a_recipe_that_skips_the_hooks():
    with pytest.raises(AssertionError, match="the recipe ran no phase of the engine"):
        OffTheEngine().test_runs_on_the_engine_calling_the_hooks()
