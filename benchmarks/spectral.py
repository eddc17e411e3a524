"""Spectral benchmark: the zoo's Fourier and spherical operators compressed by SAFE-SVD and every
spectral baseline.

    python -m benchmarks.spectral --model fno [--ratios 0.8 0.6 0.4 0.2] [--refine-steps 300]
    python -m benchmarks.spectral --model sfno [--ratios 0.8 0.6 0.4]
    python -m benchmarks.spectral --model sfno --render   # spectral.md from the JSONs, no run

``fno``: the zoo's ``fno-ns`` (``safesvd_zoo.fourier``, neuraloperator, 96 % of its parameters in
Fourier weights); ``sfno``: the zoo's ``sfno-swe`` (``safesvd_zoo.spherical``, torch-harmonics,
89 % in spherical spectral weights). At each ratio, every method at the same parameter budget
(``ratio ×`` the model's parameters):

- ``safe-svd``, ``svd-llm``, ``svd``: the recipes through the model's framework adapter, which makes
  every retained mode (degree) a compressible complex layer (per-mode low rank);
- ``mode truncation`` and ``tucker`` (:mod:`benchmarks.spectral_baselines`);
- ``safe-svd + refine`` and ``svd-llm + refine`` at 0.4: the same training pairs and steps.

Calibration: the one-step pairs of the calibration trajectories. Error: the relative L1 error
against the solver, one step on the test split's pairs and after h = 1, 3, 5, 8 autoregressive
steps from its trajectories; each reported as its % change against the uncompressed model.
Times: compression (one thread, the same process, one after the other), and the forward pass of
32 fields against the original's. Writes ``docs/results/spectral-<model>.json`` and renders
``docs/results/spectral.md`` from every model's JSON present.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from benchmarks.spectral_baselines import fourier_parameters, truncate_modes, tucker_compress
from safesvd_adapters.base_losses import relative_l1
from safesvd_core import Refinement, compress, registry
from safesvd_core.plugin import median_seconds
from safesvd_zoo import fourier, spherical

HORIZONS = (1, 3, 5, 8)
#: Label → (recipe, its options). ``svd-llm + greedy``: SVD-LLM's whitening with one global greedy
#: allocation over all modes and layers (the published recipe gives every layer the same share).
RECIPES = {
    "safe-svd": ("safe-svd", {}),
    "svd-llm": ("svd-llm", {}),
    "svd-llm + greedy": ("svd-llm", {"allocator": "greedy"}),
    "svd": ("svd", {}),
}
#: The spectral baselines the targets name (the other rows are reported beside them).
NAMED_BASELINES = ("svd-llm", "svd", "mode truncation", "tucker")
#: The ratio at which both recipes are also refined.
REFINE_RATIO = 0.4


@attrs.frozen
class Subject:
    """One zoo model of the benchmark: its module (``load``, ``pairs``, ``trajectories``,
    ``TRAIN_STEPS``), adapter, ratios, the page's description and notes, and its targets."""

    title: str
    zoo: ModuleType
    adapter: str
    options: dict[str, Any]
    ratios: tuple[float, ...]
    describe: Callable[[dict[str, Any]], str]
    notes: tuple[str, ...]
    targets: Callable[[dict[str, Any], list[dict[str, Any]]], list[str]]


def errors(model: nn.Module, pairs: tuple[Tensor, Tensor], rollouts: tuple[Tensor, Tensor]) -> list[float]:
    """Relative L1 error one step ahead, then at each of :data:`HORIZONS`."""
    with torch.no_grad():
        values = [float(relative_l1(model(pairs[0]), pairs[1]))]
        state, frames = rollouts
        for step in range(max(HORIZONS)):
            state = model(state)
            if step + 1 in HORIZONS:
                values.append(float(relative_l1(state, frames[:, step])))
    return values


def forward_seconds(model: nn.Module, inputs: Tensor) -> float:
    """Median seconds of one forward pass on ``inputs``."""
    with torch.no_grad():
        return median_seconds(lambda: model(inputs), repeats=7)


def _row(method: str, ratio: float, model: nn.Module, params: int, seconds: float | None, data: dict) -> dict:
    return {
        "method": method,
        "ratio": ratio,
        "params": params,
        "errors": errors(model, data["pairs"], data["rollouts"]),
        "seconds": seconds,
        "forward": forward_seconds(model, data["pairs"][0][:32]),
    }


def measure(
    subject: Subject, ratios: tuple[float, ...], refine_steps: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The original's errors and times, and one row per method and ratio."""
    torch.set_num_threads(1)
    zoo = subject.zoo
    model = zoo.load()
    inputs, targets = zoo.pairs("calibration")
    calibration = [(inputs[i : i + 32], targets[i : i + 32]) for i in range(0, len(inputs), 32)]
    train_inputs, train_targets = zoo.pairs("train", zoo.TRAIN_STEPS)
    refine_data = [(train_inputs[i : i + 16], train_targets[i : i + 16]) for i in range(0, 512, 16)]
    data = {"pairs": zoo.pairs("test"), "rollouts": zoo.trajectories("test")}
    adapter = registry("model_adapter").create(subject.adapter, **subject.options)
    prepared = adapter.prepare(copy.deepcopy(model))
    total = sum(p.numel() for p in model.parameters())
    original = {
        "errors": errors(model, data["pairs"], data["rollouts"]),
        "forward": forward_seconds(model, data["pairs"][0][:32]),
        "params": total,
        "spectral": fourier_parameters(prepared),
        "calibration_pairs": len(inputs),
    }
    rows = []
    for ratio in ratios:
        budget = int(ratio * total)
        for label, (recipe, options) in RECIPES.items():
            start = time.perf_counter()
            result = compress(model, calibration, ratio=ratio, adapter=adapter, recipe=recipe, **options)
            seconds = time.perf_counter() - start
            rows.append(_row(label, ratio, result.model, result.params_after, seconds, data))
            print(rows[-1], flush=True)
        start = time.perf_counter()
        truncated = truncate_modes(prepared, budget)
        params = sum(p.numel() for p in truncated.parameters())
        rows.append(_row("mode truncation", ratio, truncated, params, time.perf_counter() - start, data))
        print(rows[-1], flush=True)
        start = time.perf_counter()
        tucker_model, tucker_params = tucker_compress(prepared, budget)
        rows.append(_row("tucker", ratio, tucker_model, tucker_params, time.perf_counter() - start, data))
        print(rows[-1], flush=True)
    if refine_steps and REFINE_RATIO in ratios:
        for recipe in ("safe-svd", "svd-llm"):
            start = time.perf_counter()
            result = compress(
                model,
                calibration,
                ratio=REFINE_RATIO,
                adapter=adapter,
                recipe=recipe,
                refine=Refinement(refine_data, refine_steps),
            )
            seconds = time.perf_counter() - start
            rows.append(
                _row(f"{recipe} + refine", REFINE_RATIO, result.model, result.params_after, seconds, data)
            )
            print(rows[-1], flush=True)
    return original, rows


def change(value: float, reference: float) -> float:
    """Signed % change of an error against the uncompressed model's."""
    return 100.0 * (value - reference) / reference


def section(subject: Subject, measured: dict[str, Any]) -> list[str]:
    """One model's part of the page: its description, table, targets and notes."""
    original, rows, refine_steps = measured["original"], measured["rows"], measured["refine_steps"]
    base = original["errors"]
    lines = [
        f"## {subject.title}",
        "",
        f"Command: `{measured['command']}` (one thread).",
        "",
        subject.describe(original)
        + " Uncompressed relative L1 test error: "
        + ", ".join(f"{label} {value:.4f}" for label, value in zip(_labels(), base, strict=True))
        + ".",
        "",
        "Each cell: the % change of the relative L1 test error against the uncompressed model, one "
        "step / h1 / h3 / h5 / h8. Every method at the same budget (`ratio ×` the parameters); "
        f"calibration on {original['calibration_pairs']} one-step pairs; closed form unless `+ refine` "
        f"({refine_steps} steps on 512 training pairs, the same for both).",
        "",
        "| method | ratio | parameters | one step / h1 / h3 / h5 / h8 (%) | compression (s) "
        "| forward / original |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = " / ".join(f"{change(v, b):+.2f}" for v, b in zip(row["errors"], base, strict=True))
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        lines.append(
            f"| {row['method']} | {row['ratio']} | {row['params']:,} | {cells} | {seconds} | "
            f"{row['forward'] / original['forward']:.2f}× |"
        )
    targets = subject.targets(original, rows) + timing_targets(rows)
    lines += ["", "### Targets", "", *targets, "", "### Notes", "", *subject.notes, ""]
    return lines


def render(sections: list[list[str]]) -> str:
    """docs/results/spectral.md from every model's section."""
    lines = [
        "# Spectral layers: the zoo's Fourier and spherical operators compressed by SAFE-SVD and the "
        "spectral baselines",
        "",
        "Written by `benchmarks/spectral.py` from `spectral-<model>.json` (one run per model).",
        "",
    ]
    for part in sections:
        lines += part
    return "\n".join(lines).rstrip() + "\n"


SFNO_NOTES = [
    "- Every recipe runs through the `torch-harmonics` adapter's defaults: the base loss `relative-l2`, "
    "no PDE family. Each degree `l` of a spectral layer is one complex map shared by its orders "
    "`m ≤ l`; mode truncation keeps the lowest degrees of every layer.",
    "- The model: trained on 2-step unrolled windows (`benchmarks/train_sfno.py`); trained one step at "
    "a time it reached a one-step error of 0.020 but its 8-step rollouts diverged (relative L1 308 "
    "at h8), which would make the horizon columns meaningless.",
    "- The h3 rise of safe-svd and `svd-llm + greedy` (+2.3 % at 0.8, where one step is unchanged): "
    "the solver's fields hold degrees below 11 only, so the first block's degrees 11–25 see no input "
    "in one-step calibration; their spectra are zero and the greedy drops them (15 degrees at 0.8). "
    "A rollout feeds the model's own predictions, which do reach those degrees. Calibrated on the "
    "calibration trajectories instead (4 steps, the rollout-stable calibration of docs/method.md), "
    "no degree is dropped and every column of safe-svd at 0.8 is within ±0.01 %. For an "
    "autoregressive model, calibrate on trajectories.",
    "- Compression time: 17–20 s against svd-llm's 4 s; the statistics are updated degree by degree "
    "(each degree's orders are its rows) and the stages run each spectral layer's 32 degrees one by "
    "one while they are captured.",
]
FNO_NOTES = [
    "- Every recipe runs through the `neuraloperator` adapter's defaults: the base loss `relative-l2` "
    "(the FNO's training loss), no PDE family. With `relative-h1` (the relative Sobolev H¹ norm, the "
    "default before the per-input gains) safe-svd's test error changes by +0.22 / +0.26 / +0.36 / "
    "+0.51 / +0.63 % at 0.4 and +12.9 / +22.2 / +21.6 / +22.9 / +24.6 % at 0.2.",
    "- `svd-llm` and `svd` here are per mode with the recipes' uniform allocation: every mode keeps "
    "the same share of its break-even rank (a 32 × 32 mode at 0.8 keeps rank 12 of 32). `svd-llm + "
    "greedy` keeps SVD-LLM's whitening and allocates one global budget greedily over all modes and "
    'layers, as safe-svd does (`allocator="greedy"`): the strongest baseline here; the only '
    "difference left is the Fisher weighting and the shifted objective.",
    '- What reached the 0.2 target: the greedy\'s per-input gains (`gains="per-input"`: a mode '
    "sees one row per input, a skip convolution 1,024) and the FNO's own loss. Before, with per-row "
    "gains and `relative-h1`, 0.2 gave +17.2 % one step, and none of these reached 10 %: λ = 0 "
    "+62 %, automatic λ +15.7 %, λ = 1 +18 %, λ = 10 +23 %, the empirical Fisher +30 %, α = 0 +33 %, "
    "rollout calibration on 4-step trajectories +18 % (with the NS family then); with per-input "
    "gains and `relative-h1`, Fisher jitter 1e-2 +14.5 %, α = 0.3 or 0.95 +12.8 / +12.9 %.",
    "- Inference is about as fast as the original's (the forward column: one median of 7 calls of "
    "32 fields per model, on a machine shared with other work), not faster: each Fourier layer's "
    "modes run grouped (the dense ones in one batched product, the factored ones in two, their "
    "factors padded to the layer's largest rank and stacked at every call), and the FFTs, which the "
    "compression does not shrink, dominate at this size.",
    "- Compression time: safe-svd's stages against svd-llm's single pass. A Fourier layer's modes "
    "share one run (siblings) and its skip convolution shares its stage (it reads the layer's input); "
    "at 0.4 that is 4 stage passes and 4 prefix passes (`result.passes`), and the clean pass adds the "
    "Fisher's backward: 3.1 s of clean pass and 3.5 s of stages against svd-llm's 1.9 s and 0.5 s in "
    "one profile. The statistics are updated mode by mode (two moments for each of 336 modes on each "
    "batch), a cost svd-llm pays only once per mode.",
]


def _labels() -> list[str]:
    return ["one step"] + [f"h{h}" for h in HORIZONS]


def _changes(row: dict[str, Any], base: list[float]) -> list[float]:
    return [abs(change(value, reference)) for value, reference in zip(row["errors"], base, strict=True)]


def fno_targets(original: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets on the zoo FNO, each met or missed with its figure."""
    base = original["errors"]
    out = []
    closed = [row for row in rows if "refine" not in row["method"]]
    for ratio in sorted({row["ratio"] for row in closed}, reverse=True):
        at = {row["method"]: row for row in closed if row["ratio"] == ratio}
        if "safe-svd" not in at:
            continue
        worst = max(_changes(at["safe-svd"], base))
        others = {method: max(_changes(row, base)) for method, row in at.items() if method != "safe-svd"}
        limit = {0.4: 1.0, 0.2: 10.0}.get(ratio)
        if limit is not None:
            verdict = "met" if worst <= limit else "missed"
            out.append(
                f"- {ratio}: safe-svd's largest |change| {worst:.2f} % (target ≤ {limit:g} %): **{verdict}**"
            )
        named = {method: value for method, value in others.items() if method in NAMED_BASELINES}
        for compared, what in ((named, "the named baselines'"), (others, "every other row's")):
            best_method = min(compared, key=compared.get)
            share = worst / compared[best_method] if compared[best_method] > 0 else float("inf")
            verdict = "met" if share <= 0.1 else "missed"
            out.append(
                f"- {ratio}: safe-svd's largest |change| is {share:.3f}× the best of {what} "
                f"({best_method}, {compared[best_method]:.2f} %; target ≤ 0.1×): **{verdict}**"
            )
    return out


def sfno_targets(original: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets on the zoo SFNO: at 0.4, at every horizon ≤ ½ of the best other method's
    change there; one step ≤ 2 % with refinement."""
    base = original["errors"]
    at = {row["method"]: row for row in rows if row["ratio"] == REFINE_RATIO}
    out = []
    if "safe-svd" in at:
        ours = _changes(at["safe-svd"], base)
        closed = {m: _changes(r, base) for m, r in at.items() if m != "safe-svd" and "refine" not in m}
        for index, label in enumerate(_labels()):
            best = min(closed, key=lambda method: closed[method][index])
            share = ours[index] / closed[best][index] if closed[best][index] > 0 else float("inf")
            verdict = "met" if share <= 0.5 else "missed"
            out.append(
                f"- {REFINE_RATIO}, {label}: safe-svd's |change| {ours[index]:.2f} % is {share:.3f}× the "
                f"best other method's ({best}, {closed[best][index]:.2f} %; target ≤ 0.5×): **{verdict}**"
            )
    if "safe-svd + refine" in at:
        one_step = _changes(at["safe-svd + refine"], base)[0]
        verdict = "met" if one_step <= 2.0 else "missed"
        out.append(
            f"- {REFINE_RATIO} with refinement: one step |change| {one_step:.2f} % (target ≤ 2 %): "
            f"**{verdict}**"
        )
    return out


def timing_targets(rows: list[dict[str, Any]]) -> list[str]:
    """Compression time against svd-llm's at each ratio (target ≤ 3×)."""
    timed = {(row["method"], row["ratio"]): row["seconds"] for row in rows if "refine" not in row["method"]}
    out = []
    for ratio in sorted({ratio for _, ratio in timed}, reverse=True):
        if ("safe-svd", ratio) in timed and ("svd-llm", ratio) in timed:
            factor = timed[("safe-svd", ratio)] / timed[("svd-llm", ratio)]
            verdict = "met" if factor <= 3 else "missed"
            out.append(f"- {ratio}: compression {factor:.2f}× svd-llm's time (target ≤ 3×): **{verdict}**")
    return out


def _describe_fno(original: dict[str, Any]) -> str:
    return (
        "Model: `fno-ns` (`safesvd_zoo.fourier`): neuraloperator `FNO`, width 32, 12 × 12 modes, 4 "
        f"layers, {original['params']:,} parameters of which {original['spectral']:,} "
        f"({100 * original['spectral'] / original['params']:.1f} %) are complex Fourier weights (a "
        "complex weight counts as one parameter). Trained on 2-D incompressible NS (32², lead time 0.25)."
    )


def _describe_sfno(original: dict[str, Any]) -> str:
    return (
        "Model: `sfno-swe` (`safesvd_zoo.spherical`): torch-harmonics `SFNO`, embedding 32, 4 "
        f"blocks, degrees up to 32, {original['params']:,} parameters of which "
        f"{original['spectral']:,} ({100 * original['spectral'] / original['params']:.1f} %) are "
        "complex spherical spectral weights. Trained on the shallow-water equations on the sphere "
        "(torch-harmonics' solver, 32 × 64 equiangular grid, lead time 1 hour)."
    )


SUBJECTS = {
    "fno": Subject(
        title="FNO on 2-D Navier–Stokes (`fno-ns`)",
        zoo=fourier,
        adapter="neuraloperator",
        options={
            "channels": ("u", "v"),
            "roles": ("velocity_x", "velocity_y"),
            "periodic": True,
            "spacing": fourier.FIELD.spacing,
        },
        ratios=(0.8, 0.6, 0.4, 0.2),
        describe=_describe_fno,
        notes=tuple(FNO_NOTES),
        targets=fno_targets,
    ),
    "sfno": Subject(
        title="SFNO on the shallow-water equations (`sfno-swe`)",
        zoo=spherical,
        adapter="torch-harmonics",
        options={},
        ratios=(0.8, 0.6, 0.4),
        describe=_describe_sfno,
        notes=tuple(SFNO_NOTES),
        targets=sfno_targets,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(SUBJECTS), required=True)
    parser.add_argument("--ratios", type=float, nargs="+")
    parser.add_argument("--refine-steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--render", action="store_true", help="only render spectral.md from the JSONs")
    args = parser.parse_args()
    subject = SUBJECTS[args.model]
    ratios = tuple(args.ratios) if args.ratios else subject.ratios
    command = f"python -m benchmarks.spectral --model {args.model}" + (
        "" if ratios == subject.ratios else " --ratios " + " ".join(map(str, ratios))
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.render:
        original, rows = measure(subject, ratios, args.refine_steps)
        measured = {"command": command, "refine_steps": args.refine_steps, "original": original, "rows": rows}
        (args.out / f"spectral-{args.model}.json").write_text(json.dumps(measured, indent=1) + "\n")
    sections = [
        section(SUBJECTS[name], json.loads((args.out / f"spectral-{name}.json").read_text()))
        for name in SUBJECTS
        if (args.out / f"spectral-{name}.json").is_file()
    ]
    page = render(sections)
    (args.out / "spectral.md").write_text(page)
    print(page)


if __name__ == "__main__":
    main()
