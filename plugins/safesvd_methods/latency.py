"""Latency-aware allocation (beyond the paper): the greedy whose cost of a rank step includes the
measured time on the target device, not only the parameter count.

Per layer the time of one calibration item's calls is modelled as linear in the rank, from the
measured times (``LatencyProfile``, cached per device and shape) at rank 1 and at the break-even
rank: ``t(k) = t(1) + (k − 1) · τ`` with ``τ`` the time of one more component. Two modes:

- the parameter budget alone (``latency_ratio=None``): components by ``s_i² / (m + n)`` as the
  greedy takes them, ties broken by the time per parameter ``τ / (m + n)``: the faster layer first;
- a latency budget as well (``latency_ratio``): the compressed layers' summed time stays within
  that share of their dense time. A component's cost is then both of its costs, each as a share
  of what its budget leaves above the ``min_rank`` allocation: ``s_i² / ((m + n)/P + τ/T)``.

When time is proportional to parameters both modes take components in the greedy's order, so
the allocation is the greedy's while the latency budget does not bind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs

from safesvd_core.plugin import (
    DEFAULTS,
    Allocator,
    BudgetError,
    LatencyProfile,
    LayerCandidate,
    Timing,
    positive,
    positive_int,
)

from .allocators import greedy_fill, minimum_ranks


@attrs.frozen(kw_only=True)
class LatencyAllocator(Allocator):
    """Options: ``latency_ratio`` (None: the parameter budget alone, latency the tie-break),
    ``repeats`` (timed calls per measured point), ``timing`` (an injected cost model
    ``(out, in, rows, rank or None) -> seconds`` of one call; default: a cached
    :class:`LatencyProfile` of the layers' device and dtype)."""

    name: ClassVar[str] = "latency"

    latency_ratio: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive))
    repeats: int = attrs.field(default=DEFAULTS.repeats, validator=positive_int)
    timing: Timing | None = attrs.field(default=None, eq=False, repr=False)

    def _timing(self, layers: Sequence[LayerCandidate]) -> Timing:
        if self.timing is not None:
            return self.timing
        return LatencyProfile.of(layers[0], repeats=self.repeats)

    def seconds(self, timing: Timing, layer: LayerCandidate, rank: int | None) -> float:
        """One calibration item's calls of ``layer`` at ``rank`` (``None``: dense), by the linear model."""
        rows = max(layer.rows, 1)
        if rank is None:
            return layer.calls * timing(layer.out_features, layer.in_features, rows, None)
        return layer.calls * timing(layer.out_features, layer.in_features, rows, 1) + (
            rank - 1
        ) * self.step_seconds(timing, layer)

    def step_seconds(self, timing: Timing, layer: LayerCandidate) -> float:
        """``τ``: the time one more component adds to one calibration item's calls of ``layer``."""
        rows, top = max(layer.rows, 1), max(layer.break_even_rank, 2)
        start = timing(layer.out_features, layer.in_features, rows, 1)
        rise = timing(layer.out_features, layer.in_features, rows, top) - start
        return layer.calls * max(rise / (top - 1), 0.0)

    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        timing = self._timing(layers)
        ranks, spent = minimum_ranks(layers, self.min_rank, budget)
        steps = {layer.name: self.step_seconds(timing, layer) for layer in layers}
        if self.latency_ratio is None:
            return greedy_fill(
                layers,
                ranks,
                spent,
                budget,
                tie_break=lambda layer: steps[layer.name] / layer.params_per_rank,
            )
        limit = self.latency_ratio * sum(self.seconds(timing, layer, None) for layer in layers)
        used = sum(self.seconds(timing, layer, ranks[layer.name]) for layer in layers)
        if used > limit:
            raise BudgetError(
                f"latency_ratio {self.latency_ratio} cannot be met: at min_rank {self.min_rank} "
                f"everywhere the layers take {used / limit * self.latency_ratio:.3f} of their "
                "dense time; raise latency_ratio or lower min_rank"
            )
        free_params, free_seconds = max(budget - spent, 1), max(limit - used, 1e-300)
        clock = [used]

        def admit(layer: LayerCandidate, rank: int, new_rank: int | None) -> bool:
            extra = self.seconds(timing, layer, new_rank) - self.seconds(timing, layer, rank)
            if clock[0] + extra > limit:
                return False
            clock[0] += extra
            return True

        return greedy_fill(
            layers,
            ranks,
            spent,
            budget,
            admit=admit,
            step_cost=lambda layer: layer.params_per_rank / free_params + steps[layer.name] / free_seconds,
        )
