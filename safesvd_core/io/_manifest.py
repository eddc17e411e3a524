"""The manifest of a compressed-model folder: what was compressed, how, and with what result.

``manifest.json`` sits beside ``model.safetensors`` (:func:`~safesvd_core.save_compressed` with a
folder) and is plain JSON: the format version; the safesvd, torch and Python versions; the recipe
and adapter configs (:func:`~safesvd_core.config_to_dict`); the ratio, budget and parameter counts;
λ, α and the calibration objective; per layer its shape, rank, parameters before and after, kept
spectral energy, solve paths, jitters, note and seconds; the sha256 fingerprints of the original
weights, the calibration data and the config, and of ``model.safetensors``; the timings, passes,
tuning, the optional phases' reports and the notes. Tools read it without loading a tensor
(``safesvd inspect``).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from .._errors import ConfigError
from ..model._layers import linear_map
from ..model._lowrank import LowRankLinear
from ..model._modules import get_submodule
from ..run._result import CompressionResult
from ._files import check_format
from ._manifest_facts import check_facts

FORMAT = "safesvd.manifest/1"
MANIFEST = "manifest.json"
MODEL = "model.safetensors"


def _version() -> str:
    try:
        return importlib.metadata.version("safesvd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _layer(result: CompressionResult, name: str) -> dict[str, Any]:
    module = get_submodule(result.model, name)
    if isinstance(module, LowRankLinear):
        m, n, kind = (
            module.out_features,
            module.in_features,
            "linear" if module.channel_dim == -1 else "conv1x1",
        )
    else:
        view = linear_map(result.model, name)
        m, n, kind = view.out_features, view.in_features, "linear" if view.channel_dim == -1 else "conv1x1"
    rank, record = result.ranks.get(name), result.records.get(name)
    bias = m if getattr(module, "bias", None) is not None else 0
    return {
        "name": name,
        "kind": kind,
        "in_features": n,
        "out_features": m,
        "rank": rank,
        "params_before": m * n + bias,
        "params_after": (m * n if rank is None else rank * (m + n)) + bias,
        "kept_energy": result.kept_energy(name),
        **(
            record.to_dict()
            if record is not None
            else {"paths": {}, "jitters": {}, "note": "", "seconds": 0.0}
        ),
        "fell_back": bool(record is not None and record.fell_back),
    }


def build_manifest(result: CompressionResult, model_sha256: str) -> dict[str, Any]:
    """The manifest of ``result`` whose weights were written to a file of sha256 ``model_sha256``."""
    solver = result.objective.get("solver", {})
    return {
        "format": FORMAT,
        "versions": {"safesvd": _version(), "torch": torch.__version__, "python": platform.python_version()},
        "model": {"file": MODEL, "sha256": model_sha256},
        "recipe": result.configs.get("recipe") or {"name": result.recipe, "options": None},
        "adapter": result.configs.get("adapter"),
        "ratio": result.ratio,
        "budget": result.budget,
        "params_before": result.params_before,
        "params_after": result.params_after,
        "met_budget": result.met_budget,
        "lam": result.lam,
        "alpha": solver.get("alpha"),
        "objective": result.objective,
        "layers": [_layer(result, name) for name in result.layer_order or list(result.ranks)],
        "fingerprints": dict(result.fingerprints),
        "timings": dict(result.timings),
        "passes": dict(result.passes),
        "tuning": result.tuning,
        "reports": dict(result.reports),
        "stages": result.stages,
        "notes": list(result.notes),
    }


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the compressed-model folder ``path`` (or of the ``manifest.json`` given)."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        what = "folder has no manifest.json" if path.is_dir() else "no such file or folder"
        raise ConfigError(
            f"{path}: {what} (a compressed-model folder is written by save_compressed(result, folder) "
            "or `safesvd compress`)"
        )
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file} is not valid JSON ({error}): the folder is damaged") from None
    manifest = check_format(manifest, file, FORMAT, "reads")
    _check_structure(manifest, file)
    model_file = file.parent / MODEL
    if model_file.is_file():
        shapes = tensor_shapes(model_file)
        check_against_tensors(manifest, shapes, file)
        check_facts(manifest, _lenient(header_text(model_file)), shapes, file)
    return manifest


def _lenient(raw: str | None) -> dict[str, Any]:
    """The parsed header, or ``{}`` when it is missing or damaged (loading the file names that)."""
    try:
        header = json.loads(raw) if raw is not None else {}
    except json.JSONDecodeError:
        return {}
    return header if isinstance(header, dict) else {}


def is_rank(value: Any) -> bool:
    """Whether ``value`` is a layer's recorded rank: an integer ≥ 0 (0: a dropped Fourier mode) or
    ``None`` (dense)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


#: Fields every manifest has, and those of each layer entry, with their JSON types.
_REQUIRED = {"model": dict, "layers": list, "ratio": (int, float), "params_before": int, "params_after": int}
_LAYER = {"name": str, "in_features": int, "out_features": int}


def _check_structure(manifest: dict[str, Any], file: Path) -> None:
    """Every field the tools read is there with its type; else a :class:`ConfigError` naming it."""

    def refuse(field: str, what: str) -> None:
        raise ConfigError(
            f"{file}: {field} {what}; the manifest was edited or damaged: write the folder again"
        )

    for key, kind in _REQUIRED.items():
        if key not in manifest:
            refuse(repr(key), "is missing")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            refuse(repr(key), f"is a {type(manifest[key]).__name__}, not what safesvd wrote")
    if not isinstance(manifest["model"].get("sha256"), str):
        refuse("'model.sha256'", "is missing")
    for index, layer in enumerate(manifest["layers"]):
        where = f"layers[{index}]"
        if not isinstance(layer, dict):
            refuse(where, "is not an object")
        for key, kind in _LAYER.items():
            if not isinstance(layer.get(key), kind) or isinstance(layer.get(key), bool):
                refuse(f"{where}.{key}", "is missing or of the wrong type")
        rank = layer.get("rank")
        if not is_rank(rank):
            refuse(f"{where}.rank ({layer['name']!r})", f"is {rank!r}, not an integer ≥ 0 or null")


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of the safetensors file at ``path`` (its header only)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    except (SafetensorError, OSError) as error:
        raise ConfigError(
            f"{path} is not a readable safetensors file (truncated, or another format): {error}"
        ) from None


def header_text(path: Path) -> str | None:
    """The ``safesvd`` header of the safetensors file at ``path`` as written (JSON text), if any."""
    with safe_open(str(path), framework="pt") as handle:
        return (handle.metadata() or {}).get("safesvd")


def ranks_in(shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Factored layer → its rank, read from the shapes of its ``first`` and ``second`` factors."""
    ranks = {}
    for key, shape in shapes.items():
        if key.endswith(".first.weight") and len(shape) == 2:
            name = key[: -len(".first.weight")]
            second = shapes.get(f"{name}.second.weight")
            if second is not None and len(second) == 2 and second[1] == shape[0]:
                ranks[name] = int(shape[0])
    return ranks


def check_against_tensors(manifest: dict[str, Any], shapes: dict[str, tuple[int, ...]], file: Path) -> None:
    """The manifest's layers and ranks are those of the model file's tensors; an edit is refused, named."""
    ranks = ranks_in(shapes)
    listed = {layer["name"]: layer.get("rank") for layer in manifest["layers"]}
    for name, rank in listed.items():
        if ranks.get(name) != rank:
            found = f"rank {ranks[name]}" if name in ranks else "no factors (dense)"
            raise ConfigError(
                f"{file} does not describe {MODEL}: layer {name!r} has rank {rank!r} in the manifest "
                f"but {found} in the model file's tensors; the manifest was edited or the folder mixes "
                "two runs: write the folder again"
            )
    unlisted = sorted(set(ranks) - set(listed))
    if unlisted:
        raise ConfigError(
            f"{file} does not describe {MODEL}: the model file has factored layers the manifest does not "
            f"list ({', '.join(unlisted[:5])}); the manifest was edited or the folder mixes two runs: "
            "write the folder again"
        )


def check_layers(manifest: dict[str, Any], model: nn.Module, label: str) -> None:
    """Every layer of ``manifest`` is a linear map of ``model`` with the recorded shape (or was already
    replaced by a low-rank one of that shape); else a :class:`ConfigError` that names the model's class,
    the first few mismatches and the layers the manifest expects."""
    problems = []
    for layer in manifest["layers"]:
        name, want = layer["name"], (layer["out_features"], layer["in_features"])
        try:
            module = get_submodule(model, name)
            got = (
                (module.out_features, module.in_features)
                if isinstance(module, LowRankLinear)
                else (linear_map(model, name).out_features, linear_map(model, name).in_features)
            )
        except ConfigError as error:
            problems.append(f"no layer {name!r}" if "no submodule" in str(error) else f"{name}: {error}")
            continue
        if got != want:
            problems.append(f"{name}: the manifest has {want[1]} → {want[0]}, the model {got[1]} → {got[0]}")
    if problems:
        expected = [
            f"{layer['name']} ({layer['in_features']} → {layer['out_features']})"
            for layer in manifest["layers"]
        ]
        raise ConfigError(
            f"{label} does not match this model ({type(model).__name__}; another architecture, size or "
            "depth?): "
            f"{'; '.join(problems[:3])}{f' (and {len(problems) - 3} more)' if len(problems) > 3 else ''}; "
            f"it expects the linear layers {', '.join(expected[:4])}{', …' if len(expected) > 4 else ''} "
            "(pass the architecture it was compressed from); the model was not changed"
        )
