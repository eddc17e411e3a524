"""The refine phase (beyond the paper): after the closed-form solve, the low-rank factors are
trained for a few epochs to reproduce the original model's predictions on the calibration items
(distillation), over the same model calls as the calibration: one step, or the recipe's rollout.

Before training, each factored layer's factors are balanced (every rank component's column of
``A`` and row of ``B`` get the same norm; the product is unchanged): the closed form puts the
Fisher and whitening scales into the factors, and an optimiser's steps on badly scaled factors
wreck the model at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import ClassVar

import attrs
import torch
from torch import Tensor, nn

from safesvd_core.plugin import LowRankLinear, NumericalError, Phase, RunState, positive, positive_int


def balance_factors(layer: LowRankLinear) -> None:
    """Rescale ``layer``'s rank components so that each column of ``A`` and row of ``B`` has the same norm."""
    with torch.no_grad():
        a, b = layer.second.weight, layer.first.weight
        scale = (b.norm(dim=1) / a.norm(dim=0).clamp_min(torch.finfo(a.dtype).tiny)).sqrt().clamp_min(torch.finfo(a.dtype).tiny)
        a.mul_(scale[None, :])
        b.div_(scale[:, None])


@contextlib.contextmanager
def _training_only(model: nn.Module, parameters: Sequence[Tensor]) -> Iterator[None]:
    """Gradients for ``parameters`` alone while the block runs; every flag is restored afterwards."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    chosen = {id(parameter) for parameter in parameters}
    for parameter, _ in flags:
        parameter.requires_grad_(id(parameter) in chosen)
    try:
        with torch.enable_grad():
            yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _distance(student: Sequence[tuple[Tensor, object]], teacher: Sequence[Tensor]) -> Tensor:
    """Mean over the calls of the squared error to the original's prediction, relative to its energy."""
    terms = [torch.mean((prediction - target) ** 2) / torch.mean(target**2).clamp_min(torch.finfo(target.dtype).tiny)
             for (prediction, _), target in zip(student, teacher)]
    return sum(terms) / len(terms)


@attrs.frozen(kw_only=True)
class RefinePhase(Phase):
    """``epochs`` passes of Adam (``lr``) over the calibration items on the factors of every
    compressed layer, the loss :func:`_distance` to the original model's predictions."""

    name: ClassVar[str] = "refine"

    epochs: int = attrs.field(validator=positive_int)
    lr: float = attrs.field(default=1e-4, validator=positive)

    def run(self, state: RunState) -> None:
        job, source = state.job, state.source
        layers = [module for module in job.model.modules() if isinstance(module, LowRankLinear)]
        if not layers:
            return
        for layer in layers:
            balance_factors(layer)
        with torch.no_grad():
            teacher = [[prediction.detach() for prediction, _ in source.run(job.adapter, job.original, item)]
                       for item in job.batches]
        parameters = [weight for layer in layers for weight in (layer.first.weight, layer.second.weight)]
        optimizer = torch.optim.Adam(parameters, lr=self.lr)
        losses = []
        with _training_only(job.model, parameters):
            for _ in range(self.epochs):
                total = 0.0
                for item, targets in zip(job.batches, teacher):
                    loss = _distance(source.run(job.adapter, job.model, item), targets)
                    if not torch.isfinite(loss):
                        raise NumericalError(f"refine: the distillation loss is {float(loss.detach())}; lower refine_lr")
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach())
                losses.append(total / len(job.batches))
        state.count(self.name, self.epochs)
        state.notes.append(f"refine: {self.epochs} epochs of Adam (lr {self.lr:g}) on the factors of {len(layers)} "
                           f"layers; distance to the original {losses[0]:.4g} (first epoch) → {losses[-1]:.4g} (last)")
