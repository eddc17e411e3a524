"""Built-in rank allocators: greedy global benefit/cost (Algorithm 1) and uniform."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .._errors import BudgetError, ConfigError
from ..kinds._interfaces import Allocator, LayerCandidate
from ..kinds._validators import one_of, unit_interval
from ..model._latency import LatencyProfile, Timing

#: The multiples ``rank_multiple="auto"`` chooses from, smallest first.
RANK_MULTIPLES = (1, 8, 16, 32, 64)
#: ``"auto"`` takes the smallest multiple whose measured time is within this share of the best one's.
AUTO_TOLERANCE = 0.05
#: ``"auto"`` measures the (at most) this many shapes that hold the most factored weights.
AUTO_SHAPES = 3
#: How the greedy weighs a layer's gains: by the rows one calibration input gives it, or not at all.
GAIN_SCALES = ("per-input", "per-row")


def layer_cost(layer: LayerCandidate, rank: int | None) -> int:
    """Kept weights of ``layer`` at ``rank`` (``None`` = dense)."""
    return layer.dense_params if rank is None else rank * layer.params_per_rank


def total_cost(layers: Sequence[LayerCandidate], ranks: Mapping[str, int | None]) -> int:
    """Kept weights of all ``layers`` at ``ranks``."""
    return sum(layer_cost(layer, ranks[layer.name]) for layer in layers)


def rank_at_fraction(layer: LayerCandidate, fraction: float, min_rank: int) -> int | None:
    """``max(min_rank, ⌊fraction · m n / (m + n)⌋)``, or ``None`` (dense) from the break-even rank on."""
    rank = max(min_rank, int(fraction * layer.dense_params / layer.params_per_rank))
    return None if rank >= layer.break_even_rank else rank


def largest_fitting(fits: Callable[[float], bool], high: float, *, steps: int = 60) -> float:
    """The largest ``x ∈ [0, high]`` with ``fits(x)``, by bisection (``fits(0)`` must hold)."""
    if fits(high):
        return high
    low = 0.0
    for _ in range(steps):
        middle = 0.5 * (low + high)
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def rows_per_input(layers: Sequence[LayerCandidate]) -> Callable[[LayerCandidate], float]:
    """Each layer's gain weight for ``gains="per-input"``: the rows one calibration input gives it
    (``rows × calls``, relative to the largest). The statistics are means over rows, while the loss
    sums over them: a Fourier mode sees one row per input, a 1×1 convolution on 32² sees 1,024.
    Candidates that all lack ``rows`` (0) weigh 1 each; some lacking them is an error."""
    sizes = {layer.name: layer.rows * layer.calls for layer in layers}
    if not any(sizes.values()):
        return lambda layer: 1.0
    missing = [name for name, size in sizes.items() if size <= 0]
    if missing:
        raise ConfigError(
            f'gains="per-input" needs every candidate\'s rows; {len(missing)} have none (e.g. '
            f'{missing[0]!r}): give LayerCandidate.rows, or use gains="per-row"'
        )
    largest = max(sizes.values())
    return lambda layer: sizes[layer.name] / largest


def gain_weight(gains: str, layers: Sequence[LayerCandidate]) -> Callable[[LayerCandidate], float]:
    """The greedy's weight of each layer's gains for ``gains`` (one of :data:`GAIN_SCALES`)."""
    return rows_per_input(layers) if gains == "per-input" else (lambda layer: 1.0)


def minimum_ranks(
    layers: Sequence[LayerCandidate], min_rank: int, budget: int, *, drop: bool = False
) -> tuple[dict[str, int | None], int]:
    """Every layer at its minimum: ``min_rank`` factors, or dense where factoring saves nothing;
    with ``drop``, rank 0 for the layers that may be dropped (``LayerCandidate.droppable``)."""
    ranks: dict[str, int | None] = {}
    for layer in layers:
        if drop and layer.droppable:
            ranks[layer.name] = 0
            continue
        ranks[layer.name] = None if layer.break_even_rank <= min_rank else min_rank
    spent = total_cost(layers, ranks)
    if spent > budget:
        raise BudgetError(
            f"the budget of {budget:,} weights for the compressible layers is below the {spent:,} that "
            f"rank {min_rank} everywhere needs; raise the ratio or compress fewer layers"
        )
    return ranks, spent


def greedy_fill(
    layers: Sequence[LayerCandidate],
    ranks: dict[str, int | None],
    spent: int,
    budget: int,
    *,
    step_cost: Callable[[LayerCandidate], float] = lambda layer: layer.params_per_rank,
    gain_weight: Callable[[LayerCandidate], float] = lambda layer: 1.0,
    tie_break: Callable[[LayerCandidate], float] = lambda layer: 0.0,
    admit: Callable[[LayerCandidate, int, int | None], bool] | None = None,
    multiple: int = 1,
    min_rank: int = 1,
) -> dict[str, int | None]:
    """From ``ranks`` (``spent`` weights), add components by ``gain_weight(layer) · s_i² /
    step_cost(layer)`` while the weights fit ``budget`` (and ``admit(layer, rank, new_rank)``
    agrees); a layer reaching its break-even rank goes dense. Ties by ``tie_break(layer)`` (smaller
    first), then layer order and component index: deterministic. With ``multiple`` q > 1 a step
    takes a layer to the next multiple of q (q components, fewer from a rank that is not a multiple
    or up to break-even), scored by its components' mean. A layer at rank 0 (dropped) comes back in
    one step to ``min_rank``, scored the same way."""
    candidates = []
    for layer in layers:
        if ranks[layer.name] is None:
            continue
        energy = (layer.spectrum.double() ** 2 * (gain_weight(layer) / step_cost(layer))).tolist()
        tie = tie_break(layer)
        start = ranks[layer.name]
        while start < layer.break_even_rank:
            end = min((start // multiple + 1) * multiple, layer.break_even_rank)
            if start == 0:
                end = min(max(end, min_rank), layer.break_even_rank)
            candidates.append(
                (-math.fsum(energy[start:end]) / (end - start), tie, layer.order, start, end, layer)
            )
            start = end
    candidates.sort(key=lambda item: item[:4])
    # a layer's later step can sort before its earlier one (equal scores, rounded means of several
    # components): it is skipped then, so the list is walked again while a step was taken
    taken = True
    while taken:
        taken = False
        for _, _, _, start, end, layer in candidates:
            rank = ranks[layer.name]
            if rank is None or rank != start:
                continue
            new_rank: int | None = None if end >= layer.break_even_rank else end
            extra = layer_cost(layer, new_rank) - layer_cost(layer, rank)
            if spent + extra <= budget and (admit is None or admit(layer, rank, new_rank)):
                ranks[layer.name] = new_rank
                spent += extra
                taken = True
    return ranks


def rank_multiple_value(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """``None``, an integer ≥ 1 or ``"auto"``."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return
    raise ConfigError(
        f"{type(instance).name} {attribute.name} must be None, an integer ≥ 1 or 'auto', got {value!r}"
    )


def round_down(ranks: Mapping[str, int | None], multiple: int, min_rank: int) -> dict[str, int | None]:
    """Each rank down to a multiple of ``multiple``; one whose multiple below is under ``min_rank``
    (e.g. a rank below ``multiple``) stays as it is."""
    rounded: dict[str, int | None] = {}
    for name, rank in ranks.items():
        down = None if rank is None else rank // multiple * multiple
        rounded[name] = rank if down is None or down < min_rank else down
    return rounded


def measured_multiple(
    layers: Sequence[LayerCandidate], ranks: Mapping[str, int | None], measure: Timing
) -> int:
    """The smallest of :data:`RANK_MULTIPLES` whose time per component is within
    :data:`AUTO_TOLERANCE` of the best one's, by ``measure(out, in, rows, rank)`` (seconds of one
    call at exactly that rank). Measured on the :data:`AUTO_SHAPES` shapes that hold the most
    factored weights in ``ranks``, each near a typical rank (its median factored rank): at the odd
    multiple of q nearest it (a multiple of q but not of 2q, so that q is not credited with a larger
    multiple's speed; for q = 1 an odd rank, as unrounded ranks are), each shape's time per
    component weighted by its summed rank."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for layer in layers:
        rank = ranks[layer.name]
        if rank is not None:
            shape = (layer.out_features, layer.in_features, max(layer.rows, 1))
            groups.setdefault(shape, []).append(rank)
    if not groups:
        return 1
    heaviest = sorted(groups.items(), key=lambda item: (-sum(item[1]) * (item[0][0] + item[0][1]), item[0]))
    scores = {}
    for multiple in RANK_MULTIPLES:
        score = 0.0
        for (out, inputs, rows), group in heaviest[:AUTO_SHAPES]:
            typical = statistics.median_low(group)
            rank = min(multiple * (2 * max(0, round((typical / multiple - 1) / 2)) + 1), out, inputs)
            score += sum(group) * measure(out, inputs, rows, rank) / rank
        scores[multiple] = score
    best = min(scores.values())
    return next(q for q in RANK_MULTIPLES if scores[q] <= (1 + AUTO_TOLERANCE) * best)


def resolve_multiple(
    rank_multiple: int | str | None,
    layers: Sequence[LayerCandidate],
    ranks: Mapping[str, int | None],
    measure: Timing | None = None,
) -> int:
    """The multiple ``rank_multiple`` stands for: 1 for ``None``, measured for ``"auto"`` (by
    ``measure``, default the cached :class:`LatencyProfile` of the layers' device and dtype)."""
    if rank_multiple is None or not layers:
        return 1
    if rank_multiple == "auto":
        return measured_multiple(layers, ranks, measure or LatencyProfile.of(layers[0]).measure)
    return int(rank_multiple)


@attrs.frozen(kw_only=True)
class GreedyAllocator(Allocator):
    """Global greedy: components by ``s_i² / (m + n)``; a layer at break-even rank goes dense.

    Ties are broken by layer order then component index, so the result is deterministic. A layer
    that may be dropped (``droppable``: a Fourier mode) starts at rank 0 instead of ``min_rank``: a
    mode whose first components are worth less than others' stays dropped (mode truncation chosen
    by the Fisher-weighted spectra).

    ``uniform_floor`` (beyond the paper, a stability-aware option): before the greedy, every layer
    gets ``uniform_floor`` × the parameter fraction a uniform allocation would give it, so that no
    layer is cut to almost nothing (a rollout feeds every layer's error back in); 0 is the plain greedy.

    ``rank_multiple`` (beyond the paper, for speed: matrix kernels run faster on aligned sizes):
    ``None`` (default) keeps the greedy's ranks; an integer q rounds them after the greedy: each
    factored rank goes down to a multiple of q, then the freed weights are spent again greedily in
    steps to the next multiple (by the mean ``s_i² / (m + n)`` of the step's components), within
    the budget; a step reaching the break-even rank turns the layer dense. A rank whose multiple
    below is under ``min_rank`` (a rank below q) rounds up to the multiple above only when that
    step is taken, else it stays as it is: the one exception to "every factored rank a multiple of
    q". ``"auto"``: q measured on the layers' device (:func:`measured_multiple`, cached by
    :class:`LatencyProfile`). Rounded ranks may fall below the ``uniform_floor`` by less than q.

    ``gains`` (beyond the paper): the statistics are means over a layer's rows, but the loss sums
    over them, so ``"per-input"`` (default) weighs each layer's gains by the rows one calibration
    input gives it (:func:`rows_per_input`). Where every layer sees the same rows (a plain
    transformer) this changes nothing; a Fourier mode (one row per input) against a 1×1
    convolution on the grid (one per grid point) it does. ``"per-row"``: the paper's unweighted gains.
    """

    name: ClassVar[str] = "greedy"

    uniform_floor: float = attrs.field(default=0.0, validator=unit_interval)
    rank_multiple: int | str | None = attrs.field(default=None, validator=rank_multiple_value)
    gains: str = attrs.field(default="per-input", validator=one_of(GAIN_SCALES))

    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        ranks, spent = minimum_ranks(layers, self.min_rank, budget, drop=True)
        if self.uniform_floor > 0:
            ranks, spent = self._floor(layers, ranks, budget)
        weight = gain_weight(self.gains, layers)
        ranks = greedy_fill(layers, ranks, spent, budget, gain_weight=weight, min_rank=self.min_rank)
        multiple = resolve_multiple(self.rank_multiple, layers, ranks)
        if multiple == 1:
            return ranks
        rounded = round_down(ranks, multiple, self.min_rank)
        return greedy_fill(
            layers,
            rounded,
            total_cost(layers, rounded),
            budget,
            gain_weight=weight,
            multiple=multiple,
            min_rank=self.min_rank,
        )

    def _floor(
        self, layers: Sequence[LayerCandidate], ranks: dict[str, int | None], budget: int
    ) -> tuple[dict[str, int | None], int]:
        """Each factored layer at ``uniform_floor`` × the uniform allocation's fraction (it fits:
        the uniform allocation itself does)."""
        fraction = self.uniform_floor * UniformAllocator(min_rank=self.min_rank).fraction(layers, budget)
        floored = {
            layer.name: None
            if ranks[layer.name] is None
            else rank_at_fraction(layer, fraction, self.min_rank)
            for layer in layers
        }
        return floored, total_cost(layers, floored)


@attrs.frozen(kw_only=True)
class UniformAllocator(Allocator):
    """The same fraction ``r`` everywhere: ``k = ⌊r · m n / (m + n)⌋``, ``r`` the largest that fits."""

    name: ClassVar[str] = "uniform"

    def _ranks(self, layers: Sequence[LayerCandidate], fraction: float) -> dict[str, int | None]:
        return {layer.name: rank_at_fraction(layer, fraction, self.min_rank) for layer in layers}

    def fraction(self, layers: Sequence[LayerCandidate], budget: int) -> float:
        """The largest ``r ∈ [0, 1]`` whose uniform ranks fit ``budget``."""
        minimum_ranks(layers, self.min_rank, budget)
        return largest_fitting(lambda r: total_cost(layers, self._ranks(layers, r)) <= budget, 1.0)

    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        return self._ranks(layers, self.fraction(layers, budget))
