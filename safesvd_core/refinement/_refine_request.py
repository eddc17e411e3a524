"""What ``compress(..., refine=Refinement(...))`` asks for: checked before any
pass over the calibration data, run by the refinement phase (:mod:`._refine_phase`)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import attrs
from torch import nn

from .._errors import ConfigError
from ..io._fingerprint import fingerprint
from ..kinds._interfaces import ModelAdapter
from ..model._modules import evaluating
from ..run._items import check_dtypes, check_finite, check_runs, materialise, moved, tensors
from ..run._rollout import one_step_batches
from ._refine import (
    RECOMMENDED_INPUTS,
    RefineDataWarning,
    RefineOptions,
    source_for,
)
from ._refine_split import item_domains, split_items
from ._refine_symmetries import symmetric_items
from ._refinement import Refinement


def _input_count(items: Iterable[Any]) -> int:
    """Inputs (samples) in ``items``: the leading size of each item's first tensor."""
    total = 0
    for item in items:
        found = tensors(item)
        total += int(found[0].shape[0]) if found and found[0].ndim else 1
    return total


@attrs.frozen
class RefinementRequest:
    """The refinement items and options of one ``compress`` call."""

    items: list[Any]
    options: RefineOptions
    same_as_calibration: bool
    world: int = 1  # the processes that share the refinement, one item of each global batch each
    #: The items' fingerprint, computed once: the processes' agreement, the checkpoint key, the record.
    digest: str = attrs.field(default=attrs.Factory(lambda self: fingerprint(self.items), takes_self=True))

    def checked(self, adapter: ModelAdapter, model: nn.Module, device: Any) -> RefinementRequest:
        """Refuse what cannot run (dtype, trajectory lengths, too few items for the held-out split, a
        first item the model cannot run) and warn about data that tends to overfit; the items moved to
        ``device``."""
        check_dtypes(self.items[0], model, "refinement")
        check_finite(self.items, "refinement")
        source_for(adapter, self.items, self.options.rollout_steps)
        split_items(self.items, self.options.held_out, item_domains(adapter, self.items), self.world)
        symmetric_items(self.options.symmetries, self.options.seed, adapter, self.items)
        checked = (
            self
            if device is None
            else attrs.evolve(
                self,
                items=[
                    moved(adapter, item, device, index, "refinement") for index, item in enumerate(self.items)
                ],
            )
        )
        with evaluating(model):  # the original model on the first step of the first item
            check_runs(adapter, model, one_step_batches(adapter, checked.items[:1])[0], "refinement")
        if self.same_as_calibration:
            warnings.warn(
                "the refinement data is the calibration data: refinement then fits the calibration items "
                "and tends to overfit; give fresh inputs from the data distribution "
                f"(≥ {RECOMMENDED_INPUTS}, see docs/results/refine.md)",
                RefineDataWarning,
                stacklevel=3,
            )
        elif (count := _input_count(self.items)) < RECOMMENDED_INPUTS:
            warnings.warn(
                f"the refinement data holds {count} inputs; the refinement-data study "
                f"(docs/results/refine.md) needed about {RECOMMENDED_INPUTS} for most of the gain "
                "(fewer overfit)",
                RefineDataWarning,
                stacklevel=3,
            )
        return checked


def refinement_request(
    refinement: Refinement | None, calibration: list[Any], world: int
) -> RefinementRequest | None:
    """The request of ``compress(..., refine=)``, or ``None`` when it asks for no refinement."""
    if refinement is None:
        return None
    if not isinstance(refinement, Refinement):
        raise ConfigError(
            f"refine must be a Refinement (safesvd_core.Refinement(inputs, steps=...)), got "
            f"{type(refinement).__name__}"
        )
    items = materialise(refinement.data, "refinement")
    if len(items) % world:
        raise ConfigError(
            f"distributed refinement on {world} processes takes global batches of one item per process: "
            f"give a multiple of {world} refinement items, got {len(items)}"
        )
    calibration_prints = {fingerprint(item) for item in calibration}
    same = all(fingerprint(item) in calibration_prints for item in items)
    return RefinementRequest(
        items=items,
        options=refinement.options,
        same_as_calibration=same,
        world=world,
    )
