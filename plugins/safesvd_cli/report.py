"""The report of a compression (``report.json``, ``report.csv``) and the tables the CLI prints.

Per layer: rank, kept whitened energy, parameters before and after, solve seconds (from the
manifest); then the evaluation metrics with their signed change (negative: compression improved
it), one step ahead and at each rollout horizon.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from safesvd_core import EvaluationReport

FORMAT = "safesvd.report/1"
LAYER_KEYS = ("name", "rank", "in_features", "out_features", "kept_energy", "params_before", "params_after", "seconds")
CSV_COLUMNS = ("kind", *LAYER_KEYS, "horizon", "original", "compressed", "change_percent")


def build(manifest: Mapping[str, Any], report: EvaluationReport | None, *, seconds: float | None = None,
          figures: Sequence[str] = (), notes: Sequence[str] = ()) -> dict[str, Any]:
    """The report of one compressed model."""
    return {
        "format": FORMAT, "ratio": manifest["ratio"], "recipe": manifest["recipe"].get("name"),
        "params_before": manifest["params_before"], "params_after": manifest["params_after"],
        "kept_ratio": manifest["params_after"] / manifest["params_before"], "seconds": seconds,
        "layers": [{key: layer[key] for key in LAYER_KEYS} for layer in manifest["layers"]],
        "evaluation": None if report is None else report.to_dict(),
        "figures": list(figures), "notes": list(notes),
    }


def _metric_rows(evaluation: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not evaluation:
        return []
    rows = [{"kind": "metric", "name": m["name"], "horizon": 0, "original": m["original"], "compressed": m["compressed"],
             "change_percent": m["signed_change_percent"]} for m in evaluation["metrics"]]
    for horizon, entries in evaluation["rollout"].items():
        rows += [{"kind": "rollout", "name": m["name"], "horizon": int(horizon), "original": m["original"],
                  "compressed": m["compressed"], "change_percent": m["signed_change_percent"]} for m in entries]
    return rows


def to_csv(report: Mapping[str, Any]) -> str:
    """One table: a row per layer (``kind`` layer), the totals, then a row per metric and horizon
    (``kind`` metric: one step ahead, horizon 0; ``kind`` rollout)."""
    rows = [{"kind": "layer", **layer} for layer in report["layers"]]
    rows.append({"kind": "total", "name": "model", "params_before": report["params_before"],
                 "params_after": report["params_after"], "seconds": report["seconds"]})
    rows += _metric_rows(report["evaluation"])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summary_csv(runs: Sequence[Mapping[str, Any]]) -> str:
    """A row per ratio × metric × horizon of a several-ratio run."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=("ratio", "folder", "params_after", "kept_ratio", "kind", "name",
                                                "horizon", "original", "compressed", "change_percent"), lineterminator="\n")
    writer.writeheader()
    for entry in runs:
        for row in _metric_rows(entry["evaluation"]):
            writer.writerow({key: entry[key] for key in ("ratio", "folder", "params_after", "kept_ratio")} | row)
    return buffer.getvalue()


def _number(value: Any, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def inspect_table(manifest: Mapping[str, Any]) -> str:
    """The manifest as text: a row per layer (shape, rank, parameters, kept energy, λ, α, solve
    paths, fallbacks), then the totals and the notes."""
    lam, alpha = manifest.get("lam"), manifest.get("alpha")
    lines = ["| layer | shape (out × in) | rank | params before → after | kept energy | λ | α | solve paths | fallback |",
             "|---|---|---|---|---|---|---|---|---|"]
    for layer in manifest["layers"]:
        paths = ", ".join(f"{k}:{v}" for k, v in layer["paths"].items()) or "—"
        energy = "—" if layer["kept_energy"] is None else f"{layer['kept_energy']:.4f}"
        lines.append(f"| {layer['name']} | {layer['out_features']} × {layer['in_features']} | "
                     f"{'dense' if layer['rank'] is None else layer['rank']} | {layer['params_before']:,} → "
                     f"{layer['params_after']:,} | {energy} | {_number(lam)} | {_number(alpha)} | {paths} | "
                     f"{'yes' if layer['fell_back'] else 'no'} |")
    recipe = manifest["recipe"]
    lines += ["", f"recipe {recipe.get('name')}, ratio {manifest['ratio']}: {manifest['params_after']:,} of "
                  f"{manifest['params_before']:,} parameters kept ({manifest['params_after'] / manifest['params_before']:.4f}; "
                  f"budget {manifest['budget']:,}, {'met' if manifest['met_budget'] else 'MISSED'})",
              f"λ = {_number(lam)} ({manifest['objective'].get('lam_mode')}, family {manifest['objective'].get('family')}), "
              f"α = {_number(alpha)}: one value for every layer",
              f"versions: {', '.join(f'{k} {v}' for k, v in manifest['versions'].items())}; "
              f"weights sha256 {manifest['fingerprints'].get('weights', '—')[:16]}…, calibration sha256 "
              f"{manifest['fingerprints'].get('calibration', '—')[:16]}…"]
    lines += [f"note: {note}" for note in manifest["notes"]]
    return "\n".join(lines)


def evaluation_table(report: EvaluationReport, horizons: Sequence[int] = ()) -> str:
    """The paper-style table: each metric for both models and the signed change, then per horizon."""
    return report.to_markdown(horizons=horizons) + "\n\nchange = 100 · (compressed − original) / |original|: negative is better."
