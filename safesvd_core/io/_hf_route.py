"""A compressed Hugging Face model's own ``save_pretrained`` routed through safesvd.

HF's ``PreTrainedModel.save_pretrained`` writes ``state_dict()``: for a compressed model the factors
of its :class:`~safesvd_core.LowRankLinear` layers, which a plain ``from_pretrained`` does not know
(it re-initialises those layers at random and only logs it). So ``compress`` and ``load_compressed``
put a :class:`RoutedSave` in the instance's ``__dict__`` of every HF-like module of the model (duck
typed: ``save_pretrained`` taking ``state_dict``, ``from_pretrained``, ``config``; transformers is never
imported here), which shadows the class's method: ``model.save_pretrained(folder)``, and so
``push_to_hub``, write what :func:`safesvd_core.save_pretrained` writes. The routing is plain data on
the instance: ``copy.deepcopy`` rebinds it to the copy; ``.to()``, ``.half()`` return the same
instance; ``state_dict()`` is unchanged. A module with no ``LowRankLinear`` left saves as HF does.

The writer is registered by :mod:`._pretrained` (imported by the package), which itself imports
the persistence that installs the routing: the registration keeps the import graph acyclic.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from .._errors import ConfigError
from ..model._lowrank import LowRankLinear

#: The attribute that shadows the class's method on the instance.
ATTRIBUTE = "save_pretrained"
_writer: list[Callable[..., Path]] = []


def register_writer(writer: Callable[..., Path]) -> None:
    """Set what a routed ``save_pretrained`` calls: ``writer(model, folder, **kwargs)``."""
    _writer[:] = [writer]


def is_hf_model(module: nn.Module) -> bool:
    """Whether ``module`` looks like a HF ``PreTrainedModel``: a ``config``, ``from_pretrained`` and a
    ``save_pretrained`` that takes a ``state_dict``."""
    save = getattr(type(module), "save_pretrained", None)
    if not callable(save) or not callable(getattr(type(module), "from_pretrained", None)):
        return False
    if getattr(module, "config", None) is None:
        return False
    try:
        return "state_dict" in inspect.signature(save).parameters
    except (TypeError, ValueError):
        return False


def is_factored(model: nn.Module) -> bool:
    """Whether ``model`` holds a :class:`LowRankLinear`."""
    return any(isinstance(module, LowRankLinear) for module in model.modules())


class RoutedSave:
    """The ``save_pretrained`` of one compressed HF model instance; ``provenance``: the recipe,
    ratio, fingerprints and adapter config of the compression, for the manifest."""

    def __init__(self, model: nn.Module, provenance: Mapping[str, Any]) -> None:
        self.model = model
        self.provenance = dict(provenance)

    def __call__(self, save_directory: str | Path, **kwargs: Any) -> Path | None:
        if not is_factored(self.model):
            return type(self.model).save_pretrained(self.model, save_directory, **kwargs)
        if not _writer:
            raise ConfigError(
                "save_pretrained of a compressed model needs safesvd_core imported (it registers the writer)"
            )
        return _writer[0](self.model, save_directory, **kwargs)

    def __repr__(self) -> str:
        return (
            f"<save_pretrained of a compressed {type(self.model).__name__}, "
            "through safesvd_core.save_pretrained>"
        )


def route_saves(model: nn.Module, provenance: Mapping[str, Any]) -> nn.Module:
    """Install :class:`RoutedSave` on ``model`` and every HF-like module in it; returns ``model``."""
    for module in model.modules():
        if is_hf_model(module):
            module.__dict__[ATTRIBUTE] = RoutedSave(module, provenance)
    return model


def provenance_of(model: nn.Module) -> dict[str, Any]:
    """The provenance the routing of ``model`` carries (empty without routing)."""
    routed = model.__dict__.get(ATTRIBUTE)
    return dict(routed.provenance) if isinstance(routed, RoutedSave) else {}
