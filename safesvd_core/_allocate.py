"""The allocation phase: proxy spectra from the clean statistics, ranks from the plan's allocator."""

from __future__ import annotations

from typing import ClassVar

from ._interfaces import LayerCandidate
from ._job import Phase, RunState


class AllocationPhase(Phase):
    """Sets ``state.ranks`` (layer → rank, ``None`` = dense) within the factor budget, reading one
    layer's statistics at a time (they may be spilled to disk)."""

    name: ClassVar[str] = "allocate"

    def run(self, state: RunState) -> None:
        probe = state.need("probe", self.name)
        statistics = state.need("statistics", self.name)
        plan = state.plan
        candidates = [
            LayerCandidate(name=name, out_features=state.maps[name].out_features, in_features=state.maps[name].in_features,
                           spectrum=plan.solver.spectrum(state.maps[name].weight, statistics.layer(name)), order=index)
            for index, name in enumerate(probe.order)
        ]
        state.ranks = dict(plan.allocator.allocate(candidates, state.factor_budget))
