"""Per-layer estimator states for a whole model: merge across processes, save and load, spill to disk."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from safetensors.torch import load_file, save_file
from torch import Tensor

from .._errors import ConfigError
from ..kinds._interfaces import Estimator, LayerSignals, Reduction
from ..kinds._plugins import registry
from ._shared_products import shared_products

SEPARATOR = "::"
#: The file that lists the layers of a spill directory (see :meth:`CalibrationStatistics.spill`).
INDEX = "index.json"
_INDEX_VERSION = 1


@attrs.frozen
class EstimatorFactory:
    """Builds registered estimators by name, with per-estimator options (JSON-able, so that
    spilled statistics can be reopened in another process)."""

    options: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=dict, converter=lambda v: {k: dict(o) for k, o in dict(v).items()}
    )

    def __call__(self, name: str, in_features: int, out_features: int) -> Estimator:
        return registry("estimator").create(
            name, in_features=in_features, out_features=out_features, **self.options.get(name, {})
        )


@attrs.frozen
class _SpilledLayer:
    file: str
    in_features: int
    out_features: int
    estimators: tuple[str, ...]


class CalibrationStatistics:
    """``layer name → estimator name → Estimator``, plus free-form scalar metadata (e.g. λ).

    Reducible: :meth:`merge` adds another instance built on other calibration batches (another
    process); persistent: :meth:`save` / :meth:`load` use safetensors, never pickle. Layers can be
    *spilled*: their sums written to a directory (:meth:`spill`) and read back one layer at a time
    by :meth:`layer`, so that a large model's statistics need not all fit in memory.
    """

    def __init__(
        self,
        estimators: Mapping[str, Mapping[str, Estimator]],
        metadata: Mapping[str, object] | None = None,
        *,
        make: Callable[[str, int, int], Estimator] | None = None,
    ) -> None:
        self.estimators = {layer: dict(by_name) for layer, by_name in estimators.items()}
        self.metadata: dict[str, object] = dict(metadata or {})
        self._make = make
        self._spilled: dict[str, _SpilledLayer] = {}
        self._directory: Path | None = None

    @classmethod
    def create(
        cls,
        layers: Mapping[str, tuple[int, int]],
        estimator_names: tuple[str, ...],
        make: Callable[[str, int, int], Estimator],
    ) -> CalibrationStatistics:
        """Fresh estimators for ``layers`` (name → (in, out)) built by ``make(name, in, out)``."""
        return cls(
            {layer: {name: make(name, n, m) for name in estimator_names} for layer, (n, m) in layers.items()},
            make=make,
        )

    @classmethod
    def open(cls, directory: str | Path) -> CalibrationStatistics:
        """The statistics spilled to ``directory`` (every layer stays on disk until asked for)."""
        directory = Path(directory)
        index = _read_index(directory)
        if index is None:
            raise ConfigError(f"{directory} holds no spilled statistics (no {INDEX})")
        opened = cls({}, index["metadata"], make=EstimatorFactory(index["options"]))
        opened._directory = directory
        opened._spilled = {
            name: _SpilledLayer(entry["file"], entry["in"], entry["out"], tuple(entry["estimators"]))
            for name, entry in index["layers"].items()
        }
        return opened

    @property
    def layers(self) -> list[str]:
        """Every layer, in memory or spilled."""
        return [*self.estimators, *self._spilled]

    @property
    def spilled(self) -> bool:
        """Whether some layers live on disk (then :meth:`merge` and :meth:`save` refuse)."""
        return bool(self._spilled)

    def spill(self, directory: str | Path, layers: Iterable[str] | None = None) -> None:
        """Write the sums of ``layers`` (default: every layer in memory) to ``directory``, one
        safetensors file per layer listed in ``index.json``, and free them. The directory may
        already hold layers spilled by other passes of the same run; :meth:`open` reads it back."""
        if not isinstance(self._make, EstimatorFactory):
            raise ConfigError(
                "only statistics created with an EstimatorFactory can be spilled (they must be rebuilt)"
            )
        directory = Path(directory)
        if self._directory is not None and self._directory != directory:
            raise ConfigError(f"these statistics are already spilled to {self._directory}, not {directory}")
        try:  # as the index stores them (tuples become lists), to compare with an existing index
            options = json.loads(json.dumps(self._make.options))
        except TypeError as error:
            raise ConfigError(
                f"estimator options must be JSON-able to be spilled (and reopened): {error}"
            ) from None
        directory.mkdir(parents=True, exist_ok=True)
        index = _read_index(directory) or {
            "version": _INDEX_VERSION,
            "options": options,
            "metadata": {},
            "layers": {},
        }
        if index["options"] != options:
            raise ConfigError(
                f"{directory} holds statistics built with other estimator options: {index['options']}"
            )
        for layer in list(self.estimators if layers is None else layers):
            if layer in index["layers"]:
                raise ConfigError(f"{directory} already holds statistics of layer {layer!r}")
            by_name = self.estimators.pop(layer)
            first = next(iter(by_name.values()))
            entry = _SpilledLayer(
                f"{len(index['layers']):05d}.safetensors",
                first.in_features,
                first.out_features,
                tuple(by_name),
            )
            state = {
                SEPARATOR.join((name, key)): value.contiguous()
                for name, estimator in by_name.items()
                for key, value in estimator.state_dict().items()
            }
            save_file(state, str(directory / entry.file), metadata={"layer": layer})
            index["layers"][layer] = {
                "file": entry.file,
                "in": entry.in_features,
                "out": entry.out_features,
                "estimators": list(entry.estimators),
            }
            self._spilled[layer] = entry
        index["metadata"].update(self.metadata)
        (directory / INDEX).write_text(json.dumps(index, indent=1))
        self._directory = directory

    def _restore(self, layer: str) -> dict[str, Estimator]:
        entry = self._spilled[layer]
        state = load_file(str(self._directory / entry.file))
        by_name = {name: self._make(name, entry.in_features, entry.out_features) for name in entry.estimators}
        for name, estimator in by_name.items():
            prefix = name + SEPARATOR
            estimator.load_state_dict(
                {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
            )
        return by_name

    def update(self, layer: str, signals: LayerSignals) -> None:
        """Feed one batch of ``layer``'s signals to each of its estimators."""
        if layer in self._spilled:
            raise ConfigError(f"the statistics of {layer!r} are spilled to disk; they take no more rows")
        for estimator in self.estimators[layer].values():
            estimator.update(signals)

    def sharing(self, rows: Iterable[Tensor | None]) -> contextlib.AbstractContextManager[Any]:
        """A scope for :meth:`update` calls in which ``rows`` that several layers read (siblings;
        the rows of every signal about to be added) have their products computed once
        (:mod:`._shared_products`)."""
        return shared_products(rows)

    def update_all(self, updates: Sequence[tuple[str, LayerSignals]]) -> None:
        """:meth:`update` for each ``(layer, signals)`` of one item, in one :meth:`sharing` scope."""
        with self.sharing(
            rows
            for _, signals in updates
            for rows in (signals.inputs, signals.shifted_inputs, signals.output_grads)
        ):
            for layer, signals in updates:
                self.update(layer, signals)

    def layer(self, layer: str) -> dict[str, Tensor]:
        """All finished statistics of ``layer``, merged over its estimators (read from disk if spilled)."""
        by_name = self._restore(layer) if layer in self._spilled else self.estimators[layer]
        merged: dict[str, Tensor] = {}
        for estimator in by_name.values():
            merged.update(estimator.statistics())
        return merged

    def _refuse_spilled(self, action: str) -> None:
        if self._spilled:
            raise ConfigError(
                f"cannot {action} statistics spilled to {self._directory}: that directory is already "
                "their safetensors copy (CalibrationStatistics.open reads it); reduce before spilling"
            )

    def merge(self, other: CalibrationStatistics) -> None:
        """Add ``other``'s sums and counts (same layers, same estimators)."""
        self._refuse_spilled("merge")
        other._refuse_spilled("merge")
        if self.estimators.keys() != other.estimators.keys():
            raise ConfigError("cannot merge statistics over different layer sets")
        for layer, by_name in self.estimators.items():
            if by_name.keys() != other.estimators[layer].keys():
                raise ConfigError(f"cannot merge statistics of {layer!r}: different estimators")
            for name, estimator in by_name.items():
                estimator.merge(other.estimators[layer][name])

    def reduce(self, reduction: Reduction) -> None:
        """Sum every estimator over the processes of ``reduction``, layer by layer in name order
        (:meth:`Estimator.reduce`); every process must hold the same layers and estimators."""
        self._refuse_spilled("reduce")
        for layer in sorted(self.estimators):
            for name in sorted(self.estimators[layer]):
                self.estimators[layer][name].reduce(reduction)

    def state_dict(self) -> dict[str, Tensor]:
        """Flat ``layer::estimator::key → tensor`` mapping."""
        self._refuse_spilled("flatten")
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
        """Write sums and counts to a safetensors file; the metadata and, when the statistics were
        created with an :class:`EstimatorFactory`, their layout (layers, estimators, options) go in
        its header as JSON, so that :meth:`from_file` can rebuild them."""
        self._refuse_spilled("save")
        header = {"safesvd": json.dumps(self.metadata)}
        if isinstance(self._make, EstimatorFactory):
            layout = {
                "layers": {
                    layer: [first.in_features, first.out_features, list(by_name)]
                    for layer, by_name in self.estimators.items()
                    for first in list(by_name.values())[:1]
                },
                "options": self._make.options,
            }
            header["layout"] = json.dumps(layout, default=list)
        save_file(self.state_dict(), str(path), metadata=header)

    def load(self, path: str | Path) -> None:
        """Load a file written by :meth:`save` into these (matching) estimators."""
        self.metadata.update(json.loads(_header(path).get("safesvd", "{}")))
        self.load_state_dict(load_file(str(path)))

    @classmethod
    def from_file(cls, path: str | Path) -> CalibrationStatistics:
        """The statistics :meth:`save` wrote to ``path``, estimators rebuilt from its layout."""
        layout = _header(path).get("layout")
        if layout is None:
            raise ConfigError(
                f"{path} records no layout (written by an older safesvd?): create matching statistics "
                "and call load(path)"
            )
        layout = json.loads(layout)
        make = EstimatorFactory(layout["options"])
        statistics = cls(
            {
                layer: {name: make(name, n, m) for name in names}
                for layer, (n, m, names) in layout["layers"].items()
            },
            make=make,
        )
        statistics.load(path)
        return statistics

    @property
    def directory(self) -> Path | None:
        """The spill directory, when some layers live on disk."""
        return self._directory if self._spilled else None


def _header(path: str | Path) -> dict[str, str]:
    """The JSON-string metadata of a safetensors file (a clear error when it is not one)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{path} is not a readable safetensors file ({error})") from None


def _read_index(directory: Path) -> dict[str, Any] | None:
    path = directory / INDEX
    if not path.exists():
        return None
    index = json.loads(path.read_text())
    if index.get("version") != _INDEX_VERSION:
        raise ConfigError(
            f"{path} has version {index.get('version')!r}; this safesvd reads version {_INDEX_VERSION}"
        )
    return index
