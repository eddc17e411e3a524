"""Scale runs: compress models with Poseidon's layer shapes end to end on this machine.

    .venv/bin/python -m benchmarks.scale --shape l     # Poseidon-L's shapes: about 45 min on 2 cores
    .venv/bin/python -m benchmarks.scale --shape t     # Poseidon-T's shapes: minutes
    .venv-full/bin/python -m benchmarks.scale --shape swin --samples 32 --batch 1 --threads 1
                                                       # Aurora-small (needs aurora): minutes
    .venv/bin/python -m benchmarks.scale --render      # scale.md again from the raw rows; runs nothing
    .venv/bin/python -m benchmarks.scale --shape tiny  # checks this script in seconds (temporary --out)

The times are for the three configurations (the default ``--configs``).

The model is the ScOT stand-in :class:`safesvd_adapters.scot_like.ScOTLike` (Poseidon's ScOT
structure: ``ScOTLayer`` blocks of HF Swinv2 attention in a U-Net, time-conditioned LayerNorms,
ConvNeXt blocks on the skip connections) with random weights at the shapes of ``--shape``:
``poseidon-l`` (short ``l``, the default; ``POSEIDON_SHAPES["L"]``: 128² inputs, patch 4, embedding
192, four levels of depth 8 in the encoder and in the decoder, 3/6/12/24 heads, window 16, MLP ratio
4, two ConvNeXt blocks on each of the three upper skips; about 629M parameters) or ``poseidon-t``
(short ``t``; ``POSEIDON_SHAPES["T"]``: the same with embedding 48 and depth 4; about 21M); its
config's loss groups follow the Euler channels ([ρ], [p], [u, v]). Calibration: a few
compressible-Euler pairs from the seeded generator (short spin-up and lead time: the weights are
random, so only the shapes and the cost matter). ``safe-svd`` (with the ``euler-compressible``
family) and ``svd-llm`` run in the same invocation, each in a fresh process, their clean statistics
capped in memory and spilled to disk (``SpillPolicy``), and so does ``safe-svd+latency``:
safe-svd with the ``latency`` allocator under a latency budget and ``merge_slow``. Wall time, peak
resident memory and the latency ratio are recorded against the shape's targets (``TARGETS``); the
memory estimate the library logs before its first pass is shown.

Each shape's rows, ranks and run included, go to ``docs/results/raw/scale-<shape>.json`` (the
Poseidon-L rows of older runs: ``raw/scale.json``, read when ``scale-poseidon-l.json`` is absent);
``benchmarks.latency`` times the Poseidon-L ranks. ``docs/results/scale.md`` holds one section per
shape with raw rows, so running one shape keeps the other's section. ``tiny`` is a check of the
script, not a result: without ``--out`` it writes to a temporary directory, and its section is
rendered only by its own run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from safesvd_core import SpillPolicy, compress
from safesvd_core.plugin import Phase, RunHook, RunState, make_adapter, median_seconds, tensor_leaves
from safesvd_data import GENERATORS

from .report import header

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
#: ``--shape``: Poseidon-L's and Poseidon-T's (Herde et al., 2024: ScOT-L and ScOT-T,
#: ``POSEIDON_SHAPES``), or a tiny one that checks this script in seconds; keyword arguments of ``scot_like``.
SHAPES: dict[str, dict[str, Any]] = {
    "poseidon-l": {"size": "L"},
    "poseidon-t": {"size": "T"},
    # not the stand-in: Microsoft Aurora's AuroraSmall (benchmarks/swin_subject.py; needs `aurora`)
    "swin": {"aurora": "AuroraSmall"},
    "tiny": {
        "size": "T",
        "image_size": 32,
        "patch_size": 2,
        "embed_dim": 16,
        "depths": (2, 2),
        "num_heads": (2, 4),
        "skip_connections": (2, 0),
        "window_size": 4,
    },
}
#: Short names ``--shape`` also accepts.
ALIASES = {"l": "poseidon-l", "t": "poseidon-t"}
#: Shapes that check the script: rendered only by their own run, written to a temporary ``--out`` by default.
CHECKS = ("tiny",)
#: Each shape's section heading, and the real model's size beside the stand-in's parameter count.
TITLES = {
    "poseidon-l": "Poseidon-L shape",
    "poseidon-t": "Poseidon-T shape",
    "swin": "3-D Swin shape (Aurora-small)",
    "tiny": "tiny shape (a check of this script, not a result)",
}
POSEIDON_NOTES = {"poseidon-l": " (Poseidon-L: about 629M)", "poseidon-t": " (Poseidon-T: about 21M)"}
CHANNELS = {
    "channels": ["rho", "p", "u", "v"],
    "roles": ["density", "pressure", "velocity_x", "velocity_y"],
    "periodic": True,
}
#: The loss's channel groups in the model's config, in the Euler generator's channel order: [ρ], [p], [u, v].
EULER_GROUPS = (0, 1, 2, 4)
OURS, REFERENCE = "safe-svd", "svd-llm"
#: The compressed layers' share of their dense time under the latency budget of ``safe-svd+latency``.
LATENCY_RATIO = 0.3


@dataclasses.dataclass(frozen=True)
class Targets:
    """A shape's targets, judged at ``ratio`` only; ``None`` (or ``False``): no such target."""

    ratio: float = 0.4
    #: Each configuration's compression wall time, strictly below.
    seconds: float | None = None
    #: Each configuration's peak resident memory, strictly below.
    gib: float | None = None
    #: ``safe-svd``'s wall time over ``svd-llm``'s in the same run, at most.
    times_reference: float | None = None
    #: The safe-svd configurations' whole-model CPU latency ratio at most ``svd-llm``'s in the same run.
    latency_within_reference: bool = False


#: Targets by shape (a shape absent here has none).
TARGETS: dict[str, Targets] = {
    "poseidon-l": Targets(seconds=12 * 60, gib=14.0, times_reference=1.2, latency_within_reference=True),
    "poseidon-t": Targets(times_reference=2.0),
    "swin": Targets(times_reference=2.0),
}
#: The run behind ``raw/scale.json``, written before the rows carried their run (from the page it made).
LEGACY_RUN = {
    "generated": "Measured by `python -m benchmarks.scale --configs safe-svd,svd-llm --memory 4GiB --out "
    "/tmp/scale-out2` at git revision `987e55d` on 2026-12-01 (x86_64, cpu, torch 2.13.0+cpu, 2 threads; "
    "this run uses 2 threads).",
    "samples": 8,
    "memory": "4GiB",
    "ratio": 0.4,
}


def peak_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def calibration_batches(samples: int, batch: int, seed: int, size: int) -> list[dict[str, torch.Tensor]]:
    """``samples`` compressible-Euler pairs on a ``size``² grid, in Poseidon's batch convention."""
    pairs = GENERATORS["euler"](
        samples=samples, size=size, seed=seed, spin_up=0.05, lead_time=0.05
    ).generate()
    return [
        {
            "pixel_values": pairs.inputs[i : i + batch].float(),
            "labels": pairs.targets[i : i + batch].float(),
            "time": torch.full((len(pairs.inputs[i : i + batch]),), 0.05),
        }
        for i in range(0, samples, batch)
    ]


def relative_deviation(adapter, original, compressed, batches) -> float:
    """``‖f_c(x) − f(x)‖ / ‖f(x)‖`` over the batches and every floating tensor of the predictions
    (random weights: a sanity number, not fidelity)."""
    num = den = 0.0
    with torch.no_grad():
        for batch in batches:
            pairs = zip(
                tensor_leaves(adapter.predict(compressed, batch)),
                tensor_leaves(adapter.predict(original, batch)),
                strict=True,
            )
            for (_, new), (_, old) in pairs:
                if old.is_floating_point():
                    num += float(torch.sum((new - old) ** 2))
                    den += float(torch.sum(old**2))
    return (num / den) ** 0.5


def _subject(shape: str) -> tuple[Any, Any, int | str, Callable[[int, int], list[Any]]]:
    """``shape``'s model, adapter, grid size (a side of the square grid, or the grid's description)
    and its calibration data: ``(samples, batch)`` → the batches."""
    if shape == "swin":
        from . import swin_subject

        if not swin_subject.available():
            raise SystemExit("the swin shape needs the aurora package (run it in .venv-full)")
        model = swin_subject.build()
        adapter = make_adapter("generic", {"block_names": swin_subject.block_names(model)})
        size = f"{swin_subject.HEIGHT}×{swin_subject.WIDTH}"
        return model, adapter, size, lambda samples, batch: swin_subject.items(model, samples)
    from safesvd_adapters.framework import require

    require("transformers", adapter="transformers", extra="transformers")
    from safesvd_adapters.hf import TransformersAdapter
    from safesvd_adapters.scot_like import scot_like

    channels = len(CHANNELS["channels"])
    model = scot_like(
        **SHAPES[shape],
        num_channels=channels,
        num_out_channels=channels,
        channel_slice_list_normalized_loss=EULER_GROUPS,
    )
    size = model.config.image_size
    return (
        model,
        TransformersAdapter(**CHANNELS),
        size,
        lambda samples, batch: calibration_batches(samples, batch, seed=1, size=size),
    )


#: Configuration name → (recipe, its options).
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    OURS: (OURS, {"family": "euler-compressible"}),
    REFERENCE: (REFERENCE, {}),
    # SVD-LLM given safesvd's Gram route (the same minimiser), to show what the route alone buys
    f"{REFERENCE}+gram": (REFERENCE, {"decomposition": "gram"}),
    "safe-svd+latency": (
        OURS,
        {
            "family": "euler-compressible",
            "allocator": "latency",
            "allocator_options": {"latency_ratio": LATENCY_RATIO},
            "merge_slow": True,
        },
    ),
}


class _PeakByPhase(RunHook):
    """The process's peak resident memory when each phase is done (where the peak was reached)."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}

    def phase_done(self, state: RunState, phase: Phase) -> None:
        self.peaks[phase.name] = peak_gib()


class _Lines(logging.Handler):
    """Keeps the messages of the ``safesvd`` logger (the memory estimate among them)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def measure_scale(
    config: str,
    shape: str,
    ratio: float,
    samples: int,
    batch: int,
    memory: str,
    spill_dir: Path | None,
    threads: int,
) -> dict[str, Any]:
    """Build, calibrate and compress with ``config`` (in a fresh process: its own peak memory);
    plain numbers."""
    recipe, options = CONFIGS[config]
    logging.basicConfig(
        level=logging.INFO, format="%(name)s: %(message)s"
    )  # the estimate, before the first pass
    lines = _Lines()
    logging.getLogger("safesvd").addHandler(lines)
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model, adapter, size, make_batches = _subject(shape)
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    batches = make_batches(samples, batch)
    data_seconds = time.perf_counter() - start
    if shape == "swin":  # Aurora's predictions are weather batches: no PDE family applies
        options = {key: value for key, value in options.items() if key != "family"}
    directory = spill_dir or Path(tempfile.mkdtemp(prefix="safesvd-scale-")) / "statistics"
    peaks = _PeakByPhase()
    try:
        start = time.perf_counter()
        result = compress(
            model,
            batches,
            ratio=ratio,
            recipe=recipe,
            adapter=adapter,
            statistics=SpillPolicy(directory, memory),
            progress=True,
            hooks=[peaks],
            **options,
        )
        seconds = time.perf_counter() - start
        peak = peak_gib()
        spilled_bytes = sum(f.stat().st_size for f in directory.iterdir())
    finally:
        if spill_dir is None:
            shutil.rmtree(directory.parent, ignore_errors=True)
    return {
        "recipe": config,
        "seconds": seconds,
        "peak_gib": peak,
        "peak_by_phase": peaks.peaks,
        "spilled_gib": spilled_bytes / 2**30,
        "params_before": result.params_before,
        "params_after": result.params_after,
        "kept": result.kept_ratio,
        "met_budget": result.met_budget,
        "lam": result.lam,
        "layers": len(result.ranks),
        "blocks": len(adapter.blocks(model) or []),
        "stages": len(result.stages),
        "image_size": size,
        "timings": {k: v for k, v in result.timings.items() if k != "total"},
        "passes": dict(result.passes),
        "solved": len(result.records),
        "fallbacks": len(result.fallbacks),
        "latency_ratio": (
            median_seconds(functools.partial(adapter.predict, result.model, batches[0]), 3, warmup=1)
            / median_seconds(functools.partial(adapter.predict, model, batches[0]), 3, warmup=1)
        ),
        "deviation": relative_deviation(adapter, model, result.model, batches[:1]),
        "build_seconds": build_seconds,
        "data_seconds": data_seconds,
        "batch": batch,
        "shape": shape,
        "memory_estimate": next((line for line in lines.lines if line.startswith("estimated memory")), None),
        "ranks": dict(result.ranks),
        "reports": result.reports,
        "notes": list(result.notes),
    }


def _table(rows: list[dict[str, Any]], batch: int) -> list[str]:
    """One column per recipe."""
    reference = next((row["seconds"] for row in rows if row["recipe"] == REFERENCE), None)
    quantities: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        (
            "parameters before → after",
            lambda r: (
                f"{r['params_before']:,} → {r['params_after']:,} ({r['kept']:.3f}; "
                f"budget met: {r['met_budget']})"
            ),
        ),
        ("compression wall time", lambda r: f"{r['seconds']:.0f} s ({r['seconds'] / 60:.1f} min)"),
        (f"× {REFERENCE} (same run)", lambda r: f"{r['seconds'] / reference:.2f}" if reference else "—"),
        ("time by phase (s)", lambda r: ", ".join(f"{k} {v:.0f}" for k, v in r["timings"].items())),
        ("peak resident memory (its process)", lambda r: f"{r['peak_gib']:.1f} GiB"),
        (
            "peak so far when each phase is done (GiB)",
            lambda r: (
                ", ".join(f"{k} {v:.1f}" for k, v in r.get("peak_by_phase", {}).items()) or "— (not recorded)"
            ),
        ),
        ("passes over the calibration set", lambda r: ", ".join(f"{k} {v}" for k, v in r["passes"].items())),
        (
            "stages",
            lambda r: (
                f"{r['stages']} ({r['blocks']} blocks; the others are single layers outside blocks)"
                if r["passes"].get("stages")
                else "none (not sequential)"
            ),
        ),
        ("clean statistics spilled to disk", lambda r: f"{r['spilled_gib']:.1f} GiB"),
        (
            "layers factored / fallbacks (Cholesky → eigen, Gram → full SVD)",
            lambda r: f"{r['solved']} of {r['layers']} / {r['fallbacks']}",
        ),
        (
            "layers kept dense by merge-slow",
            lambda r: (
                str(len(r["reports"].get("merge-slow", {}).get("merged", {})))
                if "merge-slow" in r["reports"]
                else "— (off)"
            ),
        ),
        (
            "CPU latency, compressed / original",
            lambda r: f"{r['latency_ratio']:.3f} (a batch of {batch}, median of 3)",
        ),
        ("relative output deviation, first batch", lambda r: f"{r['deviation']:.3e}"),
        (
            "model build / data generation (not timed above)",
            lambda r: f"{r['build_seconds']:.0f} s / {r['data_seconds']:.0f} s",
        ),
    ]
    lines = [
        "| quantity | " + " | ".join(f"`{row['recipe']}`" for row in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    lines += [f"| {name} | " + " | ".join(value(row) for row in rows) + " |" for name, value in quantities]
    return lines


def _verdict(met: bool) -> str:
    return f"**{'met' if met else 'MISSED'}**"


def _targets(rows: list[dict[str, Any]], ratio: float, targets: Targets | None) -> list[str]:
    """One line per target and configuration, met or **MISSED**, with the figures."""
    if targets is None:
        return ["None for this shape."]
    if not math.isclose(ratio, targets.ratio):
        return [f"None at ratio {ratio}: this shape's targets are set at ratio {targets.ratio}."]
    reference = next((row for row in rows if row["recipe"] == REFERENCE), None)
    missing = f"not judged: no `{REFERENCE}` row in this run"
    out = []
    for row in rows:
        name, minutes = row["recipe"], row["seconds"] / 60
        parts = []
        if targets.seconds is not None:
            parts.append(
                f"wall time {minutes:.1f} min (target < {targets.seconds / 60:g} min): "
                + _verdict(row["seconds"] < targets.seconds)
            )
        if targets.gib is not None:
            parts.append(
                f"peak memory {row['peak_gib']:.1f} GiB (target < {targets.gib:g} GiB): "
                + _verdict(row["peak_gib"] < targets.gib)
            )
        if parts:
            out.append(f"- `{name}`: " + "; ".join(parts))
        if targets.latency_within_reference and name.startswith(OURS):
            figure = f"- `{name}`: whole-model CPU latency ratio {row['latency_ratio']:.3f}"
            if reference is None:
                out.append(f"{figure} (target ≤ `{REFERENCE}`'s, same run): {missing}")
            else:
                bound = reference["latency_ratio"]
                out.append(
                    f"{figure} (target ≤ `{REFERENCE}`'s {bound:.3f}, same run): "
                    + _verdict(row["latency_ratio"] <= bound)
                )
        if targets.times_reference is not None and name == OURS:
            bound = f"(target ≤ {targets.times_reference:g}×)"
            if reference is None:
                out.append(f"- `{name}`: its time as a multiple of `{REFERENCE}`'s {bound}: {missing}")
            else:
                times = row["seconds"] / reference["seconds"]
                out.append(
                    f"- `{name}` takes {times:.2f}× the time of `{REFERENCE}` {bound}: "
                    + _verdict(times <= targets.times_reference)
                )
    ours = next((row for row in rows if row["recipe"] == OURS), None)
    gram = next((row for row in rows if row["recipe"] == f"{REFERENCE}+gram"), None)
    if ours is not None and gram is not None:
        out.append(
            f"- no target: `{OURS}` takes {ours['seconds'] / gram['seconds']:.2f}× the time of "
            f"`{REFERENCE}+gram` (SVD-LLM given the same Gram route)"
        )
    return out


def _scot_model(shape: str, first: dict[str, Any], run: dict[str, Any], lam: str) -> str:
    """The model paragraph of a ScOT stand-in shape."""
    return (
        "Model: the ScOT stand-in `ScOTLike` (Poseidon's ScOT structure: `ScOTLayer` blocks of HF Swinv2 "
        f"attention, time-conditioned LayerNorms, ConvNeXt skip blocks) at the shapes {SHAPES[shape]} "
        f"({shape}), random weights, {first['params_before']:,} parameters"
        f"{POSEIDON_NOTES.get(shape, '')}. {first['layers']} compressible layers, "
        f"{first['blocks']} blocks (`ScOTLayer`s and `ConvNeXtBlock`s). Calibration: {run['samples']} "
        f"compressible-Euler samples at {first['image_size']}², batches of {first['batch']}. `{OURS}` uses "
        f'the `euler-compressible` family{lam} and the Gram route (`decomposition="gram"`), `{REFERENCE}` '
        "the full SVD as published; `svd-llm+gram` is svd-llm with the same Gram route (the same "
        "minimiser); `safe-svd+latency` is safe-svd with "
        f'`allocator="latency"`, `allocator_options={{"latency_ratio": {LATENCY_RATIO}}}` and '
        f"`merge_slow=True` (per-layer times: `latency.md`). Ratio {run['ratio']}; every recipe's clean "
        f"statistics capped at {run['memory']} in memory and spilled to disk; each recipe runs in a fresh "
        "process. The weights are random, so the output deviation is a sanity check, not fidelity.\n"
    )


def _swin_model(first: dict[str, Any], run: dict[str, Any]) -> str:
    """The model paragraph of the 3-D Swin shape."""
    return (
        "Model: Microsoft Aurora's `AuroraSmall` (the `aurora` package's own code: Perceiver encoder "
        "and decoder around a 3-D Swin U-Net backbone), random weights drawn from N(0, 0.02²), "
        f"{first['params_before']:,} parameters. {first['layers']} compressible layers, {first['blocks']} "
        f"blocks (its `Swin3DTransformerBlock`s; the modulation layers are conditioning, kept dense). "
        f"Calibration: {run['samples']} random weather batches at {first['image_size']} (one sample, two "
        "history steps, four pressure levels), the target the model's prediction plus noise "
        "(`benchmarks/swin_subject.py`), batches of 1. Aurora predicts weather batches, not one field, so "
        f"`{OURS}` runs without a PDE family, with the Gram route; `{REFERENCE}` the full SVD as "
        f"published. Ratio {run['ratio']}; clean statistics capped at {run['memory']} in memory and "
        "spilled to disk; each recipe runs in a fresh process. The weights are random, so the output "
        "deviation is a sanity check, not fidelity.\n"
    )


def _section(shape: str, rows: list[dict[str, Any]]) -> list[str]:
    """The page's section of one shape: its run, model, table, memory estimates and targets."""
    run, first = rows[0]["run"], rows[0]
    lam = next(
        (f" (λ = {row['lam']:.3g})" for row in rows if row["recipe"] == OURS and row["lam"] is not None), ""
    )
    lines = [f"\n## {TITLES[shape]}\n", run["generated"] + "\n"]
    if shape == "swin":
        lines.append(_swin_model(first, run))
    else:
        lines.append(_scot_model(shape, first, run, lam))
    lines += _table(rows, first["batch"])
    lines.append("\nMemory estimate logged before the first pass (logger `safesvd`):\n")
    lines += [f"- `{row['recipe']}`: {row['memory_estimate'] or 'none logged'}" for row in rows]
    lines.append("\n### Targets\n")
    lines += _targets(rows, run["ratio"], TARGETS.get(shape))
    return lines


def rows_file(raw: Path, shape: str) -> Path:
    """Where ``shape``'s raw rows are: ``raw/scale-<shape>.json``, or for ``poseidon-l`` the older
    ``raw/scale.json`` while the new file is absent."""
    path = raw / f"scale-{shape}.json"
    legacy = raw / "scale.json"
    return legacy if shape == "poseidon-l" and not path.is_file() and legacy.is_file() else path


def load_rows(raw: Path, shape: str) -> list[dict[str, Any]]:
    """``shape``'s raw rows (none if it has no file), each with its run (``LEGACY_RUN`` for old rows)."""
    path = rows_file(raw, shape)
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    if any(row.get("shape") != shape for row in rows):
        return []
    return [{"run": LEGACY_RUN, **row} for row in rows]


def page(raw: Path, command: str, current: str | None) -> str | None:
    """docs/results/scale.md: one section per shape with raw rows (a check shape only when it is
    ``current``); ``None`` when there is none."""
    shapes = [shape for shape in SHAPES if shape not in CHECKS or shape == current]
    sections = [(shape, rows) for shape in shapes if (rows := load_rows(raw, shape))]
    if not sections:
        return None
    lines = [
        header(
            "Scale runs: models with Poseidon's shapes and Aurora-small compressed on this machine",
            command,
            threads="each section gives its run's threads",
        )
    ]
    lines.append(
        "One section per shape measured (`python -m benchmarks.scale --shape l`, `--shape t`, "
        "`--shape swin`), each rendered from its raw rows (`raw/scale-<shape>.json`) and headed by the "
        "run that measured them; running one shape keeps the other shapes' sections."
    )
    for shape, rows in sections:
        lines += _section(shape, rows)
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace, shape: str, parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    """Each configuration of ``--configs`` at ``shape``, in a fresh process; the rows."""
    rows = []
    context = multiprocessing.get_context("spawn")
    for config in args.configs.split(","):
        if config not in CONFIGS:
            parser.error(f"unknown config {config!r}; choose among {', '.join(CONFIGS)}")
        spill_dir = args.spill_dir / config if args.spill_dir else None
        with context.Pool(1) as pool:
            rows.append(
                pool.apply(
                    measure_scale,
                    (
                        config,
                        shape,
                        args.ratio,
                        args.samples,
                        args.batch,
                        args.memory,
                        spill_dir,
                        args.threads,
                    ),
                )
            )
        print(
            json.dumps({k: rows[-1][k] for k in ("recipe", "seconds", "peak_gib", "params_after")}),
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated among {', '.join(CONFIGS)}; each in a fresh process",
    )
    parser.add_argument(
        "--shape",
        choices=(*SHAPES, *ALIASES),
        default=None,
        help="default poseidon-l; l and t: poseidon-l and poseidon-t",
    )
    parser.add_argument(
        "--render", action="store_true", help="runs nothing: renders OUT/scale.md again from OUT/raw"
    )
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--samples", type=int, default=8, help="calibration samples")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--memory", default="6GiB", help="cap on the clean statistics held in memory")
    parser.add_argument(
        "--spill-dir",
        type=Path,
        default=None,
        help="parent of one spill directory per recipe (kept); default: temporary, removed after",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"default {RESULTS}; for {', '.join(CHECKS)}: a new temporary directory",
    )
    args = parser.parse_args(argv)
    shape = ALIASES.get(args.shape, args.shape) if args.shape else None
    out = args.out or (
        Path(tempfile.mkdtemp(prefix=f"safesvd-scale-{shape}-"))
        if shape in CHECKS and not args.render
        else RESULTS
    )
    command = (
        "python -m benchmarks.scale" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    ).strip()
    if not args.render:
        shape = shape or "poseidon-l"
        rows = _run(args, shape, parser)
        run = {
            "generated": header("", command, threads=f"this run uses {args.threads} threads")
            .split("\n\n")[1]
            .replace("Generated by", "Measured by", 1)
            .removesuffix(" Do not edit by hand."),
            "samples": args.samples,
            "memory": args.memory,
            "ratio": args.ratio,
        }
        (out / "raw").mkdir(parents=True, exist_ok=True)
        (out / "raw" / f"scale-{shape}.json").write_text(
            json.dumps([{**row, "run": run} for row in rows], indent=1) + "\n"
        )
    text = page(out / "raw", command, shape)
    if text is None:
        parser.error(f"no raw rows of any shape in {out / 'raw'}: run a shape first")
    (out / "scale.md").write_text(text)
    print(text, end="")
    print(f"wrote {out / 'scale.md'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
