"""``refine``: refinement of a compressed model that was saved, or compressed in another process:
the loaded model is distilled towards the original on fresh inputs, as ``compress(..., refine=)``
does after the closed form, and the result says what refined it (for its manifest)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from torch import nn

from .._errors import ConfigError
from ..io._fingerprint import config_fingerprint, weights_fingerprint
from ..kinds._interfaces import ModelAdapter
from ..kinds._make_adapter import make_adapter
from ..model._lowrank import LowRankLinear
from ..run._distributed import agree_on_data, processes
from ..run._items import check_finite_weights, check_loaded, model_device
from ..run._seams import StatisticsReducer
from ._refine import distil
from ._refine_request import refinement_request
from ._refinement import Refinement


@attrs.frozen
class RefinedModel:
    """A refined model, its report (``reports["refine"]`` of a manifest) and the record of what refined
    it: the data's fingerprint, the steps, the kept step and state and the held-out scores."""

    model: nn.Module
    report: dict[str, Any]
    record: dict[str, Any]


def refine(
    compressed: nn.Module,
    original: nn.Module,
    data: Iterable[Any],
    *,
    steps: int,
    adapter: str | ModelAdapter = "generic",
    adapter_options: Mapping[str, Any] | None = None,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
    distributed: bool | StatisticsReducer | None = None,
    **options: Any,
) -> RefinedModel:
    """Distil ``compressed`` (e.g. ``load_compressed(model, folder)``) towards ``original`` on
    ``data``, unlabelled inputs in the form the calibration took (one-step batches or trajectories),
    for ``steps`` Adam steps, stopping at the best held-out score, which is never worse than the
    model's as given; ``options`` are :class:`RefineOptions`' (``lr``, ``held_out``, ...). Neither
    model is changed: the result holds a refined copy. ``distributed`` as ``compress`` takes it: under
    ``torchrun`` every process is called with the same arguments and data, and each step is one
    global batch of one item per process, the gradients summed (docs/distributed.md).
    ``save_refined(result, out, source=folder)`` writes it beside a record of the refinement in the
    manifest."""
    for name, model in (("compressed", compressed), ("original", original)):
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
        check_loaded(model)
    if not any(isinstance(module, LowRankLinear) for module in compressed.modules()):
        raise ConfigError(
            "compressed has no factored layer: give the compressed model (load_compressed(model, folder)), "
            "not the original architecture"
        )
    check_finite_weights(compressed)
    adapter_obj = make_adapter(adapter, adapter_options).for_model(original)
    reducer = processes(distributed)
    request = refinement_request(Refinement(data, steps, **options), [], reducer.world)
    assert request is not None
    data_print = request.digest
    if reducer.world > 1:
        agree_on_data(reducer, len(request.items), data_print, "refinement")
    teacher = copy.deepcopy(original)
    if adapter_obj.rewrites_modules:
        teacher = adapter_obj.prepare(teacher)
    request = request.checked(adapter_obj, teacher, model_device(compressed))
    student = copy.deepcopy(compressed)
    settings = attrs.asdict(request.options)
    key = config_fingerprint(
        {
            "student": weights_fingerprint(student),
            "refine": data_print,
            "options": settings,
        }
    )
    report = distil(
        teacher,
        student,
        adapter_obj,
        request.items,
        request.options,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
        fingerprint=key,
        reducer=reducer,
    )
    record = {
        "data": data_print,
        "steps": request.options.steps,
        "kept": report["kept"],
        "best_step": report["best_step"],
        "held_out_before": report["held_out_closed_form"],
        "held_out_refined": report["held_out_refined"],
        "options": settings,
    }
    return RefinedModel(model=student, report=report, record=record)
