"""Dense export from Python: a compressed model's factors multiplied back into the modules of the
original architecture, as a plain state dict (safetensors) that loads without safesvd."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ._errors import ConfigError
from ._files import atomic_write
from ._interfaces import ModelAdapter
from ._lowrank import LowRankLinear
from ._modules import get_submodule, set_submodule

FORMAT = "safesvd.dense/1"


def densified(compressed: nn.Module, like: nn.Module) -> nn.Module:
    """``compressed`` (in place) with each :class:`LowRankLinear` replaced by a copy of the module of
    the same name in ``like`` (the original, prepared as for compression) holding ``A B`` and the bias."""
    for name in [name for name, module in compressed.named_modules() if isinstance(module, LowRankLinear)]:
        factored, dense = get_submodule(compressed, name), copy.deepcopy(get_submodule(like, name))
        with torch.no_grad():
            dense.weight.copy_(factored.weight.reshape(dense.weight.shape).to(dense.weight.dtype))
            if factored.bias is not None:
                dense.bias.copy_(factored.bias)
        set_submodule(compressed, name, dense)
    return compressed


def dense_state(compressed: nn.Module, original: nn.Module, adapter: ModelAdapter | None = None) -> dict[str, Tensor]:
    """The state dict of ``original``'s architecture that computes what ``compressed`` does, checked
    by a strict load into a copy of ``original`` (``adapter``: the one ``compressed`` was prepared by)."""
    like = copy.deepcopy(original)
    if adapter is not None and adapter.rewrites_modules:
        like = adapter.prepare(like)
    model = densified(copy.deepcopy(compressed), like)
    model = adapter.restore(model) if adapter is not None else model
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    try:
        copy.deepcopy(original).load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ConfigError(f"the dense weights do not load into the original architecture: {' '.join(str(error).split())[:300]} "
                          "(an adapter that rewrites modules needs its restore)") from None
    return state


def export_dense(compressed: nn.Module, original: nn.Module, path: str | Path, *, adapter: ModelAdapter | None = None,
                 overwrite: bool = False) -> Path:
    """Write the dense weights of ``compressed`` for ``original``'s architecture to ``path``
    (``.safetensors``, atomically); ``model.load_state_dict(safetensors.torch.load_file(path))`` on a
    plain ``original`` then gives the compressed model's outputs, without safesvd. ``compressed`` is a
    ``CompressionResult.model`` or a model from ``load_compressed``; ``adapter`` the one that prepared
    it, when it rewrites modules (``result.configs["adapter"]`` rebuilt by ``config_from_dict``)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"{path}: expected a .safetensors file name")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; pass overwrite=True to replace it")
    state = dense_state(compressed, original, adapter)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"safesvd": json.dumps({"format": FORMAT})}
    atomic_write(path, lambda temporary: save_file(state, str(temporary), metadata=metadata))
    return path
