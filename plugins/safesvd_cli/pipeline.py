"""From a :class:`RunConfig` to compressed models and their evaluation: the model and data are
loaded once (:func:`prepare`), then each ratio is compressed and evaluated (:func:`run`)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import attrs
from torch import nn

from safesvd_core import (
    CompressionResult,
    EvaluationReport,
    FieldDescription,
    RefineDataWarning,
    compress,
    evaluate,
    registry,
)
from safesvd_core.plugin import ModelAdapter, check_finite, check_runs, make_adapter, one_step_batches

from . import report
from .baseline import CopyBaseline, copy_baseline
from .config import RunConfig
from .phases_spec import family_given, phase_list
from .progress_option import announce_run, time_left


@attrs.frozen(kw_only=True, eq=False)
class Prepared:
    """What every ratio of a run shares: the original model, the data and the adapter."""

    config: RunConfig
    model: nn.Module
    calibration: list[Any]
    test: list[Any]
    rollout: list[Any] | None
    adapter_options: dict[str, Any]
    field: FieldDescription | None
    lead_time: float | None = None
    refine_items: list[Any] | None = None

    @property
    def adapter(self) -> ModelAdapter:
        return make_adapter(self.config.adapter, self.adapter_options).for_model(self.model)

    @property
    def eval_horizons(self) -> tuple[int, ...]:
        """Every step up to the largest asked horizon (the figure draws them all)."""
        return tuple(range(1, max(self.config.horizons) + 1)) if self.config.horizons else ()


@attrs.frozen(kw_only=True, eq=False)
class Run:
    """One ratio: the compression, its evaluation and its wall seconds."""

    ratio: float
    result: CompressionResult
    report: EvaluationReport
    seconds: float


def prepare(config: RunConfig, *, calibration: bool = True, model: nn.Module | None = None) -> Prepared:
    """Build the original model and load the data: the calibration part (unless ``calibration`` is
    off, for ``evaluate``), the test part, and test trajectories when horizons are asked."""
    model = config.model.build() if model is None else model
    own_test = config.test is not None
    calibrate = (0.0, 1.0 - config.test_fraction) if not own_test else (0.0, 1.0)
    held = (0.0, 1.0) if own_test else (1.0 - config.test_fraction, 1.0)
    test_source = config.test or config.data
    steps = config.trajectory_steps or None
    cal = config.data.load(steps, calibrate) if calibration else None
    test = test_source.load(None, held)
    field = (cal.field if cal is not None else None) or test.field
    options = dict(config.adapter_options)
    if config.adapter == "generic" and "field_description" not in options and field is not None:
        options["field_description"] = field
    adapter = make_adapter(config.adapter, options).for_model(model)
    rollout = (
        test_source.load(
            max(config.horizons),
            held,
            asked_by=f"horizons = {list(config.horizons)} ([evaluate] or --horizons)",
        ).items
        if config.horizons
        else None
    )
    test_batches = one_step_batches(adapter, test.items)
    check_finite(test_batches, "test")  # before any compute: not found after the whole compression
    check_runs(adapter, model, test_batches[0], "test")
    if rollout is not None:
        check_finite(rollout, "test rollout")
    refine_items = _refine_items(config, calibrate) if calibration else None
    return Prepared(
        config=config,
        model=model,
        calibration=cal.items if cal is not None else [],
        test=test_batches,
        rollout=rollout,
        adapter_options=options,
        field=field,
        lead_time=test.lead_time,
        refine_items=refine_items,
    )


def _refine_items(config: RunConfig, calibrate: tuple[float, float]) -> list[Any] | None:
    """The ``[refine]`` items: all of its source, or only the calibration share when it is ``[data]``'s
    (never the test share), said in a :class:`RefineDataWarning`."""
    if config.refine is None:
        return None
    if not config.refine_reads_data:
        return config.refine.load()
    warnings.warn(
        f"[refine] reads the same data as [data] ({config.data.label}, the same options): it refines on "
        "the calibration share only, so it fits the calibration items and tends to overfit; give "
        "[refine] fresh inputs (another file, split, seed or arguments)",
        RefineDataWarning,
        stacklevel=3,
    )
    return config.refine.load(calibrate)


def recipe_arguments(config: RunConfig, recipe: str | None = None) -> dict[str, Any]:
    """``compress``'s ``recipe`` and the recipe's options: ``recipe`` with its defaults, else the
    config's ``[compress] phases`` as a list, else its recipe and options."""
    if recipe is None and config.phases:
        return {"recipe": phase_list(config.phases, config.family)}
    return {"recipe": recipe or config.recipe, **recipe_options(config, recipe)}


def recipe_options(config: RunConfig, recipe: str | None = None) -> dict[str, Any]:
    """The recipe's options, with the config's family where the recipe takes one."""
    options = config.recipe_options if recipe is None else {}
    return family_given(registry("recipe").get(recipe or config.recipe), options, config.family)


def evaluation(prepared: Prepared, compressed: nn.Module) -> EvaluationReport:
    """The compressed model against the original on the test part (and along rollouts, when asked)."""
    return evaluate(
        prepared.model,
        compressed,
        prepared.test,
        adapter=prepared.config.adapter,
        adapter_options=prepared.adapter_options,
        family=prepared.config.family,
        rollout=prepared.rollout,
        horizons=prepared.eval_horizons,
    )


def copy_input(prepared: Prepared) -> CopyBaseline:
    """The copy-the-input baseline on the test part (and its trajectories), with the evaluation's metrics."""
    return copy_baseline(
        prepared.adapter,
        prepared.test,
        family=prepared.config.family,
        rollout=prepared.rollout,
        horizons=prepared.eval_horizons,
    )


def rows_legend(prepared: Prepared) -> str | None:
    """What the one-step row and the horizons of the evaluation are scored on (None without horizons)."""
    return report.rows_legend(
        test_sizes(prepared), function=(prepared.config.test or prepared.config.data).function is not None
    )


def test_sizes(prepared: Prepared) -> tuple[int, int | None]:
    """Samples the one-step rows are scored on (the test pairs) and the horizons on (the trajectory starts;
    None without horizons): they differ, since a trajectory start needs room for the largest horizon."""
    adapter = prepared.adapter
    pairs = sum(int(adapter.reference(batch).shape[0]) for batch in prepared.test)
    if prepared.rollout is None:
        return pairs, None
    return pairs, sum(
        int(adapter.reference(adapter.rollout_step(item, None, 1)).shape[0]) for item in prepared.rollout
    )


def run(prepared: Prepared, ratio: float, *, recipe: str | None = None, progress: bool = False) -> Run:
    """Compress at ``ratio`` with the config's recipe (or ``recipe`` with its defaults), refine when
    the config has ``[refine]``, and evaluate."""
    config = prepared.config
    start = time.perf_counter()
    refinement = (
        {}
        if config.refine is None or prepared.refine_items is None
        else config.refine.compress_arguments(prepared.refine_items)
    )
    with warnings.catch_warnings():
        if config.refine_reads_data:  # said once, by _refine_items, with its source
            warnings.filterwarnings(
                "ignore", "the refinement data is the calibration data", RefineDataWarning
            )
        result = compress(
            prepared.model,
            prepared.calibration,
            ratio=ratio,
            adapter=config.adapter,
            adapter_options=prepared.adapter_options,
            progress=progress,
            **refinement,
            **recipe_arguments(config, recipe),
        )
    seconds = time.perf_counter() - start
    return Run(ratio=ratio, result=result, report=evaluation(prepared, result.model), seconds=seconds)


def runs(prepared: Prepared, ratios: Sequence[float], *, progress: bool = False) -> list[Run]:
    """:func:`run` at every ratio, in order (with ``progress``, each announced with the time left)."""
    done: list[Run] = []
    for index, ratio in enumerate(ratios, start=1):
        if progress:
            left = time_left([run.seconds for run in done], len(ratios) - index + 1)
            announce_run(index, len(ratios), f"{prepared.config.recipe_label} at ratio {ratio:g}", left)
        done.append(run(prepared, ratio, progress=progress))
    return done
