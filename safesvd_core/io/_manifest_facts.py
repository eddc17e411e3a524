"""What a manifest states that its model file can confirm. Parameter counts, budget and each factored
layer's shape come again from the tensor shapes; ratio, recipe and counts are in the file's header
too; every other field (kept energy, recipe options, notes, …) has a short sha256 there, written with
the file. A manifest that disagrees is refused, the field named: ``safesvd inspect`` prints no edited
value as a fact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._errors import ConfigError

#: The header's key for the manifest's digests, and the manifest fields it does not cover (the
#: model file's own sha256, written after the file).
DIGESTS = "manifest"
_UNCOVERED = ("model",)


def _digest(value: Any) -> str:
    """A short sha256 of ``value`` as JSON reads it back (tuples as lists, keys as text)."""
    text = json.dumps(json.loads(json.dumps(value)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's covered fields, each layer entry its own (``layers['name']``)."""
    fields = {key: value for key, value in manifest.items() if key not in (*_UNCOVERED, "layers")}
    fields.update({f"layers[{layer['name']!r}]": layer for layer in manifest.get("layers", [])})
    return fields


def fact_digests(manifest: dict[str, Any]) -> dict[str, str]:
    """Field → short sha256, for the model file's header (see :func:`check_facts`)."""
    return {field: _digest(value) for field, value in _fields(manifest).items()}


def _refuse(file: Path, field: str, what: str) -> ConfigError:
    return ConfigError(
        f"{file}: {field} {what}; the manifest was edited after safesvd wrote it: write the folder again"
    )


def _check_counts(manifest: dict[str, Any], shapes: dict[str, tuple[int, ...]], file: Path) -> None:
    """Each factored layer's shape and counts, and the totals, recomputed from the tensor shapes."""
    saved = 0
    for layer in manifest["layers"]:
        name, rank = layer["name"], layer.get("rank")
        if rank is None:
            continue
        out_features, in_features = shapes[f"{name}.second.weight"][0], shapes[f"{name}.first.weight"][1]
        bias = out_features if f"{name}.second.bias" in shapes else 0
        recomputed = {
            "in_features": in_features,
            "out_features": out_features,
            "params_before": out_features * in_features + bias,
            "params_after": rank * (in_features + out_features) + bias,
        }
        for key, value in recomputed.items():
            if key in layer and layer[key] != value:
                raise _refuse(
                    file, f"layer {name!r} {key}", f"is {layer[key]!r} but its tensors give {value!r}"
                )
        saved += recomputed["params_before"] - recomputed["params_after"]
    before, after = manifest["params_before"], manifest["params_after"]
    if before - after != saved:
        raise _refuse(
            file,
            "'params_after'",
            f"({after:,}) is not 'params_before' ({before:,}) less the {saved:,} parameters its factored "
            "layers' tensors save",
        )
    ratio = manifest["ratio"]
    if not 0.0 < ratio <= 1.0:
        raise _refuse(file, "'ratio'", f"is {ratio!r}, not in (0, 1]")
    budget = int(ratio * before)
    if "budget" in manifest and manifest["budget"] != budget:
        raise _refuse(
            file,
            "'ratio' or 'budget'",
            f"disagree: ratio {ratio!r} of {before:,} parameters is a budget of {budget:,}, not "
            f"{manifest['budget']!r}",
        )
    if "met_budget" in manifest and manifest["met_budget"] != (after <= budget):
        raise _refuse(
            file, "'met_budget'", f"is {manifest['met_budget']!r} for {after:,} of a {budget:,} budget"
        )


def check_facts(
    manifest: dict[str, Any], header: dict[str, Any], shapes: dict[str, tuple[int, ...]], file: Path
) -> None:
    """Refuse a manifest that disagrees with its model file (``header``: its ``safesvd`` header,
    ``shapes``: its tensors' shapes), naming the field: counts recomputed, header values compared,
    then every other field against the header's digests (files written before them: not checked)."""
    _check_counts(manifest, shapes, file)
    recipe = manifest["recipe"].get("name") if isinstance(manifest.get("recipe"), dict) else None
    for field, value in (
        *((key, manifest[key]) for key in ("ratio", "params_before", "params_after")),
        ("recipe", recipe),
    ):
        if field in header and header[field] != value:
            raise _refuse(file, repr(field), f"is {value!r} but the model file says {header[field]!r}")
    digests = header.get(DIGESTS)
    if not isinstance(digests, dict):
        return
    fields = fact_digests(manifest)
    for field in sorted(digests.keys() | fields.keys()):
        label = field if field.startswith("layers[") else repr(field)
        if field not in fields:
            raise _refuse(file, label, "is missing")
        if digests.get(field) != fields[field]:
            what = (
                "is not in the model file's header"
                if field not in digests
                else "differs from what was written"
            )
            raise _refuse(file, label, what)
