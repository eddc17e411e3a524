"""The Sobolev ``W^{k,p}`` loss: finite-difference derivatives of every order up to ``k``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import attrs
from torch import Tensor

from safesvd_core.plugin import ConfigError, FieldDescription, PhysicsLoss, check_pair, finite, one_of

from .finite_difference import derivative, multi_indices
from .validation import is_finite_non_negative

#: A weight key: a derivative order ``|β|`` (applies to all its multi-indices) or one multi-index ``β``.
WeightKey = int | tuple[int, ...]


def _weights(
    value: Mapping[WeightKey, float] | Sequence[tuple[WeightKey, float]] | None,
) -> tuple[tuple[WeightKey, float], ...]:
    """Normalise ``{key: c}`` (or its ``(key, c)`` pairs) to sorted pairs (hashable, frozen)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in value
        ):
            raise ConfigError(
                f"sobolev weights: expected a mapping {{order or multi-index: weight}}, got {value!r}"
            )
        value = {tuple(key) if isinstance(key, list) else key: weight for key, weight in value}
    pairs = []
    for key, weight in value.items():
        key = tuple(key) if isinstance(key, (list, tuple)) else key
        entries = key if isinstance(key, tuple) else (key,)
        if not entries or not all(_is_order(entry) for entry in entries):
            raise ConfigError(
                f"sobolev weights: expected keys that are an order ≥ 0 or a multi-index, got {key!r}"
            )
        if not is_finite_non_negative(weight):
            raise ConfigError(f"sobolev weights[{key!r}]: expected a finite number ≥ 0, got {weight!r}")
        pairs.append((key, float(weight)))
    return tuple(sorted(pairs, key=lambda pair: (isinstance(pair[0], tuple), str(pair[0]))))


def _is_order(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@attrs.frozen(kw_only=True)
class Sobolev(PhysicsLoss):
    """``Σ_{|β| ≤ order} c_β · mean |D^β u − D^β v|^p`` over the unmasked channels.

    ``p = 1`` is the W^{k,1} loss, ``p = 2`` the squared W^{k,2} loss. ``weights`` maps a
    derivative order (all its multi-indices) or one multi-index ``β`` to ``c_β``; a multi-index
    key wins over an order key, and anything not listed weighs 1.
    """

    name: ClassVar[str] = "sobolev"

    order: int = attrs.field(default=1, validator=one_of((0, 1, 2)))
    p: int = attrs.field(default=1, validator=one_of((1, 2)))
    weights: tuple[tuple[WeightKey, float], ...] = attrs.field(default=None, converter=_weights)

    def __attrs_post_init__(self) -> None:
        for key, _ in self.weights:
            total = key if isinstance(key, int) else sum(key)
            if total > self.order:
                raise ConfigError(
                    f"sobolev weights: key {key!r} has order {total}, above the loss order {self.order}"
                )

    def weight(self, beta: tuple[int, ...]) -> float:
        """``c_β``: the multi-index weight, else the weight of its order, else 1."""
        table = dict(self.weights)
        return table.get(beta, table.get(sum(beta), 1.0))

    def terms(
        self, prediction: Tensor, reference: Tensor, field: FieldDescription
    ) -> dict[tuple[int, ...], Tensor]:
        """Unweighted ``mean |D^β (u − v)|^p`` per multi-index (FD operators are linear)."""
        check_pair(prediction, reference, field)
        for key, _ in self.weights:
            if isinstance(key, tuple) and len(key) != field.dim:
                raise ConfigError(f"sobolev weights: multi-index {key!r} does not fit a {field.dim}-D field")
        active = list(field.active_channels())
        if not active:
            raise ConfigError(
                f"sobolev: every channel is masked ({', '.join(field.channels)}); nothing to compare"
            )
        difference = (prediction - reference)[:, active]
        return {
            beta: _power(derivative(difference, beta, field.spacing, field.periodic), self.p).mean()
            for beta in multi_indices(field.dim, self.order)
        }

    def order_terms(
        self, prediction: Tensor, reference: Tensor, field: FieldDescription
    ) -> dict[int, Tensor]:
        """The weighted terms summed per derivative order ``|β|`` (for per-order balancing)."""
        by_order: dict[int, Tensor] = {}
        for beta, term in self.terms(prediction, reference, field).items():
            weighted = self.weight(beta) * term
            by_order[sum(beta)] = by_order[sum(beta)] + weighted if sum(beta) in by_order else weighted
        return by_order

    def __call__(self, prediction: Tensor, reference: Tensor, field: FieldDescription) -> Tensor:
        total = sum(self.order_terms(prediction, reference, field).values())
        return finite(total, self.name)


def _power(values: Tensor, p: int) -> Tensor:
    return values.abs() if p == 1 else values.square()
