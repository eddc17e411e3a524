"""Rollout calibration: a trajectory item runs as K autoregressive model calls, and its loss is
taken over all K predictions against the true trajectory (the multi-step sensitivity)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
from torch import Tensor, nn

from .._errors import ConfigError
from ..kinds._interfaces import ModelAdapter
from ..kinds._validators import positive_int
from ._seams import BatchSource, Objective

#: Statistics groups of a :class:`RolloutSource` with ``one_step_group``.
ONE_STEP, ROLLOUT = "one-step", "rollout"


@attrs.frozen(kw_only=True)
class RolloutSource(BatchSource):
    """An item is a trajectory; the model is rolled out ``steps`` times from its start, each
    prediction becoming the next input (``ModelAdapter.rollout_step``).

    The loss is the mean of the ``steps`` one-step objectives against the true states, so a layer's
    Fisher is that of the K-step loss and its covariances cover every state the rollout visits.
    With ``one_step_group``, the clean statistics come in two groups to be balanced: ``"one-step"``
    (the first call, the one-step loss) and ``"rollout"`` (every call, the K-step loss).
    """

    steps: int = attrs.field(validator=positive_int)
    one_step_group: bool = False

    def predictions(self, adapter: ModelAdapter, model: nn.Module, item: Any) -> Iterator[tuple[Tensor, Any]]:
        state = None
        for step in range(1, self.steps + 1):
            batch = adapter.rollout_step(item, state, step)
            state = adapter.predict(model, batch)
            yield state, batch

    def groups(self, calls: int) -> Mapping[str | None, Sequence[int]]:
        everything = tuple(range(calls))
        return {ONE_STEP: everything[:1], ROLLOUT: everything} if self.one_step_group else {None: everything}

    def loss(
        self, objective: Objective, calls: Sequence[tuple[Tensor, Any]], group: str | None = None
    ) -> Tensor:
        chosen = calls[:1] if group == ONE_STEP else calls
        if len(chosen) == 1:
            return objective(*chosen[0])
        return sum(objective(prediction, batch) for prediction, batch in chosen) / len(chosen)

    def first_batch(self, adapter: ModelAdapter, item: Any) -> Any:
        return adapter.rollout_step(item, None, 1)


def one_step_batches(adapter: ModelAdapter, items: Sequence[Any]) -> list[Any]:
    """Trajectory items as one-step batches, teacher-forced: for each item and step ``k``, the true
    state ``k − 1`` as input and the true state ``k`` as target (``K`` batches per item, in step
    order). One-step items pass through unchanged."""
    batches = []
    for item in items:
        steps = adapter.trajectory_steps(item)
        if steps is None:
            batches.append(item)
            continue
        state = None
        for step in range(1, steps + 1):
            batch = adapter.rollout_step(item, state, step)
            batches.append(batch)
            state = adapter.reference(batch)
    return batches


def trajectory_length(adapter: ModelAdapter, items: Sequence[Any], what: str = "calibration") -> int | None:
    """The ``K`` every item holds when the items are trajectories, ``None`` when they are one-step
    batches; a mixture, trajectories of different lengths or of no step is a :class:`ConfigError`
    (``what``: the items' name in it)."""
    lengths = {adapter.trajectory_steps(item) for item in items}
    if len(lengths) > 1:
        shown = ", ".join(
            "one-step" if k is None else f"{k} steps" for k in sorted(lengths, key=lambda k: k or 0)
        )
        raise ConfigError(
            f"the {what} items mix lengths ({shown}); give all one-step batches or all trajectories "
            "of the same length"
        )
    check_steps(adapter, items, what)
    return lengths.pop() if lengths else None


def check_steps(adapter: ModelAdapter, items: Sequence[Any], what: str) -> None:
    """Refuse trajectories of 0 steps (an empty step axis) among ``items``, named ``what``."""
    if any(adapter.trajectory_steps(item) == 0 for item in items):
        raise ConfigError(
            f"the {what} items are trajectories of 0 steps (an empty step axis): a trajectory holds "
            "K ≥ 1 states after its input; give K ≥ 1, or one-step (input, target) batches"
        )
