"""Save and load compressed models: safetensors weights plus the rank map in the header.

Loading rebuilds the structure on a freshly constructed original architecture (the caller's
``model``), so nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ._errors import ConfigError
from ._layers import linear_map
from ._modules import set_submodule
from ._result import CompressionResult

FORMAT = "safesvd.compressed/1"


def save_compressed(result: CompressionResult, path: str | Path) -> None:
    """Write ``result.model``'s weights and its ranks to ``path`` (safetensors)."""
    state = {key: value.detach().contiguous() for key, value in result.model.state_dict().items()}
    header = {"format": FORMAT, "ranks": result.ranks, "recipe": result.recipe, "ratio": result.ratio,
              "params_before": result.params_before, "params_after": result.params_after}
    save_file(state, str(path), metadata={"safesvd": json.dumps(header)})


def load_compressed(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Turn ``model`` (the original architecture, any weights) into the saved compressed model, in place."""
    with safe_open(str(path), framework="pt") as handle:
        raw = (handle.metadata() or {}).get("safesvd")
    if raw is None:
        raise ConfigError(f"{path} is not a safesvd compressed model (no 'safesvd' header)")
    header = json.loads(raw)
    if header.get("format") != FORMAT:
        raise ConfigError(f"{path} has format {header.get('format')!r}; this safesvd reads {FORMAT!r}")
    for name, rank in header["ranks"].items():
        if rank is None:
            continue
        set_submodule(model, name, linear_map(model, name).empty_low_rank(int(rank)))
    model.load_state_dict(load_file(str(path), device=str(next(model.parameters()).device)), strict=strict)
    return model
