"""One measurement: compress a model with one recipe at one ratio, in a fresh process.

A fresh process per measurement makes the peak resident memory (``ru_maxrss``) that recipe's own.
Models: the bundled reference ``ns2d-transformer`` (generic adapter) and the single-family zoo
models (e.g. ``scot-ns``, through their framework adapter).
"""

from __future__ import annotations

import functools
import resource
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import torch

from safesvd_core import ConfigError, compress, evaluate
from safesvd_core.plugin import ModelAdapter, make_adapter, median_seconds
from safesvd_data import GENERATORS
from safesvd_zoo import models, reference

FAMILY = "ns-incompressible"
#: Rollout benchmark: calibration on ``samples`` trajectories of ``steps`` steps, evaluation on
#: ``TEST_TRAJECTORIES`` test trajectories at ``ROLLOUT_HORIZONS``.
ROLLOUT_CALIBRATION = {"samples": 32, "steps": 5}
TEST_TRAJECTORIES = 32
ROLLOUT_HORIZONS = (1, 3, 5, 8)


@attrs.frozen(kw_only=True)
class Subject:
    """One model as :func:`measure` uses it: its calibration batches, the adapter keywords of
    ``compress`` and ``evaluate``, its test batches (made after compression, so the peak memory is
    the compression's), a 16-sample forward on them (latency) and its block names."""

    model: torch.nn.Module
    calibration: list[Any]
    compress_options: dict[str, Any]
    evaluate_options: dict[str, Any]
    test: Callable[[], list[Any]]
    forward: Callable[[torch.nn.Module, list[Any]], Any]
    blocks: list[str]


def _reference_options(model: torch.nn.Module) -> dict[str, Any]:
    return {
        "adapter_options": {
            "block_names": model.block_names(),
            "include": ["blocks.*"],
            "field_description": reference.FIELD,
        }
    }


def reference_subject() -> Subject:
    model = reference.load()
    return Subject(
        model=model,
        calibration=reference.batches("calibration", batch_size=16),
        compress_options=_reference_options(model),
        evaluate_options={"adapter_options": {"field_description": reference.FIELD}},
        test=lambda: reference.batches("test", batch_size=32),
        forward=lambda m, test: m(test[0][0][:16]),
        blocks=model.block_names(),
    )


def zoo_adapter(name: str) -> ModelAdapter:
    """The zoo model's adapter with the field of its one family, as that family's data generator
    describes it (for NS: ``(u, v)`` velocity, periodic, spacing 2π / grid)."""
    entry = models.spec(name)
    if len(entry.families) != 1 or entry.families[0].slots != tuple(range(len(entry.channels))):
        raise ConfigError(
            f"{name}: only single-family zoo models whose channels are the family's are measured"
        )
    family = entry.families[0]
    field = GENERATORS[family.generator](size=entry.grid, **dict(family.options)).field()
    return attrs.evolve(
        entry.adapter(),
        channels=field.channels,
        roles=field.roles,
        spacing=field.spacing,
        periodic=field.periodic,
        axes=field.axes,
    )


def zoo_subject(name: str) -> Subject:
    adapter, model = zoo_adapter(name), models.load(name)
    return Subject(
        model=model,
        calibration=list(models.batches(name, "calibration", batch_size=16)),
        compress_options={"adapter": adapter},
        evaluate_options={"adapter": adapter},
        test=lambda: list(models.batches(name, "test", batch_size=16)),
        forward=lambda m, test: adapter.predict(m, test[0]),
        blocks=adapter.blocks(model) or [],
    )


def _loose(layers: list[str], blocks: list[str]) -> int:
    """How many of ``layers`` lie outside every block (the engine gives each a stage of its own)."""
    return sum(not any(layer.startswith(block + ".") for block in blocks) for layer in layers)


def _samples(batches: list[Any]) -> int:
    return sum(len(batch["labels"] if isinstance(batch, Mapping) else batch[0]) for batch in batches)


def measure(
    recipe: str, ratio: float, options: dict[str, Any], *, model: str = reference.NAME, seed: int = 0
) -> dict[str, Any]:
    """Compress ``model``, evaluate against the original, time inference; everything as plain numbers."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # the machine is shared: one thread gives steadier timings
    subject = reference_subject() if model == reference.NAME else zoo_subject(model)
    start = time.perf_counter()
    result = compress(
        subject.model, subject.calibration, ratio=ratio, recipe=recipe, **subject.compress_options, **options
    )
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    evaluation_options: dict[str, Any] = {"family": FAMILY, **subject.evaluate_options}
    test = subject.test()
    report = evaluate(subject.model, result.model, test, **evaluation_options)
    latency_original, latency_compressed = (
        median_seconds(functools.partial(subject.forward, m, test), 15, warmup=1)
        for m in (subject.model, result.model)
    )
    return {
        "model": model,
        "samples": {"calibration": _samples(subject.calibration), "test": _samples(test)},
        "blocks": len(subject.blocks),
        "loose_layers": _loose(result.layer_order, subject.blocks),
        "recipe": recipe,
        "ratio": ratio,
        "options": {k: str(v) for k, v in options.items()},
        "params_before": result.params_before,
        "params_after": result.params_after,
        "budget": result.budget,
        "met_budget": result.met_budget,
        "notes": list(result.notes),
        "seconds": seconds,
        "peak_mib": peak_mib,
        "passes": dict(result.passes),
        "ranks": dict(result.ranks),
        "layer_order": list(result.layer_order),
        "fallbacks": sorted(result.fallbacks),
        "lam": result.lam,
        "latency_original": latency_original,
        "latency_compressed": latency_compressed,
        "report": report.to_dict(),
    }


def copy_losses() -> dict[int | None, float]:
    """The copy-the-input predictor's base loss (MSE) on the rollout benchmark's test data: the test split one
    step ahead (``None``) and the test trajectories at each of ``ROLLOUT_HORIZONS``
    (the start state every step)."""
    from safesvd_cli.baseline import copy_baseline

    adapter = make_adapter("generic", {"field_description": reference.FIELD}).for_model(reference.load())
    trajectories = reference.trajectory_batches(
        TEST_TRAJECTORIES, max(ROLLOUT_HORIZONS), seed=reference.TEST_TRAJECTORY_SEED
    )
    copied = copy_baseline(
        adapter, reference.batches("test", batch_size=32), rollout=trajectories, horizons=ROLLOUT_HORIZONS
    )
    return {None: copied.value("base loss"), **{h: copied.value("base loss", h) for h in ROLLOUT_HORIZONS}}


def measure_rollout(
    recipe: str,
    ratio: float,
    options: dict[str, Any],
    *,
    seed: int,
    samples: int | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """Compress the reference model on ``samples`` trajectories of ``steps`` steps (calibration set
    ``seed``), then evaluate one step on the test split and the rollout on the test trajectories."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    samples = samples or ROLLOUT_CALIBRATION["samples"]
    steps = steps or ROLLOUT_CALIBRATION["steps"]
    model = reference.load()
    calibration = reference.trajectory_batches(samples, steps, seed=seed)
    start = time.perf_counter()
    result = compress(model, calibration, ratio=ratio, recipe=recipe, **_reference_options(model), **options)
    seconds = time.perf_counter() - start
    test_rollout = reference.trajectory_batches(
        TEST_TRAJECTORIES, max(ROLLOUT_HORIZONS), seed=reference.TEST_TRAJECTORY_SEED
    )
    report = evaluate(
        model,
        result.model,
        reference.batches("test", batch_size=32),
        family=FAMILY,
        adapter_options={"field_description": reference.FIELD},
        rollout=test_rollout,
        horizons=ROLLOUT_HORIZONS,
    )
    return {
        "model": reference.NAME,
        "recipe": recipe,
        "ratio": ratio,
        "seed": seed,
        "options": {k: str(v) for k, v in options.items()},
        "samples": samples,
        "steps": steps,
        "params_before": result.params_before,
        "params_after": result.params_after,
        "met_budget": result.met_budget,
        "seconds": seconds,
        "passes": dict(result.passes),
        "ranks": dict(result.ranks),
        "tuning": result.tuning,
        "notes": list(result.notes),
        "report": report.to_dict(),
    }
