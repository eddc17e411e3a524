"""The allocation phase: proxy spectra from the clean statistics, ranks from the plan's allocator."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..._defaults import DEFAULTS
from ...kinds._interfaces import LayerCandidate
from ...kinds._plugins import registry
from ...model._modes import in_mode_bank
from .._job import Phase, RunState
from .._outputs import Allocation
from .._plan_draft import PlanDraft
from .._seams import Shared


class IdleLayersWarning(UserWarning):
    """Compressible layers the calibration loss does not reach (zero Fisher): cut blind."""


@attrs.frozen(kw_only=True)
class AllocationPhase(Phase):
    """Writes ``state.allocation``: each layer's proxy spectrum (split across the job's processes,
    reading one layer's statistics at a time: they may be spilled to disk), the candidates the
    allocator saw, and the ranks (layer → rank, ``None`` = dense) within the factor budget.

    Options (in a list of phases; they set the plan's allocator): ``allocator`` (any registered
    allocator) with ``allocator_options``, and ``min_rank``.
    """

    name: ClassVar[str] = "allocate"
    reads: ClassVar[tuple[str, ...]] = ("probe", "statistics")
    writes: ClassVar[tuple[str, ...]] = ("allocation",)

    #: A registered allocator's name (looked up when the list is assembled: constructing a phase loads
    #: no plugin).
    allocator: str = attrs.field(default="greedy", validator=attrs.validators.instance_of(str))
    allocator_options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    min_rank: int = DEFAULTS.min_rank

    def configure(self, draft: PlanDraft) -> None:
        draft.set(
            self,
            allocator=registry("allocator").create(
                self.allocator, min_rank=self.min_rank, **self.allocator_options
            ),
        )

    def run(self, state: RunState) -> None:
        order, statistics, plan = state.probe.order, state.statistics.clean, state.plan
        shared = state.job.reducer.share(
            list(range(len(order))),
            lambda index: spectrum(state, order[index], statistics.layer(order[index])),
        )
        spectra = {order[index]: shared[index].tensors["spectrum"] for index in range(len(order))}
        candidates = tuple(
            LayerCandidate(
                name=name,
                out_features=state.maps[name].out_features,
                in_features=state.maps[name].in_features,
                spectrum=spectra[name],
                order=index,
                rows=state.probe.rows.get(name, 0),
                calls=state.probe.calls.get(name, 1),
                device=str(state.maps[name].weight.device),
                dtype=str(state.maps[name].weight.dtype).removeprefix("torch."),
                droppable=in_mode_bank(state.job.model, name),
            )
            for index, name in enumerate(order)
        )
        idle = [candidate.name for candidate in candidates if not bool(candidate.spectrum.any())]
        if idle:
            shown = ", ".join(idle[:5]) + (f" and {len(idle) - 5} more" if len(idle) > 5 else "")
            state.log.notes.append(
                f"{len(idle)} layer(s) get no gradient from the calibration loss (or no input): their "
                f"spectra are zero, so they stay at the allocator's floor rank: {shown}"
            )
            warnings.warn(
                f"{len(idle)} of {len(candidates)} compressible layers get no gradient from the "
                "calibration loss (or no input): the output does not depend on them for these inputs "
                "(a zero-initialised modulation such as adaLN-zero, a head the loss never reads, a "
                "branch these inputs never take). They are cut to the allocator's floor, and this "
                f"calibration cannot measure what that does: {shown}",
                IdleLayersWarning,
                stacklevel=2,
            )
        # one allocation for every process: an allocator that measures time may differ per process
        ranks = state.job.reducer.agreed(
            dict(plan.allocator.allocate(list(candidates), state.budget.factors))
        )
        state.allocation = Allocation(spectra=spectra, candidates=candidates, ranks=ranks)


def spectrum(state: RunState, name: str, statistics) -> Shared:
    """The plan's proxy spectrum of layer ``name`` from its clean ``statistics``."""
    return Shared(tensors={"spectrum": state.plan.solver.spectrum(state.maps[name].weight, statistics)})
