"""The ``torch-harmonics`` adapter: spherical Fourier neural operators (SFNO) from torch-harmonics.

An SFNO keeps most of its weights in the complex spectral weights of its ``SpectralConvS2``
layers: one ``out × in`` map per spherical-harmonic degree (``"driscoll-healy"``, the default) or
per degree and order (``"diagonal"``). :meth:`HarmonicsAdapter.prepare` rewrites each into a
:class:`~safesvd_adapters.spherical.SphericalLayer` whose maps are compressible layers
(``….bank.maps.<l>``), beside the blocks' MLP convolutions. ``torch_harmonics`` is imported when
the adapter is created (extra ``safesvd[torch-harmonics]``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .selection import NORMALISATION, TIME_CONDITIONING, embedding, recovery
from .spectral_adapter import SpectralAdapter


@attrs.frozen(kw_only=True)
class HarmonicsAdapter(SpectralAdapter):
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
    framework: ClassVar[str] = "torch_harmonics.examples.models._layers"
    extra: ClassVar[str] = "torch-harmonics"
    skip_rules: ClassVar = (
        TIME_CONDITIONING,
        embedding("encoder.*", "*.encoder.*"),
        recovery("decoder.*", "*.decoder.*"),
        NORMALISATION,
    )

    loss: Any = "relative-l2"
