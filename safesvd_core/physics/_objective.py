"""The calibration loss ``L = L_base + λ · Σ physics`` and the "auto" choice of λ (docs/method.md,
"Calibration loss and λ")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from .._defaults import DEFAULTS
from .._deprecation import renamed, renamed_option
from .._errors import ConfigError, NumericalError
from .._structures import map_structure, tensor_leaves
from ..kinds._interfaces import ModelAdapter, PhysicsLoss
from ..kinds._validators import one_of

#: The Fisher modes: where the calibration loss's gradients are taken. ``"empirical"`` (the paper's):
#: at the model's own residual against the target. ``"sampled"`` (the model Fisher): at a residual
#: sampled at the observed scale, ``σ ε`` with ``ε ~ N(0, I)`` and ``σ`` the RMS of the observed
#: residual of the batch, as if targets were drawn from the model's predictive distribution; the loss
#: keeps its form (base loss, physics terms, λ). The same names as the ``safe-svd`` recipe's ``fisher``.
FISHER_MODES = ("empirical", "sampled")

#: The deprecated ``residual=`` spelling of each Fisher mode (``"observed"`` is ``"empirical"``).
RESIDUAL_NAMES = {"observed": "empirical", "sampled": "sampled"}

#: How physics terms are weighted against the base loss.
#: ``"global"`` (default, §E.2): one λ for the summed physics terms, fixed before calibration.
#: ``"per-order"`` (the authors' public script): per batch, each derivative order ``k`` of each
#: loss gets ``min(lam_ratio · L_base / L_k, lam_cap)`` (weights detached from the graph).
LAM_MODES = ("global", "per-order")

#: Saved clean statistics record the λ they were gathered with under this metadata key, so that a
#: resume from them (``compress(statistics=...)``, a checkpoint) keeps it; within a run, λ travels
#: in the objective (:attr:`CalibrationObjective.global_lam`).
LAM_RECORD = "lam"


@attrs.frozen(kw_only=True, init=False)
class CalibrationObjective:
    """``base_loss + lam · Σ_i loss_i(prediction, reference, field)`` for one adapter
    (or, in ``"per-order"`` mode, per-batch balanced weights per derivative order); ``fisher``
    (one of :data:`FISHER_MODES`) says at which residual the gradients are taken."""

    adapter: ModelAdapter
    physics: tuple[PhysicsLoss, ...] = ()
    lam: float = 0.0
    lam_mode: str = attrs.field(default=DEFAULTS.lam_mode, validator=one_of(LAM_MODES))
    lam_ratio: float = DEFAULTS.lam_ratio
    lam_cap: float = DEFAULTS.lam_cap
    fisher: str = attrs.field(default=DEFAULTS.fisher, validator=one_of(FISHER_MODES))
    seed: int = 0
    _noise: torch.Generator | None = attrs.field(default=None, eq=False, repr=False, alias="noise")

    def __init__(self, **options: Any) -> None:
        """The fields as keywords; ``residual=`` (``"observed"``/``"sampled"``) is the deprecated spelling
        of ``fisher=``, ``mode=`` that of ``lam_mode=`` (the plan's name for it)."""
        options = renamed_option(options, "CalibrationObjective", "mode", "lam_mode")
        self.__attrs_init__(
            **renamed_option(options, "CalibrationObjective", "residual", "fisher", RESIDUAL_NAMES)
        )

    @property
    def mode(self) -> str:
        """Deprecated: ``lam_mode``."""
        renamed("CalibrationObjective.mode", "CalibrationObjective.lam_mode", stacklevel=3)
        return self.lam_mode

    @property
    def residual(self) -> str:
        """Deprecated: ``fisher`` in its old spelling (``"observed"`` for ``"empirical"``)."""
        renamed("CalibrationObjective.residual", "CalibrationObjective.fisher", stacklevel=3)
        return "observed" if self.fisher == "empirical" else self.fisher

    @property
    def global_lam(self) -> float | None:
        """The one λ that weights the physics terms (``CompressionResult.lam``); ``None`` without
        physics or in ``"per-order"`` mode, where no single λ is used."""
        return self.lam if self.physics and self.lam_mode == "global" else None

    def for_item(self, index: int) -> CalibrationObjective:
        """The objective for calibration item ``index``: with the sampled Fisher, its own noise
        stream (seeded by ``seed`` and ``index``), so the draws do not depend on the pass that runs it."""
        if self.fisher == "empirical":
            return self
        return attrs.evolve(self, noise=torch.Generator().manual_seed(hash((self.seed, index)) % 2**63))

    def _sampled(self, prediction: Any, batch: Any) -> Any:
        """``prediction`` moved to ``reference + σ ε``, still differentiable with unit Jacobian; a
        structure of tensors place by place (each its own σ), in the order of its places."""
        reference = self.adapter.reference(batch)
        noise = self._noise if self._noise is not None else torch.Generator().manual_seed(self.seed)
        if isinstance(prediction, Tensor):
            return _sampled(prediction, reference, noise)
        targets = dict(tensor_leaves(reference))
        return map_structure(
            lambda place, leaf: (
                _sampled(leaf, targets[place], noise)
                if isinstance(leaf, Tensor) and leaf.is_floating_point() and place in targets
                else leaf
            ),
            prediction,
        )

    def _field(self, batch: Any):
        field = self.adapter.field(batch)
        if field is None:
            names = ", ".join(loss.name for loss in self.physics)
            raise ConfigError(
                f"physics losses ({names}) need a field description, but adapter "
                f"{self.adapter.name!r} gave none for this batch; pass one to the adapter"
            )
        return field

    def order_terms(self, prediction: Tensor, batch: Any) -> list[Tensor]:
        """Each physics loss split per derivative order (:meth:`PhysicsLoss.order_terms`)."""
        field = self._field(batch)
        reference = self.adapter.reference(batch)
        return [
            term for loss in self.physics for term in loss.order_terms(prediction, reference, field).values()
        ]

    def physics_value(self, prediction: Tensor, batch: Any) -> Tensor:
        """The summed physics terms of one batch (a zero tensor when there are none)."""
        if not self.physics:
            return prediction.new_zeros(())
        field = self._field(batch)
        reference = self.adapter.reference(batch)
        return sum((loss(prediction, reference, field) for loss in self.physics), prediction.new_zeros(()))

    def __call__(self, prediction: Tensor, batch: Any) -> Tensor:
        if self.fisher == "sampled":
            prediction = self._sampled(prediction, batch)
        value = self.adapter.base_loss(prediction, batch)
        if self.physics and self.lam_mode == "per-order":
            base = value.detach()
            for term in self.order_terms(prediction, batch):
                weight = torch.clamp(self.lam_ratio * base / term.detach().clamp_min(1e-30), max=self.lam_cap)
                value = value + weight * term
        elif self.physics and self.lam != 0.0:
            value = value + self.lam * self.physics_value(prediction, batch)
        if not torch.isfinite(value):
            raise NumericalError(
                f"calibration loss is {float(value.detach())}; the batch is not skipped silently"
            )
        return value


def _sampled(prediction: Tensor, reference: Tensor, noise: torch.Generator) -> Tensor:
    scale = (
        (prediction.detach() - reference).pow(2).mean().sqrt().clamp_min(torch.finfo(prediction.dtype).tiny)
    )
    draw = torch.randn(prediction.shape, generator=noise, dtype=prediction.dtype).to(prediction.device)
    return prediction - prediction.detach() + reference + scale * draw


def loss_totals(
    calls: Iterable[tuple[Tensor, Any]], adapter: ModelAdapter, physics: Sequence[PhysicsLoss]
) -> tuple[float, float, int]:
    """``(Σ L_base, Σ L_phys, calls)`` over ``(prediction, batch)`` pairs of the original model."""
    probe = CalibrationObjective(adapter=adapter, physics=tuple(physics), lam=0.0)
    base_total = physics_total = 0.0
    count = 0
    for prediction, batch in calls:
        base_total += float(adapter.base_loss(prediction, batch))
        physics_total += float(probe.physics_value(prediction, batch))
        count += 1
    return base_total, physics_total, count


def balanced_lambda(
    base_total: float, physics_total: float, count: int, *, ratio: float = DEFAULTS.lam_ratio
) -> float:
    """``λ = ratio · mean L_base / mean L_phys`` over the calibration set (§E.2), from :func:`loss_totals`."""
    if count == 0:
        raise ConfigError("the calibration set is empty")
    if not (physics_total > 0.0 and base_total >= 0.0) or physics_total != physics_total:
        raise NumericalError(
            f"cannot balance λ automatically: mean base loss {base_total / count:.3e}, mean physics loss "
            f"{physics_total / count:.3e}; pass a number for lam"
        )
    return ratio * base_total / physics_total


@attrs.frozen(kw_only=True)
class ObjectiveSpec:
    """What a plan asks of the calibration objective: the ``physics`` terms and their weight ``lam``
    (``"auto"``: balanced on the calibration set, ``λ = lam_ratio · L_base / L_phys``; or a number),
    ``lam_mode`` and ``lam_cap`` (see :data:`LAM_MODES`), and the Fisher mode (:data:`FISHER_MODES`)
    with the ``seed`` of its draws. The λ phase makes it a :class:`CalibrationObjective` (:meth:`build`)."""

    physics: tuple[PhysicsLoss, ...] = ()
    lam: float | str = DEFAULTS.lam
    lam_ratio: float = DEFAULTS.lam_ratio
    #: A typo must not fall through to λ = 0 (physics dropped without a word): checked.
    lam_mode: str = attrs.field(default=DEFAULTS.lam_mode, validator=one_of(LAM_MODES))
    lam_cap: float = DEFAULTS.lam_cap
    fisher: str = attrs.field(default=DEFAULTS.fisher, validator=one_of(FISHER_MODES))
    seed: int = 0

    def build(self, adapter: ModelAdapter, lam: float | None) -> CalibrationObjective:
        """The objective for ``adapter`` with the resolved ``lam`` (``None``: no single λ, i.e. 0)."""
        return CalibrationObjective(
            adapter=adapter,
            physics=self.physics,
            lam=lam or 0.0,
            lam_mode=self.lam_mode,
            lam_ratio=self.lam_ratio,
            lam_cap=self.lam_cap,
            fisher=self.fisher,
            seed=self.seed,
        )
