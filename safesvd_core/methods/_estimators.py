"""Built-in estimators: clean, shifted and cross covariance, output Fisher, energy balancing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from .._errors import ConfigError, NumericalError
from ..kinds._interfaces import Estimator, LayerSignals, Reduction
from ..kinds._plugins import registry
from ..statistics._moments import RunningMoment


class MomentEstimator(Estimator):
    """An estimator made of named :class:`RunningMoment` sums; subclasses say what to add."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.moments: dict[str, RunningMoment] = self._create()

    def _create(self) -> dict[str, RunningMoment]:
        raise NotImplementedError

    def _signal(self, signals: LayerSignals, attribute: str) -> Tensor:
        value = getattr(signals, attribute)
        if value is None:
            raise ConfigError(
                f"estimator {self.name!r} needs the {attribute!r} signal, which was not provided"
            )
        return value

    def merge(self, other: Estimator) -> None:
        if type(other) is not type(self):
            raise ConfigError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for key, moment in self.moments.items():
            moment.merge(other.moments[key])

    def statistics(self) -> dict[str, Tensor]:
        return {key: moment.mean() for key, moment in self.moments.items()}

    def reduce(self, reduction: Reduction) -> None:
        """Each moment's sum and count, in key order (every process has the same keys)."""
        for key in sorted(self.moments):
            self.moments[key].reduce(reduction.sum_)

    def footprint(self, domains: int = 1) -> int:
        return sum(moment.total.numel() * moment.total.element_size() for moment in self.moments.values())

    def state_dict(self) -> dict[str, Tensor]:
        state: dict[str, Tensor] = {}
        for key, moment in self.moments.items():
            state.update(moment.state_dict(prefix=f"{key}."))
        return state

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        for key, moment in self.moments.items():
            moment.load_state_dict(state, prefix=f"{key}.")


class CleanCovariance(MomentEstimator):
    """``sigma = E[x xᵀ]`` of the layer input in the original model."""

    name: ClassVar[str] = "clean-covariance"
    requires: ClassVar[frozenset[str]] = frozenset({"inputs"})
    provides: ClassVar[frozenset[str]] = frozenset({"sigma"})

    def _create(self) -> dict[str, RunningMoment]:
        return {"sigma": RunningMoment(self.in_features, self.in_features)}

    def update(self, signals: LayerSignals) -> None:
        self.moments["sigma"].add(self._signal(signals, "inputs"))


class ShiftedCovariance(MomentEstimator):
    """``sigma_shift = E[x̃ x̃ᵀ]`` and ``sigma_cross = E[x x̃ᵀ]`` over paired clean/shifted rows."""

    name: ClassVar[str] = "shifted-covariance"
    requires: ClassVar[frozenset[str]] = frozenset({"inputs", "shifted_inputs"})
    provides: ClassVar[frozenset[str]] = frozenset({"sigma_shift", "sigma_cross"})

    def _create(self) -> dict[str, RunningMoment]:
        n = self.in_features
        return {"sigma_shift": RunningMoment(n, n), "sigma_cross": RunningMoment(n, n)}

    def update(self, signals: LayerSignals) -> None:
        clean = self._signal(signals, "inputs")
        shifted = self._signal(signals, "shifted_inputs")
        self.moments["sigma_shift"].add(shifted)
        self.moments["sigma_cross"].add(clean, shifted)


class OutputFisher(MomentEstimator):
    """``fisher = E[g gᵀ]`` with ``g = ∂L/∂y`` the gradient of the calibration loss at the output."""

    name: ClassVar[str] = "output-fisher"
    requires: ClassVar[frozenset[str]] = frozenset({"output_grads"})
    provides: ClassVar[frozenset[str]] = frozenset({"fisher"})

    def _create(self) -> dict[str, RunningMoment]:
        return {"fisher": RunningMoment(self.out_features, self.out_features)}

    def update(self, signals: LayerSignals) -> None:
        self.moments["fisher"].add(self._signal(signals, "output_grads"))


#: The labels rows can be balanced by: their physical domain, their batch source's statistics group.
BALANCE_KEYS = ("domain", "group")


class EnergyBalanced(Estimator):
    """Per-label copies of inner estimators, combined with trace weights (docs/method.md,
    "Energy-balanced multi-domain statistics"; the paper's App. D).

    The label of a row is its physical domain (``by=("domain",)``, the paper's "Ours*"), its
    statistics group (``by=("group",)``: one-step against rollout rows, to balance horizons), or
    both. For each statistic ``M`` with per-label means ``M_d`` and traces ``τ_d``:
    ``M_bal = Σ_d w_d M_d / D`` with ``w_d = τ̄ / (τ_d + ε)``, ``τ̄ = mean_d τ_d``.
    """

    name: ClassVar[str] = "energy-balanced"
    requires: ClassVar[frozenset[str]] = frozenset()
    provides: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        in_features: int,
        out_features: int,
        inner: tuple[str, ...] = ("clean-covariance",),
        by: tuple[str, ...] = ("domain",),
    ) -> None:
        super().__init__(in_features, out_features)
        if not inner:
            raise ConfigError("energy-balanced needs at least one inner estimator name")
        if not by or any(key not in BALANCE_KEYS for key in by):
            raise ConfigError(f"energy-balanced by must be a non-empty subset of {BALANCE_KEYS}, got {by!r}")
        self.inner_classes = {name: registry("estimator").get(name) for name in inner}
        self.by = tuple(by)
        self.requires = frozenset().union(*(cls.requires for cls in self.inner_classes.values()))
        self.domains: dict[str, dict[str, Estimator]] = {}

    @classmethod
    def provided(
        cls, inner: tuple[str, ...] = ("clean-covariance",), by: tuple[str, ...] = ("domain",)
    ) -> frozenset[str]:
        """What the inner estimators provide, balanced."""
        return frozenset().union(*(registry("estimator").get(name).provided() for name in inner))

    def _label(self, signals: LayerSignals) -> str:
        values = [getattr(signals, key) for key in self.by]
        if any(value is None for value in values):
            missing = [key for key, value in zip(self.by, values) if value is None]
            what = {
                "domain": "a domain label per batch (adapter.domain)",
                "group": (
                    "a statistics group per row (a batch source with groups, e.g. a rollout with its "
                    "one-step group)"
                ),
            }
            raise ConfigError(
                "energy-balanced calibration needs " + " and ".join(what[key] for key in missing)
            )
        return " | ".join(str(value) for value in values)

    def _domain(self, label: str) -> dict[str, Estimator]:
        if label not in self.domains:
            self.domains[label] = {
                n: cls(self.in_features, self.out_features) for n, cls in self.inner_classes.items()
            }
        return self.domains[label]

    def footprint(self, domains: int = 1) -> int:
        """One copy of every inner estimator per domain."""
        return domains * sum(
            cls(self.in_features, self.out_features).footprint() for cls in self.inner_classes.values()
        )

    def update(self, signals: LayerSignals) -> None:
        for estimator in self._domain(self._label(signals)).values():
            estimator.update(signals)

    def reduce(self, reduction: Reduction) -> None:
        """Processes may have seen different domains: first agree on their union (a domain a
        process never saw joins with zero sums), then reduce every domain's estimators in order."""
        for label in reduction.union(sorted(self.domains)):
            for name in sorted(self.inner_classes):
                self._domain(label)[name].reduce(reduction)

    def merge(self, other: Estimator) -> None:
        if (
            not isinstance(other, EnergyBalanced)
            or other.inner_classes.keys() != self.inner_classes.keys()
            or other.by != self.by
        ):
            raise ConfigError("cannot merge energy-balanced estimators with different inner estimators")
        for label, by_name in other.domains.items():
            for name, estimator in by_name.items():
                self._domain(label)[name].merge(estimator)

    def statistics(self) -> dict[str, Tensor]:
        if not self.domains:
            raise NumericalError("energy-balanced estimator saw no calibration rows")
        per_domain = [
            {key: value for estimator in by_name.values() for key, value in estimator.statistics().items()}
            for _, by_name in sorted(self.domains.items())
        ]
        return {key: balance([stats[key] for stats in per_domain]) for key in per_domain[0]}

    def state_dict(self) -> dict[str, Tensor]:
        return {
            f"{label}/{name}/{key}": value
            for label, by_name in self.domains.items()
            for name, estimator in by_name.items()
            for key, value in estimator.state_dict().items()
        }

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        grouped: dict[tuple[str, str], dict[str, Tensor]] = {}
        for flat, value in state.items():
            label, name, key = flat.rsplit("/", 2)  # a label may hold "/"; names and keys do not
            grouped.setdefault((label, name), {})[key] = value
        self.domains = {}
        for (label, name), values in grouped.items():
            self._domain(label)[name].load_state_dict(values)


def balance(matrices: list[Tensor], *, relative_eps: float = 1e-12) -> Tensor:
    """``Σ_d w_d M_d / D`` with ``w_d = τ̄ / (τ_d + ε)``, ``τ_d = tr(M_d)``, ``ε`` relative to ``τ̄``."""
    traces = torch.stack([torch.diagonal(m).sum() for m in matrices])
    mean_trace = traces.mean()
    eps = relative_eps * float(mean_trace.abs()) + torch.finfo(torch.float64).tiny
    weights = mean_trace / (traces + eps)
    return sum(w * m for w, m in zip(weights, matrices)) / len(matrices)
