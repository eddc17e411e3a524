"""The merge-slow phase (beyond the paper): a factored layer that is not faster than its dense
layer at its rank, measured on the device and row count it runs with, stays dense; the freed
layers' parameters are then re-allocated by the plan's allocator, so the budget still holds.

Runs between the allocation and the stages: a merged layer is never solved, it keeps its
original weight exactly. The result's ``reports["merge-slow"]`` lists every merge with its times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs

from safesvd_core.plugin import (
    DEFAULTS,
    BudgetError,
    LatencyProfile,
    LayerCandidate,
    Phase,
    RunState,
    Timing,
    positive_int,
)


@attrs.frozen(kw_only=True)
class MergeSlowPhase(Phase):
    """Options: ``repeats`` (timed calls per measured point), ``timing`` (an injected cost model
    ``(out, in, rows, rank or None) -> seconds``; default: a cached :class:`LatencyProfile` of the
    layers' device and dtype, measured at each layer's exact rank)."""

    name: ClassVar[str] = "merge-slow"
    reads: ClassVar[tuple[str, ...]] = ("allocation",)
    writes: ClassVar[tuple[str, ...]] = ("allocation",)

    repeats: int = attrs.field(default=DEFAULTS.repeats, validator=positive_int)
    timing: Timing | None = attrs.field(default=None, eq=False, repr=False)

    def _timing(self, candidates: Sequence[LayerCandidate]) -> Timing:
        if self.timing is not None:
            return self.timing
        return LatencyProfile.of(candidates[0], repeats=self.repeats).measure

    def run(self, state: RunState) -> None:
        candidates = state.allocation.candidates
        if not candidates:
            return
        timing = self._timing(candidates)
        merged: dict[str, dict[str, float | int]] = {}
        refused: dict[str, dict[str, float | int]] = {}
        ranks = dict(state.allocation.ranks)
        while True:
            slow = self._slow(candidates, ranks, timing, exclude=merged.keys() | refused.keys())
            if not slow:
                break
            accepted = self._reallocate(state, candidates, {**merged, **slow})  # all at once …
            if accepted is None:  # … else the slowest that still fits the budget
                for name in sorted(
                    slow, key=lambda layer: -slow[layer]["factored_seconds"] / slow[layer]["dense_seconds"]
                ):
                    accepted = self._reallocate(state, candidates, {**merged, name: slow[name]})
                    if accepted is not None:
                        slow = {name: slow[name]}
                        break
                    refused[name] = slow[name]
                if accepted is None:
                    break
            merged.update(slow)
            ranks = accepted
        # process 0's decision: measured times differ per process
        state.allocation = attrs.evolve(state.allocation, ranks=state.job.reducer.agreed(ranks))
        report = state.job.reducer.agreed({"merged": merged, "kept_for_budget": refused})
        state.log.reports[self.name] = report
        if report["merged"] or report["kept_for_budget"]:
            state.log.notes.append(self._summary(report))

    @staticmethod
    def _slow(
        candidates: Sequence[LayerCandidate],
        ranks: dict[str, int | None],
        timing: Timing,
        exclude: set[str] | frozenset[str],
    ) -> dict[str, dict[str, float | int]]:
        """The factored layers whose measured time per call at their rank is not below the dense time."""
        slow = {}
        for layer in candidates:
            rank = ranks[layer.name]
            if rank is None or layer.name in exclude:
                continue
            rows = max(layer.rows, 1)
            dense = timing(layer.out_features, layer.in_features, rows, None)
            factored = timing(layer.out_features, layer.in_features, rows, rank)
            if factored >= dense:
                slow[layer.name] = {
                    "rank": rank,
                    "rows": rows,
                    "dense_seconds": dense,
                    "factored_seconds": factored,
                }
        return slow

    @staticmethod
    def _reallocate(
        state: RunState, candidates: Sequence[LayerCandidate], dense: dict[str, object]
    ) -> dict[str, int | None] | None:
        """The plan's allocation of the other layers within what the ``dense`` ones leave of the
        budget (``None`` when that does not fit)."""
        rest = [layer for layer in candidates if layer.name not in dense]
        budget = state.budget.factors - sum(layer.dense_params for layer in candidates if layer.name in dense)
        try:
            ranks = dict(state.plan.allocator.allocate(rest, budget)) if rest else {}
        except BudgetError:
            return None
        if budget < 0:  # every layer dense: no allocation left to refuse it
            return None
        return {**ranks, **{name: None for name in dense}}

    @staticmethod
    def _summary(report: dict[str, dict[str, dict[str, float | int]]]) -> str:
        def listed(entries: dict[str, dict[str, float | int]]) -> str:
            return ", ".join(
                f"{name} (rank {entry['rank']}: {1e6 * entry['factored_seconds']:.1f} µs factored ≥ "
                f"{1e6 * entry['dense_seconds']:.1f} µs dense)"
                for name, entry in entries.items()
            )

        parts = []
        if report["merged"]:
            parts.append(
                f"merge-slow: {len(report['merged'])} layer(s) kept dense, their parameters re-allocated: "
                f"{listed(report['merged'])}"
            )
        if report["kept_for_budget"]:
            parts.append(
                f"merge-slow: {len(report['kept_for_budget'])} slow layer(s) stay factored, the budget "
                f"cannot hold them dense: {listed(report['kept_for_budget'])}"
            )
        return "; ".join(parts)
