"""``dobi-svd``: learned truncation positions with the tanh soft mask (Dobi-SVD, App. F.2), bounded cost.

Per layer one position ``γ``; the masked layer is ``y = V diag(T(γ)) Vᵀ W x + b`` with
``T_i = ½ tanh(β(γ − i)) + ½`` (``β = 10``, ``i = 1 … min(m, n)``, ``γ`` clamped to
``[1, min(m, n) + ½]``) and ``V`` the principal output directions of the layer (eigenvectors of
``W Σ Wᵀ``, clean statistics). All ``γ`` are trained
jointly, the model's other weights frozen, on the loss of the official trainer with the paper's
scaling: ``exp(w · L) + λ_reg · |ρ(γ) − ρ*| + Σ relu(−γ)² + relu(γ − min(m, n) − ½)²``, where ``L`` is
the task loss, ``ρ(γ) = Σ min((m + n) γ, m n) / Σ m n`` and ``ρ*`` the budget's share of the
compressible weights. Adam, cosine schedule to 0.8 × ``lr`` over each epoch, the best ``γ`` seen kept.

Bounded-cost choices (documented in docs/baselines.md): a fixed output basis per layer instead of a
differentiable SVD of every batch's activations (the whole spectrum is in the graph; only the
mask's own locality remains), ``epochs`` passes over the calibration batches, ``w = ln 10 / L₀``
("auto", ``L₀`` the original model's calibration loss: its scaled loss is an LLM-like perplexity
of 10). After training each layer keeps ``⌊c γ⌋`` components (those whose mask is ≥ ½), with the
largest common ``c`` that fits the budget; the weights are then ``V_k V_kᵀ W`` (``output-projection``).

On the engine: the ``allocate`` phase allocates with ``init_allocator`` (the starting ``γ``), the
``dobi-training`` phase (:class:`DobiTrainingPhase`) trains the ``γ`` and writes the allocation
with the learned ranks, and the stages solve them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from safesvd_core.plugin import (
    DEFAULTS,
    Allocator,
    CalibrationObjective,
    CompressionJob,
    CompressionResult,
    ConfigError,
    LayerCandidate,
    LinearMap,
    NumericalError,
    Phase,
    Plan,
    Recipe,
    RunState,
    insert_phase,
    largest_fitting,
    minimum_ranks,
    positive,
    positive_int,
    registered,
    registry,
    run_plan,
    set_submodule,
    total_cost,
)

from .evaluation import mean_loss
from .projection import OutputBasis, output_basis

#: ``exp(w · L₀)`` of the original model with ``loss_scale="auto"``.
AUTO_SCALED_LOSS = 10.0


def _loss_scale(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{attribute.name} must be 'auto' or a positive number, got {value!r}")


class MaskedMap(nn.Module):
    """``y = V (T(γ) ⊙ (Vᵀ W x)) + b`` over the map's channel axis; only ``γ`` is trainable."""

    def __init__(self, view: LinearMap, basis: OutputBasis, gamma: nn.Parameter, beta: float) -> None:
        super().__init__()
        weight = view.weight.detach()
        vectors = basis.vectors.to(weight.device)
        self.channel_dim = view.channel_dim
        self.beta = beta
        self.gamma = gamma
        self.register_buffer("vectors", vectors.to(weight.dtype))
        self.register_buffer("projected", (vectors.mT @ weight.to(torch.float64)).to(weight.dtype))
        self.register_buffer("bias", None if view.bias is None else view.bias.detach())
        self.register_buffer(
            "positions", torch.arange(1, vectors.shape[1] + 1, dtype=torch.float64, device=weight.device)
        )

    def mask(self) -> Tensor:
        """``T_i = ½ tanh(β(γ − i)) + ½``, ``γ`` clamped to ``[1, min(m, n) + ½]`` (the official lower
        clamp; the upper one lets the full rank be kept, ``T_{min(m, n)} ≈ 1``)."""
        gamma = self.gamma.clamp(1.0, float(self.positions.shape[0]) + 0.5)
        return 0.5 * torch.tanh(self.beta * (gamma - self.positions)) + 0.5

    def forward(self, x: Tensor) -> Tensor:
        if self.channel_dim != -1:
            x = x.movedim(self.channel_dim, -1)
        hidden = F.linear(x, self.projected) * self.mask().to(x.dtype)
        y = F.linear(hidden, self.vectors, self.bias)
        return y if self.channel_dim == -1 else y.movedim(-1, self.channel_dim)


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def ranks_within_budget(
    layers: Sequence[LayerCandidate], gammas: Mapping[str, float], budget: int, min_rank: int
) -> tuple[dict[str, int | None], float]:
    """``⌊c γ_l⌋`` (at least ``min_rank``; dense from the break-even rank on) with the largest ``c``
    that fits."""

    def ranks(scale: float) -> dict[str, int | None]:
        chosen: dict[str, int | None] = {}
        for layer in layers:
            rank = max(min_rank, math.floor(scale * gammas[layer.name]))
            chosen[layer.name] = None if rank >= layer.break_even_rank else rank
        return chosen

    minimum_ranks(layers, min_rank, budget)
    high = max(layer.break_even_rank / max(gammas[layer.name], 1e-12) for layer in layers)
    scale = largest_fitting(lambda c: total_cost(layers, ranks(c)) <= budget, high)
    return ranks(scale), scale


class Positions:
    """The trainable truncation positions ``γ`` and the terms of the loss that depend on them alone."""

    def __init__(
        self, layers: Sequence[LayerCandidate], windows: Mapping[str, int], gammas: Mapping[str, float]
    ) -> None:
        self.gammas = {
            name: nn.Parameter(torch.tensor(value, dtype=torch.float64)) for name, value in gammas.items()
        }
        self.costs = {layer.name: (layer.params_per_rank, float(layer.dense_params)) for layer in layers}
        self.windows = dict(windows)
        self.dense = sum(dense for _, dense in self.costs.values())

    def share(self) -> Tensor:
        """``ρ(γ) = Σ min((m + n) γ, m n) / Σ m n``, differentiable in ``γ``."""
        kept = sum(
            torch.clamp(per_rank * self.gammas[name], max=dense)
            for name, (per_rank, dense) in self.costs.items()
        )
        return kept / self.dense

    def out_of_range(self) -> Tensor:
        """``Σ relu(−γ)² + relu(γ − min(m, n) − ½)²`` (the official trainer's penalty on invalid
        positions)."""
        return sum(
            torch.relu(-g) ** 2 + torch.relu(g - self.windows[name] - 0.5) ** 2
            for name, g in self.gammas.items()
        )

    def values(self) -> dict[str, float]:
        return {name: float(g.detach()) for name, g in self.gammas.items()}


@contextlib.contextmanager
def _masked(
    model: nn.Module,
    views: Mapping[str, LinearMap],
    bases: Mapping[str, OutputBasis],
    gammas: Mapping[str, nn.Parameter],
    beta: float,
) -> Iterator[None]:
    """Swap each compressible layer for its :class:`MaskedMap`; the original modules come back afterwards."""
    try:
        for name, view in views.items():
            set_submodule(model, name, MaskedMap(view, bases[name], gammas[name], beta))
        yield
    finally:
        for name, view in views.items():
            set_submodule(model, name, view.module)


@attrs.frozen(kw_only=True)
class DobiTrainingPhase(Phase):
    """Dobi-SVD's training, after the allocation: every layer's ``γ`` starts at its rank in the
    allocation plus ½ (a dense layer at its break-even rank plus ½; at most ``min(m, n) + ½``), all
    ``γ`` train jointly (``epochs`` passes over the calibration items, the model's weights frozen),
    and the allocation's ranks become ``⌊c γ⌋`` within the factor budget. Options as
    :class:`DobiSVD`'s."""

    name: ClassVar[str] = "dobi-training"
    reads: ClassVar[tuple[str, ...]] = ("statistics", "allocation")
    writes: ClassVar[tuple[str, ...]] = ("allocation",)

    epochs: int = attrs.field(default=20, validator=positive_int)
    lr: float = attrs.field(default=0.2, validator=positive)
    beta: float = attrs.field(default=10.0, validator=positive)
    lambda_reg: float = attrs.field(default=200.0, validator=positive)
    loss_scale: float | str = attrs.field(default="auto", validator=_loss_scale)
    min_rank: int = attrs.field(default=DEFAULTS.min_rank, validator=positive_int)

    def run(self, state: RunState) -> None:
        job, allocation, statistics = state.job, state.allocation, state.statistics.clean
        by_name = {layer.name: layer for layer in allocation.candidates}
        layers = [by_name[name] for name in state.layers]  # the adapter's order
        views = {name: state.maps[name] for name in state.layers}
        bases = {
            name: output_basis(views[name].weight, statistics.layer(name)["sigma"]) for name in state.layers
        }
        budget = state.budget.factors
        gammas = {
            layer.name: float(
                min(allocation.ranks[layer.name] or layer.break_even_rank, bases[layer.name].values.shape[0])
            )
            + 0.5
            for layer in layers
        }
        scale = self._scale(job)
        trained, summary = self._train(job, views, bases, layers, gammas, budget, scale)
        ranks, factor = ranks_within_budget(layers, trained, budget, self.min_rank)
        learned = job.reducer.agreed({layer.name: ranks[layer.name] for layer in allocation.candidates})
        state.allocation = attrs.evolve(allocation, ranks=learned)
        state.count(self.name, self.epochs)
        state.log.notes.append(summary + f"; budget projection: ranks ⌊{factor:.4f} γ⌋")

    def _scale(self, job: CompressionJob) -> float:
        if self.loss_scale != "auto":
            return float(self.loss_scale)
        original = mean_loss(job, job.batches)
        if not original > 0.0:
            raise ConfigError(
                f"loss_scale='auto' needs a positive calibration loss, got {original!r}; pass a number"
            )
        return math.log(AUTO_SCALED_LOSS) / original

    def _train(
        self,
        job: CompressionJob,
        views: Mapping[str, LinearMap],
        bases: Mapping[str, OutputBasis],
        layers: Sequence[LayerCandidate],
        gammas: Mapping[str, float],
        budget: int,
        scale: float,
    ) -> tuple[dict[str, float], str]:
        model, adapter = job.model, job.adapter
        objective = CalibrationObjective(adapter=adapter)
        positions = Positions(layers, {name: basis.values.shape[0] for name, basis in bases.items()}, gammas)
        target = budget / positions.dense
        optimizer = torch.optim.Adam(list(positions.gammas.values()), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=len(job.batches), eta_min=0.8 * self.lr
        )
        best, best_share = (math.inf, dict(gammas)), math.nan
        with _frozen(model), _masked(model, views, bases, positions.gammas, self.beta):
            for _ in range(self.epochs):
                for batch in job.batches:
                    task = objective(adapter.predict(model, batch), batch).to(torch.float64)
                    share = positions.share()
                    loss = (
                        torch.exp(scale * task)
                        + self.lambda_reg * (share - target).abs()
                        + positions.out_of_range()
                    )
                    if not torch.isfinite(loss):
                        raise NumericalError(
                            f"dobi-svd loss is {float(loss.detach())} (task loss "
                            f"{float(task.detach()):.3e}, scale {scale:.3e}); lower loss_scale"
                        )
                    if float(loss.detach()) < best[0]:
                        best, best_share = (float(loss.detach()), positions.values()), float(share.detach())
                    grads = torch.autograd.grad(loss, list(positions.gammas.values()))
                    for parameter, grad in zip(positions.gammas.values(), grads, strict=True):
                        parameter.grad = grad
                    optimizer.step()
                    schedule.step()
        summary = (
            f"dobi-svd: {self.epochs * len(job.batches)} steps "
            f"({self.epochs} epochs × {len(job.batches)} batches), "
            f"loss scale w={scale:.4g}, best loss {best[0]:.4g} at parameter share {best_share:.4f} "
            f"(target {target:.4f})"
        )
        return best[1], summary


#: The training's options (:class:`DobiTrainingPhase`'s fields), which :class:`DobiSVD` also takes.
_TRAINING = {field.name: field for field in attrs.fields(DobiTrainingPhase)}


@attrs.frozen(kw_only=True)
class DobiSVD(Recipe):
    """``dobi-svd``: options ``init_allocator`` (the starting ``γ``), ``epochs``, ``lr``, ``beta``,
    ``lambda_reg``, ``loss_scale`` (``"auto"`` or ``w``), ``min_rank``. It learns its ranks, so it
    takes no ``allocator``."""

    name: ClassVar[str] = "dobi-svd"

    init_allocator: str = attrs.field(default="uniform", validator=registered("allocator"))
    # the training's options, with the phase's defaults (one place for them)
    epochs: int = attrs.field(default=_TRAINING["epochs"].default, validator=positive_int)
    lr: float = attrs.field(default=_TRAINING["lr"].default, validator=positive)
    beta: float = attrs.field(default=_TRAINING["beta"].default, validator=positive)
    lambda_reg: float = attrs.field(default=_TRAINING["lambda_reg"].default, validator=positive)
    loss_scale: float | str = attrs.field(default=_TRAINING["loss_scale"].default, validator=_loss_scale)
    min_rank: int = attrs.field(default=_TRAINING["min_rank"].default, validator=positive_int)

    def plan(self, allocator: Allocator | None = None) -> Plan:
        """The engine plan: clean covariances, the ``output-projection`` solver and ``allocator``
        (default: ``init_allocator``, whose ranks are the training's start)."""
        if allocator is None:
            allocator = registry("allocator").create(self.init_allocator, min_rank=self.min_rank)
        return Plan(
            clean_estimators=("clean-covariance",),
            solver=registry("solver").create("output-projection"),
            allocator=allocator,
        )

    def phases(self) -> tuple[Phase, ...]:
        """The engine's phases with ``dobi-training`` after the allocation."""
        training = DobiTrainingPhase(**{name: getattr(self, name) for name in _TRAINING})
        return insert_phase(super().phases(), training, after="allocate")

    def compress(self, job: CompressionJob) -> CompressionResult:
        return run_plan(job, self.plan(), self.phases())
