"""Entry point of the built-in model adapters.

Every adapter is registered, also when its framework package is missing: importing these modules
imports no framework, and creating an adapter whose package is missing raises
:class:`~safesvd_adapters.framework.MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

from safesvd_core.plugin import hookimpl

from .fno import NeuralOperatorAdapter
from .generic import GenericAdapter
from .harmonics import HarmonicsAdapter
from .hf import TransformersAdapter
from .timm_vit import TimmAdapter
from .well_avit import WellAdapter


@hookimpl
def safesvd_model_adapters():
    return [
        GenericAdapter,
        HarmonicsAdapter,
        NeuralOperatorAdapter,
        TimmAdapter,
        TransformersAdapter,
        WellAdapter,
    ]
