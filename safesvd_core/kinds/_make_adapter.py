"""``make_adapter``: a model adapter from its registered name plus options, or the object itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError
from ._interfaces import ModelAdapter
from ._plugins import registry


def make_adapter(adapter: str | ModelAdapter, options: Mapping[str, Any] | None) -> ModelAdapter:
    """A model adapter from a name plus options (or the object itself)."""
    if isinstance(adapter, ModelAdapter):
        if options:
            raise ConfigError(
                "adapter_options were given beside a ready adapter object; set them on the object"
            )
        return adapter
    return registry("model_adapter").create(adapter, **(options or {}))
