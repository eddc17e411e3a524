"""sha256 fingerprints of what a compression depends on: model weights, calibration items, configs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn


def _feed(hasher: Any, value: Any) -> None:
    """Hash ``value`` with its structure: tensors by dtype, shape and bytes; containers in order."""
    if isinstance(value, Tensor):
        tensor = value.detach().contiguous().cpu()
        hasher.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, Mapping):
        hasher.update(b"{")
        for key in sorted(value, key=str):
            hasher.update(str(key).encode() + b":")
            _feed(hasher, value[key])
        hasher.update(b"}")
    elif isinstance(value, (tuple, list)):
        hasher.update(b"[")
        for item in value:
            _feed(hasher, item)
        hasher.update(b"]")
    else:
        hasher.update(repr(value).encode())


def fingerprint(value: Any) -> str:
    """sha256 of ``value`` (tensors, nested tuples, lists and dicts of them, plain scalars)."""
    hasher = hashlib.sha256()
    _feed(hasher, value)
    return hasher.hexdigest()


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 of every tensor of ``model``'s state dict, by name."""
    return fingerprint(dict(model.state_dict()))


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """sha256 of a JSON-able config (keys sorted)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=repr).encode()).hexdigest()
