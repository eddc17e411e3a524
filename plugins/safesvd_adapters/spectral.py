"""Spectral layers every adapter rewrites into banks of per-mode maps, and back.

- neuraloperator's ``SpectralConv`` (not separable) → :class:`~safesvd_adapters.fourier.FourierLayer`;
- torch-harmonics' ``SpectralConvS2`` (the SFNO examples') →
  :class:`~safesvd_adapters.spherical.SphericalLayer`.

A framework is looked up only when the model's own code has imported it (``sys.modules``): a
model holding a ``SpectralConv`` has imported neuraloperator, and nothing is imported for a model
that holds none. The ``generic`` adapter and the framework adapters share these rewrites, so a
Fourier neural operator compresses with the default adapter too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import attrs
from torch import nn

from safesvd_core.plugin import ConfigError, set_submodule

from .fourier import FourierLayer, fourier_layer, spectral_conv
from .spherical import SphericalLayer, spectral_conv_s2, spherical_layer


@attrs.frozen
class SpectralRewrite:
    """A framework's spectral layer (class ``name`` of module ``module``), the bank-backed layer it
    becomes (``layer``, built by ``build``) and the dense export back (``export(layer, kind)``)."""

    module: str
    name: str
    layer: type[nn.Module]
    build: Callable[[nn.Module], nn.Module]
    export: Callable[[Any, type[nn.Module]], nn.Module]
    applies: Callable[[nn.Module], bool] = lambda module: True

    def kind(self) -> type[nn.Module] | None:
        """The framework's class, if the framework is imported."""
        module = sys.modules.get(self.module)
        return None if module is None else getattr(module, self.name, None)


REWRITES = (
    SpectralRewrite(
        "neuralop.layers.spectral_convolution",
        "SpectralConv",
        FourierLayer,
        fourier_layer,
        spectral_conv,
        applies=lambda module: not module.separable,
    ),
    SpectralRewrite(
        "torch_harmonics.examples.models._layers",
        "SpectralConvS2",
        SphericalLayer,
        spherical_layer,
        spectral_conv_s2,
    ),
)
#: The bank-backed layer types: each one stage of the staged solve.
SPECTRAL_LAYERS = tuple(rewrite.layer for rewrite in REWRITES)


def rewrite_spectral(model: nn.Module) -> nn.Module:
    """Every spectral layer of ``model`` (a private copy) rewritten into its bank-backed layer (same
    outputs)."""
    for rewrite in REWRITES:
        kind = rewrite.kind()
        if kind is None:
            continue
        for name, module in list(model.named_modules()):
            if isinstance(module, kind) and rewrite.applies(module):
                set_submodule(model, name, rewrite.build(module))
    return model


def restore_spectral(model: nn.Module) -> nn.Module:
    """Every bank-backed layer of ``model`` back as its framework's dense layer."""
    for rewrite in REWRITES:
        found = [
            (name, module) for name, module in model.named_modules() if isinstance(module, rewrite.layer)
        ]
        if not found:
            continue
        kind = rewrite.kind()
        if kind is None:
            raise ConfigError(
                f"restoring {found[0][0]} as a dense {rewrite.name} needs {rewrite.module}: import it first"
            )
        for name, module in found:
            set_submodule(model, name, rewrite.export(module, kind))
    return model


def spectral_blocks(model: nn.Module) -> list[str]:
    """The bank-backed layers of ``model``: each one stage, its modes solved together from one run of
    the layer (a stage per mode would rerun the model once for each of its hundreds of modes)."""
    return [name for name, module in model.named_modules() if isinstance(module, SPECTRAL_LAYERS)]
