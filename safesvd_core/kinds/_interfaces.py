"""The abstract kinds that plugins implement.

Each concrete class carries a ``name`` class attribute, unique within its kind, and is returned
by one of the hooks in :mod:`safesvd_core.kinds._hookspecs`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from .._defaults import DEFAULTS
from .._deprecation import renamed
from .._errors import ConfigError
from .._structures import moved
from ..linalg._balance import balanced
from ._validators import positive_int

if TYPE_CHECKING:
    from .._field import FieldDescription

#: Signals an estimator can observe for one layer and one batch (rows = flattened samples): the
#: :class:`LayerSignals` fields an estimator's ``requires`` names.
SIGNALS = ("inputs", "shifted_inputs", "output_grads")

#: The deprecated singular spelling of each signal (``requires`` still accepts it, with a warning).
SIGNAL_NAMES = {"input": "inputs", "shifted_input": "shifted_inputs", "output_grad": "output_grads"}


@attrs.frozen(kw_only=True)
class LayerSignals:
    """What one layer saw on one calibration batch, flattened to rows.

    ``inputs`` is ``(rows, n)`` from the original model, ``shifted_inputs`` the same rows through
    the partially compressed model, ``output_grads`` is ``(rows, m)`` (``∂L/∂y``), ``domain`` the
    batch's physical-domain label for multi-domain estimators, ``group`` the statistics group of
    the batch source the rows belong to (e.g. ``"one-step"`` or ``"rollout"``; ``None`` when the
    source has a single group).
    """

    inputs: Tensor | None = None
    shifted_inputs: Tensor | None = None
    output_grads: Tensor | None = None
    domain: str | None = None
    group: str | None = None


class Reduction(ABC):
    """How partial statistics held by several processes combine (all-reduce); see :meth:`Estimator.reduce`."""

    @abstractmethod
    def sum_(self, tensor: Tensor) -> None:
        """Replace ``tensor``, in place, by its sum over every process (same shape and order everywhere)."""

    @abstractmethod
    def union(self, labels: Sequence[str]) -> list[str]:
        """The sorted union of ``labels`` over every process."""


class Estimator(ABC):
    """Streaming per-layer statistic, accumulated in float64 as plain sums plus a row count.

    Subclasses declare which signals they need (``requires``: names of :class:`LayerSignals` fields,
    see :data:`SIGNALS`) and which named statistics they provide (``provides``, e.g. ``"sigma"``;
    :meth:`provided` when it depends on options).
    Constructed as ``cls(in_features=n, out_features=m, **options)``. States are mergeable with
    :meth:`merge`, reducible across processes with :meth:`reduce` and serialisable with
    :meth:`state_dict` / :meth:`load_state_dict`.
    """

    name: ClassVar[str]
    requires: ClassVar[frozenset[str]]
    provides: ClassVar[frozenset[str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        requires = cls.__dict__.get("requires")
        if isinstance(requires, (set, frozenset)) and not requires.isdisjoint(SIGNAL_NAMES):
            old = sorted(set(requires) & SIGNAL_NAMES.keys())
            renamed(
                f"estimator {cls.__qualname__}: the signal name(s) {old} in `requires`",
                f"{sorted(SIGNAL_NAMES[name] for name in old)} (the LayerSignals fields)",
                stacklevel=4,
            )  # past ABCMeta.__new__: the class statement
            cls.requires = frozenset(SIGNAL_NAMES.get(name, name) for name in requires)

    def __init__(self, in_features: int, out_features: int) -> None:
        self.in_features = in_features
        self.out_features = out_features

    @classmethod
    def provided(cls, **options: Any) -> frozenset[str]:
        """The statistics an instance built with ``options`` provides. Default: ``provides``."""
        return cls.provides

    @abstractmethod
    def update(self, signals: LayerSignals) -> None:
        """Accumulate one batch."""

    @abstractmethod
    def merge(self, other: Estimator) -> None:
        """Add the sums and counts of ``other`` (same class, same shapes) into ``self``."""

    @abstractmethod
    def statistics(self) -> dict[str, Tensor]:
        """Return the finished statistics (means), keyed by the names in ``provides``."""

    @abstractmethod
    def state_dict(self) -> dict[str, Tensor]:
        """Return the raw sums and counts as tensors (safetensors-compatible)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore the state written by :meth:`state_dict`."""

    def reduce(self, reduction: Reduction) -> None:
        """Sum this state over every process, in place. Default: each :meth:`state_dict` tensor, in
        key order, which is right when every process has the same keys; an estimator whose keys
        depend on the data it saw (e.g. per-domain copies) first agrees on them with ``reduction.union``."""
        state = self.state_dict()
        for key in sorted(state):
            reduction.sum_(state[key])
        self.load_state_dict(state)

    def footprint(self, domains: int = 1) -> int:
        """Bytes the state will hold after a calibration set with ``domains`` distinct domains
        (plans how many layers share one clean pass under a memory cap). Default: the current
        state's size, whatever the domains."""
        return sum(value.numel() * value.element_size() for value in self.state_dict().values())


#: The paths that mean a fallback: of :func:`~safesvd_core.linalg._linalg.psd_root`, its Cholesky failed
#: or had nothing to factor; ``"svd-fallback"``: the Gram route's accuracy check failed.
FALLBACK_PATHS = frozenset({"eigen", "identity", "svd-fallback"})


@attrs.frozen(kw_only=True)
class SolveRecord:
    """How one layer was solved: which factorisation path each matrix took, the jitter used, and
    the wall seconds of the solve (set by the stages phase)."""

    paths: Mapping[str, str]
    jitters: Mapping[str, float]
    note: str = ""
    seconds: float = attrs.field(default=0.0, eq=False)  # how long, not how: two equal solves may differ

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that ``SolveRecord(**d)`` rebuilds."""
        return {
            "paths": dict(self.paths),
            "jitters": dict(self.jitters),
            "note": self.note,
            "seconds": self.seconds,
        }

    @property
    def fell_back(self) -> bool:
        """True when any matrix took a fallback (:data:`FALLBACK_PATHS`: ``"eigen"``, ``"identity"``,
        ``"svd-fallback"``); ``"none"`` (no such matrix) and a method's planned route are not fallbacks."""
        return any(path in FALLBACK_PATHS for path in self.paths.values())


@attrs.frozen(kw_only=True)
class Factorization:
    """``W' = second @ first``, named by the order they apply to an input (as in :class:`LowRankLinear`):
    ``first`` is ``B`` (``k × n``), ``second`` is ``A`` (``m × k``). Solvers return them balanced
    (:meth:`of`): each rank component's ``‖aᵢ‖ = ‖bᵢ‖``."""

    first: Tensor
    second: Tensor
    record: SolveRecord

    @classmethod
    def of(
        cls, first: Tensor, second: Tensor, record: SolveRecord, dtype: torch.dtype | None = None
    ) -> Factorization:
        """The factorization of ``second @ first``, balanced (:func:`~safesvd_core.balanced`), in ``dtype``
        (default: the factors' own)."""
        first, second = balanced(first, second)
        if dtype is not None:
            first, second = first.to(dtype), second.to(dtype)
        return cls(first=first, second=second, record=record)


class Solver(ABC):
    """Turns a dense weight plus named statistics into two low-rank factors.

    ``requires`` names the statistics :meth:`solve` and :meth:`spectrum` read (a property where it
    depends on options); a :class:`~safesvd_core.plugin.Plan` checks that its estimators provide them.
    """

    name: ClassVar[str]
    requires: frozenset[str]

    @abstractmethod
    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        """Return the rank-``rank`` factors of ``weight`` (``m × n``) for this solver's objective."""

    @abstractmethod
    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        """Return the proxy singular values (descending, float64) that allocators rank by."""

    def for_layer(self, rank: int, spectrum: Tensor | None) -> tuple[Solver, str]:
        """The solver for a layer solved at ``rank`` whose proxy spectrum was ``spectrum`` (None:
        unknown), and a note on the choice: this solver and no note, unless a solver can tell from
        the spectrum that another way of solving is cheaper for the same result."""
        return self, ""


@attrs.frozen(kw_only=True)
class LayerCandidate:
    """One compressible layer as the allocator sees it: its shape, its proxy spectrum, its position
    in the forward order and how it runs (``rows`` per call, ``calls`` per calibration item, the
    ``device`` and ``dtype`` of its weight), for cost models that measure time."""

    name: str
    out_features: int
    in_features: int
    spectrum: Tensor
    order: int
    rows: int = 0
    calls: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    #: Whether the layer may get rank 0 (a Fourier mode: dropping it truncates the mode).
    droppable: bool = False

    @property
    def dense_params(self) -> int:
        """Weights of the dense layer, ``m n``."""
        return self.out_features * self.in_features

    @property
    def params_per_rank(self) -> int:
        """Weights one kept component costs, ``m + n``."""
        return self.out_features + self.in_features

    @property
    def break_even_rank(self) -> int:
        """``⌊m n / (m + n)⌋``: from this rank on, the dense layer is no larger."""
        return self.dense_params // self.params_per_rank


@attrs.frozen(kw_only=True)
class Allocator(ABC):
    """Chooses a rank per layer so that the kept weights fit ``budget``.

    Every allocator takes ``min_rank`` (recipes pass it): a factored layer keeps at least that rank.
    Subclasses are ``@attrs.frozen(kw_only=True)`` classes that add their own options.
    """

    name: ClassVar[str]

    min_rank: int = attrs.field(default=DEFAULTS.min_rank, validator=positive_int)

    @abstractmethod
    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        """Return layer name → rank, or ``None`` where the layer stays dense.

        The cost of the result (``rank (m + n)`` per factored layer, ``m n`` per dense one) must
        not exceed ``budget``; raise :class:`~safesvd_core.BudgetError` when no assignment fits.
        """


class PhysicsLoss(ABC):
    """A differentiable scalar loss ``(prediction, reference, field) -> Tensor``.

    Fields are ``(batch, channels, *grid)``; ``field`` says which channel is which, the grid
    spacing and the boundary per axis.
    """

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, prediction: Tensor, reference: Tensor, field: FieldDescription) -> Tensor:
        """Return a scalar, finite, non-negative, zero when ``prediction == reference``."""

    def order_terms(
        self, prediction: Tensor, reference: Tensor, field: FieldDescription
    ) -> dict[int | None, Tensor]:
        """The loss split into terms per derivative order, summing to the loss (for ``lam_mode="per-order"``).
        Default: one term, the whole loss, under the key ``None``."""
        return {None: self(prediction, reference, field)}


class ModelAdapter(ABC):
    """How safesvd runs, scores and slices one family of models."""

    name: ClassVar[str]

    #: True when :meth:`prepare` changes the module structure (then the clean reference is a
    #: prepared copy too, and the caller's model is never touched).
    rewrites_modules: ClassVar[bool] = False

    def for_model(self, model: nn.Module) -> ModelAdapter:
        """This adapter as it applies to ``model``: ``compress`` and ``evaluate`` call it once, with the
        caller's model, before anything else. An adapter that reads settings from the model (e.g. the
        training loss its config names) returns a copy with them. Default: itself."""
        return self

    def prepare(self, model: nn.Module) -> nn.Module:
        """Rewrite ``model`` (a private copy) into an output-identical form whose compressible
        maps are ``nn.Linear``/1×1 conv modules, e.g. packed attention projections. Default: as is."""
        return model

    def restore(self, model: nn.Module) -> nn.Module:
        """The inverse of :meth:`prepare`: ``model`` back in the original module structure, with the
        same outputs, so that its state dict loads into the original architecture (the dense export
        of ``safesvd export``). Default: as is."""
        return model

    @abstractmethod
    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        """Run ``model`` on ``batch`` and return the prediction tensor."""

    @abstractmethod
    def reference(self, batch: Any) -> Tensor:
        """Return the ground-truth target of ``batch``."""

    @abstractmethod
    def base_loss(self, prediction: Tensor, batch: Any) -> Tensor:
        """The model's own training criterion, a scalar."""

    @abstractmethod
    def compressible_layers(self, model: nn.Module) -> list[str]:
        """Qualified names of the modules to compress (``nn.Linear`` or plain 1×1 convolutions)."""

    def blocks(self, model: nn.Module) -> list[str] | None:
        """Qualified names of the blocks (each runs once per forward pass), or ``None`` for per-layer stages.

        Where block ``k + 1`` receives block ``k``'s output as its first positional argument (its
        other arguments unchanged; checked on the first calibration batch), the block inputs are
        carried along; elsewhere they are taken by a forward pass up to the block (a ``prefix``
        pass in ``result.passes``).
        """
        return None

    def next_block_input(self, output: Any) -> Tensor:
        """Extract the tensor that the next block receives from a block's output."""
        return output[0] if isinstance(output, tuple) else output

    def field(self, batch: Any) -> FieldDescription | None:
        """Describe the fields of ``batch`` (channel roles, spacing, boundaries), if known."""
        return None

    def domain(self, batch: Any) -> str | None:
        """The physical-domain label of ``batch`` for multi-domain calibration, if any."""
        return None

    def trajectory_steps(self, item: Any) -> int | None:
        """How many future states a calibration item holds when it is a trajectory (its ``K``),
        or ``None`` for a one-step batch. Default: ``None`` (the adapter knows no trajectories)."""
        return None

    def rollout_step(self, sequence: Any, state: Tensor | None, step: int) -> Any:
        """The one-step batch of autoregressive step ``step`` (1-based) of the trajectory ``sequence``:
        its input is ``state`` (the previous prediction; the trajectory's own start when ``None``),
        its target the true state ``step`` lead times on. Default: this adapter cannot roll out."""
        raise ConfigError(
            f"adapter {self.name!r} cannot roll a model out: it does not say how a prediction "
            "becomes the next input (ModelAdapter.rollout_step)"
        )

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move ``batch`` to ``device``: every tensor in it, inside dicts, lists, tuples, namedtuples,
        dataclasses and registered structures (:func:`safesvd_core.register_structure`); an object
        with a ``to`` method moves itself; other leaves (metadata) stay as they are."""
        return moved(batch, device)
