"""``(input, target)`` pairs of one PDE domain, with their field description and domain label."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import ConfigError, FieldDescription


def _check(instance: PairSet, attribute: attrs.Attribute, value: Tensor) -> None:
    if not isinstance(value, Tensor) or value.dtype != torch.float32:
        raise ConfigError(
            f"{attribute.name}: expected a float32 tensor, got {getattr(value, 'dtype', type(value))}"
        )
    instance.field.check_shape(value.shape)


@attrs.frozen(kw_only=True, eq=False)
class PairSet:
    """Inputs and targets ``(samples, channels, *grid)`` in float32, ``lead_time`` apart.

    ``domain`` labels every sample (a PDE family or a file's dataset name); ``lead_time`` is in
    the time unit of the source (``nan`` where the source records no time).
    """

    field: FieldDescription = attrs.field(validator=attrs.validators.instance_of(FieldDescription))
    inputs: Tensor = attrs.field(validator=_check)
    targets: Tensor = attrs.field(validator=_check)
    domain: str = attrs.field(validator=attrs.validators.instance_of(str))
    lead_time: float = float("nan")

    def __attrs_post_init__(self) -> None:
        if self.inputs.shape != self.targets.shape:
            raise ConfigError(
                f"targets: expected the shape of the inputs {tuple(self.inputs.shape)}, got "
                f"{tuple(self.targets.shape)}"
            )
        if not self.domain:
            raise ConfigError("domain: expected a non-empty label, got ''")

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def batches(self, batch_size: int, *, with_domain: bool = False) -> Iterator[tuple]:
        """``(input, target)`` batches in order, or ``(input, target, domain)`` with ``with_domain``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: expected an integer ≥ 1, got {batch_size!r}")
        for start in range(0, len(self), batch_size):
            pair = (self.inputs[start : start + batch_size], self.targets[start : start + batch_size])
            yield (*pair, self.domain) if with_domain else pair

    def copy_error(self) -> float:
        """:func:`relative_l2` of the copy-the-input predictor."""
        return relative_l2(self.inputs, self.targets)


def relative_l2(prediction: Tensor, target: Tensor) -> float:
    """Mean over channels of ``‖prediction_c − target_c‖ / ‖target_c‖`` (norms over samples and grid).

    Per channel, so that a channel with a large mean (pressure) does not hide the others.
    """
    target = target.double().transpose(0, 1).flatten(1)
    error = prediction.double().transpose(0, 1).flatten(1) - target
    return float((torch.linalg.vector_norm(error, dim=1) / torch.linalg.vector_norm(target, dim=1)).mean())


__all__ = ["PairSet", "relative_l2"]
