"""The ``neuraloperator`` adapter: FNO/TFNO from the ``neuraloperator`` package.

Most of an FNO's weights are the complex Fourier weights of its ``SpectralConv`` layers: one
complex ``in × out`` map per retained Fourier mode. :meth:`NeuralOperatorAdapter.prepare` rewrites
each ``SpectralConv`` into a :class:`~safesvd_adapters.fourier.FourierLayer` whose modes are
compressible layers (``….bank.maps.<k>``), beside the channel MLPs and the 1×1 skip convolutions.
``neuralop`` is imported when the adapter is created (extra ``safesvd[neuraloperator]``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from torch import nn

from safesvd_core.plugin import count_parameters

from .framework import require
from .selection import NORMALISATION, TIME_CONDITIONING, embedding, recovery
from .spectral_adapter import SpectralAdapter

_SPECTRAL = "neuralop.layers.base_spectral_conv"
_SPECTRAL_CONV = "neuralop.layers.spectral_convolution"


def small_fno(
    *,
    channels: int = 3,
    modes: int = 8,
    width: int = 16,
    layers: int = 2,
    factorization: str | None = None,
    dims: int = 2,
) -> nn.Module:
    """A randomly initialised ``neuralop.models.FNO`` over ``dims`` axes (``factorization="tucker"``:
    TFNO), eval mode."""
    models = require("neuralop.models", adapter="neuraloperator", extra="neuraloperator")
    return models.FNO(
        n_modes=(modes,) * dims,
        in_channels=channels,
        out_channels=channels,
        hidden_channels=width,
        n_layers=layers,
        factorization=factorization,
    ).eval()


@attrs.frozen(kw_only=True)
class NeuralOperatorAdapter(SpectralAdapter):
    """FNO-family operators: compresses the Fourier modes of every ``SpectralConv`` (one complex map
    per retained mode), ``fno_blocks.channel_mlp.*.fcs.*`` and the 1×1 ``fno_skips``.

    Skipped: ``lifting`` and ``projection`` (input/output heads), normalisations, separable
    ``SpectralConv`` layers (one weight per channel, no map between channels). Batches:
    ``(input, target[, domain])`` tuples or neuraloperator's ``{'x', 'y'}`` dicts, fields
    ``(B, C, *grid)``. Loss: ``relative-l2`` (neuraloperator's ``LpLoss``, the usual training loss
    of an FNO and the zoo FNO's; ``relative-h1``, its ``H1Loss``, weighs the higher modes by
    ``1 + |k|²``: on the zoo FNO at 0.4 the output changes by 0.10 % one step and 0.57 % after 8
    steps with ``relative-l2``, 0.15 % and 0.94 % with ``relative-h1``). Blocks: the Fourier layers (one stage
    each, shared with the skip convolution that reads the same input; the channel MLPs are stages
    of their own).

    :meth:`prepare` swaps each ``SpectralConv`` for a
    :class:`~safesvd_adapters.fourier.FourierLayer` (same output; a factorized TFNO weight is
    multiplied out); :meth:`restore` writes the Fourier layers back as dense ``SpectralConv`` layers
    (:mod:`safesvd_adapters.spectral`, which the ``generic`` adapter shares).
    """

    name: ClassVar[str] = "neuraloperator"
    framework: ClassVar[str] = _SPECTRAL_CONV
    extra: ClassVar[str] = "neuraloperator"
    skip_rules: ClassVar = (
        TIME_CONDITIONING,
        embedding("lifting.*", "*.lifting.*"),
        recovery("projection.*", "*.projection.*"),
        NORMALISATION,
    )

    loss: Any = "relative-l2"

    def extra_skips(self, model: nn.Module) -> dict[str, str]:
        spectral = require(_SPECTRAL, adapter=self.name, extra="neuraloperator").BaseSpectralConv
        total = count_parameters(model)
        return {
            name: (
                f"separable spectral convolution: one Fourier weight per channel, not a map between "
                f"channels ({100.0 * count_parameters(module) / total:.1f} % of the parameters)"
            )
            for name, module in model.named_modules()
            if isinstance(module, spectral)
        }
