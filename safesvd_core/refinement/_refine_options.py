"""``RefineOptions``: how refinement trains (its own module: the loop and its checkpoint both read it)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs

from .._defaults import DEFAULTS
from .._errors import ConfigError
from ..kinds._validators import non_negative_int, one_of, positive, positive_int, unit_interval
from ._refine_precision import AUTOCAST_CHOICES

PARAMETER_CHOICES = ("all", "factors")


def _held_out_share(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    unit_interval(instance, attribute, value)
    if value >= 1.0:
        raise ConfigError(f"refine held_out must be below 1 (the rest is trained on), got {value!r}")


def _family_name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"refine symmetries must name a PDE family (e.g. 'ns-incompressible'), got {value!r}"
        )


#: The default cap of the teacher's cached predictions (bytes).
TEACHER_CACHE_BYTES = 2**30


@attrs.frozen(kw_only=True)
class RefineOptions:
    """How refinement trains. ``steps``: optimiser steps, one item (a batch) each; ``lr``: Adam's
    peak learning rate; ``warmup``: linear warm-up steps (then cosine to 0); ``held_out``: the
    share of items scored and never trained on (0: none, then nothing guards the closed form);
    ``eval_every``: steps between held-out scores (and checkpoints); ``rollout_steps``: the
    rollout length on trajectory items (``None``: all they hold; 1: one step only);
    ``rollout_weight``: the weight of the K-step term against the one-step term;
    ``parameters``: ``"all"`` or ``"factors"``; ``seed``: the item order; ``teacher_cache_bytes``:
    the teacher's predictions are kept in memory up to this many bytes (default 1 GiB), those of
    the items beyond it computed again at every use (0: always computed; the result is the same,
    the teacher being deterministic in eval mode); ``symmetries``: a PDE family whose symmetries
    multiply the inputs (each step carries its item by one drawn at random, and the teacher labels
    it: for little data; ``None``: the items as given); ``autocast``: the student's training passes
    in ``"bfloat16"`` or ``"float16"`` (the loss in float32), ``"off"``, or ``"auto"``: on CUDA
    only (:mod:`._refine_precision`)."""

    name: ClassVar[str] = "refine"

    steps: int = attrs.field(validator=positive_int)
    lr: float = attrs.field(default=DEFAULTS.refine_lr, validator=positive)
    warmup: int = attrs.field(default=50, validator=non_negative_int)
    held_out: float = attrs.field(default=0.125, validator=_held_out_share)
    eval_every: int = attrs.field(default=100, validator=positive_int)
    rollout_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int))
    rollout_weight: float = attrs.field(default=0.5, validator=unit_interval)
    parameters: str = attrs.field(default="all", validator=one_of(PARAMETER_CHOICES))
    seed: int = attrs.field(default=0, validator=non_negative_int)
    teacher_cache_bytes: int = attrs.field(default=TEACHER_CACHE_BYTES, validator=non_negative_int)
    symmetries: str | None = attrs.field(default=None, validator=attrs.validators.optional(_family_name))
    autocast: str = attrs.field(default="auto", validator=one_of(AUTOCAST_CHOICES))

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(1, self.steps - self.warmup)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup) / span)))
