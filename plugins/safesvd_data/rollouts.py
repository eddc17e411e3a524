"""Rollout items: a start state and the true states 1…K lead times on, for rollout calibration
and evaluation (``(input, trajectory)`` batches, the trajectory shaped ``(batch, K, *input.shape[1:])``)."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import ConfigError, FieldDescription


def _check(instance: RolloutSet, attribute: attrs.Attribute, value: Tensor) -> None:
    if not isinstance(value, Tensor) or value.dtype != torch.float32:
        raise ConfigError(
            f"{attribute.name}: expected a float32 tensor, got {getattr(value, 'dtype', type(value))}"
        )


@attrs.frozen(kw_only=True, eq=False)
class RolloutSet:
    """Start states ``(samples, channels, *grid)`` and their trajectories
    ``(samples, steps, channels, *grid)`` in float32, ``lead_time`` apart, one domain."""

    field: FieldDescription = attrs.field(validator=attrs.validators.instance_of(FieldDescription))
    inputs: Tensor = attrs.field(validator=_check)
    trajectories: Tensor = attrs.field(validator=_check)
    domain: str = attrs.field(validator=attrs.validators.instance_of(str))
    lead_time: float = float("nan")

    def __attrs_post_init__(self) -> None:
        self.field.check_shape(self.inputs.shape)
        if (
            self.trajectories.ndim != self.inputs.ndim + 1
            or self.trajectories.shape[0] != self.inputs.shape[0]
            or self.trajectories.shape[2:] != self.inputs.shape[1:]
        ):
            raise ConfigError(
                f"trajectories: expected (samples, steps, *{tuple(self.inputs.shape[1:])}), "
                f"got {tuple(self.trajectories.shape)}"
            )
        if not self.domain:
            raise ConfigError("domain: expected a non-empty label, got ''")

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def steps(self) -> int:
        """``K``: the true states each trajectory holds after its start."""
        return int(self.trajectories.shape[1])

    def batches(self, batch_size: int, *, with_domain: bool = False) -> Iterator[tuple]:
        """``(input, trajectory)`` items in order, or ``(input, trajectory, domain)`` with ``with_domain``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: expected an integer ≥ 1, got {batch_size!r}")
        for start in range(0, len(self), batch_size):
            item = (self.inputs[start : start + batch_size], self.trajectories[start : start + batch_size])
            yield (*item, self.domain) if with_domain else item


__all__ = ["RolloutSet"]
