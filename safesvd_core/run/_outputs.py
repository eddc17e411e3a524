"""The typed outputs of a run's phases: what each default phase writes into the
:class:`~safesvd_core.plugin.RunState`, one object per concern.

``probe`` (:class:`Probe`), ``statistics`` (:class:`CleanStatistics`), ``allocation``
(:class:`Allocation`) and ``progress`` (:class:`Progress`, with the :class:`Stage` list); the
objective is a :class:`~safesvd_core.plugin.CalibrationObjective` (λ travels in it). Known from the
start: the :class:`Budget`; added to by every phase: the :class:`RunLog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from torch import Tensor, nn

from .._deprecation import renamed
from .._errors import SafeSVDError
from ..kinds._interfaces import LayerCandidate, SolveRecord
from ..model._layers import LinearMap
from ..model._modules import count_parameters
from ..statistics._statistics import CalibrationStatistics


@attrs.frozen
class Stage:
    """Layers solved together; ``block`` is the block they run in, or None for an exact stage."""

    layers: tuple[str, ...]
    block: str | None


@attrs.frozen
class Probe:
    """What running the first calibration item showed: the layers in call order, the calls per
    layer and per block (a rollout calls each K times), the blocks in call order and each block's
    first input."""

    order: tuple[str, ...]
    calls: Mapping[str, int]
    block_order: tuple[str, ...]
    block_inputs: Mapping[str, Tensor]
    block_calls: Mapping[str, int] = attrs.field(factory=dict)
    #: Rows (flattened samples) of each layer's first call.
    rows: Mapping[str, int] = attrs.field(factory=dict)
    #: Layer → the first layer (in call order) whose first call read the same input tensor (e.g. a
    #: query, key and value projection read one normalised input): siblings.
    input_groups: Mapping[str, str] = attrs.field(factory=dict)
    #: Layer outside every block → the block whose input it reads, the very tensor, as often (e.g. an
    #: FNO's skip convolution and its Fourier layer): it can share that block's stage.
    block_readers: Mapping[str, str] = attrs.field(factory=dict)
    #: Submodule → the hook event at which its first call started (every start and end is one event).
    first_calls: Mapping[str, int] = attrs.field(factory=dict)
    #: Submodule with children, called once per item → the event at which its call ended.
    single_calls: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def chained_blocks(self) -> bool:
        """Whether block inputs may be carried from block to block: each block runs once per item."""
        return all(calls == 1 for calls in self.block_calls.values())


@attrs.frozen(kw_only=True)
class Budget:
    """Parameter counts, known before any pass: the original model's (``params_before``), the
    compressed model's budget ``⌊ratio · params_before⌋`` (``total``) and the weights the factors
    of the compressible layers may keep (``factors``: the budget less what is kept outside them)."""

    params_before: int
    total: int
    factors: int

    @classmethod
    def of(cls, original: nn.Module, maps: Mapping[str, LinearMap], ratio: float) -> Budget:
        """The budget of compressing ``original``, whose compressible layers are ``maps``, to ``ratio``."""
        params_before = count_parameters(original)
        outside = params_before - sum(view.in_features * view.out_features for view in maps.values())
        total = int(ratio * params_before)
        return cls(params_before=params_before, total=total, factors=total - outside)

    @property
    def kept_outside(self) -> int:
        """The parameters outside the compressible layers' weights, always kept."""
        return self.total - self.factors


@attrs.frozen(kw_only=True)
class CleanStatistics:
    """What the clean pass measured: the ``clean`` statistics (in memory or spilled to disk), the
    layer ``groups`` of its passes (one, unless a memory cap spilled them) and the ``rows`` each
    layer saw (its widest group's: the rank its covariance can reach; empty when resumed)."""

    clean: CalibrationStatistics
    groups: tuple[tuple[str, ...], ...] = ()
    rows: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Allocation:
    """The allocator's input and its answer: each layer's proxy ``spectra``, the ``candidates`` it
    saw, and the ``ranks`` (layer → rank, ``None`` = dense). A phase that changes the ranks writes
    a new allocation: ``state.allocation = attrs.evolve(state.allocation, ranks=...)``."""

    spectra: Mapping[str, Tensor]
    candidates: tuple[LayerCandidate, ...]
    ranks: Mapping[str, int | None]


@attrs.define(kw_only=True)
class Progress:
    """How far the stages got: the ``stages`` planned, ``stage_index`` (stages finished), and each
    solved layer's ``records`` and ``factors`` (``(first, second)`` of its module: what a checkpoint
    saves, and hands back to the stages phase to resume)."""

    stages: list[Stage] = attrs.field(factory=list)
    stage_index: int = 0
    records: dict[str, SolveRecord] = attrs.field(factory=dict)
    factors: dict[str, tuple[Tensor, Tensor]] = attrs.field(factory=dict)


@attrs.define(kw_only=True)
class RunLog:
    """What the run reports beside the model, added to by every phase: wall ``timings`` and
    ``passes`` over the calibration set by phase, ``notes``, and each phase's ``reports`` (JSON-ready)."""

    timings: dict[str, float] = attrs.field(factory=dict)
    passes: dict[str, int] = attrs.field(factory=dict)
    notes: list[str] = attrs.field(factory=list)
    reports: dict[str, Any] = attrs.field(factory=dict)


#: The fields of the flat run state before the typed outputs: old name → (output, its field).
MOVED = {
    "params_before": ("budget", "params_before"),
    "factor_budget": ("budget", "factors"),
    "clean_groups": ("statistics", "groups"),
    "rows": ("statistics", "rows"),
    **{name: ("allocation", name) for name in ("spectra", "candidates", "ranks")},
    **{name: ("progress", name) for name in ("stages", "stage_index", "records")},
    **{name: ("log", name) for name in ("timings", "passes", "notes", "reports")},
}


def moved(old: str, output: str, field: str, *, owner: str = "RunState") -> property:
    """The deprecated alias ``<owner>.<old>`` of ``<owner>.<output>.<field>`` (read, and write
    where the owner is mutable; a frozen output is replaced by an evolved copy)."""
    new = f"{owner}.{output}.{field}"

    def holder(instance: Any) -> Any:
        value = getattr(instance, output)
        if value is None:
            raise SafeSVDError(f"{owner}.{old} (now {new}) is used before any phase wrote {output!r}")
        return value

    def get(instance: Any) -> Any:
        renamed(f"{owner}.{old}", new)
        return getattr(holder(instance), field)

    def put(instance: Any, value: Any) -> None:
        renamed(f"{owner}.{old}", new)
        current = holder(instance)
        try:
            setattr(current, field, value)
        except attrs.exceptions.FrozenInstanceError:  # a frozen output: a new one in its place
            setattr(instance, output, attrs.evolve(current, **{field: value}))

    return property(get, put, doc=f"Deprecated: ``{new}``.")
