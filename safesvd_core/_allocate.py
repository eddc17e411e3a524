"""The allocation phase: proxy spectra from the clean statistics, ranks from the plan's allocator."""

from __future__ import annotations

from typing import ClassVar

from ._interfaces import LayerCandidate
from ._job import Phase, RunState
from ._seams import Shared


class AllocationPhase(Phase):
    """Sets ``state.candidates`` and ``state.ranks`` (layer → rank, ``None`` = dense) within the factor budget, reading one
    layer's statistics at a time (they may be spilled to disk). Spectra already in
    ``state.spectra`` (taken while spilled statistics were in memory) are not computed again; the
    others are split across the job's processes."""

    name: ClassVar[str] = "allocate"

    def run(self, state: RunState) -> None:
        probe = state.need("probe", self.name)
        statistics = state.need("statistics", self.name)
        plan = state.plan
        missing = [index for index, name in enumerate(probe.order) if name not in state.spectra]
        state.spectra.update({probe.order[index]: shared.tensors["spectrum"] for index, shared in state.job.reducer.share(
            missing, lambda index: spectrum(state, probe.order[index], statistics.layer(probe.order[index]))).items()})
        candidates = [
            LayerCandidate(name=name, out_features=state.maps[name].out_features, in_features=state.maps[name].in_features,
                           spectrum=state.spectra[name], order=index, rows=probe.rows.get(name, 0),
                           calls=probe.calls.get(name, 1), device=str(state.maps[name].weight.device),
                           dtype=str(state.maps[name].weight.dtype).removeprefix("torch."))
            for index, name in enumerate(probe.order)
        ]
        state.candidates = candidates
        idle = [candidate.name for candidate in candidates if not bool(candidate.spectrum.any())]
        if idle:
            shown = ", ".join(idle[:5]) + (f" and {len(idle) - 5} more" if len(idle) > 5 else "")
            state.notes.append(f"{len(idle)} layer(s) get no gradient from the calibration loss (or no input): their "
                               f"spectra are zero, so they stay at the allocator's floor rank: {shown}")
        # one allocation for every process: an allocator that measures time may differ per process
        state.ranks = state.job.reducer.agreed(dict(plan.allocator.allocate(candidates, state.factor_budget)))


def spectrum(state: RunState, name: str, statistics) -> Shared:
    """The plan's proxy spectrum of layer ``name`` from its clean ``statistics``."""
    return Shared(tensors={"spectrum": state.plan.solver.spectrum(state.maps[name].weight, statistics)})
