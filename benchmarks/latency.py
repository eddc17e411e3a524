"""Inference latency of compressed models: every factored layer timed dense and factored on the
input shapes it sees in the model's forward pass, their summed time against their parameter
ratio, and the whole model's latency ratio.

    .venv/bin/python -m benchmarks.latency --quick   # reference model at 0.4, < 2 min on 1 thread
    .venv/bin/python -m benchmarks.latency           # the scale run's ranks → docs/results/latency.md

``--quick`` compresses the bundled reference model with each configuration (``safe-svd``,
``svd-llm``, and ``safe-svd+latency``: the latency allocator under a latency budget with
``merge_slow``) and ends with the line ``compressed layers: time ratio X, parameter ratio Y`` of
``safe-svd``. The full run times the Poseidon-L-shaped model of ``benchmarks.scale`` at the ranks
each configuration chose in the last scale run (``docs/results/raw/scale-poseidon-l.json``, or the
older ``scale.json``): the model is rebuilt with random weights and random factors of those shapes,
since dense matrix products take the same time whatever the values; the whole-model ratio the scale
run measured on its real factors is shown beside it. ``--device cuda`` times on a GPU (``scripts/gpu-check``).
"""

from __future__ import annotations

import argparse
import collections
import copy
import functools
import json
import statistics
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from safesvd_core import LowRankLinear, compress
from safesvd_core.plugin import DEFAULTS, count_parameters, linear_map, median_seconds, set_submodule

from . import scale
from .measure import FAMILY, reference_subject
from .report import header

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
RATIO = 0.4
#: Targets: the compressed layers' time ratio against their parameter ratio (CPU), the whole model's
#: latency ratio.
LAYERS_TARGET = 1.15
MODEL_TARGET = 0.65
#: Configuration name → (recipe, options) on the reference model (``--quick``); the same three as the
#: scale run.
QUICK_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "safe-svd": ("safe-svd", {"family": FAMILY}),
    "svd-llm": ("svd-llm", {}),
    "safe-svd+latency": (
        "safe-svd",
        {
            "family": FAMILY,
            "allocator": "latency",
            "allocator_options": {"latency_ratio": scale.LATENCY_RATIO},
            "merge_slow": True,
        },
    ),
}
Forward = Callable[[nn.Module], Any]


def input_shapes(model: nn.Module, names: list[str], forward: Forward) -> dict[str, collections.Counter]:
    """How often each input shape reaches each layer of ``names`` in one ``forward(model)``."""
    shapes: dict[str, collections.Counter] = {name: collections.Counter() for name in names}

    def record(name: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        shapes[name][tuple(args[0].shape)] += 1

    handles = [
        model.get_submodule(name).register_forward_pre_hook(functools.partial(record, name)) for name in names
    ]
    try:
        with torch.no_grad():
            forward(model)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def time_layers(
    original: nn.Module,
    compressed: nn.Module,
    ranks: Mapping[str, int | None],
    forward: Forward,
    device: torch.device,
    repeats: int,
) -> list[dict[str, Any]]:
    """Per factored layer: its dense and factored seconds over the calls of one forward, on random
    inputs of the shapes that forward gives it; rank, shape and parameters."""
    factored = [name for name, rank in ranks.items() if rank is not None]
    shapes = input_shapes(original, factored, forward)
    rows = []
    for name in factored:
        dense, low = original.get_submodule(name), compressed.get_submodule(name)
        if not isinstance(low, LowRankLinear):
            raise ValueError(
                f"layer {name!r} has rank {ranks[name]} but is a {type(low).__name__} in the compressed model"
            )
        seconds = {"dense": 0.0, "factored": 0.0}
        for shape, calls in shapes[name].items():
            x = torch.randn(shape, device=device, dtype=low.first.weight.dtype)
            for kind, module in (("dense", dense), ("factored", low)):
                seconds[kind] += calls * median_seconds(functools.partial(module, x), repeats, device)
        weight = linear_map(original, name)
        rows.append(
            {
                "layer": name,
                "out": weight.out_features,
                "in": weight.in_features,
                "rank": low.rank,
                "calls": sum(shapes[name].values()),
                "input": list(max(shapes[name], key=shapes[name].get, default=())),
                "dense_seconds": seconds["dense"],
                "factored_seconds": seconds["factored"],
                "dense_params": count_parameters(dense),
                "factored_params": count_parameters(low),
            }
        )
    return rows


def summary(layers: list[dict[str, Any]]) -> dict[str, float]:
    """The compressed layers' summed time ratio and parameter ratio."""
    total = {
        key: sum(row[key] for row in layers)
        for key in ("dense_seconds", "factored_seconds", "dense_params", "factored_params")
    }
    return {
        "time_ratio": total["factored_seconds"] / total["dense_seconds"],
        "param_ratio": total["factored_params"] / total["dense_params"],
        "dense_seconds": total["dense_seconds"],
        "factored_seconds": total["factored_seconds"],
    }


def model_ratio(
    original: nn.Module, compressed: nn.Module, forward: Forward, device: torch.device, repeats: int
) -> dict[str, float]:
    """Median seconds of one forward of each model, the two timed in turn (a load that comes and
    goes on a shared machine falls on both), and their ratio."""
    models = {"original": original, "compressed": compressed}
    times: dict[str, list[float]] = {kind: [] for kind in models}
    with torch.no_grad():
        for model in models.values():
            forward(model)  # warm-up
        for _ in range(repeats):
            for kind, model in models.items():
                times[kind].append(median_seconds(functools.partial(forward, model), 1, device, warmup=0))
    before, after = statistics.median(times["original"]), statistics.median(times["compressed"])
    return {
        "model_seconds_original": before,
        "model_seconds_compressed": after,
        "model_ratio": after / before,
    }


def measure(
    config: str,
    original: nn.Module,
    compressed: nn.Module,
    ranks: Mapping[str, int | None],
    forward: Forward,
    device: torch.device,
    repeats: int,
) -> dict[str, Any]:
    """One configuration's row: per-layer times, their summary and the whole-model ratio."""
    layers = time_layers(original, compressed, ranks, forward, device, repeats)
    return {
        "config": config,
        "device": str(device),
        "factored": len(layers),
        "layers_total": len(ranks),
        **summary(layers),
        **model_ratio(original, compressed, forward, device, repeats),
        "layers": layers,
    }


def with_random_factors(model: nn.Module, ranks: Mapping[str, int | None], seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose layers with a rank are :class:`LowRankLinear` with random factors of
    that rank (scaled to keep activations of order one) and the original bias."""
    generator = torch.Generator().manual_seed(seed)
    copied = copy.deepcopy(model)
    for name, rank in ranks.items():
        if rank is None:
            continue
        layer = linear_map(model, name)
        weight = layer.weight
        first = (
            torch.randn(rank, layer.in_features, generator=generator, dtype=weight.dtype)
            / layer.in_features**0.5
        )
        second = torch.randn(layer.out_features, rank, generator=generator, dtype=weight.dtype) / rank**0.5
        bias = None if layer.bias is None else layer.bias.detach().clone()
        set_submodule(
            copied,
            name,
            LowRankLinear.from_factors(
                first.to(weight.device), second.to(weight.device), bias, channel_dim=layer.channel_dim
            ),
        )
    return copied


def quick(device: torch.device, repeats: int) -> list[dict[str, Any]]:
    """Compress the reference model with each configuration and time it (16 test samples a forward)."""
    subject = reference_subject()
    test = subject.test()
    original = subject.model.to(device).eval()
    forward: Forward = lambda model: subject.forward(model, [(test[0][0].to(device),)])  # noqa: E731
    rows = []
    for config, (recipe, options) in QUICK_CONFIGS.items():
        result = compress(
            subject.model,
            subject.calibration,
            ratio=RATIO,
            recipe=recipe,
            **subject.compress_options,
            **options,
        )
        rows.append(
            measure(config, original, result.model.to(device).eval(), result.ranks, forward, device, repeats)
        )
        print(line(rows[-1], prefix=f"{config}: "), flush=True)
    return rows


def full(device: torch.device, repeats: int, scale_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time the scale model at each scale-run configuration's ranks (random factors of those shapes)."""
    shape, batch = scale_rows[0]["shape"], scale_rows[0]["batch"]
    torch.manual_seed(0)
    channels = len(scale.CHANNELS["channels"])
    from safesvd_adapters.hf import TransformersAdapter
    from safesvd_adapters.scot_like import scot_like

    original = (
        scot_like(
            **scale.SHAPES[shape],
            num_channels=channels,
            num_out_channels=channels,
            channel_slice_list_normalized_loss=scale.EULER_GROUPS,
        )
        .to(device)
        .eval()
    )
    adapter = TransformersAdapter(**scale.CHANNELS)
    inputs = {
        key: value.to(device)
        for key, value in scale.calibration_batches(batch, batch, seed=1, size=original.config.image_size)[
            0
        ].items()
    }
    forward: Forward = lambda model: adapter.predict(model, inputs)  # noqa: E731
    rows = []
    for scale_row in scale_rows:
        compressed = with_random_factors(original, scale_row["ranks"]).eval()
        row = measure(scale_row["recipe"], original, compressed, scale_row["ranks"], forward, device, repeats)
        rows.append({**row, "scale_model_ratio": scale_row["latency_ratio"], "kept": scale_row["kept"]})
        print(line(row, prefix=f"{scale_row['recipe']}: "), flush=True)
        del compressed
    return rows


def line(row: dict[str, Any], prefix: str = "") -> str:
    """The benchmark's summary line."""
    return (
        f"{prefix}compressed layers: time ratio {row['time_ratio']:.3f}, "
        f"parameter ratio {row['param_ratio']:.3f}"
    )


def _grouped(layers: list[dict[str, Any]]) -> list[str]:
    """Per layer shape and input rows: how many, ranks, summed times and ratios."""
    groups: dict[tuple[int, int, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for layer in layers:
        groups[(layer["out"], layer["in"], "×".join(map(str, layer["input"])))].append(layer)
    out = [
        "| out × in | input shape | layers | ranks | dense ms | factored ms | time ratio | parameter ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (m, n, shape), members in sorted(
        groups.items(), key=lambda item: -sum(r["dense_seconds"] for r in item[1])
    ):
        part = summary(members)
        ranks = sorted(r["rank"] for r in members)
        out.append(
            f"| {m} × {n} | {shape} | {len(members)} | {ranks[0]}–{ranks[-1]} | "
            f"{1e3 * part['dense_seconds']:.2f} | {1e3 * part['factored_seconds']:.2f} | "
            f"{part['time_ratio']:.3f} | {part['param_ratio']:.3f} |"
        )
    return out


def _per_layer(layers: list[dict[str, Any]]) -> list[str]:
    out = [
        "| layer | out × in | rank | calls | dense ms | factored ms | time ratio | parameter ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| `{r['layer']}` | {r['out']} × {r['in']} | {r['rank']} | {r['calls']} | "
        f"{1e3 * r['dense_seconds']:.3f} | {1e3 * r['factored_seconds']:.3f} | "
        f"{r['factored_seconds'] / r['dense_seconds']:.3f} | {r['factored_params'] / r['dense_params']:.3f} |"
        for r in layers
    ]
    return out


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """Each target, met or missed, on the CPU rows."""
    out = []
    for row in (r for r in rows if r["device"] == "cpu"):
        bound = LAYERS_TARGET * row["param_ratio"]
        out.append(
            f"- `{row['config']}`: compressed layers' time ratio {row['time_ratio']:.3f} against ≤ "
            f"{LAYERS_TARGET} × their parameter ratio {row['param_ratio']:.3f} = {bound:.3f}: "
            f"**{'met' if row['time_ratio'] <= bound else 'MISSED'}**"
        )
        if row["config"].startswith("safe-svd"):
            out.append(
                f"- `{row['config']}`: whole-model latency ratio {row['model_ratio']:.3f} (target ≤ "
                f"{MODEL_TARGET}): **{'met' if row['model_ratio'] <= MODEL_TARGET else 'MISSED'}**"
            )
    return out


def page(rows: list[dict[str, Any]], command: str, scale_rows: list[dict[str, Any]], source: Path) -> str:
    """docs/results/latency.md."""
    first = scale_rows[0]
    lines = [
        header(
            "Inference latency of the compressed scale model",
            command,
            threads=f"this run uses {torch.get_num_threads()} threads",
        ),
        f"Model: the Poseidon-L-shaped ScOT stand-in of `scale.md` ({first['params_before']:,} parameters, "
        f"{first['layers']} compressible layers), a batch of {first['batch']} at {first['image_size']}², "
        f"ratio {RATIO}. Ranks: those each configuration chose in the scale run (`{source.name}`); the "
        "factors here are random of those shapes (a dense product takes the same time whatever its values), "
        "and the scale run's whole-model ratio on its real factors is shown beside this run's. Each layer is "
        "timed alone, dense and factored, on random inputs of the shapes it receives in the model's forward "
        "pass (median of the timed calls after two warm-up calls, times the number of calls); the whole "
        "model: the original and the compressed model called in turn, the median of each. `safe-svd+latency` "
        'is safe-svd with `allocator="latency"`, `allocator_options={"latency_ratio": '
        f"{scale.LATENCY_RATIO}}}` and `merge_slow=True`.\n",
        "| config | device | layers factored | compressed layers: parameter ratio | time ratio | time / "
        "parameter ratio | whole model: latency ratio | scale run (real factors) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r['config']}` | {r['device']} | {r['factored']} of {r['layers_total']} | "
        f"{r['param_ratio']:.3f} | {r['time_ratio']:.3f} | {r['time_ratio'] / r['param_ratio']:.2f} | "
        f"{r['model_ratio']:.3f} ({r['model_seconds_compressed']:.2f} s / {r['model_seconds_original']:.2f} "
        f"s) | {r['scale_model_ratio']:.3f} |"
        for r in rows
    ]
    lines += ["\n## Targets (CPU)\n", *targets(rows), "\n## GPU\n"]
    if any(r["device"].startswith("cuda") for r in rows):
        lines.append("The rows on `cuda` above were measured on the GPU named in the header's machine line.")
    else:
        lines.append(
            "No GPU was available to this run, so there are no GPU figures. `scripts/gpu-check` runs the "
            "quick mode of this benchmark on CUDA (with the CUDA conformance tests and a float64 compress on "
            "the GPU) where one is."
        )
    for r in rows:
        lines += [
            f"\n## `{r['config']}` ({r['device']}) by layer shape\n",
            *_grouped(r["layers"]),
            "\n<details><summary>every factored layer</summary>\n",
            *_per_layer(r["layers"]),
            "\n</details>",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="the reference model, compressed here; prints only"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=DEFAULTS.repeats, help="timed calls per layer measurement"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--scale-rows",
        type=Path,
        default=None,
        help="the scale run's raw rows (default: OUT/raw/scale-poseidon-l.json, else OUT/raw/scale.json)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.quick:
        rows = quick(device, args.repeats)
        print(line(rows[0]))
        return 0
    raw = args.scale_rows or scale.rows_file(args.out / "raw", "poseidon-l")
    if not raw.is_file():
        parser.error(f"{raw} is missing: run python -m benchmarks.scale first (its rows carry the ranks)")
    scale_rows = json.loads(raw.read_text())
    rows = full(device, args.repeats, scale_rows)
    command = (
        "python -m benchmarks.latency" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    )
    (args.out / "raw" / "latency.json").write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "latency.md").write_text(page(rows, command.strip(), scale_rows, raw))
    print(line(rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
