"""Save and load compressed models: safetensors weights plus the rank map in the header, alone or
in a folder with its ``manifest.json`` (:mod:`._manifest`).

Loading rebuilds the structure on a freshly constructed original architecture (the caller's
``model``), so nothing is ever unpickled. Every write is atomic (a temporary file, then a
rename). Loading is all or nothing: every key and shape is checked against the model before
anything changes. A model that its adapter must first rewrite (``ModelAdapter.prepare``, e.g.
packed attention) is rewritten by loading itself, from the adapter config saved with the weights.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .._errors import ConfigError
from ..kinds._config import config_from_dict
from ..linalg._balance import is_balanced
from ..model._layers import linear_map
from ..model._modules import get_submodule, set_submodule, tensor_state
from ..run._result import CompressionResult
from ._files import atomic_write, check_format, sha256_file
from ._hf_route import route_saves
from ._manifest import (
    MANIFEST,
    MODEL,
    build_manifest,
    check_layers,
    header_text,
    is_rank,
    ranks_in,
    read_manifest,
    tensor_shapes,
)
from ._manifest_facts import DIGESTS, fact_digests

FORMAT = "safesvd.compressed/1"
#: What tells two compressed models apart when an output already exists.
IDENTITY = ("recipe", "ratio", "fingerprints")


#: The header's ``factors`` value of a file whose factors are to be loaded exactly as they are; a file
#: without it was written before factors were balanced, and its factors are balanced on load.
EXACT_FACTORS = "as-saved"


class PartialLoadWarning(UserWarning):
    """``load_compressed(..., strict=False)`` left some of the model's tensors as they were, or some of the
    file's unused."""


def file_header(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The ``safesvd`` header and the shape of every tensor of the file at ``path``."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    shapes = tensor_shapes(path)
    raw = header_text(path)
    if raw is None:
        raise ConfigError(f"{path} is not a safesvd compressed model (no 'safesvd' header)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(
            f"{path}: its 'safesvd' header is not JSON; the file was edited or damaged"
        ) from None
    header = check_format(header, path, FORMAT, "reads")
    ranks = header.get("ranks")
    if not isinstance(ranks, dict) or not all(is_rank(rank) for rank in ranks.values()):
        raise ConfigError(
            f"{path}: its header's 'ranks' is missing or not a map of layer → integer ≥ 0 or null; "
            "the file was edited or damaged"
        )
    factored = {name: rank for name, rank in ranks.items() if rank is not None}
    if factored != ranks_in(shapes):
        raise ConfigError(
            f"{path}: the ranks in its header are not those of its tensors; the file was edited or damaged"
        )
    return header, shapes


def _is_folder(path: Path) -> bool:
    """A path names a folder unless it ends in ``.safetensors``."""
    return path.suffix != ".safetensors"


def _clashes(path: Path, header: Mapping[str, Any]) -> bool:
    """Whether ``path`` holds another compressed model than ``header`` describes (an unreadable file
    counts as another; a folder without a model file holds none)."""
    file = path / MODEL if _is_folder(path) else path
    if not file.exists():
        return False
    try:
        existing = file_header(file)[0]
    except ConfigError:
        return True
    return any(existing.get(key) != header[key] for key in IDENTITY)


def save_compressed(result: CompressionResult, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``result.model``'s weights and ranks, atomically, and return where.

    ``path`` ending in ``.safetensors`` is one file; any other path is a folder (created) that
    gets ``model.safetensors`` and ``manifest.json``. An existing output that holds another
    compressed model (of other original weights, recipe or ratio) is refused unless
    ``overwrite``; the same model is simply written again.
    """
    path = Path(path)
    header = {
        "format": FORMAT,
        "ranks": result.ranks,
        "recipe": result.recipe,
        "ratio": result.ratio,
        "params_before": result.params_before,
        "params_after": result.params_after,
        "fingerprints": dict(result.fingerprints),
        "adapter": result.configs.get("adapter"),
        "factors": EXACT_FACTORS,
    }
    manifest = build_manifest(result, "")  # its facts, kept in the header; the file's sha256 once written
    header[DIGESTS] = fact_digests(manifest)
    if not overwrite and _clashes(path, header):
        raise ConfigError(
            f"{path} already holds another model; pass overwrite=True (safesvd: --overwrite) to replace it"
        )
    try:
        file = path / MODEL if _is_folder(path) else path
        file.parent.mkdir(parents=True, exist_ok=True)
        state = tensor_state(result.model)
        atomic_write(
            file, lambda temporary: save_file(state, str(temporary), metadata={"safesvd": json.dumps(header)})
        )
        if _is_folder(path):
            manifest["model"]["sha256"] = sha256_file(file)
            atomic_write(
                path / MANIFEST, lambda temporary: temporary.write_text(json.dumps(manifest, indent=1))
            )
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"cannot write {path}: {error}") from None
    return path


def _expected(
    model: nn.Module, ranks: Mapping[str, int | None]
) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    """The keys and shapes ``model`` has once the layers of ``ranks`` are factored; the layers' views."""
    expected = {key: tuple(value.shape) for key, value in tensor_state(model).items()}
    replaced = {}
    for name, rank in ranks.items():
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
    return expected, replaced


def _fits(model: nn.Module, ranks: Mapping[str, int | None], shapes: Mapping[str, tuple[int, ...]]) -> bool:
    try:
        expected, _ = _expected(model, ranks)
    except ConfigError:
        return False
    return expected == dict(shapes)


def _prepared(
    model: nn.Module,
    adapter: Mapping[str, Any] | None,
    ranks: Mapping[str, int | None],
    shapes: Mapping[str, tuple[int, ...]],
) -> nn.Module:
    """``model`` rewritten by the saved adapter's ``prepare`` when that is what makes it fit the file
    (tried on a copy first, so a model that does not fit either way is left as it is)."""
    if adapter is None or _fits(model, ranks, shapes):
        return model
    built = config_from_dict(adapter)
    if not built.rewrites_modules or not _fits(built.prepare(copy.deepcopy(model)), ranks, shapes):
        return model
    return built.prepare(model)


def load_compressed(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Turn ``model`` (the original architecture, any weights) into the saved compressed model, and return it.

    ``path`` is a file written by :func:`save_compressed` or a folder with ``model.safetensors`` and
    ``manifest.json``; the model needs no ``adapter.prepare`` first (the saved adapter config does
    it; use the returned module). Every layer, key and shape is checked first: on a mismatch
    (another architecture, hidden size or depth, or a manifest that does not describe the file)
    nothing is changed and a :class:`ConfigError` names it. The factors load exactly as saved (e.g.
    as fine-tuning left them); those of a file written before safesvd balanced its factors are
    balanced on load: the same product.
    ``strict=False`` loads what fits and
    warns (:class:`PartialLoadWarning`) with every tensor left as it was and every one unused.
    """
    path = Path(path)
    file, manifest = path, None
    if path.is_dir():
        manifest, file = read_manifest(path), path / MODEL
        if not file.is_file():
            raise ConfigError(f"{path}: the folder has a manifest but no {MODEL}")
        if sha256_file(file) != manifest["model"]["sha256"]:
            raise ConfigError(
                f"{path}: {MANIFEST} does not describe {MODEL} (its sha256 differs): the folder mixes "
                "two runs or a file was changed; write the folder again"
            )
    header, shapes = file_header(file)
    model = _prepared(model, header.get("adapter"), header["ranks"], shapes)
    if manifest is not None:
        check_layers(manifest, model, f"{path / MANIFEST}")
    try:
        expected, replaced = _expected(model, header["ranks"])
    except ConfigError as error:  # a factored layer the model lacks, or that is no linear map
        factored = [name for name, rank in header["ranks"].items() if rank is not None]
        raise ConfigError(
            f"{path} does not fit this model ({type(model).__name__}; another architecture?): {error}; "
            f"it factors {', '.join(factored[:4])}{', …' if len(factored) > 4 else ''} (pass the "
            "architecture it was compressed from); the model was not changed"
        ) from None
    wrong = sorted(key for key in expected.keys() & shapes.keys() if expected[key] != shapes[key])
    missing, unexpected = sorted(expected.keys() - shapes.keys()), sorted(shapes.keys() - expected.keys())
    if wrong or (strict and (missing or unexpected)):
        details = "; ".join(
            part
            for part in (
                f"shapes differ for {wrong[:5]} (file {[shapes[k] for k in wrong[:5]]}, "
                f"model {[expected[k] for k in wrong[:5]]})"
                if wrong
                else "",
                f"the model has {missing[:5]} that the file lacks" if strict and missing else "",
                f"the file has {unexpected[:5]} that the model lacks" if strict and unexpected else "",
            )
            if part
        )
        raise ConfigError(
            f"{path} does not fit this model ({type(model).__name__}; another architecture, size or depth?): "
            f"{details}; "
            "the model was not changed"
        )
    if missing or unexpected:
        warnings.warn(
            f"load_compressed({path}, strict=False): {len(missing)} tensor(s) of the model keep their "
            f"current values, not the file's ({missing[:5]}{' …' if len(missing) > 5 else ''}), and "
            f"{len(unexpected)} of the file's are unused "
            f"({unexpected[:5]}{' …' if len(unexpected) > 5 else ''})",
            PartialLoadWarning,
            stacklevel=2,
        )
    state = load_file(str(file), device=str(next(model.parameters()).device))
    for name, view in replaced.items():
        set_submodule(model, name, view.empty_low_rank(int(header["ranks"][name])))
    model.load_state_dict({key: value for key, value in state.items() if key in expected}, strict=strict)
    if header.get("factors") != EXACT_FACTORS:  # written before factors were balanced: balanced on load
        for name in replaced:
            layer = get_submodule(model, name)
            if not is_balanced(layer.first.weight, layer.second.weight):
                layer.balance_()
    return route_saves(
        model, {key: header.get(key) for key in ("recipe", "ratio", "fingerprints", "adapter")}
    )
