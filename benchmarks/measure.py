"""One measurement: compress the reference model with one recipe at one ratio, in a fresh process.

A fresh process per measurement makes the peak resident memory (``ru_maxrss``) that recipe's own.
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import torch

from safesvd_core import compress, evaluate
from safesvd_zoo import reference

FAMILY = "ns-incompressible"
HORIZONS = (1, 3, 5)


def _latency(model: torch.nn.Module, inputs: torch.Tensor, repeats: int = 15) -> float:
    with torch.no_grad():
        model(inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(recipe: str, ratio: float, options: dict[str, Any], *, rollout: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compress, evaluate against the original, time inference; everything as plain numbers."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # the machine is shared: one thread gives steadier timings
    model = reference.load()
    calibration = reference.batches("calibration", batch_size=16)
    adapter_options = {"block_names": model.block_names(), "include": ["blocks.*"], "field_description": reference.FIELD}
    start = time.perf_counter()
    result = compress(model, calibration, ratio=ratio, recipe=recipe, adapter_options=adapter_options, **options)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    evaluation_options: dict[str, Any] = {"family": FAMILY, "adapter_options": {"field_description": reference.FIELD}}
    if rollout:
        start_state, trajectory = reference.trajectories(samples=8, steps=max(HORIZONS))
        evaluation_options.update(rollout=[(start_state, trajectory)], horizons=HORIZONS)
    report = evaluate(model, result.model, reference.batches("test", batch_size=32), **evaluation_options)
    inputs = reference.split("test")[0][:16]
    latency_original, latency_compressed = _latency(model, inputs), _latency(result.model, inputs)
    return {
        "recipe": recipe, "ratio": ratio, "options": {k: str(v) for k, v in options.items()},
        "params_before": result.params_before, "params_after": result.params_after, "budget": result.budget,
        "met_budget": result.met_budget, "notes": list(result.notes), "seconds": seconds, "peak_mib": peak_mib,
        "passes": dict(result.passes), "ranks": dict(result.ranks), "layer_order": list(result.layer_order),
        "fallbacks": sorted(result.fallbacks), "lam": result.lam,
        "latency_original": latency_original, "latency_compressed": latency_compressed,
        "report": report.to_dict(),
    }
