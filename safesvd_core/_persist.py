"""Save and load compressed models: safetensors weights plus the rank map in the header.

Loading rebuilds the structure on a freshly constructed original architecture (the caller's
``model``), so nothing is ever unpickled. Saving is atomic (a temporary file, then a rename), and
loading checks every key and shape against the model before it changes anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ._errors import ConfigError
from ._layers import linear_map
from ._modules import set_submodule
from ._result import CompressionResult

FORMAT = "safesvd.compressed/1"


def _header(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The ``safesvd`` header and the shape of every tensor of the file at ``path``."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("safesvd")
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{path} is not a readable safetensors file (truncated, or another format): {error}") from None
    if raw is None:
        raise ConfigError(f"{path} is not a safesvd compressed model (no 'safesvd' header)")
    header = json.loads(raw)
    if header.get("format") != FORMAT:
        raise ConfigError(f"{path} has format {header.get('format')!r}; this safesvd reads {FORMAT!r}")
    return header, shapes


def save_compressed(result: CompressionResult, path: str | Path, *, overwrite: bool = False) -> None:
    """Write ``result.model``'s weights and its ranks to ``path`` (safetensors), atomically.

    An existing file that holds another compressed model (of other original weights, recipe or
    ratio) is refused unless ``overwrite``; the same model is simply written again.
    """
    path = Path(path)
    header = {"format": FORMAT, "ranks": result.ranks, "recipe": result.recipe, "ratio": result.ratio,
              "params_before": result.params_before, "params_after": result.params_after,
              "fingerprints": dict(result.fingerprints)}
    if path.exists() and not overwrite:
        try:
            existing, _ = _header(path)
        except ConfigError:
            existing = {}
        same = {key: existing.get(key) for key in ("recipe", "ratio", "fingerprints")} == \
               {key: header[key] for key in ("recipe", "ratio", "fingerprints")}
        if not same:
            raise ConfigError(f"{path} already holds another model; pass overwrite=True to replace it")
    state = {key: value.detach().contiguous() for key, value in result.model.state_dict().items()}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(temporary), metadata={"safesvd": json.dumps(header)})
        os.replace(temporary, path)
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"cannot write {path}: {error}") from None
    finally:
        if temporary.is_file():
            temporary.unlink()


def load_compressed(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Turn ``model`` (the original architecture, any weights) into the saved compressed model, in place.

    Every layer, key and shape of the file is checked against ``model`` first: on a mismatch
    (another architecture, hidden size or depth) nothing is changed and a :class:`ConfigError` names it.
    """
    path = Path(path)
    header, shapes = _header(path)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    replaced = {}
    for name, rank in header["ranks"].items():
        if rank is None:
            continue
        view = linear_map(model, name)
        for key in ("weight", "bias"):
            expected.pop(f"{name}.{key}", None)
        expected[f"{name}.first.weight"] = (int(rank), view.in_features)
        expected[f"{name}.second.weight"] = (view.out_features, int(rank))
        if view.bias is not None:
            expected[f"{name}.second.bias"] = (view.out_features,)
        replaced[name] = view
    wrong = sorted(key for key in expected.keys() & shapes.keys() if expected[key] != shapes[key])
    missing, unexpected = sorted(expected.keys() - shapes.keys()), sorted(shapes.keys() - expected.keys())
    if wrong or (strict and (missing or unexpected)):
        details = "; ".join(part for part in (
            f"shapes differ for {wrong[:5]} (file {[shapes[k] for k in wrong[:5]]}, model {[expected[k] for k in wrong[:5]]})" if wrong else "",
            f"the model has {missing[:5]} that the file lacks" if strict and missing else "",
            f"the file has {unexpected[:5]} that the model lacks" if strict and unexpected else "") if part)
        raise ConfigError(f"{path} does not fit this model (another architecture, size or depth?): {details}; "
                          "the model was not changed")
    state = load_file(str(path), device=str(next(model.parameters()).device))
    for name, view in replaced.items():
        set_submodule(model, name, view.empty_low_rank(int(header["ranks"][name])))
    model.load_state_dict(state, strict=strict)
    return model
