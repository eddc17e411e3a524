"""``safesvd export``: a compressed model's factors multiplied back into dense weights.

The result is a plain state dict of the original architecture (safetensors): anyone loads it with
``model.load_state_dict(load_file(path))``, without safesvd. It is checked by exactly that load,
strict, into a freshly built original model before it is written.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from safesvd_core import ConfigError, LowRankLinear, load_compressed
from safesvd_core.plugin import atomic_write, get_submodule, make_adapter, set_submodule

from .config import RunConfig

FORMAT = "safesvd.dense/1"


def densified(compressed: nn.Module, like: nn.Module) -> nn.Module:
    """``compressed`` (in place) with each :class:`LowRankLinear` replaced by a copy of the module of
    the same name in ``like`` (the prepared original) holding the product ``A B`` and the bias."""
    for name in [name for name, module in compressed.named_modules() if isinstance(module, LowRankLinear)]:
        factored, dense = get_submodule(compressed, name), copy.deepcopy(get_submodule(like, name))
        with torch.no_grad():
            dense.weight.copy_(factored.weight.reshape(dense.weight.shape))
            if factored.bias is not None:
                dense.bias.copy_(factored.bias)
        set_submodule(compressed, name, dense)
    return compressed


def dense_state(config: RunConfig, folder: Path) -> dict[str, Tensor]:
    """The state dict of the original architecture holding the compressed model of ``folder``."""
    adapter = make_adapter(config.adapter, config.adapter_options)
    compressed = load_compressed(config.model.build(), folder)
    like = config.model.build()
    like = adapter.prepare(like) if adapter.rewrites_modules else like
    state = {key: value.detach().contiguous() for key, value in
             adapter.restore(densified(compressed, like)).state_dict().items()}
    original = config.model.build()
    try:
        original.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ConfigError(f"the dense weights do not load into the original architecture: {' '.join(str(error).split())[:300]} "
                          f"(adapter {config.adapter!r} may rewrite modules without a restore)") from None
    return state


def export(config: RunConfig, folder: Path, out: Path, *, overwrite: bool = False) -> Path:
    """Write the dense weights of ``folder``'s compressed model to ``out`` (safetensors), atomically."""
    if out.suffix != ".safetensors":
        raise ConfigError(f"--dense {out}: expected a .safetensors file name")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    state = dense_state(config, folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"safesvd": json.dumps({"format": FORMAT, "source": str(folder.resolve())})}
    atomic_write(out, lambda temporary: save_file(state, str(temporary), metadata=metadata))
    return out
