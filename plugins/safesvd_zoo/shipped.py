"""The zoo's shipped weights: each model's ``weights/<name>.safetensors`` and its JSON card."""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from safetensors.torch import load_file
from torch import nn

from safesvd_core.plugin import ConfigError


def weights_file(name: str) -> Traversable:
    """The shipped file ``name`` (``<model>.safetensors`` or ``<model>.json``)."""
    return resources.files("safesvd_zoo") / "weights" / name


def read_card(model: str, trainer: str) -> dict[str, Any]:
    """The JSON card of ``model``'s shipped weights; if missing, the error names ``trainer`` (the
    command that writes them)."""
    path = weights_file(f"{model}.json")
    if not path.is_file():
        raise ConfigError(f"weights of {model!r} are missing ({path}); run {trainer}")
    return json.loads(path.read_text())


def load_weights(model: nn.Module, name: str) -> nn.Module:
    """``model`` holding the shipped weights of ``name``, in eval mode."""
    with resources.as_file(weights_file(f"{name}.safetensors")) as path:
        model.load_state_dict(load_file(str(path)))
    return model.eval()
