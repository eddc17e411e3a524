"""The ``neuraloperator`` adapter: FNO/TFNO from the ``neuraloperator`` package.

Most of an FNO's weights are the complex Fourier weights of its ``SpectralConv`` layers: one
complex ``in × out`` map per retained Fourier mode. :meth:`NeuralOperatorAdapter.prepare` rewrites
each ``SpectralConv`` into a :class:`~safesvd_adapters.fourier.FourierLayer` whose modes are
compressible layers (``….bank.maps.<k>``), beside the channel MLPs and the 1×1 skip convolutions.
``neuralop`` is imported when the adapter is created (extra ``safesvd[neuraloperator]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
from torch import Tensor, nn

from safesvd_core.plugin import ModelAdapter, count_parameters, set_submodule

from .fourier import FourierLayer, fourier_layer, spectral_conv
from .framework import FieldAdapter, TupleBatches, require, tuple_parts
from .selection import NORMALISATION, TIME_CONDITIONING, embedding, recovery

_SPECTRAL = "neuralop.layers.base_spectral_conv"
_SKIPS = "neuralop.layers.skip_connections"
_SPECTRAL_CONV = "neuralop.layers.spectral_convolution"


class FlatSkip(nn.Module):
    """Output-identical stand-in for neuraloperator's ``Flattened1dConv`` skip, whose forward reads
    ``self.conv.out_channels`` (which a low-rank replacement of the 1×1 conv does not have)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        size = list(x.shape)
        out = self.conv(x.view(*size[:2], -1))
        return out.view(size[0], -1, *size[2:])


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
class NeuralOperatorAdapter(TupleBatches, FieldAdapter, ModelAdapter):
    """FNO-family operators: compresses the Fourier modes of every ``SpectralConv`` (one complex map
    per retained mode), ``fno_blocks.channel_mlp.*.fcs.*`` and the 1×1 ``fno_skips``.

    Skipped: ``lifting`` and ``projection`` (input/output heads), normalisations, separable
    ``SpectralConv`` layers (one weight per channel, no map between channels). Batches:
    ``(input, target[, domain])`` tuples or neuraloperator's ``{'x', 'y'}`` dicts, fields
    ``(B, C, *grid)``. Loss: ``relative-h1`` (the relative Sobolev H¹ norm, neuraloperator's usual
    training loss for FNOs; its Fisher weighs the higher modes by ``1 + |k|²``, which keeps
    rollouts close: on the zoo FNO at 0.4 the output changes by 0.16 % one step and 1.0 % after 8
    steps, against 0.57 % and 3.7 % with ``relative-l2``). Blocks: the Fourier layers (one stage
    each, shared with the skip convolution that reads the same input; the channel MLPs are stages
    of their own).

    :meth:`prepare` swaps each ``Flattened1dConv`` skip for :class:`FlatSkip` (same ``conv``, same
    output), so that the compressed skip still runs, and each ``SpectralConv`` for a
    :class:`FourierLayer` (same output; a factorized TFNO weight is multiplied out);
    :meth:`restore` writes the Fourier layers back as dense ``SpectralConv`` layers.
    """

    name: ClassVar[str] = "neuraloperator"
    skip_rules: ClassVar = (
        TIME_CONDITIONING,
        embedding("lifting.*", "*.lifting.*"),
        recovery("projection.*", "*.projection.*"),
        NORMALISATION,
    )

    rewrites_modules: ClassVar[bool] = True

    loss: Any = "relative-h1"

    def __attrs_post_init__(self) -> None:
        require(_SPECTRAL, adapter=self.name, extra="neuraloperator")
        super().__attrs_post_init__()

    def _parts(self, batch: Any) -> tuple[Any, Tensor, str | None]:
        if isinstance(batch, Mapping) and "x" in batch and "y" in batch:
            return batch["x"], batch["y"], batch.get("domain")
        return tuple_parts(batch, self.name)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Replace each ``Flattened1dConv`` skip by :class:`FlatSkip` and each non-separable
        ``SpectralConv`` by a :class:`FourierLayer` (same outputs)."""
        flattened = require(_SKIPS, adapter=self.name, extra="neuraloperator").Flattened1dConv
        spectral = require(_SPECTRAL_CONV, adapter=self.name, extra="neuraloperator").SpectralConv
        for name, module in list(model.named_modules()):
            if isinstance(module, flattened):
                set_submodule(model, name, FlatSkip(module.conv))
            elif isinstance(module, spectral) and not module.separable:
                set_submodule(model, name, fourier_layer(module))
        return model

    def blocks(self, model: nn.Module) -> list[str] | None:
        """The Fourier layers: each one stage, its modes solved together from one run of the layer
        (a stage per mode would rerun the model once for each of its hundreds of modes)."""
        return [name for name, module in model.named_modules() if isinstance(module, FourierLayer)] or None

    def restore(self, model: nn.Module) -> nn.Module:
        """Each :class:`FourierLayer` back as a dense ``SpectralConv`` of its configuration."""
        spectral = require(_SPECTRAL_CONV, adapter=self.name, extra="neuraloperator").SpectralConv
        for name, module in list(model.named_modules()):
            if isinstance(module, FourierLayer):
                set_submodule(model, name, spectral_conv(module, spectral))
        return model

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
