"""Scale run: compress a model with Poseidon-L's layer shapes end to end on this machine.

    .venv/bin/python -m benchmarks.scale            # about 20 min on 2 cores; writes docs/results/scale.md

The model is :class:`safesvd_adapters.hf_models.SmallScOT` (HF Swinv2 blocks in a U-Net) at
Poseidon-L's shapes: 128² inputs, patch 4, embedding 192, four levels of depth 8 in the encoder
and in the decoder, 3/6/12/24 heads, window 16, MLP ratio 4 (Poseidon-L's ConvNeXt blocks on the
skip connections are left out), with random weights. Calibration: a few compressible-Euler
pairs from the seeded generator (short spin-up and lead time: the weights are random, so only
the shapes and the cost matter). The recipe is ``safe-svd`` with the ``euler-compressible``
family; the clean statistics are capped in memory and spilled to disk (``statistics_memory``).
Wall time and peak resident memory of this process are recorded against the targets of < 30
min and < 20 GiB.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from safesvd_core import compress
from safesvd_data import GENERATORS

from .report import header

#: Poseidon-L's Swinv2 shapes (Herde et al., 2024: scOT-L), as keyword arguments of ``small_scot``.
POSEIDON_L = {"size": 128, "patch": 4, "embed_dim": 192, "depths": (8, 8, 8, 8), "heads": (3, 6, 12, 24),
              "window": 16, "mlp_ratio": 4.0}
CHANNELS = {"channels": ["rho", "p", "u", "v"], "roles": ["density", "pressure", "velocity_x", "velocity_y"],
            "periodic": True}
TARGET_SECONDS = 30 * 60
TARGET_GIB = 20.0


def peak_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def calibration_batches(samples: int, batch: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``samples`` compressible-Euler pairs on a 128² grid, in Poseidon's batch convention."""
    pairs = GENERATORS["euler"](samples=samples, size=POSEIDON_L["size"], seed=seed, spin_up=0.05,
                                lead_time=0.05).generate()
    return [{"pixel_values": pairs.inputs[i:i + batch].float(), "labels": pairs.targets[i:i + batch].float(),
             "time": torch.full((len(pairs.inputs[i:i + batch]),), 0.05)}
            for i in range(0, samples, batch)]


def relative_deviation(adapter, original, compressed, batches) -> float:
    """``‖f_c(x) − f(x)‖ / ‖f(x)‖`` over the batches (random weights: a sanity number, not fidelity)."""
    num = den = 0.0
    with torch.no_grad():
        for batch in batches:
            reference = adapter.predict(original, batch)
            num += float(torch.sum((adapter.predict(compressed, batch) - reference) ** 2))
            den += float(torch.sum(reference ** 2))
    return (num / den) ** 0.5


def latency(adapter, model, batch, repeats: int = 3) -> float:
    """Median wall seconds of one forward pass on ``batch`` (after one warm-up pass)."""
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            adapter.predict(model, batch)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--samples", type=int, default=8, help="calibration samples")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--memory", default="6GiB", help="cap on the clean statistics held in memory")
    parser.add_argument("--spill-dir", type=Path, default=None, help="default: a temporary directory, removed after")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    from safesvd_adapters.framework import require

    require("transformers", adapter="transformers", extra="transformers")
    from safesvd_adapters.hf import TransformersAdapter
    from safesvd_adapters.hf_models import small_scot

    start = time.perf_counter()
    model = small_scot(channels=len(CHANNELS["channels"]), **POSEIDON_L)
    build_seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    batches = calibration_batches(args.samples, args.batch, seed=1)
    data_seconds = time.perf_counter() - start
    adapter = TransformersAdapter(**CHANNELS)
    print(f"model {params:,} parameters built in {build_seconds:.0f} s; {args.samples} calibration samples in "
          f"{data_seconds:.0f} s", file=sys.stderr)

    spill_dir = args.spill_dir or Path(tempfile.mkdtemp(prefix="safesvd-scale-")) / "statistics"
    try:
        start = time.perf_counter()
        result = compress(model, batches, ratio=args.ratio, recipe="safe-svd", family="euler-compressible",
                          adapter=adapter, statistics_memory=args.memory, spill_dir=spill_dir, progress=True)
        seconds = time.perf_counter() - start
        peak = peak_gib()
        spilled_bytes = sum(f.stat().st_size for f in spill_dir.iterdir())
        deviation = relative_deviation(adapter, model, result.model, batches[:1])
        latency_ratio = latency(adapter, result.model, batches[0]) / latency(adapter, model, batches[0])
    finally:
        if args.spill_dir is None:
            shutil.rmtree(spill_dir.parent, ignore_errors=True)

    blocks = adapter.blocks(model) or []
    command = "python -m benchmarks.scale" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    lines = [header("Scale run: a Poseidon-L-shaped model compressed on this machine", command.strip(),
                    threads=f"this run uses {args.threads} threads")]
    lines.append(f"Model: `SmallScOT` (HF Swinv2 U-Net) at Poseidon-L's shapes {POSEIDON_L}, random weights, "
                 f"{params:,} parameters (Poseidon-L: about 628M; its ConvNeXt skip blocks are not modelled). "
                 f"{len(result.ranks)} compressible layers in {len(blocks)} blocks. Calibration: {args.samples} "
                 f"compressible-Euler samples at {POSEIDON_L['size']}², batches of {args.batch}. Recipe `safe-svd` with the "
                 f"`euler-compressible` family (λ = {result.lam:.3g}), ratio {args.ratio}, clean statistics capped "
                 f"at {args.memory} in memory and spilled to disk.\n")
    lines.append("| quantity | value |")
    lines.append("|---|---|")
    rows = [
        ("parameters before → after", f"{result.params_before:,} → {result.params_after:,} "
                                      f"({result.kept_ratio:.3f}; budget met: {result.met_budget})"),
        ("compression wall time", f"{seconds:.0f} s ({seconds / 60:.1f} min)"),
        ("time by phase (s)", ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items() if k != "total")),
        ("peak resident memory (whole process)", f"{peak:.1f} GiB"),
        ("passes over the calibration set", ", ".join(f"{k} {v}" for k, v in result.passes.items())),
        ("stages", f"{len(result.stages)} ({len(blocks)} blocks; the other stages are single layers outside blocks)"),
        ("statistics spilled to disk", f"{spilled_bytes / 2**30:.1f} GiB"),
        ("solves that left the Cholesky path", f"{len(result.fallbacks)} of {len(result.records)}"),
        ("CPU latency, compressed / original", f"{latency_ratio:.3f} (parameter ratio {result.kept_ratio:.3f}; "
                                               f"a batch of {args.batch}, median of 3)"),
        ("relative output deviation, first batch", f"{deviation:.3e} (random weights: a sanity check, not fidelity)"),
        ("model build / data generation (not timed above)", f"{build_seconds:.0f} s / {data_seconds:.0f} s"),
    ]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines.append("\n## Targets\n")
    lines.append(f"- wall time {seconds / 60:.1f} min (target < {TARGET_SECONDS // 60} min): "
                 f"**{'met' if seconds < TARGET_SECONDS else 'MISSED'}**")
    if args.ratio <= 0.6:
        bound = 1.15 * result.kept_ratio
        lines.append(f"- CPU latency ratio {latency_ratio:.3f} (target ≤ 1.15 × parameter ratio = {bound:.3f}): "
                     f"**{'met' if latency_ratio <= bound else 'MISSED'}**")
    lines.append(f"- peak memory {peak:.1f} GiB (target < {TARGET_GIB:.0f} GiB): **{'met' if peak < TARGET_GIB else 'MISSED'}**")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
