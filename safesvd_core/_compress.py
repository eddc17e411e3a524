"""``compress``: the one-call entry point."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from torch import nn

from ._errors import ConfigError
from ._interfaces import ModelAdapter
from ._job import CompressionJob, Recipe
from ._plugins import registry
from ._rollout import one_step_batches
from ._result import CompressionResult
from ._spill import SpillPolicy
from ._statistics import CalibrationStatistics


def compress(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    ratio: float,
    recipe: str | Recipe = "safe-svd",
    adapter: str | ModelAdapter = "generic",
    adapter_options: Mapping[str, Any] | None = None,
    inplace: bool = False,
    statistics: CalibrationStatistics | None = None,
    progress: bool = False,
    statistics_memory: int | str | None = None,
    spill_dir: str | Path | None = None,
    **options: Any,
) -> CompressionResult:
    """Compress ``model`` so that it keeps at most ``ratio`` of its parameters.

    ``calibration`` is any re-iterable of batches (a list, a DataLoader); the adapter says what a
    batch is (``generic``: ``(input, target)`` tuples, MSE). ``recipe`` is a registered recipe
    name (options passed as keywords) or a recipe object. ``statistics`` resumes from clean
    statistics saved by an earlier run (``result.statistics.save``). The original model is left
    untouched unless ``inplace=True``.

    For models whose clean statistics do not fit in memory, ``statistics_memory`` (bytes, or a
    size like ``"6GiB"``) caps them: the clean pass runs once per group of layers that fits, each
    group spilled to ``spill_dir`` (a new or empty directory, kept afterwards: reopen it with
    ``CalibrationStatistics.open`` to resume). The two go together.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio <= 1.0:
        raise ConfigError(f"ratio must be a number in (0, 1] (the fraction of parameters kept), got {ratio!r}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if (statistics_memory is None) != (spill_dir is None):
        raise ConfigError("statistics_memory and spill_dir go together: the cap says how much stays in memory, "
                          "the directory where the rest goes")
    spill = None if spill_dir is None else SpillPolicy(spill_dir, statistics_memory)
    recipe_obj = make_recipe(recipe, options)
    adapter_obj = make_adapter(adapter, adapter_options).for_model(model)
    batches = _materialise(calibration)
    device = _device(model)
    if device is not None:
        batches = [adapter_obj.to_device(batch, device) for batch in batches]
    if not recipe_obj.handles_trajectories:
        batches = one_step_batches(adapter_obj, batches)
    if inplace:
        original, work = copy.deepcopy(model), model
    else:
        original, work = model, copy.deepcopy(model)
    if adapter_obj.rewrites_modules:
        original = adapter_obj.prepare(original if inplace else copy.deepcopy(model))
        work = adapter_obj.prepare(work)
    job = CompressionJob(
        original=original, model=work, batches=batches, adapter=adapter_obj, ratio=float(ratio),
        recipe=recipe_obj.name, options=_describe(recipe_obj), statistics=statistics, progress=progress,
        spill=spill,
    )
    return recipe_obj.compress(job)


def make_recipe(recipe: str | Recipe, options: Mapping[str, Any]) -> Recipe:
    """A recipe object from a name plus options (or the object itself, with no options)."""
    if isinstance(recipe, Recipe):
        if options:
            raise ConfigError(f"options {sorted(options)} were given beside a ready recipe object; set them on the object")
        return recipe
    return registry("recipe").create(recipe, **options)


def make_adapter(adapter: str | ModelAdapter, options: Mapping[str, Any] | None) -> ModelAdapter:
    """A model adapter from a name plus options (or the object itself)."""
    if isinstance(adapter, ModelAdapter):
        if options:
            raise ConfigError("adapter_options were given beside a ready adapter object; set them on the object")
        return adapter
    return registry("model_adapter").create(adapter, **(options or {}))


def _describe(recipe: Recipe) -> dict[str, Any]:
    if not attrs.has(type(recipe)):
        return {}
    return {field.name: getattr(recipe, field.name) for field in attrs.fields(type(recipe))}


def _device(model: nn.Module):
    """The device of the model's parameters (None for a parameter-free model)."""
    first = next(model.parameters(), None)
    return None if first is None else first.device


def _materialise(calibration: Iterable[Any]) -> list[Any]:
    """The batches as a list: every pass must see the same batches in the same order (a
    shuffling DataLoader would otherwise pair clean and shifted rows of different samples)."""
    try:
        batches = list(calibration)
    except TypeError:
        raise ConfigError(f"calibration must be an iterable of batches, got {type(calibration).__name__}") from None
    if not batches:
        raise ConfigError("the calibration set is empty")
    return batches
