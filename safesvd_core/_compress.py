"""``compress``: the one-call entry point."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from torch import nn

from ._errors import ConfigError, SafeSVDError
from ._moved_keywords import fold_moved_keywords
from .io._checkpoint import Checkpoint
from .io._fingerprint import config_fingerprint, fingerprint, weights_fingerprint
from .io._hf_route import route_saves
from .kinds._config import config_to_dict
from .kinds._interfaces import ModelAdapter
from .kinds._make_adapter import make_adapter
from .kinds._plugins import registry
from .refinement._refine_phase import RefinementPhase
from .refinement._refine_request import refinement_request
from .refinement._refinement import Refinement
from .run._distributed import agree_on_data, processes
from .run._items import (
    check_dtypes,
    check_finite,
    check_finite_weights,
    check_loaded,
    materialise,
    model_device,
    moved,
)
from .run._job import CompressionJob, Phase, RunHook, RunSeams
from .run._phase_list import PhaseList
from .run._phase_progress import PhaseProgress
from .run._recipe import Recipe
from .run._result import CompressionResult
from .run._rollout import check_steps, one_step_batches
from .run._seams import StatisticsReducer
from .statistics._spill import SpillPolicy
from .statistics._statistics import CalibrationStatistics


def compress(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    ratio: float,
    recipe: str | Recipe | Sequence[Phase] = "safe-svd",
    adapter: str | ModelAdapter = "generic",
    adapter_options: Mapping[str, Any] | None = None,
    inplace: bool = False,
    statistics: CalibrationStatistics | SpillPolicy | None = None,
    progress: bool = False,
    hooks: Sequence[RunHook] = (),
    checkpoint_dir: str | Path | None = None,
    distributed: bool | StatisticsReducer | None = None,
    refine: Refinement | None = None,
    **options: Any,
) -> CompressionResult:
    """Compress ``model`` so that it keeps at most ``ratio`` of its parameters.

    ``calibration`` is any re-iterable of batches (a list, a DataLoader); the adapter says what a
    batch is (``generic``: ``(input, target)`` tuples, MSE). ``recipe`` is a registered recipe
    name (options passed as keywords), a list of configured phases (``recipe_phases(name, ...)``
    gives a named recipe's, to edit) or a recipe object. The original model is left untouched
    unless ``inplace=True``.

    ``statistics``: clean statistics saved by an earlier run to resume from
    (``result.statistics.save``, ``CalibrationStatistics.open``), or a :class:`SpillPolicy` for
    models whose clean statistics do not fit in memory: ``SpillPolicy("stats", "6GiB")`` runs the
    clean pass once per group of layers that fits, each group spilled to the directory (new or
    empty, kept afterwards: reopen it with ``CalibrationStatistics.open`` to resume).

    ``progress``: a line per phase on the standard error (recipe, ratio, phase, its time) and
    progress bars with the time left for the loops over items and stages. ``hooks``:
    :class:`~safesvd_core.plugin.RunHook` objects the run calls around every phase and after every
    stage, in the order given, after the checkpoint's (every process calls its own).

    ``checkpoint_dir``: after the clean statistics, the allocation and every stage the run's
    progress is written there (atomically, by process 0); a later call with the same directory and
    inputs resumes after the last finished stage (docs/method.md, "Checkpoint and resume").

    ``distributed``: with an initialised ``torch.distributed`` process group (``torchrun``), every
    process calls ``compress`` with the same arguments and calibration set; each takes its shard
    of the items, statistics are all-reduced and per-layer work is split (docs/distributed.md).
    ``None`` (default) detects a group of more than one process, ``False`` ignores it; a
    :class:`~safesvd_core.plugin.StatisticsReducer` (e.g. a ``DistributedReducer`` on a process
    group of your own) is used as given.

    ``refine``: a :class:`Refinement`, ``Refinement(fresh_inputs, steps=1000, lr=3e-4)``: after the
    closed form, distil the compressed model towards the original on these unlabelled inputs (any
    form the calibration takes: one-step batches are distilled one step ahead, trajectories on the
    one-step and the K-step loss), Adam steps of one item each, stopping at the best held-out score,
    which is never worse than the closed form's (``result.reports["refine"]`` has both). Give fresh
    inputs from the data distribution, not the calibration items (docs/fine-tune.md).

    The keywords of the last release ``statistics_memory``/``spill_dir``, ``reducer`` and
    ``refine_data``/``refine_steps``/``refine_options`` still work, deprecated.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio <= 1.0:
        raise ConfigError(
            f"ratio must be a number in (0, 1] (the fraction of parameters kept), got {ratio!r}"
        )
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_loaded(model)
    options, statistics, distributed, refine = fold_moved_keywords(options, statistics, distributed, refine)
    run_hooks = _checked_hooks(hooks)
    reducer = processes(distributed)
    spill = None
    if isinstance(statistics, SpillPolicy):
        spill, statistics = statistics.for_process(reducer.rank, reducer.world), None
    elif statistics is not None and not isinstance(statistics, CalibrationStatistics):
        raise ConfigError(
            "statistics must be CalibrationStatistics (to resume from) or a SpillPolicy, got "
            f"{type(statistics).__name__}"
        )
    recipe_obj = make_recipe(recipe, options)
    adapter_obj = make_adapter(adapter, adapter_options).for_model(model)
    if reducer.world > 1 and not recipe_obj.distributed:
        raise ConfigError(
            f"recipe {recipe_obj.name!r} does not run distributed (its own calibration loop is not "
            "sharded); run it in one process, distributed=False"
        )
    everything = materialise(calibration)
    check_dtypes(everything[0], model)
    check_finite_weights(model)
    check_finite(everything)
    check_steps(adapter_obj, everything, "calibration")
    refinement = refinement_request(refine, everything, reducer.world)
    batches = everything[reducer.rank :: reducer.world]
    if not batches:
        raise ConfigError(
            f"{len(everything)} calibration item(s) for {reducer.world} processes: every process needs one"
        )
    device = model_device(model)
    if device is not None:
        batches = [moved(adapter_obj, batch, device, index) for index, batch in enumerate(batches)]
    fingerprints = _fingerprints(model, everything, recipe_obj, adapter_obj, ratio)
    if reducer.world > 1:
        agree_on_data(reducer, len(everything), fingerprints["calibration"], "calibration")
    if refinement is not None:
        if reducer.world > 1:
            agree_on_data(reducer, len(refinement.items), refinement.digest, "refinement")
        refinement = refinement.checked(adapter_obj, model, device)
    hooks = run_hooks
    if checkpoint_dir is not None:
        checkpoint = Checkpoint(checkpoint_dir, fingerprints, writer=reducer.rank == 0)
        statistics = statistics if statistics is not None else checkpoint.statistics
        hooks = (checkpoint, *hooks)
    if progress and reducer.rank == 0:
        hooks = (*hooks, PhaseProgress(f"{recipe_obj.name}, ratio {float(ratio):g}"))
    if not recipe_obj.handles_trajectories:
        batches = one_step_batches(adapter_obj, batches)
    if inplace:
        original, work = copy.deepcopy(model), model
    else:
        original, work = model, copy.deepcopy(model)
    if adapter_obj.rewrites_modules:
        original = adapter_obj.prepare(original if inplace else copy.deepcopy(model))
        work = adapter_obj.prepare(work)
    closing = ()
    if refinement is not None:
        closing = (
            RefinementPhase(request=refinement, fingerprints=fingerprints, checkpoint_dir=checkpoint_dir),
        )
    job = CompressionJob(
        original=original,
        model=work,
        batches=batches,
        adapter=adapter_obj,
        ratio=float(ratio),
        recipe=recipe_obj.name,
        options=_describe(recipe_obj),
        saved_statistics=statistics,
        seams=RunSeams(
            reducer=reducer, hooks=hooks, spill=spill, show_progress=progress and reducer.rank == 0
        ),
        closing_phases=closing,
    )
    result = recipe_obj.compress(job)
    if closing and "refine" not in result.reports:
        raise SafeSVDError(
            f"recipe {recipe_obj.name!r} did not run the job's closing phases (the refinement): its "
            "compress must run the job through run_plan or run_phase_list"
        )
    configs = {"recipe": _config(recipe_obj), "adapter": _config(adapter_obj)}
    result = attrs.evolve(result, fingerprints=fingerprints, configs=configs)
    route_saves(
        result.model,
        {
            "recipe": result.recipe,
            "ratio": result.ratio,
            "fingerprints": fingerprints,
            "adapter": configs["adapter"],
        },
    )  # a HF model's own save_pretrained
    return result


def _config(obj: Any) -> dict[str, Any] | None:
    """``config_to_dict(obj)``, or ``None`` for an object with no dict form."""
    try:
        return config_to_dict(obj)
    except ConfigError:
        return None


def _checked_hooks(hooks: Sequence[RunHook]) -> tuple[RunHook, ...]:
    """``hooks`` as a tuple, each a :class:`RunHook`; else a :class:`ConfigError` naming what was given."""
    if isinstance(hooks, RunHook) or not isinstance(hooks, (list, tuple)):
        raise ConfigError(
            f"hooks must be a list or tuple of RunHook objects, got {type(hooks).__name__}"
            + (": pass hooks=[hook]" if isinstance(hooks, RunHook) else "")
        )
    for index, hook in enumerate(hooks):
        if not isinstance(hook, RunHook):
            raise ConfigError(
                f"hooks[{index}] is a {type(hook).__name__}, not a RunHook (subclass "
                "safesvd_core.plugin.RunHook and override the methods you need)"
            )
    return tuple(hooks)


def _fingerprints(
    model: nn.Module, items: list[Any], recipe: Recipe, adapter: ModelAdapter, ratio: float
) -> dict[str, str]:
    """What a checkpoint depends on: the original weights, the calibration items and the config."""
    recipe_config = _config(recipe) or repr(recipe)
    return {
        "weights": weights_fingerprint(model),
        "calibration": fingerprint(items),
        "config": config_fingerprint(
            {"recipe": recipe_config, "adapter": repr(adapter), "ratio": float(ratio)}
        ),
    }


def make_recipe(recipe: str | Recipe | Sequence[Phase], options: Mapping[str, Any]) -> Recipe:
    """A recipe object from a name plus options, from a list of configured phases, or the object
    itself (the last two with no options)."""
    if not isinstance(recipe, (str, Recipe)):
        if options:
            raise ConfigError(
                f"options {sorted(options)} were given beside a list of phases; set them on the phases"
            )
        return PhaseList(recipe)
    if isinstance(recipe, Recipe):
        if options:
            raise ConfigError(
                f"options {sorted(options)} were given beside a ready recipe object; set them on the object"
            )
        return recipe
    return registry("recipe").create(recipe, **options)


def _describe(recipe: Recipe) -> dict[str, Any]:
    if not attrs.has(type(recipe)):
        return {}
    return {field.name: getattr(recipe, field.name) for field in attrs.fields(type(recipe))}
