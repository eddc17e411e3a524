"""The report of a compression (``report.json``, ``report.csv``) and the tables the CLI prints.

Per layer: rank, kept whitened energy, parameters before and after, solve seconds (from the
manifest); then the evaluation metrics with their signed change (negative: compression improved
it), one step ahead and at each rollout horizon, beside the copy-the-input baseline's value
(:mod:`.baseline`) and the number of test samples each row is scored on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from safesvd_core import EvaluationReport

from .baseline import LABEL, CopyBaseline

FORMAT = "safesvd.report/1"
LAYER_KEYS = (
    "name",
    "rank",
    "in_features",
    "out_features",
    "kept_energy",
    "params_before",
    "params_after",
    "seconds",
)
CSV_COLUMNS = ("kind", *LAYER_KEYS, "horizon", "original", "compressed", "change_percent", "copy_input")
#: What the one-step and the horizon rows are scored on (:func:`rows_legend`).
READER_ROWS = (
    "one step: the model on the true input of every test pair ({pairs}); horizon h: step h of the rollout "
    "from each test trajectory start that leaves room for the largest horizon ({starts}). So horizon 1 is "
    "the one-step error on those starts only: it differs from the one-step row when the later starts do."
)
FUNCTION_ROWS = (
    "one step: the {pairs} test samples of the data function's one-step items; horizon h: step h of the "
    "rollout of its {starts} trajectories (called with steps = the largest horizon). The two may be "
    "different data, so horizon 1 and the one-step row need not agree."
)


def rows_legend(sizes: tuple[int, int | None], *, function: bool = False) -> str | None:
    """What the one-step row and the horizons are scored on, with their sample counts ``sizes`` (test
    pairs, trajectory starts); None without trajectories. ``function``: the test data is a data function's."""
    if sizes[1] is None:
        return None
    return (FUNCTION_ROWS if function else READER_ROWS).format(pairs=sizes[0], starts=sizes[1])


def build(
    manifest: Mapping[str, Any],
    report: EvaluationReport | None,
    *,
    seconds: float | None = None,
    figures: Sequence[str] = (),
    notes: Sequence[str] = (),
    copy: CopyBaseline | None = None,
    sizes: tuple[int, int | None] | None = None,
    legend: str | None = None,
) -> dict[str, Any]:
    """The report of one compressed model; ``copy``: the copy-the-input baseline on its test data,
    ``sizes``: the test samples of the one-step rows and of the horizons, ``legend``: what each is scored
    on."""
    return {
        "format": FORMAT,
        "ratio": manifest["ratio"],
        "recipe": manifest["recipe"].get("name"),
        "params_before": manifest["params_before"],
        "params_after": manifest["params_after"],
        "kept_ratio": manifest["params_after"] / manifest["params_before"],
        "seconds": seconds,
        "layers": [{key: layer[key] for key in LAYER_KEYS} for layer in manifest["layers"]],
        "evaluation": None if report is None else report.to_dict(),
        "copy_baseline": None if copy is None else copy.to_dict(),
        "test_samples": None
        if sizes is None
        else {"one_step": sizes[0], "rollout": sizes[1], "legend": legend},
        "figures": list(figures),
        "notes": list(notes),
    }


def _metric_rows(
    evaluation: Mapping[str, Any] | None, copy: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    if not evaluation:
        return []
    copied = copy or {"metrics": {}, "rollout": {}}
    rows = [
        {
            "kind": "metric",
            "name": m["name"],
            "horizon": 0,
            "original": m["original"],
            "compressed": m["compressed"],
            "change_percent": m["signed_change_percent"],
            "copy_input": copied["metrics"].get(m["name"]),
        }
        for m in evaluation["metrics"]
    ]
    for horizon, entries in evaluation["rollout"].items():
        at = copied["rollout"].get(str(horizon), {})
        rows += [
            {
                "kind": "rollout",
                "name": m["name"],
                "horizon": int(horizon),
                "original": m["original"],
                "compressed": m["compressed"],
                "change_percent": m["signed_change_percent"],
                "copy_input": at.get(m["name"]),
            }
            for m in entries
        ]
    return rows


def to_csv(report: Mapping[str, Any]) -> str:
    """One table: a row per layer (``kind`` layer), the totals, then a row per metric and horizon
    (``kind`` metric: one step ahead, horizon 0; ``kind`` rollout) with the copy-the-input baseline's
    value in ``copy_input`` (empty where it is omitted)."""
    rows = [{"kind": "layer", **layer} for layer in report["layers"]]
    rows.append(
        {
            "kind": "total",
            "name": "model",
            "params_before": report["params_before"],
            "params_after": report["params_after"],
            "seconds": report["seconds"],
        }
    )
    rows += _metric_rows(report["evaluation"], report.get("copy_baseline"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summary_csv(runs: Sequence[Mapping[str, Any]], copy: Mapping[str, Any] | None = None) -> str:
    """A row per ratio × metric × horizon of a several-ratio run
    (``copy``: the copy-the-input baseline's dict)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer,
        fieldnames=(
            "ratio",
            "folder",
            "params_after",
            "kept_ratio",
            "kind",
            "name",
            "horizon",
            "original",
            "compressed",
            "change_percent",
            "copy_input",
        ),
        lineterminator="\n",
    )
    writer.writeheader()
    for entry in runs:
        for row in _metric_rows(entry["evaluation"], copy):
            writer.writerow(
                {key: entry[key] for key in ("ratio", "folder", "params_after", "kept_ratio")} | row
            )
    return buffer.getvalue()


def _number(value: Any, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def inspect_table(manifest: Mapping[str, Any]) -> str:
    """The manifest as text: a row per layer (shape, rank, parameters, kept energy, λ, α, solve
    paths, fallbacks), then the totals and the notes."""
    lam, alpha = manifest.get("lam"), manifest.get("alpha")
    lines = [
        "| layer | shape (out × in) | rank | params before → after | kept energy | λ | α | solve paths | "
        "fallback |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in manifest["layers"]:
        paths = ", ".join(f"{k}:{v}" for k, v in layer["paths"].items()) or "—"
        energy = "—" if layer["kept_energy"] is None else f"{layer['kept_energy']:.4f}"
        lines.append(
            f"| {layer['name']} | {layer['out_features']} × {layer['in_features']} | "
            f"{'dense' if layer['rank'] is None else layer['rank']} | {layer['params_before']:,} → "
            f"{layer['params_after']:,} | {energy} | {_number(lam)} | {_number(alpha)} | {paths} | "
            f"{'yes' if layer['fell_back'] else 'no'} |"
        )
    recipe = manifest["recipe"]
    lines += [
        "",
        f"recipe {recipe.get('name')}, ratio {manifest['ratio']}: {manifest['params_after']:,} of "
        f"{manifest['params_before']:,} parameters kept "
        f"({manifest['params_after'] / manifest['params_before']:.4f}; budget {manifest['budget']:,}, "
        f"{'met' if manifest['met_budget'] else 'MISSED'})",
        f"λ = {_number(lam)} ({manifest['objective'].get('lam_mode')}, family "
        f"{manifest['objective'].get('family')}), α = {_number(alpha)}: one value for every layer",
        f"versions: {', '.join(f'{k} {v}' for k, v in manifest['versions'].items())}; "
        f"weights sha256 {manifest['fingerprints'].get('weights', '—')[:16]}…, calibration sha256 "
        f"{manifest['fingerprints'].get('calibration', '—')[:16]}…",
    ]
    lines += [f"note: {note}" for note in manifest["notes"]]
    return "\n".join(lines)


def evaluation_table(
    report: EvaluationReport,
    horizons: Sequence[int] = (),
    *,
    copy: CopyBaseline | None = None,
    legend: str | None = None,
) -> str:
    """The paper-style table: each metric for both models and the signed change, then per horizon; the
    ``legend`` of the rows (:func:`rows_legend`) when horizons are shown, and the copy-the-input baseline
    (``copy``) on the same test data."""
    lines = [
        report.to_markdown(horizons=horizons),
        "",
        "change = 100 · (compressed − original) / |original|: negative is better.",
    ]
    shown = [h for h in horizons if h in report.rollout]
    if shown and legend:
        lines.append(legend)
    if copy is not None:
        lines += ["", copy_table(copy, [e.name for e in report.metrics], shown)]
    return "\n".join(lines)


def copy_table(copy: CopyBaseline, names: Sequence[str], horizons: Sequence[int] = ()) -> str:
    """The copy-the-input baseline's value of each metric, one step ahead and at ``horizons``;
    or why it is omitted."""
    if copy.omitted is not None:
        return f"{LABEL}: {copy.omitted}."
    columns = [None, *[h for h in horizons if h in copy.rollout]]
    lines = [
        f"| {LABEL} (next = current) | "
        + " | ".join("one step" if h is None else f"h = {h}" for h in columns)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_number(copy.value(name, h), 6) for h in columns) + " |")
    lines += [
        "",
        "The error of predicting the current state on the same test data: the floor a surrogate must beat.",
    ]
    return "\n".join(lines)
