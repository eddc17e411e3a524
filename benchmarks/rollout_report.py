"""The rollout page: error growth over autoregressive horizons, every recipe, averaged over the
calibration sets, with safe-svd's ratio to the best baseline and the rollout mechanisms' ablation."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .report import OURS, header

#: safe-svd must stay within this share of the best baseline's degradation at every horizon.
SHARE_OF_BEST = 0.5
#: One-step targets (test split, % change of the base loss) by ratio.
ONE_STEP_TARGETS = {0.6: 0.5, 0.4: 2.0}
TARGET_RATIOS = (0.6, 0.4)


def change(row: dict[str, Any], horizon: int | None = None) -> float:
    """The base-loss change (%) of ``row`` one step ahead on the test split,
    or at ``horizon`` on the trajectories."""
    entries = row["report"]["metrics"] if horizon is None else row["report"]["rollout"][str(horizon)]
    return next(e["change_percent"] for e in entries if e["name"] == "base loss")


def horizons(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(int(h) for h in rows[0]["report"]["rollout"])


def means(rows: list[dict[str, Any]], key: str = "recipe") -> dict[tuple[str, float], dict[Any, float]]:
    """``(label, ratio)`` → column → mean over the calibration sets; columns:
    ``None`` (one step) and each horizon."""
    grouped: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if "error" not in row:
            grouped[row[key], row["ratio"]].append(row)
    out = {}
    for label, group in grouped.items():
        columns: list[int | None] = [None, *horizons(group)]
        out[label] = {column: statistics.fmean(change(row, column) for row in group) for column in columns}
        out[label]["sets"] = len(group)
        out[label]["seconds"] = statistics.fmean(row["seconds"] for row in group)
    return out


def _cells(values: dict[Any, float], columns: list[Any]) -> str:
    return " | ".join(f"{values[c]:.2f}" for c in columns)


#: The row of the copy-the-input predictor (next = current), the floor a surrogate must beat.
COPY = "copy the input (next = current)"


def copy_changes(rows: list[dict[str, Any]], copied: dict[Any, float]) -> dict[Any, float]:
    """The copy predictor's base-loss change (%) against the original model, per column (``None``: one
    step; each horizon), from its losses ``copied`` on the same test data and the original's in ``rows``."""
    first = next(row for row in rows if "error" not in row)["report"]
    original = {None: first["metrics"], **{int(h): entries for h, entries in first["rollout"].items()}}
    base = {
        column: next(e["original"] for e in entries if e["name"] == "base loss")
        for column, entries in original.items()
    }
    return {
        column: 100.0 * (copied[column] - value) / abs(value)
        for column, value in base.items()
        if column in copied
    }


def page(
    rows: list[dict[str, Any]],
    ablation_rows: list[dict[str, Any]],
    command: str,
    images: list[str],
    copy: dict[Any, float] | None = None,
) -> str:
    """The rollout page; ``copy``: the copy-the-input predictor's change against the original per column
    (:func:`copy_changes`), a row of every ratio's table."""
    ok = [row for row in rows if "error" not in row]
    lines = [header("Rollout: error growth over autoregressive horizons", command)]
    if not ok:
        return lines[0] + "No rollout measurements in this run.\n"
    hs = horizons(ok)
    first = ok[0]
    sets = sorted({row["seed"] for row in ok})
    lines.append(
        f"Model `{first['model']}`. Every recipe is calibrated on the same {len(sets)} calibration sets "
        f"(seeds {', '.join(map(str, sets))}) of {first['samples']} trajectories × {first['steps']} steps "
        "each: `safe-svd` calibrates on rollouts (its default), the other recipes on the trajectories' "
        f"teacher-forced one-step batches ({first['samples'] * first['steps']} pairs per set). The numbers "
        "are the relative change (%) of the base loss against the original model, **averaged over the "
        "calibration sets**: one step ahead on the 64-pair test split, and after h autoregressive steps on "
        f"32 test trajectories (h = {', '.join(map(str, hs))})."
        + (
            f" The *{COPY}* row is the error of predicting the current state against the original's, on the "
            "same test data: the floor a surrogate must beat, and the scale of a change."
            if copy is not None
            else ""
        )
        + "\n"
    )
    failed = [row for row in rows if "error" in row]
    for row in failed:
        lines.append(f"- failed: `{row['recipe']}` at {row['ratio']} (set {row.get('seed')}): {row['error']}")
    table = means(ok)
    columns: list[Any] = [None, *hs]
    ratios = sorted({ratio for _, ratio in table}, reverse=True)
    for ratio in ratios:
        lines.append(f"\n## Ratio {ratio}\n")
        lines.append("| method | one step | " + " | ".join(f"h = {h}" for h in hs) + " |")
        lines.append("|---|---|" + "---|" * len(hs))
        recipes = sorted(recipe for recipe, r in table if r == ratio)
        for recipe in recipes:
            lines.append(f"| {recipe} | {_cells(table[recipe, ratio], columns)} |")
        if copy is not None and all(c in copy for c in columns):
            lines.append(f"| *{COPY}* | {_cells(copy, columns)} |")
        baselines = [recipe for recipe in recipes if not recipe.startswith(OURS)]
        if OURS in recipes and baselines:
            best = {c: min(baselines, key=lambda r: table[r, ratio][c]) for c in columns}
            lines.append(
                "| **best baseline** | "
                + " | ".join(f"{table[best[c], ratio][c]:.2f} ({best[c]})" for c in columns)
                + " |"
            )
            lines.append(
                f"| **{OURS} ÷ best** | "
                + " | ".join(
                    f"{table[OURS, ratio][c] / max(table[best[c], ratio][c], 1e-12):.2f}" for c in columns
                )
                + " |"
            )
    lines.append("\n## Targets\n")
    lines += targets(table, hs)
    if ablation_rows:
        lines += ["", ablation(ablation_rows, hs)]
    lines += [
        "",
        "## Per calibration set\n",
        "| method | ratio | set | one step | " + " | ".join(f"h = {h}" for h in hs) + " | time (s) |",
        "|---|---|---|---|" + "---|" * len(hs) + "---|",
    ]
    for row in sorted(ok, key=lambda r: (-r["ratio"], r["recipe"], r["seed"])):
        lines.append(
            f"| {row['recipe']} | {row['ratio']} | {row['seed']} | "
            + " | ".join(f"{change(row, c):.2f}" for c in columns)
            + f" | {row['seconds']:.1f} |"
        )
    lines += ["", *(f"![{name}]({name})" for name in images)]
    return "\n".join(lines) + "\n"


def targets(table: dict[tuple[str, float], dict[Any, float]], hs: list[int]) -> list[str]:
    out = []
    for ratio in TARGET_RATIOS:
        if (OURS, ratio) not in table:
            continue
        ours = table[OURS, ratio]
        baselines = [recipe for recipe, r in table if r == ratio and not recipe.startswith(OURS)]
        for h in hs:
            if not baselines:
                break
            best = min(baselines, key=lambda r: table[r, ratio][h])
            bound = SHARE_OF_BEST * table[best, ratio][h]
            out.append(
                f"- ratio {ratio}, h = {h}: {OURS} {ours[h]:.2f} % against ½ × {table[best, ratio][h]:.2f} % "
                f"({best}) = {bound:.2f} %: **{'met' if ours[h] <= bound else 'MISSED'}**"
            )
        bound = ONE_STEP_TARGETS[ratio]
        out.append(
            f"- ratio {ratio}, one step (test split): {OURS} {ours[None]:.2f} % (target ≤ {bound} %): "
            f"**{'met' if ours[None] <= bound else 'MISSED'}**"
        )
    return out or ["- no safe-svd rows at 0.6 or 0.4: nothing to check"]


def ablation(rows: list[dict[str, Any]], hs: list[int]) -> str:
    """The rollout mechanisms, each a `safe-svd` variant, averaged over the calibration sets."""
    table = means(rows, key="label")
    columns: list[Any] = [None, *hs]
    options = {row["label"]: row["options"] for row in rows}
    passes = {(row["label"], row["ratio"]): row.get("passes", {}) for row in rows if "error" not in row}
    lines = [
        "## Ablation of the rollout mechanisms\n",
        "On the rollout benchmark's setting (`ns2d-transformer`, 32 calibration trajectories × 5 steps, "
        "test split one step ahead and 32 test trajectories at h steps; % change of the base loss): "
        f"`{OURS}` variants on the same calibration sets (means). The options are those beyond the "
        'benchmark\'s (`family="ns-incompressible"`); the row with none is the default. Time: mean '
        "`compress` wall seconds (one thread); passes: of one calibration set.\n",
        "| variant | ratio | options | one step | "
        + " | ".join(f"h = {h}" for h in hs)
        + " | time (s) | passes |",
        "|---|---|---|---|" + "---|" * len(hs) + "---|---|",
    ]
    for (label, ratio), values in sorted(
        table.items(), key=lambda item: (-item[0][1], list(options).index(item[0][0]))
    ):
        shown = ", ".join(f"{k}={v}" for k, v in options[label].items() if k != "family") or "—"
        counted = ", ".join(f"{k} {v}" for k, v in passes[label, ratio].items())
        lines.append(
            f"| {label} | {ratio} | {shown} | {_cells(values, columns)} | {values['seconds']:.1f} | "
            f"{counted} |"
        )
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['label']} | {row['ratio']} | failed: {row['error']} |" + " |" * (len(hs) + 1)
            )
    tuned = [row for row in rows if row.get("tuning")]
    if tuned:
        lines.append(
            '\nHeld-out choices (`"auto"` options): '
            + "; ".join(
                f"{row['label']} at {row['ratio']} (set {row['seed']}): {row['tuning']['chosen']}"
                for row in tuned
            )
        )
    return "\n".join(lines)


def plot(out: Path, rows: list[dict[str, Any]]) -> list[str]:
    """Error growth: one panel per ratio, the base-loss change against the horizon, a line per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [row for row in rows if "error" not in row]
    if not ok:
        return []
    table, hs = means(ok), horizons(ok)
    ratios = sorted({ratio for _, ratio in table}, reverse=True)
    figure, axes = plt.subplots(1, len(ratios), figsize=(4.2 * len(ratios), 3.8), squeeze=False, sharey=True)
    for axis, ratio in zip(axes[0], ratios):
        for recipe in sorted(recipe for recipe, r in table if r == ratio):
            values = [max(table[recipe, ratio][h], 1e-3) for h in hs]
            style = {"linewidth": 2.5, "color": "black"} if recipe == OURS else {"linewidth": 1.0}
            axis.plot(hs, values, marker="o", label=recipe, **style)
        axis.set(xlabel="horizon h (autoregressive steps)", title=f"ratio {ratio}", yscale="log", xticks=hs)
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("base-loss change vs original (%)")
    axes[0][-1].legend(fontsize=7, loc="best")
    figure.suptitle("Error growth over rollouts (mean over calibration sets)")
    figure.tight_layout()
    figure.savefig(out / "rollout_growth.png", dpi=120)
    plt.close(figure)
    return ["rollout_growth.png"]
