"""``SpectralAdapter``: the base of the framework adapters whose models keep most of their weights in
spectral layers (neuraloperator's FNO, torch-harmonics' SFNO)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
from torch import Tensor, nn

from safesvd_core.plugin import ModelAdapter

from .framework import FieldAdapter, TupleBatches, require, tuple_parts
from .spectral import restore_spectral, rewrite_spectral, spectral_blocks


@attrs.frozen(kw_only=True)
class SpectralAdapter(TupleBatches, FieldAdapter, ModelAdapter):
    """Batches are ``(input, target[, domain])`` tuples or the frameworks' ``{'x', 'y'}`` dicts;
    :meth:`prepare` rewrites the spectral layers into banks of per-mode maps and :meth:`restore`
    writes them back (:mod:`safesvd_adapters.spectral`); each spectral layer is one stage (its modes
    solved together from one run of the layer: a stage per mode would rerun the model once for each
    of its hundreds of modes). Subclasses name the ``framework`` module they need and its ``extra``."""

    #: The framework module the adapter needs (imported when it is created), and the extra installing it.
    framework: ClassVar[str]
    extra: ClassVar[str]

    rewrites_modules: ClassVar[bool] = True

    def __attrs_post_init__(self) -> None:
        require(self.framework, adapter=self.name, extra=self.extra)
        super().__attrs_post_init__()

    def _parts(self, batch: Any) -> tuple[Any, Tensor, str | None]:
        if isinstance(batch, Mapping) and "x" in batch and "y" in batch:
            return batch["x"], batch["y"], batch.get("domain")
        return tuple_parts(batch, self.name)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Each spectral layer replaced by its bank-backed layer (same outputs)."""
        return rewrite_spectral(model)

    def blocks(self, model: nn.Module) -> list[str] | None:
        """The bank-backed spectral layers, one stage each."""
        return spectral_blocks(model) or None

    def restore(self, model: nn.Module) -> nn.Module:
        """Each bank-backed layer back as its framework's dense layer."""
        return restore_spectral(model)
