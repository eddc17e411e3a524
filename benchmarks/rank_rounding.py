"""Does rounding ranks to a multiple make a factored layer's parameters cheaper to run? A
``LowRankLinear`` forward of each factored-layer shape of the Poseidon-L-scale model
(docs/results/latency.md, "by layer shape", with the input shape it sees there) timed at ranks r and
at r rounded as ``rank_multiple`` rounds it (down to a multiple of q; up to q from below q), for
q = 8, 16, 32, on CPU with one thread.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.rank_rounding   # ~2 min → docs/results/rank-rounding.md

Each point is the median over ``--rounds`` interleaved rounds (every variant of one shape and r
timed in turn, so that a drift of the machine hits them alike) of the median of ``--repeats`` calls
after two warm-up calls. The figure is the time per kept parameter at the rounded rank over that
at r: below 1 the rounded rank's parameters run faster. Then: the time of ranks 1 to 64 of two
shapes (the staircase), an estimate for the whole set of the scale model's factored layers (the
`safe-svd` ranks of ``docs/results/raw/latency.json``, each at its rank and at its rank rounded to
the nearest multiple, at least q: about as many parameters; the allocator's own re-spend needs
the spectra, which the file does not hold) and the multiple ``rank_multiple="auto"`` chooses for
these shapes on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from safesvd_core import LowRankLinear
from safesvd_core.plugin import LatencyProfile, LayerCandidate, measured_multiple, median_seconds

from .report import header

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
#: (out, in, input shape) of the scale model's factored layers (latency.md, "by layer shape").
SHAPES = [
    (6144, 1536, (2, 16, 1536)),
    (1536, 1536, (2, 16, 1536)),
    (768, 768, (2, 64, 768)),
    (384, 384, (2, 256, 384)),
    (192, 192, (8, 256, 192)),
]
RANKS = (17, 25, 42, 111, 134, 313)
MULTIPLES = (8, 16, 32)
#: The shapes of the staircase (ranks 1 to ``SWEEP``).
SWEEP_SHAPES = [(1536, 1536, (2, 16, 1536)), (384, 384, (2, 256, 384))]
SWEEP = 64


def rounded(rank: int, multiple: int) -> int:
    """``rank`` as ``rank_multiple`` rounds it with ``min_rank`` 1: down to a multiple, up from below it."""
    return max(rank // multiple, 1) * multiple


def _seconds(out: int, inputs: int, shape: tuple[int, ...], rank: int, repeats: int) -> float:
    layer = LowRankLinear(inputs, out, rank)
    x = torch.randn(*shape)
    return median_seconds(lambda: layer(x), repeats)


def measure_ranks(
    shape: tuple[int, int, tuple[int, ...]], ranks, rounds: int, repeats: int
) -> dict[int, float]:
    """Rank → median seconds per call of the ``shape`` layer, the ranks interleaved over ``rounds``."""
    out, inputs, input_shape = shape
    times: dict[int, list[float]] = {k: [] for k in ranks}
    for _ in range(rounds):
        for k in times:
            times[k].append(_seconds(out, inputs, input_shape, k, repeats))
    return {k: statistics.median(values) for k, values in times.items()}


def table(rounds: int, repeats: int) -> tuple[list[str], dict[int, list[float]]]:
    """The page's rows, and per q every ratio (time per parameter rounded / unrounded)."""
    rows, ratios = [], {q: [] for q in MULTIPLES}
    for out, inputs, input_shape in SHAPES:
        break_even = out * inputs // (out + inputs)
        for rank in (r for r in RANKS if r < break_even):
            variants = sorted({rank, *(rounded(rank, q) for q in MULTIPLES)})
            seconds = measure_ranks((out, inputs, input_shape), variants, rounds, repeats)
            per_rank = seconds[rank] / rank
            cells = []
            for q in MULTIPLES:
                k = rounded(rank, q)
                ratio = seconds[k] / k / per_rank
                ratios[q].append(ratio)
                cells.append(f"{k}: {seconds[k] * 1e3:.3f} ms, **{ratio:.2f}**")
            shape = "×".join(map(str, input_shape))
            rows.append(
                f"| {out} × {inputs} | {shape} | {rank} | {seconds[rank] * 1e3:.3f} | "
                + " | ".join(cells)
                + " |"
            )
            print(rows[-1], flush=True)
    return rows, ratios


def sweep(rounds: int, repeats: int) -> list[str]:
    """Rows of the staircase: ms per call at ranks 1 to ``SWEEP`` of each ``SWEEP_SHAPES`` shape."""
    times = {shape[:2]: measure_ranks(shape, range(1, SWEEP + 1), rounds, repeats) for shape in SWEEP_SHAPES}
    return [
        f"| {rank} | " + " | ".join(f"{times[shape[:2]][rank] * 1e3:.3f}" for shape in SWEEP_SHAPES) + " |"
        for rank in range(1, SWEEP + 1)
    ]


def nearest(rank: int, multiple: int) -> int:
    """The multiple of ``multiple`` nearest ``rank`` (at least ``multiple``)."""
    return max(round(rank / multiple), 1) * multiple


def model_estimate(layers: list[dict], rounds: int, repeats: int) -> list[str]:
    """Rows: the summed time and parameters of ``layers`` (rows of latency.json) at their ranks and at
    their ranks rounded to the nearest multiple of each q, interleaved layer by layer."""
    variants = (1, *MULTIPLES)
    rank = lambda layer, q: min(nearest(layer["rank"], q), layer["out"], layer["in"])  # noqa: E731
    samples: dict[tuple[int, int], list[float]] = {}
    for _ in range(rounds):
        for index, layer in enumerate(layers):
            for q in variants:
                seconds = _seconds(layer["out"], layer["in"], tuple(layer["input"]), rank(layer, q), repeats)
                samples.setdefault((q, index), []).append(seconds * layer["calls"])
    times = {q: sum(statistics.median(samples[q, index]) for index in range(len(layers))) for q in variants}
    params = {q: sum(rank(layer, q) * (layer["out"] + layer["in"]) for layer in layers) for q in variants}
    return [
        f"| {q} | {times[q] * 1e3:.1f} | {params[q]:,} | {params[q] / params[1]:.3f} | "
        f"{times[q] / times[1]:.3f} | **{times[q] / params[q] / (times[1] / params[1]):.3f}** |"
        for q in variants
    ]


def auto_multiple(repeats: int) -> int:
    """What ``rank_multiple="auto"`` chooses for these shapes, each at the table's ranks below break-even."""
    layers, ranks = [], {}
    for index, (out, inputs, input_shape) in enumerate(SHAPES):
        rows = 1
        for size in input_shape[:-1]:
            rows *= size
        for rank in (r for r in RANKS if r < out * inputs // (out + inputs)):
            name = f"{out}x{inputs}.{rank}"
            spectrum = torch.ones(min(out, inputs))
            layers.append(
                LayerCandidate(
                    name=name, out_features=out, in_features=inputs, spectrum=spectrum, order=index, rows=rows
                )
            )
            ranks[name] = rank
    return measured_multiple(layers, ranks, LatencyProfile(repeats=repeats, cache=False).measure)


def page(
    args: argparse.Namespace,
    rows: list[str],
    ratios: dict[int, list[float]],
    model: list[str],
    count: int,
    auto: int,
    staircase: list[str],
) -> str:
    """The results page."""
    heads = " | ".join(f"q = {q}: rank, time, **ratio**" for q in MULTIPLES)
    summary = ", ".join(
        f"q = {q}: median {statistics.median(values):.2f} (range {min(values):.2f}–{max(values):.2f})"
        for q, values in ratios.items()
    )
    sweep_heads = " | ".join(f"{m} × {n} ({'×'.join(map(str, shape))}) ms" for m, n, shape in SWEEP_SHAPES)
    shapes = [
        header("Rank rounding: time per parameter at rounded ranks", "python -m benchmarks.rank_rounding"),
        f"{args.note}\n\n" if args.note else "",
        "A `LowRankLinear` forward of each factored-layer shape of the Poseidon-L-scale model (with its "
        "input shape in that model's forward pass, latency.md), at rank r and at r rounded as "
        "`rank_multiple` rounds it (down to a multiple of q, up to q from below q). **ratio**: time per "
        "kept parameter at the rounded rank over that at r (below 1: faster parameters). Median of "
        f"{args.rounds} interleaved rounds of the median of {args.repeats} calls, one thread, CPU.\n\n",
        f"| out × in | input | r | ms at r | {heads} |\n|---|---|---|---|{'---|' * len(MULTIPLES)}\n",
        "\n".join(rows),
        f"\n\nRatio over every shape and r: {summary}.\n\n",
        f'`rank_multiple="auto"` on these shapes and ranks, measured on this machine: q = {auto}.\n\n',
    ]
    scale = [
        f"## The scale model's `{args.config}` layers\n\n",
        f"Its {count} factored layers (`{args.ranks.name}`), each timed at its rank (q = 1) and at its "
        "rank rounded to the nearest multiple of q (at least q; about as many parameters), summed: median "
        f"of {args.model_rounds} interleaved rounds of the median of {args.model_repeats} calls. "
        "**time / parameter**: the summed time per kept parameter against q = 1 (latency.md's "
        "`time / parameter ratio` scales by it, its dense side unchanged).\n\n",
        "| q | summed ms | parameters | parameters / q = 1 | time / q = 1 | time / parameter |\n",
        "|---|---|---|---|---|---|\n",
        "\n".join(model),
        "\n\n",
    ]
    sweep_table = [
        f"<details><summary>ms per call at ranks 1 to {SWEEP}</summary>\n\n",
        f"| rank | {sweep_heads} |\n|---|{'---|' * len(SWEEP_SHAPES)}\n",
        "\n".join(staircase),
        "\n\n</details>\n",
    ]
    return "".join(shapes + scale + sweep_table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--model-rounds", type=int, default=7)
    parser.add_argument("--model-repeats", type=int, default=15)
    parser.add_argument("--ranks", type=Path, default=RESULTS / "raw" / "latency.json")
    parser.add_argument("--config", default="safe-svd")
    parser.add_argument("--out", type=Path, default=RESULTS / "rank-rounding.md")
    parser.add_argument("--note", default="", help="a sentence on the machine's load, put under the header")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers = next(row for row in json.loads(args.ranks.read_text()) if row["config"] == args.config)["layers"]
    rows, ratios = table(args.rounds, args.repeats)
    staircase = sweep(args.rounds, args.repeats)
    model = model_estimate(layers, args.model_rounds, args.model_repeats)
    print("\n".join(model), flush=True)
    auto = auto_multiple(args.repeats)
    args.out.write_text(page(args, rows, ratios, model, len(layers), auto, staircase))
    print(f"auto: {auto}; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
