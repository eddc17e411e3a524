"""The ``torch-harmonics`` adapter: spherical Fourier neural operators (SFNO) from torch-harmonics.

An SFNO keeps most of its weights in the complex spectral weights of its ``SpectralConvS2``
layers: one ``out × in`` map per spherical-harmonic degree (``"driscoll-healy"``, the default) or
per degree and order (``"diagonal"``). :meth:`HarmonicsAdapter.prepare` rewrites each into a
:class:`~safesvd_adapters.spherical.SphericalLayer` whose maps are compressible layers
(``….bank.maps.<l>``), beside the blocks' MLP convolutions. ``torch_harmonics`` is imported when
the adapter is created (extra ``safesvd[torch-harmonics]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
from torch import Tensor, nn

from safesvd_core.plugin import ModelAdapter

from .framework import FieldAdapter, TupleBatches, require, tuple_parts
from .selection import NORMALISATION, TIME_CONDITIONING, embedding, recovery
from .spectral import restore_spectral, rewrite_spectral, spectral_blocks

_LAYERS = "torch_harmonics.examples.models._layers"


@attrs.frozen(kw_only=True)
class HarmonicsAdapter(TupleBatches, FieldAdapter, ModelAdapter):
    """SFNO-family operators: compresses the degree maps of every ``SpectralConvS2`` and the blocks'
    1×1 MLP convolutions.

    Skipped: the ``encoder`` and ``decoder`` (input/output heads), normalisations, a
    ``"block-diagonal"`` spectral convolution (refused on entry: it mixes orders). Batches:
    ``(input, target[, domain])`` tuples or ``{'x', 'y'}`` dicts, fields ``(B, C, nlat, nlon)``.
    Loss: ``relative-l2`` (torch-harmonics' examples train with a relative L2 loss). Blocks: the
    spectral layers (one stage each: their degrees solved together from one run of the layer).

    :meth:`prepare` swaps each ``SpectralConvS2`` for a
    :class:`~safesvd_adapters.spherical.SphericalLayer` (same output); :meth:`restore` writes them
    back as dense ``SpectralConvS2`` layers (:mod:`safesvd_adapters.spectral`, which the
    ``generic`` adapter shares).
    """

    name: ClassVar[str] = "torch-harmonics"
    skip_rules: ClassVar = (
        TIME_CONDITIONING,
        embedding("encoder.*", "*.encoder.*"),
        recovery("decoder.*", "*.decoder.*"),
        NORMALISATION,
    )

    rewrites_modules: ClassVar[bool] = True

    loss: Any = "relative-l2"

    def __attrs_post_init__(self) -> None:
        require(_LAYERS, adapter=self.name, extra="torch-harmonics")
        super().__attrs_post_init__()

    def _parts(self, batch: Any) -> tuple[Any, Tensor, str | None]:
        if isinstance(batch, Mapping) and "x" in batch and "y" in batch:
            return batch["x"], batch["y"], batch.get("domain")
        return tuple_parts(batch, self.name)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Each ``SpectralConvS2`` replaced by a ``SphericalLayer`` (same outputs)."""
        require(_LAYERS, adapter=self.name, extra="torch-harmonics")
        return rewrite_spectral(model)

    def blocks(self, model: nn.Module) -> list[str] | None:
        """The spherical layers: each one stage, its degrees solved together from one run."""
        return spectral_blocks(model) or None

    def restore(self, model: nn.Module) -> nn.Module:
        """Each ``SphericalLayer`` back as a dense ``SpectralConvS2`` of its configuration."""
        return restore_spectral(model)
