"""Per-layer estimator states for a whole model: merge across processes, save and load."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor

from ._errors import ConfigError
from ._interfaces import Estimator, LayerSignals

SEPARATOR = "::"


class CalibrationStatistics:
    """``layer name → estimator name → Estimator``, plus free-form scalar metadata (e.g. λ).

    Reducible: :meth:`merge` adds another instance built on other calibration batches (another
    process); persistent: :meth:`save` / :meth:`load` use safetensors, never pickle.
    """

    def __init__(self, estimators: Mapping[str, Mapping[str, Estimator]], metadata: Mapping[str, object] | None = None) -> None:
        self.estimators = {layer: dict(by_name) for layer, by_name in estimators.items()}
        self.metadata: dict[str, object] = dict(metadata or {})

    @classmethod
    def create(
        cls, layers: Mapping[str, tuple[int, int]], estimator_names: tuple[str, ...], make: Callable[[str, int, int], Estimator]
    ) -> CalibrationStatistics:
        """Fresh estimators for ``layers`` (name → (in, out)) built by ``make(name, in, out)``."""
        return cls({layer: {name: make(name, n, m) for name in estimator_names} for layer, (n, m) in layers.items()})

    def update(self, layer: str, signals: LayerSignals) -> None:
        """Feed one batch of ``layer``'s signals to each of its estimators."""
        for estimator in self.estimators[layer].values():
            estimator.update(signals)

    def layer(self, layer: str) -> dict[str, Tensor]:
        """All finished statistics of ``layer``, merged over its estimators."""
        merged: dict[str, Tensor] = {}
        for estimator in self.estimators[layer].values():
            merged.update(estimator.statistics())
        return merged

    def merge(self, other: CalibrationStatistics) -> None:
        """Add ``other``'s sums and counts (same layers, same estimators)."""
        if self.estimators.keys() != other.estimators.keys():
            raise ConfigError("cannot merge statistics over different layer sets")
        for layer, by_name in self.estimators.items():
            if by_name.keys() != other.estimators[layer].keys():
                raise ConfigError(f"cannot merge statistics of {layer!r}: different estimators")
            for name, estimator in by_name.items():
                estimator.merge(other.estimators[layer][name])

    def state_dict(self) -> dict[str, Tensor]:
        """Flat ``layer::estimator::key → tensor`` mapping."""
        flat: dict[str, Tensor] = {}
        for layer, by_name in self.estimators.items():
            for name, estimator in by_name.items():
                for key, value in estimator.state_dict().items():
                    flat[SEPARATOR.join((layer, name, key))] = value.contiguous()
        return flat

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore every estimator from :meth:`state_dict` output."""
        grouped: dict[tuple[str, str], dict[str, Tensor]] = {}
        for flat_key, value in state.items():
            layer, name, key = flat_key.split(SEPARATOR, 2)
            grouped.setdefault((layer, name), {})[key] = value
        for layer, by_name in self.estimators.items():
            for name, estimator in by_name.items():
                if (layer, name) not in grouped:
                    raise ConfigError(f"stored statistics lack {name!r} for layer {layer!r}")
                estimator.load_state_dict(grouped[(layer, name)])

    def save(self, path: str | Path) -> None:
        """Write sums and counts to a safetensors file (metadata as JSON in its header)."""
        save_file(self.state_dict(), str(path), metadata={"safesvd": json.dumps(self.metadata)})

    def load(self, path: str | Path) -> None:
        """Load a file written by :meth:`save` into these (matching) estimators."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        self.metadata.update(json.loads(header.get("safesvd", "{}")))
        self.load_state_dict(load_file(str(path)))
