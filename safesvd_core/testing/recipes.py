"""The contract every :class:`~safesvd_core.plugin.Recipe` must meet, as a pytest suite to subclass.

::

    class TestMyRecipe(RecipeConformance):
        plugin_name = "my-recipe"  # created from the registry with ``options``
        options = {"epochs": 1}    # whatever keeps a run short

The suite compresses a tiny residual model (two blocks of two linear layers, the generic adapter)
a few times: within the budget, the caller's model untouched, the same weights twice, the run
hooks called around the engine's phases, the statistics reducer used or a sharded run refused,
and trajectory items taken (as they are, or as one-step batches).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from .. import CompressionResult, ConfigError, LowRankLinear, compress, config_from_dict, config_to_dict
from ..plugin import LocalReducer, Recipe, registry
from ._runs import (
    ADAPTER_OPTIONS,
    RecordingHook,
    assert_same_weights,
    assert_well_nested,
    tiny_items,
    tiny_model,
    weights,
)


class CountingReducer(LocalReducer):
    """One process, counting the statistics it is asked to reduce."""

    def __init__(self) -> None:
        self.reduced = 0

    def reduce(self, statistics: Any) -> None:
        self.reduced += 1


class TwoProcesses(LocalReducer):
    """Claims a world of two (rank 0) without any other process: only for runs that are refused
    before any pass."""

    @property
    def world(self) -> int:
        return 2

    def texts(self, text: str) -> list[str]:
        return [text, text]


class RecipeConformance:
    """Named as registered, configurable, within budget, leaves the caller's model alone, deterministic,
    runs on the engine (hooks called, statistics reduced), takes trajectory items."""

    #: The registered name; the default :meth:`make_recipe` creates it with ``options``.
    plugin_name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    ratio: ClassVar[float] = 0.6
    #: Whether two compressions of the same inputs give bit-identical weights (resuming from a
    #: checkpoint relies on it); a recipe that draws unseeded random numbers says False, with the reason.
    deterministic: ClassVar[bool] = True

    # -- hooks --------------------------------------------------------------------------------

    def make_recipe(self) -> Recipe:
        """The recipe under test."""
        return registry("recipe").create(self.plugin_name, **self.options)

    def make_model(self) -> nn.Module:
        """A small model (default: two residual blocks of two linear layers, on ``(batch, 4, 6)`` inputs)."""
        return tiny_model()

    def make_items(self) -> list[Any]:
        """Calibration items for :meth:`make_model` (default: three ``(input, target)`` pairs)."""
        return tiny_items()

    def adapter_options(self) -> Mapping[str, Any]:
        """The generic adapter's options for :meth:`make_model`."""
        return ADAPTER_OPTIONS

    def make_trajectories(self) -> list[Any]:
        """Trajectory items (default: :meth:`make_items` with two states per target, ``(batch, 2, …)``;
        a domain label kept)."""
        return [
            (start, torch.stack([target, target.flip(0)], dim=1), *rest)
            for start, target, *rest in self.make_items()
        ]

    # -- helpers ------------------------------------------------------------------------------

    def _compress(
        self, model: nn.Module, items: list[Any] | None = None, **options: Any
    ) -> CompressionResult:
        return compress(
            model,
            self.make_items() if items is None else items,
            ratio=self.ratio,
            recipe=self.make_recipe(),
            adapter_options=dict(self.adapter_options()),
            **options,
        )

    @staticmethod
    def _assert_within_budget(result: CompressionResult, recipe: Recipe) -> None:
        assert result.params_after == sum(parameter.numel() for parameter in result.model.parameters()), (
            "params_after is not the compressed model's parameter count"
        )
        assert result.params_after <= result.budget or result.notes, (
            f"{result.params_after} parameters kept over the budget of {result.budget}, and no note says so"
        )
        assert any(rank is not None for rank in result.ranks.values()), (
            f"nothing was compressed: {result.ranks}"
        )
        for name, rank in result.ranks.items():
            module = result.model.get_submodule(name)
            assert isinstance(module, LowRankLinear) == (rank is not None), (
                f"{name}: rank {rank}, module {type(module).__name__}"
            )
            assert rank is None or module.rank == rank, (
                f"{name}: rank {rank} in ranks, {module.rank} in the model"
            )

    # -- the contract -------------------------------------------------------------------------

    def test_is_a_recipe_named_as_registered(self) -> None:
        recipe = self.make_recipe()
        assert isinstance(recipe, Recipe), f"{type(recipe).__name__} is not a safesvd_core.plugin.Recipe"
        named = type(recipe).name
        assert named == self.plugin_name, f"the recipe is named {named!r}, registered as {self.plugin_name!r}"
        for flag in ("handles_trajectories", "distributed"):
            assert isinstance(getattr(type(recipe), flag), bool), f"{flag} must be a bool"

    def test_options_round_trip_through_a_config(self) -> None:
        recipe = self.make_recipe()
        config = config_to_dict(recipe)
        assert config["name"] == self.plugin_name, config
        assert config_from_dict(config) == recipe, (
            "config_from_dict(config_to_dict(recipe)) is another recipe"
        )

    def test_compresses_within_budget_leaving_the_model_alone(self) -> None:
        model, recipe = self.make_model(), self.make_recipe()
        before = weights(model)
        result = self._compress(model)
        assert result.recipe == self.plugin_name and result.ratio == self.ratio, (result.recipe, result.ratio)
        self._assert_within_budget(result, recipe)
        assert result.model is not model and weights(model).keys() == before.keys()
        assert all(torch.equal(value, before[key]) for key, value in weights(model).items()), (
            "the caller's model changed"
        )
        item = self.make_items()[0]
        with torch.no_grad():
            prediction = result.model(item[0])
        assert prediction.shape == item[1].shape and torch.isfinite(prediction).all(), (
            "the compressed model predicts badly"
        )

    def test_the_same_inputs_give_the_same_weights(self) -> None:
        if not self.deterministic:
            pytest.skip("the recipe says it is not deterministic")
        first, second = self._compress(self.make_model()), self._compress(self.make_model())
        assert first.ranks == second.ranks, f"ranks {first.ranks} then {second.ranks}"
        assert_same_weights(second.model, first.model, "two compressions of the same inputs")

    def test_runs_on_the_engine_calling_the_hooks(self) -> None:
        hook = RecordingHook()
        result = self._compress(self.make_model(), hooks=[hook])
        phases = assert_well_nested(hook.events, "compress(..., hooks=[hook])")
        assert phases, "the recipe ran no phase of the engine: run hooks (checkpoints, progress) never see it"
        stages = [list(layers) for event, layers in hook.events if event == "stage"]
        assert stages[len(stages) - len(result.stages) :] == result.stages, (
            f"stage_done saw {stages}, the result has the stages {result.stages}"
        )

    def test_reduces_its_statistics_or_refuses_to_be_sharded(self) -> None:
        recipe = self.make_recipe()
        if not type(recipe).distributed:
            with pytest.raises(ConfigError, match="does not run distributed"):
                self._compress(self.make_model(), distributed=TwoProcesses())
            return
        reducer = CountingReducer()
        reduced = self._compress(self.make_model(), distributed=reducer)
        passes = sum(reduced.passes.values())
        assert reducer.reduced > 0 or not passes, (
            f"a distributed recipe made {passes} pass(es) over the items and reduced nothing: its processes "
            "would disagree"
        )
        assert_same_weights(reduced.model, self._compress(self.make_model()).model, "a one-process reducer")

    def test_takes_trajectory_items(self) -> None:
        """A recipe that handles trajectories rolls them out; any other gets them as one-step batches."""
        result = self._compress(self.make_model(), self.make_trajectories())
        self._assert_within_budget(result, self.make_recipe())
