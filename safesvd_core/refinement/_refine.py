"""Refinement with data (beyond the paper): after the closed form, the compressed model is
distilled towards the original (the teacher) on unlabelled inputs from the data distribution.

- One-step items ``(input, …)`` are distilled one step ahead; trajectory items are rolled out
  (the student on its own predictions, the teacher on its own) and distilled on the one-step
  term and the mean over the K steps, weighted ``1 − rollout_weight`` and ``rollout_weight``:
  the K-step loss of the calibration, so that rollout stability survives.
- A non-finite loss stops training with a :class:`RefineWarning`; the best state so far is kept
  (recorded in the report's ``stopped``).
- A held-out share of the items is scored every ``eval_every`` steps; the best state seen,
  *the closed form included*, is what the model keeps: refinement never returns a model that
  is worse on the held-out split, and the report gives both scores.
- Adam with a linear warm-up and a cosine decay; every parameter of the compressed model trains
  (``parameters="all"``) or only the factors of the factored layers (``"factors"``).
- With a ``checkpoint_dir`` the progress (model, best state, optimiser, step) is written at every
  evaluation and a later call with the same inputs resumes from it (:mod:`._refine_checkpoint`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._errors import ConfigError
from ..kinds._interfaces import ModelAdapter
from ..model._lowrank import LowRankLinear
from ..run._rollout import RolloutSource, trajectory_length
from ..run._seams import BatchSource, LocalReducer, PairSource, StatisticsReducer
from ._refine_checkpoint import RefineCheckpoint
from ._refine_options import RefineOptions
from ._refine_precision import MixedPrecision
from ._refine_split import domain_counts, item_domains, shard, split_items
from ._refine_symmetries import symmetric_items

#: The refinement-data study (docs/results/refine.md, the reference model at 0.4, 2000 steps) gave
#: one step +2.8 % with 256 inputs, +1.0 % with 1,024, +0.6 % with 4,096: a smaller set than this
#: is warned about.
RECOMMENDED_INPUTS = 1024


class RefineDataWarning(UserWarning):
    """The refinement data is the calibration data, or small: refinement then tends to overfit."""


class RefineWarning(UserWarning):
    """Refinement stopped early (a non-finite loss); the best state seen was kept."""


def relative_distance(prediction: Tensor, target: Tensor) -> Tensor:
    """``mean((prediction − target)²) / mean(target²)``: the squared error relative to the teacher's
    energy."""
    return torch.mean((prediction - target) ** 2) / torch.mean(target**2).clamp_min(
        torch.finfo(target.dtype).tiny
    )


@attrs.define
class Distiller:
    """The distillation loss of one item: the student's calls against the teacher's predictions,
    kept in memory up to ``cache_bytes`` (the items beyond it computed again at every use)."""

    adapter: ModelAdapter
    teacher: nn.Module
    source: BatchSource
    rollout_weight: float
    cache_bytes: int
    reducer: StatisticsReducer = attrs.field(factory=LocalReducer)
    cache: dict[int, list[Tensor]] = attrs.field(factory=dict)
    cached_bytes: int = 0
    recomputed: int = 0
    exchange_seconds: float = 0.0
    energies: dict[int, list[float]] = attrs.field(factory=dict)

    @contextlib.contextmanager
    def exchanging(self) -> Iterator[None]:
        """A block of exchange between the processes: its time (waiting included) is counted."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.exchange_seconds += time.perf_counter() - start

    def sum_values(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the processes (the time it takes counted as exchange)."""
        with self.exchanging():
            return self.reducer.sum_values(values)

    def step_loss(self, loss: Tensor, parameters: Sequence[Tensor]) -> float:
        """After the backward pass: the global batch's loss, and with several processes every
        gradient summed over them in the same exchange (:func:`summed_gradients`; its time counted)."""
        if self.reducer.world == 1:
            return float(loss.detach())
        with self.exchanging():
            return summed_gradients(parameters, self.reducer, loss.detach())

    def targets(self, index: int | None, item: Any) -> list[Tensor]:
        """The teacher's predictions of ``item``; cached by ``index`` up to the cap (``None``: an item
        made for one step, e.g. by a symmetry, never cached)."""
        if index is not None and index in self.cache:
            return self.cache[index]
        with torch.no_grad():
            targets = [p.detach() for p, _ in self.source.run(self.adapter, self.teacher, item)]
        if index is None:
            return targets
        size = sum(t.numel() * t.element_size() for t in targets)
        if self.cached_bytes + size <= self.cache_bytes:
            self.cache[index] = targets
            self.cached_bytes += size
        else:
            self.recomputed += 1
        return targets

    def report(self) -> dict[str, int]:
        """The teacher cache: its cap, what it holds, and how many predictions were computed again."""
        return {
            "cap_bytes": self.cache_bytes,
            "cached_items": len(self.cache),
            "cached_bytes": self.cached_bytes,
            "recomputed": self.recomputed,
        }

    def terms(
        self, student: nn.Module, index: int | None, item: Any, precision: MixedPrecision | None = None
    ) -> list[Tensor]:
        """The relative distance at each horizon ``1 … K``, in the teacher's precision (the student's
        passes under ``precision``'s autocast when given). With several processes, this process's
        share of the global batch's (every process's item ``index`` together): its squared error
        over the teacher's energy summed over the processes, so that the shares add up to the
        distance of the global batch, and their gradients to its gradient."""
        with contextlib.nullcontext() if precision is None else precision.training():
            calls = self.source.run(self.adapter, student, item)
        targets = self.targets(index, item)
        if self.reducer.world == 1:
            return [relative_distance(prediction, target) for (prediction, _), target in zip(calls, targets)]
        energies = self.energies.get(index) if index is not None else None
        if energies is None:  # the global batch's teacher energy, exchanged once per indexed item
            energies = self.sum_values([float(torch.sum(target.double() ** 2)) for target in targets])
            if index is not None:
                self.energies[index] = energies
        return [
            torch.sum((prediction - target) ** 2) / max(energy, torch.finfo(target.dtype).tiny)
            for (prediction, _), target, energy in zip(calls, targets, energies)
        ]

    def loss(self, terms: Sequence[Tensor]) -> Tensor:
        if len(terms) == 1:
            return terms[0]
        return (1.0 - self.rollout_weight) * terms[0] + self.rollout_weight * (sum(terms) / len(terms))


def source_for(adapter: ModelAdapter, items: Sequence[Any], rollout_steps: int | None) -> BatchSource:
    """One-step items distil one step; trajectories roll out ``rollout_steps`` (default: all they hold)."""
    available = trajectory_length(adapter, items, "refinement")
    if available is None:
        if rollout_steps not in (None, 1):
            raise ConfigError(
                f"refine rollout_steps={rollout_steps} needs trajectory items; the refinement data are "
                "one-step batches"
            )
        return PairSource()
    steps = available if rollout_steps is None else rollout_steps
    if steps > available:
        raise ConfigError(
            f"refine rollout_steps={steps}, but the refinement trajectories hold {available} steps"
        )
    return RolloutSource(steps=steps)


def summed_gradients(parameters: Sequence[Tensor], reducer: StatisticsReducer, loss: Tensor) -> float:
    """Every parameter's gradient summed over the processes (a parameter this process's item did
    not reach counts as zero), and this process's ``loss`` with them (one exchange for all); the
    summed loss."""
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    total = loss.reshape(1).to(parameters[0].dtype)
    reducer.sum_tensors([parameter.grad for parameter in parameters] + [total])
    return float(total)


def _trainable(model: nn.Module, choice: str) -> list[Tensor]:
    if choice == "factors":
        layers = [module for module in model.modules() if isinstance(module, LowRankLinear)]
        return [weight for layer in layers for weight in (layer.first.weight, layer.second.weight)]
    return [
        parameter
        for parameter in model.parameters()
        if parameter.is_floating_point() and parameter.requires_grad
    ]


def _score(distiller: Distiller, model: nn.Module, items: Sequence[Any], offset: int) -> list[float]:
    """The mean relative distance at each horizon over ``items`` (no gradient; with several
    processes, over the global batches: every process's shares summed)."""
    totals: list[float] = []
    reducer = distiller.reducer
    with torch.no_grad():
        for index, item in enumerate(items):
            terms = [float(term) for term in distiller.terms(model, offset + index, item)]
            terms = terms if reducer.world == 1 else distiller.sum_values(terms)
            totals = [a + b for a, b in zip(totals, terms)] if totals else terms
    return [total / len(items) for total in totals]


def _objective(distiller: Distiller, horizons: Sequence[float]) -> float:
    return float(distiller.loss([torch.tensor(value) for value in horizons]))


def distil(
    original: nn.Module,
    model: nn.Module,
    adapter: ModelAdapter,
    items: Sequence[Any],
    options: RefineOptions,
    *,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
    fingerprint: str = "",
    reducer: StatisticsReducer | None = None,
) -> dict[str, Any]:
    """Distil ``model`` (in place) towards ``original`` on ``items`` (see the module); return the report.

    With a ``reducer`` of several processes (each called with the same ``items``, the same model
    and options), every step is one global batch: process ``r`` trains on item ``P·g + r`` of the
    global batch ``g``; the gradients are summed over the processes (:meth:`StatisticsReducer.sum_tensors`),
    so every process takes the step one process would take on the global batches merged, the held-out
    scores are those of the global batches, and only process 0 writes the checkpoint."""
    start = time.perf_counter()
    reducer = LocalReducer() if reducer is None else reducer
    domains = item_domains(adapter, items)
    whole_fit, whole_held_out = split_items(items, options.held_out, domains, reducer.world)
    fit, held_out = shard(whole_fit, reducer), shard(whole_held_out, reducer)
    items = fit + held_out
    source = source_for(adapter, items, options.rollout_steps)
    distiller = Distiller(
        adapter, original, source, options.rollout_weight, options.teacher_cache_bytes, reducer=reducer
    )
    symmetric = symmetric_items(options.symmetries, options.seed, adapter, items)
    parameters = _trainable(model, options.parameters)
    if not parameters:
        raise ConfigError(
            "refinement found nothing to train (no floating parameter, or no factored layer with "
            "parameters='factors')"
        )
    optimizer = torch.optim.Adam(parameters, lr=options.lr)
    precision = MixedPrecision.of(options.autocast, parameters[0])
    keys = [name for name, _ in model.named_parameters()]
    closed_form = _score(distiller, model, held_out, len(fit)) if held_out else []
    best = {
        "step": 0,
        "score": _objective(distiller, closed_form) if held_out else math.inf,
        "state": copy.deepcopy(model.state_dict()),
    }
    history: list[dict[str, Any]] = []
    checkpoint = (
        None
        if checkpoint_dir is None
        else RefineCheckpoint(Path(checkpoint_dir), fingerprint, writer=reducer.rank == 0)
    )
    first_step, stopped = 0, None
    if checkpoint is not None and checkpoint.saved is not None:
        first_step, best, history = checkpoint.restore(model, optimizer, keys, options)
        precision.load(checkpoint.precision_state())
    window, since = (
        0.0,
        first_step,
    )  # the training loss summed since the last evaluation (a checkpoint's step)
    order = _order(len(fit), options.seed)
    bar = tqdm(total=options.steps, initial=first_step, desc="refine", disable=not progress)
    with torch.enable_grad():
        for step in range(first_step, options.steps):
            for group in optimizer.param_groups:
                group["lr"] = options.learning_rate(step)
            index = order(step)
            if symmetric is None:
                loss = distiller.loss(distiller.terms(model, index, fit[index], precision))
            else:  # the item carried by the step's symmetry: the teacher labels it afresh
                loss = distiller.loss(
                    distiller.terms(model, None, symmetric.item(step, fit[index]), precision)
                )
            optimizer.zero_grad(set_to_none=True)
            precision.backward(loss)
            value = distiller.step_loss(loss, parameters)
            if not math.isfinite(value):  # no step taken
                stopped = (
                    f"the distillation loss became {value} at step {step + 1}: training "
                    f"stopped and the best state (step {best['step']}) kept; lower the refine lr"
                )
                warnings.warn(f"refine: {stopped}", RefineWarning, stacklevel=2)
                break
            precision.step(optimizer)
            window += value
            bar.update(1)
            if (step + 1) % options.eval_every == 0 or step + 1 == options.steps:
                row: dict[str, Any] = {"step": step + 1, "train": window / (step + 1 - since)}
                window, since = 0.0, step + 1
                if held_out:
                    horizons = _score(distiller, model, held_out, len(fit))
                    row.update(held_out=_objective(distiller, horizons), horizons=horizons)
                    if row["held_out"] < best["score"]:
                        best = {
                            "step": step + 1,
                            "score": row["held_out"],
                            "state": copy.deepcopy(model.state_dict()),
                        }
                    bar.set_postfix(held_out=f"{row['held_out']:.3g}")
                history.append(row)
                if checkpoint is not None:
                    checkpoint.save(step + 1, model, optimizer, keys, best, history, precision.state())
    bar.close()
    if held_out or stopped:
        model.load_state_dict(best["state"])
    elif history:  # no held-out split: the last state is kept
        best = {**best, "step": history[-1]["step"]}
    kept = "refined" if best["step"] else "closed form"
    report = {
        "steps": options.steps,
        "items": {
            "fit": len(fit),
            "held_out": len(held_out),
            "processes": reducer.world,
            "held_out_domains": None if domains is None else domain_counts(adapter, whole_held_out),
        },
        "source": repr(source),
        "options": attrs.asdict(options),
        "held_out_closed_form": _objective(distiller, closed_form) if held_out else None,
        "held_out_closed_form_horizons": closed_form,
        "held_out_refined": best["score"] if held_out else None,
        "best_step": best["step"],
        "kept": kept,
        "history": history,
        "stopped": stopped,
        "teacher": distiller.report(),
        "seconds": time.perf_counter() - start,
        "exchange_seconds": distiller.exchange_seconds,
        "autocast": precision.name(),
    }
    return report


def summary(report: dict[str, Any]) -> str:
    """One line: steps, the held-out distance of the closed form and of the kept model."""
    if report["held_out_closed_form"] is None:
        return f"refine: {report['steps']} steps on {report['items']['fit']} items (no held-out split)"
    return (
        f"refine: {report['steps']} steps on {report['items']['fit']} items; held-out distance to the "
        f"original {report['held_out_closed_form']:.4g} (closed form) → {report['held_out_refined']:.4g} "
        f"(kept: {report['kept']}, step {report['best_step']})"
    )


def _order(count: int, seed: int) -> Callable[[int], int]:
    """Step → item index: a fresh permutation of the items each epoch, from ``seed`` and the epoch
    (so that a resumed run draws the same items)."""
    permutations: dict[int, list[int]] = {}

    def index(step: int) -> int:
        epoch = step // count
        if epoch not in permutations:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            permutations.clear()
            permutations[epoch] = torch.randperm(count, generator=generator).tolist()
        return permutations[epoch][step % count]

    return index
