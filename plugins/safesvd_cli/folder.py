"""The output folder of ``safesvd compress`` and ``safesvd demo``.

One ratio: the folder holds ``model.safetensors`` and ``manifest.json`` (``save_compressed``),
``config.json`` (the resolved config, for ``evaluate`` and ``export``), ``report.json``,
``report.csv`` and ``figures/``. Several ratios: one such folder per ratio (``ratio-0.8/``, …), and
beside them a summary ``report.json``/``report.csv``, ``config.json`` and ``figures/`` (error
against ratio, rollout growth). The folder is written as a whole (:mod:`.output`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safesvd_core import ConfigError, read_manifest, registry, save_compressed
from safesvd_core.plugin import LayerCandidate, tensor_leaves

from . import figures, report
from .baseline import LABEL, CopyBaseline, copied_input
from .config import RunConfig
from .files import atomic_write
from .pipeline import Prepared, Run, copy_input, rows_legend, test_sizes

CONFIG, REPORT_JSON, REPORT_CSV, FIGURES = "config.json", "report.json", "report.csv", "figures"
RUN_FORMAT = "safesvd.run/1"


def write_text(path: Path, text: str) -> None:
    """``text`` to ``path``, atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(text))


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=1) + "\n")


def ratio_folder(out: Path, ratio: float) -> Path:
    return out / f"ratio-{ratio:g}"


def model_folders(out: Path, runs: Sequence[Run]) -> list[Path]:
    """Where each run's model folder is in the output folder ``out``."""
    return [out] if len(runs) == 1 else [ratio_folder(out, run.ratio) for run in runs]


def write(out: Path, prepared: Prepared, runs: Sequence[Run]) -> list[Path]:
    """The output folder of ``runs`` (see the module docstring) into the empty folder ``out``; returns
    the model folders. Callers write through :class:`~.output.OutputFolder`, which makes it whole."""
    out.mkdir(parents=True, exist_ok=True)
    folders = model_folders(out, runs)
    copy = copy_input(prepared)  # the same test data for every ratio
    for folder, run in zip(folders, runs):
        write_model(folder, prepared, run, copy)
    if len(runs) > 1:
        _write_summary(out, prepared, runs, folders, copy)
    return folders


def write_model(folder: Path, prepared: Prepared, run: Run, copy: CopyBaseline | None = None) -> None:
    """One compressed model's folder: weights, manifest, config, report and figures (``copy``: the
    copy-the-input baseline on the test data, computed when not given)."""
    copy = copy_input(prepared) if copy is None else copy
    save_compressed(run.result, folder)
    manifest = read_manifest(folder)
    write_json(folder / CONFIG, {"format": RUN_FORMAT, "ratio": run.ratio, **prepared.config.to_dict()})
    drawn, notes = _model_figures(folder / FIGURES, prepared, run, manifest, copy)
    if copy.omitted is not None:
        notes = [*notes, f"{LABEL}: {copy.omitted}"]
    built = report.build(
        manifest,
        run.report,
        seconds=run.seconds,
        figures=[str(p.relative_to(folder)) for p in drawn],
        notes=notes,
        copy=copy,
        sizes=test_sizes(prepared),
        legend=rows_legend(prepared),
    )
    write_json(folder / REPORT_JSON, built)
    write_text(folder / REPORT_CSV, report.to_csv(built))


def read_config(folder: Path, *, trust_code: bool = False) -> tuple[RunConfig, dict[str, Any]]:
    """The config a folder was written with, and the folder's manifest. A folder may come from anyone:
    a config that names code to import (a factory, a data function) is refused unless ``trust_code``."""
    manifest = manifest_of(folder)
    file = folder / CONFIG
    if not file.is_file():
        raise ConfigError(
            f"{folder} has no {CONFIG}: it was saved from Python (save_compressed), so safesvd does "
            "not know how to build its original model; write it with `safesvd compress`"
        )
    try:
        raw = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"{file} is not valid JSON ({error}); the folder is damaged: write it again"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != RUN_FORMAT:
        raise ConfigError(
            f"{file} is not a config safesvd wrote (format {RUN_FORMAT!r}); write the folder again"
        )
    raw.pop("format", None)
    raw.pop("ratio", None)
    config = RunConfig.from_dict(raw, base=folder, label=str(file))
    code = config.code()
    if code and not trust_code:
        raise ConfigError(
            f"{file} names code to import and run: {'; '.join(code)}; a folder can come from anyone, so "
            "safesvd runs no code it names unless you pass --trust-code (SECURITY.md)"
        )
    return config, manifest


def manifest_of(folder: Path) -> dict[str, Any]:
    """The manifest of a model folder; a several-ratio folder is refused with its model folders named."""
    if folder.is_dir() and not (folder / "manifest.json").exists():
        subfolders = sorted(str(p) for p in folder.glob("ratio-*") if (p / "manifest.json").is_file())
        if subfolders:
            raise ConfigError(
                f"{folder} holds {len(subfolders)} ratio(s), one folder each: pass one of "
                f"{', '.join(subfolders)}"
            )
    return read_manifest(folder)


def _uniform(manifest: dict[str, Any]) -> dict[str, int | None]:
    """The ranks a uniform allocation gives under the same parameter budget."""
    layers = manifest["layers"]
    outside = manifest["params_before"] - sum(
        layer["in_features"] * layer["out_features"] for layer in layers
    )
    candidates = [
        LayerCandidate(
            name=layer["name"],
            out_features=layer["out_features"],
            in_features=layer["in_features"],
            spectrum=torch.ones(min(layer["in_features"], layer["out_features"]), dtype=torch.float64),
            order=index,
        )
        for index, layer in enumerate(layers)
    ]
    return dict(registry("allocator").create("uniform").allocate(candidates, manifest["budget"] - outside))


def _copy_line(copy: CopyBaseline, steps: Sequence[int]) -> dict[str, list[float]] | None:
    """The copy-the-input baseline's base loss at each rollout step,
    for the rollout figure (None: omitted)."""
    values = [copy.value("base loss", step) for step in steps]
    return None if copy.omitted is not None or None in values else {LABEL: values}


def _model_figures(
    where: Path, prepared: Prepared, run: Run, manifest: dict[str, Any], copy: CopyBaseline
) -> tuple[list[Path], list[str]]:
    if not prepared.config.figures:
        return [], []
    if not figures.available():
        return [], [figures.MISSING]
    result, recipe = run.result, manifest["recipe"].get("name")
    layers = manifest["layers"]
    label = f"{recipe}, ratio {run.ratio:g}"
    uniform = _uniform(manifest)
    drawn = [
        figures.spectra(
            where / "spectra.png",
            [
                (layer["name"], result.spectra[layer["name"]].numpy(), layer["rank"], layer["kept_energy"])
                for layer in layers
                if layer["name"] in result.spectra
            ],
            f"Whitened spectra per layer ({label})",
        ),
        figures.ranks(
            where / "ranks.png",
            [layer["name"] for layer in layers],
            [layer["rank"] for layer in layers],
            [uniform[layer["name"]] for layer in layers],
            [min(layer["in_features"], layer["out_features"]) for layer in layers],
            (recipe, "uniform allocation, same budget"),
            f"Rank per layer ({label})",
        ),
        _fields(where / "fields.png", prepared, run, label),
    ]
    if run.report.rollout:
        steps = sorted(run.report.rollout)
        drawn.append(
            figures.rollout_growth(
                where / "rollout.png",
                steps,
                [run.report.metric("base loss", h).original for h in steps],
                {label: [run.report.metric("base loss", h).compressed for h in steps]},
                "base loss",
                prepared.lead_time,
                f"Rollout error growth on the test trajectories ({label})",
                baseline=_copy_line(copy, steps),
            )
        )
    return [path for path in drawn if path is not None], []


def _shown(prediction: Any) -> tuple[str, torch.Tensor] | None:
    """The prediction's field to draw: the prediction, or a structure's first ``(B, C, H, W)`` tensor
    with its place (``velocity``, ``surf_vars.2t``)."""
    if isinstance(prediction, torch.Tensor):
        return "", prediction
    return next(((place, leaf) for place, leaf in tensor_leaves(prediction) if leaf.ndim == 4), None)


def _fields(path: Path, prepared: Prepared, run: Run, label: str) -> Path | None:
    """Input, predictions and difference for the first test sample (2-D fields only). The input
    column shows the batch's tensor shaped like the prediction other than the target (none for a
    structured input: the column says so)."""
    adapter, batch = prepared.adapter, prepared.test[0]
    with torch.no_grad():
        predictions = [adapter.predict(model, batch) for model in (prepared.model, run.result.model)]
    shown = _shown(predictions[0])
    if shown is None:
        return None
    place, original = shown
    compressed = predictions[1] if not place else dict(tensor_leaves(predictions[1]))[place]
    original, compressed = (t.detach().float().cpu() for t in (original, compressed))
    if original.ndim != 4:
        return None
    reference = adapter.reference(batch)
    reference = reference if not place else dict(tensor_leaves(reference)).get(place)
    given = None if reference is None else copied_input(batch, reference)
    field = adapter.field(batch)
    names = (
        list(field.channels)
        if field is not None and len(field.channels) == original.shape[1]
        else [f"channel {i}" for i in range(original.shape[1])]
    )
    masked = set(field.masked) if field is not None else set()
    rows = [
        (
            name,
            None if given is None else given[0, i].numpy(),
            original[0, i].numpy(),
            compressed[0, i].numpy(),
        )
        for i, name in enumerate(names)
        if name not in masked
    ]
    rows += _derived(prepared, field, given, original, compressed)
    spacing = field.spacing if field is not None and field.dim == 2 else (1.0, 1.0)
    extent = (0.0, original.shape[2] * spacing[0], 0.0, original.shape[3] * spacing[1])
    axes = tuple(field.axes) if field is not None and field.dim == 2 else ("grid axis 0", "grid axis 1")
    return figures.fields(
        path,
        rows,
        extent,
        axes,
        f"First test sample ({label}{', ' + place if place else ''}); axes in the data's length unit",
    )


def _derived(
    prepared: Prepared,
    field: Any,
    given: torch.Tensor | None,
    original: torch.Tensor,
    compressed: torch.Tensor,
) -> list[tuple[str, np.ndarray | None, np.ndarray, np.ndarray]]:
    """Vorticity and divergence rows where the family reports them (and the field has the velocities)."""
    family = prepared.config.family
    if family is None or field is None or field.dim != 2:
        return []
    from safesvd_pde.finite_difference import divergence, vorticity

    metrics = set(registry("pde_family").create(family).metrics())
    wanted = [
        (name, op)
        for name, op, keys in (
            ("vorticity", vorticity, {"vorticity"}),
            ("divergence", divergence, {"divergence", "divergence-free"}),
        )
        if metrics & keys
    ]
    rows = []
    for name, op in wanted:
        try:
            values = [
                None if t is None else op(t[:1].double(), field)[0, 0].float().numpy()
                for t in (given, original, compressed)
            ]
        except ConfigError:
            continue
        rows.append((name, values[0], values[1], values[2]))
    return rows


def _write_summary(
    out: Path, prepared: Prepared, runs: Sequence[Run], folders: Sequence[Path], copy: CopyBaseline
) -> None:
    entries = [
        {
            "ratio": run.ratio,
            "folder": str(folder.relative_to(out)),
            "params_after": run.result.params_after,
            "kept_ratio": run.result.kept_ratio,
            "seconds": run.seconds,
            "evaluation": run.report.to_dict(),
        }
        for run, folder in zip(runs, folders)
    ]
    drawn, notes = [], []
    if prepared.config.figures and not figures.available():
        notes.append(figures.MISSING)
    elif prepared.config.figures:
        recipe = runs[0].result.recipe
        names = [entry.name for entry in runs[0].report.metrics]
        last = max(runs[0].report.rollout, default=None)
        drawn.append(
            figures.error_vs_ratio(
                out / FIGURES / "error_vs_ratio.png",
                [run.ratio for run in runs],
                {name: [run.report.metric(name).signed_change_percent for run in runs] for name in names},
                f"Test error against ratio ({recipe}; one step ahead"
                + (f", dashed: after {last} steps)" if last else ")"),
                None
                if last is None
                else {
                    f"base loss, {last} steps": [
                        run.report.metric("base loss", last).signed_change_percent for run in runs
                    ]
                },
            )
        )
        if runs[0].report.rollout:
            steps = sorted(runs[0].report.rollout)
            drawn.append(
                figures.rollout_growth(
                    out / FIGURES / "rollout.png",
                    steps,
                    [runs[0].report.metric("base loss", h).original for h in steps],
                    {
                        f"ratio {run.ratio:g}": [run.report.metric("base loss", h).compressed for h in steps]
                        for run in runs
                    },
                    "base loss",
                    prepared.lead_time,
                    f"Rollout error growth on the test trajectories ({recipe})",
                    baseline=_copy_line(copy, steps),
                )
            )
    write_json(out / CONFIG, {"format": RUN_FORMAT, **prepared.config.to_dict()})
    summary = {
        "format": report.FORMAT,
        "runs": entries,
        "copy_baseline": copy.to_dict(),
        "figures": [str(p.relative_to(out)) for p in drawn if p],
        "notes": notes,
    }
    write_json(out / REPORT_JSON, summary)
    write_text(out / REPORT_CSV, report.summary_csv(entries, copy.to_dict()))
