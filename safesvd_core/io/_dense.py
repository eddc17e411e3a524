"""Dense export from Python: a compressed model's factors multiplied back into the modules of the
original architecture, as a model (:func:`dense_model`) or a plain state dict in safetensors
(:func:`export_dense`) that loads without safesvd."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from .._errors import ConfigError
from ..kinds._config import config_from_dict
from ..kinds._interfaces import ModelAdapter
from ..model._lowrank import LowRankLinear
from ..model._modules import get_submodule, set_submodule, tensor_state
from ..run._result import CompressionResult
from ._files import atomic_write

FORMAT = "safesvd.dense/1"


def _check_fits(name: str, factored: LowRankLinear, dense: nn.Module) -> None:
    """Refuse an ``original=`` whose module ``name`` cannot hold ``factored``'s weight, naming both shapes."""
    weight = getattr(dense, "weight", None)
    shape = tuple(weight.shape) if isinstance(weight, Tensor) else None
    wanted = (factored.out_features, factored.in_features)
    if shape is None or len(shape) < 2 or shape[0] != wanted[0] or math.prod(shape[1:]) != wanted[1]:
        held = f"a weight of shape {list(shape)}" if shape is not None else "no weight"
        raise ConfigError(
            f"layer {name!r}: original= holds {held} ({type(dense).__name__}), the compressed layer "
            f"maps {wanted[1]} to {wanted[0]} features (weight {list(wanted)}): pass the model this one "
            "was compressed from"
        )


def _dense_module(name: str, factored: LowRankLinear, like: nn.Module | None) -> nn.Module:
    """The dense module computing what ``factored`` does: a copy of ``like``'s module of that name, or
    a new ``nn.Linear`` when there is no ``like`` (a replaced convolution needs one)."""
    if like is not None:
        dense = copy.deepcopy(get_submodule(like, name))
        _check_fits(name, factored, dense)
    elif factored.channel_dim == -1:
        weight = factored.second.weight
        dense = nn.Linear(
            factored.in_features,
            factored.out_features,
            bias=factored.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
    else:
        raise ConfigError(
            f"layer {name!r} replaced a 1×1 convolution: pass original= (the model as it was "
            "before compression) so that its dense form is known"
        )
    with torch.no_grad():
        dense.weight.copy_(factored.weight.reshape(dense.weight.shape).to(dense.weight.dtype))
        if factored.bias is not None:
            dense.bias.copy_(factored.bias)
    return dense


def densified(compressed: nn.Module, like: nn.Module | None) -> nn.Module:
    """``compressed`` (in place) with each :class:`LowRankLinear` replaced by its dense module (see
    :func:`_dense_module`; ``like``: the original, prepared as for compression, or ``None``)."""
    for name in [name for name, module in compressed.named_modules() if isinstance(module, LowRankLinear)]:
        set_submodule(compressed, name, _dense_module(name, get_submodule(compressed, name), like))
    return compressed


def _model_and_adapter(
    compressed: nn.Module | CompressionResult, adapter: ModelAdapter | None
) -> tuple[nn.Module, ModelAdapter | None]:
    """The compressed model and the adapter that prepared it: given, or rebuilt from a result's config."""
    if not isinstance(compressed, CompressionResult):
        return compressed, adapter
    saved = compressed.configs.get("adapter")
    if adapter is None and saved is not None:
        adapter = config_from_dict(saved)
    return compressed.model, adapter


def dense_model(
    compressed: nn.Module | CompressionResult,
    original: nn.Module | None = None,
    *,
    adapter: ModelAdapter | None = None,
) -> nn.Module:
    """A copy of ``compressed`` (a model, or a :class:`CompressionResult`) with every
    :class:`LowRankLinear` multiplied back into a dense module, in the original module structure: the
    same outputs (to float rounding), the original parameter count. ``original`` (the model before
    compression; it is not changed) is needed when a replaced layer was a 1×1 convolution, and makes the
    result checked by a strict ``load_state_dict`` into a copy of it. ``adapter``: the one that prepared
    ``compressed`` when it rewrites modules (taken from a result's config when not given)."""
    model, adapter = _model_and_adapter(compressed, adapter)
    like = None
    if original is not None:
        like = copy.deepcopy(original)
        if adapter is not None and adapter.rewrites_modules:
            like = adapter.prepare(like)
    dense = densified(copy.deepcopy(model), like)
    dense = adapter.restore(dense) if adapter is not None else dense
    if original is not None:
        try:
            copy.deepcopy(original).load_state_dict(dense.state_dict(), strict=True)
        except RuntimeError as error:
            raise ConfigError(
                "the dense weights do not load into the original architecture: "
                f"{' '.join(str(error).split())[:300]} (an adapter that rewrites modules needs "
                "its restore: pass adapter=)"
            ) from None
    return dense


def dense_state(
    compressed: nn.Module | CompressionResult,
    original: nn.Module | None = None,
    *,
    adapter: ModelAdapter | None = None,
) -> dict[str, Tensor]:
    """The state dict of :func:`dense_model` (detached, contiguous)."""
    model = dense_model(compressed, original, adapter=adapter)
    return tensor_state(model)


def export_dense(
    compressed: nn.Module | CompressionResult,
    path: str | Path,
    *,
    original: nn.Module | None = None,
    adapter: ModelAdapter | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the dense weights of ``compressed`` (a :class:`CompressionResult`, its ``model`` or a
    model from ``load_compressed``) to ``path`` (``.safetensors``, atomically):
    ``model.load_state_dict(safetensors.torch.load_file(path))`` on a plain model of the original
    architecture then gives the compressed model's outputs, without safesvd. ``original`` and
    ``adapter`` as in :func:`dense_model`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"{path}: expected a .safetensors file name")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass overwrite=True to replace it")
    state = dense_state(compressed, original, adapter=adapter)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"safesvd": json.dumps({"format": FORMAT})}
    atomic_write(path, lambda temporary: save_file(state, str(temporary), metadata=metadata))
    return path
