"""Hugging Face folders of compressed models: ``save_pretrained`` / ``from_pretrained``.

A folder holds what HF's own ``save_pretrained`` writes, with the *dense equivalent* as weights
(every :class:`~safesvd_core.LowRankLinear` multiplied back, :func:`~safesvd_core.dense_model`), so
that a plain ``cls.from_pretrained(folder)`` without safesvd gives a model computing the same
function up to float rounding; plus ``safesvd/``, the compressed model as
:func:`~safesvd_core.save_compressed` writes a folder (``model.safetensors`` + ``manifest.json``); and
in ``config.json`` the entry ``"safesvd": {"format", "ranks", "folder"}``. Reading it back through
:func:`from_pretrained` gives exactly the compressed model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from .._errors import ConfigError
from ..kinds._config import config_from_dict
from ..model._layers import linear_map
from ..model._lowrank import LowRankLinear
from ..model._modules import count_parameters
from ..run._result import CompressionResult
from ._dense import dense_state
from ._files import check_format
from ._hf_route import is_hf_model, provenance_of, register_writer
from ._manifest import MODEL, is_rank
from ._persist import _prepared, file_header, load_compressed, save_compressed

FORMAT = "safesvd.pretrained/1"
#: The config.json entry and the folder beside the HF weights that hold the compressed model.
ENTRY = SUBFOLDER = "safesvd"
#: ``save_pretrained`` options safesvd cannot honour, with why and what to do instead.
_REFUSED = {
    "state_dict": (
        None,
        "safesvd writes the state itself (the dense equivalent, and the factors in safesvd/)",
    ),
    "push_to_hub": (
        False,
        (
            "HF would upload before safesvd's files are written; call model.push_to_hub(repo_id), "
            "which saves through safesvd, or upload the saved folder"
        ),
    ),
    "distributed_checkpoint": (False, "gather the model first (distributed_checkpoint=False)"),
}


def _factored(model: nn.Module) -> dict[str, LowRankLinear]:
    return {name: module for name, module in model.named_modules() if isinstance(module, LowRankLinear)}


def _described(
    model: nn.Module, layers: dict[str, LowRankLinear], adapter: dict[str, Any] | None
) -> CompressionResult:
    """A :class:`CompressionResult` for a model given alone (its routing's provenance, no solve records)."""
    provenance, after = provenance_of(model), count_parameters(model)
    before = after + sum(
        layer.out_features * layer.in_features - layer.rank * (layer.in_features + layer.out_features)
        for layer in layers.values()
    )
    ratio = provenance.get("ratio") or after / before
    return CompressionResult(
        model=model,
        recipe=provenance.get("recipe") or "unknown",
        options={},
        ratio=ratio,
        ranks={name: layer.rank for name, layer in layers.items()},
        params_before=before,
        params_after=after,
        budget=int(ratio * before),
        fingerprints=dict(provenance.get("fingerprints") or {}),
        configs={"adapter": adapter},
        notes=["written by save_pretrained from the model alone: no solve records"],
    )


def _original(model: nn.Module) -> nn.Module:
    """The dense architecture rebuilt from the config (needed only for factored 1×1 convolutions)."""
    try:
        return type(model)(model.config)
    except TypeError as error:
        raise ConfigError(
            f"{type(model).__name__}(config) does not rebuild the model ({error}); a factored 1×1 "
            "convolution needs its dense form: pass original= (the model before compression)"
        ) from None


def save_pretrained(
    model_or_result: nn.Module | CompressionResult,
    folder: str | Path,
    *,
    original: nn.Module | None = None,
    **kwargs: Any,
) -> Path:
    """Write a compressed HF ``PreTrainedModel`` (or a :class:`CompressionResult` of one) to ``folder``
    with its own ``save_pretrained(folder, state_dict=<dense equivalent>, **kwargs)`` (``max_shard_size``,
    ``variant``, ... pass through), then the compressed model in ``folder/safesvd/`` and its ranks in
    ``config.json``. A plain ``cls.from_pretrained(folder)`` gives the dense equivalent,
    :func:`from_pretrained` the compressed model. ``original``: the model before compression, only when 1×1
    convolutions were factored and ``cls(config)`` does not rebuild it. The compressed model's own
    ``model.save_pretrained`` (and ``push_to_hub``) call this too."""
    result = model_or_result if isinstance(model_or_result, CompressionResult) else None
    model = result.model if result is not None else model_or_result
    if not isinstance(model, nn.Module) or not is_hf_model(model):
        parts = (
            [name for name, module in model.named_modules() if name and is_hf_model(module)]
            if isinstance(model, nn.Module)
            else []
        )
        inside = f"; save its Hugging Face part instead: model.{parts[0]}" if parts else ""
        raise ConfigError(
            f"save_pretrained takes a Hugging Face PreTrainedModel (or a CompressionResult of one), got "
            f"{type(model).__name__}{inside}; for any other model use save_compressed"
        )
    for key, (default, why) in _REFUSED.items():
        if kwargs.get(key, default) is not default:
            raise ConfigError(f"save_pretrained(..., {key}=...) of a compressed model is refused: {why}")
    if Path(folder).is_file():
        raise ConfigError(f"{folder} is a file; save_pretrained writes a folder")
    layers = _factored(model)
    ranks = {name: layer.rank for name, layer in layers.items()}
    adapter = result.configs.get("adapter") if result is not None else provenance_of(model).get("adapter")
    if result is None:
        result = _described(model, layers, adapter)
    elif {name: rank for name, rank in result.ranks.items() if rank is not None} != ranks:
        raise ConfigError(
            "result.ranks no longer describe result.model's factored layers (was it changed after "
            "compress?); pass the model itself"
        )
    if original is None and any(layer.channel_dim != -1 for layer in layers.values()):
        original = _original(model)
    state = dense_state(model, original, adapter=None if adapter is None else config_from_dict(adapter))
    config = model.config
    before = config.__dict__.get(ENTRY)
    config.safesvd = {"format": FORMAT, "ranks": ranks, "folder": SUBFOLDER}
    try:
        type(model).save_pretrained(model, folder, state_dict=state, **kwargs)
    finally:
        if before is None:
            del config.safesvd
        else:
            config.safesvd = before
    if kwargs.get("is_main_process", True):
        save_compressed(result, Path(folder) / SUBFOLDER, overwrite=True)
    return Path(folder)


def _read_config(root: Path) -> Any:
    """``root/config.json``, parsed."""
    try:
        return json.loads((root / "config.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"{root} has no config.json: not a Hugging Face model folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{root / 'config.json'} is not valid JSON ({error})") from None


def _check_class(cls: type, root: Path, config: dict[str, Any]) -> None:
    """Refuse a class whose config's ``model_type`` is not the folder's, naming both and the class
    that wrote the folder (before HF loads, and re-initialises, mismatched weights)."""
    folder_type = config.get("model_type")
    cls_type = getattr(getattr(cls, "config_class", None), "model_type", None)
    if folder_type and cls_type and folder_type != cls_type:
        raise ConfigError(
            f"{root} holds a {folder_type!r} model but {cls.__name__} loads {cls_type!r} ones: pass "
            f"the class that wrote it ({_writers(config)})"
        )


def _writers(config: dict[str, Any]) -> str:
    """The classes ``config.json`` says wrote the folder, for messages."""
    names = config.get("architectures")
    return ", ".join(map(str, names)) if isinstance(names, list) and names else "see its config.json"


def _check_layers(
    model: nn.Module, cls: type, ranks: dict[str, int], root: Path, config: dict[str, Any]
) -> None:
    """Every factored layer of the folder is a module of ``model`` (built by ``cls``); else the class
    has another structure, named with the class that wrote the folder."""
    modules = dict(model.named_modules())
    missing = [name for name in ranks if name not in modules]
    if missing:
        raise ConfigError(
            f"{root}: {cls.__name__} has no layer {missing[0]!r} ({len(missing)} of the folder's "
            f"{len(ranks)} factored layers missing): another structure; pass the class that wrote "
            f"it ({_writers(config)})"
        )


def _check_shards(root: Path) -> None:
    """Every weight file a shard index of ``root`` lists is there; else one line naming the missing ones."""
    for index in sorted(root.glob("*.index.json")):
        try:
            weight_map = json.loads(index.read_text()).get("weight_map")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
            raise ConfigError(f"{index} is not a shard index ({error}); copy the folder again") from None
        files = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        missing = [name for name in files if not (root / str(name)).is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise ConfigError(
                f"{root}: {index.name} lists {len(files)} weight shards but {shown} "
                f"{'is' if len(missing) == 1 else 'are'} missing: copy the folder again, every shard"
            )


def _entry(root: Path, config: Any) -> dict[str, Any]:
    """The checked ``safesvd`` entry of ``root/config.json`` (``config``, parsed)."""
    entry = config.get(ENTRY) if isinstance(config, dict) else None
    if entry is None:
        raise ConfigError(
            f"{root} holds no compressed model (its config.json has no 'safesvd' entry): it was not "
            "written by safesvd_core.save_pretrained; a dense model loads with cls.from_pretrained"
        )
    entry = check_format(entry, f"{root / 'config.json'}: its 'safesvd' entry", FORMAT, "reads")
    name, ranks = entry.get("folder"), entry.get("ranks")
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ConfigError(
            f"{root / 'config.json'}: the 'safesvd' entry's folder {name!r} is not a folder name"
        )
    if not isinstance(ranks, dict) or not all(rank is not None and is_rank(rank) for rank in ranks.values()):
        raise ConfigError(
            f"{root / 'config.json'}: the 'safesvd' entry's ranks are not a map of layer → integer ≥ 0"
        )
    return entry


def _tolerance(*dtypes: torch.dtype) -> float:
    """Relative tolerance between a dense weight and the product of its factors: rounding, not a change."""
    return max(1e-4, 8 * max(torch.finfo(dtype).eps for dtype in dtypes))


def _check_dense(model: nn.Module, file: Path, ranks: dict[str, int], root: Path) -> None:
    """Each factored layer's dense weight and bias in ``model`` (the HF weights) are the product of its
    factors in ``file``; else the folder's weights were changed after safesvd wrote them."""
    with safe_open(str(file), framework="pt") as handle:
        keys = set(handle.keys())  # a missing tensor is left to load_compressed, which names it
        for name in ranks:
            view = linear_map(model, name)
            second, first = (
                handle.get_tensor(f"{name}.second.weight"),
                handle.get_tensor(f"{name}.first.weight"),
            )
            weight = view.weight.detach().float().cpu()
            product = second.float() @ first.float()
            if weight.shape != product.shape:
                raise ConfigError(
                    f"{root}: layer {name!r} is {tuple(weight.shape)} in the model but its factors in "
                    f"{file.parent.name}/ make {tuple(product.shape)}: another architecture or size?"
                )
            tolerance = _tolerance(view.weight.dtype, first.dtype)
            differences = [float((weight - product).norm() / product.norm().clamp_min(1e-30))]
            if view.bias is not None and f"{name}.second.bias" in keys:
                bias = handle.get_tensor(f"{name}.second.bias").float()
                differences.append(
                    float((view.bias.detach().float().cpu() - bias).norm() / bias.norm().clamp_min(1e-30))
                )
            if max(differences) > tolerance:
                raise ConfigError(
                    f"{root}: the dense weights of layer {name!r} differ from its factors in "
                    f"{file.parent.name}/ (relative {max(differences):.2e}): the folder's weights were "
                    "changed after safesvd wrote them (a dense fine-tune saved over it?); write it again "
                    "with safesvd_core.save_pretrained"
                )


def from_pretrained(cls: type, folder: str | Path, **kwargs: Any) -> nn.Module:
    """``cls.from_pretrained(folder, **kwargs)``, then the compressed model of ``folder/safesvd/``
    applied: exactly the model :func:`save_pretrained` wrote (the same outputs, bit for bit). ``folder``
    is local (a Hub repository: ``huggingface_hub.snapshot_download(repo_id)`` first). A folder without
    safesvd data is refused (a dense model loads with ``cls.from_pretrained``); one whose ranks, factors or
    dense weights disagree is refused, the layer named, before the model is changed."""
    if not callable(getattr(cls, "from_pretrained", None)):
        raise ConfigError(f"from_pretrained takes a Hugging Face model class, got {cls!r}")
    if kwargs.get("output_loading_info"):
        raise ConfigError(
            "output_loading_info describes the dense weights, which safesvd replaces; leave it unset"
        )
    root = Path(folder) / kwargs.get("subfolder", "")
    if not root.is_dir():
        raise ConfigError(
            f"{root} is not a local folder; for a Hub repository call "
            "huggingface_hub.snapshot_download(repo_id) and pass the folder it returns"
        )
    config = _read_config(root)
    entry = _entry(root, config)
    _check_class(cls, root, config)
    compressed = root / entry["folder"]
    if not compressed.is_dir():
        raise ConfigError(
            f"{root}/config.json names the compressed model in {compressed}, which is missing (the folder "
            "was copied without it?); cls.from_pretrained alone gives the dense equivalent"
        )
    header, shapes = file_header(compressed / MODEL)
    saved = {name: rank for name, rank in header["ranks"].items() if rank is not None}
    for name in sorted(saved.keys() | entry["ranks"].keys()):
        if saved.get(name) != entry["ranks"].get(name):
            raise ConfigError(
                f"{root}: layer {name!r} has rank {entry['ranks'].get(name)} in config.json but "
                f"{saved.get(name)} in {entry['folder']}/{MODEL}; the folder mixes two saves: write it again"
            )
    _check_shards(root)
    model = _prepared(cls.from_pretrained(folder, **kwargs), header.get("adapter"), header["ranks"], shapes)
    _check_layers(model, cls, saved, root, config)
    _check_dense(model, compressed / MODEL, saved, root)
    model = load_compressed(model, compressed)
    if ENTRY in getattr(model.config, "__dict__", {}):
        del model.config.safesvd  # it describes the folder; saving again writes it anew
    return model


register_writer(save_pretrained)
