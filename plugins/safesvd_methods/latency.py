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

``rank_multiple`` rounds the ranks as the greedy's option does (``GreedyAllocator``): down to a
multiple of q, then the freed weights spent again in steps to the next multiple, by the same cost,
within the parameter budget and the latency budget; ``"auto"`` measures q with the injected
``timing`` when there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs

from safesvd_core.plugin import (
    DEFAULTS,
    GAIN_SCALES,
    Allocator,
    BudgetError,
    LatencyProfile,
    LayerCandidate,
    Timing,
    gain_weight,
    greedy_fill,
    minimum_ranks,
    one_of,
    positive,
    positive_int,
    rank_multiple_value,
    resolve_multiple,
    round_down,
    total_cost,
)


@attrs.frozen(kw_only=True)
class LatencyAllocator(Allocator):
    """Options: ``latency_ratio`` (None: the parameter budget alone, latency the tie-break),
    ``repeats`` (timed calls per measured point), ``timing`` (an injected cost model
    ``(out, in, rows, rank or None) -> seconds`` of one call; default: a cached
    :class:`LatencyProfile` of the layers' device and dtype), ``rank_multiple`` (None, an integer
    or ``"auto"``: the greedy's rounding of the ranks, module docstring)."""

    name: ClassVar[str] = "latency"

    latency_ratio: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive))
    repeats: int = attrs.field(default=DEFAULTS.repeats, validator=positive_int)
    timing: Timing | None = attrs.field(default=None, eq=False, repr=False)
    rank_multiple: int | str | None = attrs.field(default=None, validator=rank_multiple_value)
    #: How each layer's gains are weighed, as :class:`~safesvd_core.plugin.GreedyAllocator`'s.
    gains: str = attrs.field(default="per-input", validator=one_of(GAIN_SCALES))

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
        weight = gain_weight(self.gains, layers)
        if self.latency_ratio is None:
            tie = lambda layer: steps[layer.name] / layer.params_per_rank  # noqa: E731
            ranks = greedy_fill(layers, ranks, spent, budget, gain_weight=weight, tie_break=tie)
            return self._rounded(timing, layers, ranks, budget, None, gain_weight=weight, tie_break=tie)
        limit = self.latency_ratio * sum(self.seconds(timing, layer, None) for layer in layers)
        used = sum(self.seconds(timing, layer, ranks[layer.name]) for layer in layers)
        if used > limit:
            raise BudgetError(
                f"latency_ratio {self.latency_ratio} cannot be met: at min_rank {self.min_rank} "
                f"everywhere the layers take {used / limit * self.latency_ratio:.3f} of their "
                "dense time; raise latency_ratio or lower min_rank"
            )
        free_params, free_seconds = max(budget - spent, 1), max(limit - used, 1e-300)
        cost = lambda layer: layer.params_per_rank / free_params + steps[layer.name] / free_seconds  # noqa: E731
        admit = self._admit(timing, layers, ranks, limit)
        ranks = greedy_fill(layers, ranks, spent, budget, gain_weight=weight, admit=admit, step_cost=cost)
        return self._rounded(timing, layers, ranks, budget, limit, gain_weight=weight, step_cost=cost)

    def _rounded(
        self,
        timing: Timing,
        layers: Sequence[LayerCandidate],
        ranks: dict[str, int | None],
        budget: int,
        limit: float | None,
        **fill: Any,
    ) -> dict[str, int | None]:
        """``ranks`` rounded to ``rank_multiple`` and filled again in its steps with the same
        ``greedy_fill`` options, within the latency ``limit`` when there is one."""
        multiple = self._multiple(timing, layers, ranks)
        if multiple == 1:
            return ranks
        rounded = round_down(ranks, multiple, self.min_rank)
        if limit is not None:
            fill["admit"] = self._admit(timing, layers, rounded, limit)
        return greedy_fill(layers, rounded, total_cost(layers, rounded), budget, multiple=multiple, **fill)

    def _multiple(
        self, timing: Timing, layers: Sequence[LayerCandidate], ranks: dict[str, int | None]
    ) -> int:
        """``rank_multiple`` as a number; ``"auto"`` measures exact ranks (a profile's, not interpolated)."""
        measure = timing.measure if isinstance(timing, LatencyProfile) else timing
        return resolve_multiple(self.rank_multiple, layers, ranks, measure)

    def _admit(
        self, timing: Timing, layers: Sequence[LayerCandidate], ranks: dict[str, int | None], limit: float
    ) -> Callable[[LayerCandidate, int, int | None], bool]:
        """A step's admission under the latency budget ``limit``, its clock started at ``ranks``' time."""
        clock = [sum(self.seconds(timing, layer, ranks[layer.name]) for layer in layers)]

        def admit(layer: LayerCandidate, rank: int, new_rank: int | None) -> bool:
            extra = self.seconds(timing, layer, new_rank) - self.seconds(timing, layer, rank)
            if clock[0] + extra > limit:
                return False
            clock[0] += extra
            return True

        return admit
