"""The GPU check that ``scripts/gpu-check`` runs on a machine with CUDA, ending with one short block:

1. the CUDA variants of the tests (``same_on_cuda``: the conformance suites of physics losses,
   estimators, solvers and adapters; refinement with data on a CUDA model);
2. a compress of ``scot-ns`` at 0.4 with its float64 statistics on the GPU, against the same
   compress on the CPU (ranks, factors, time);
3. ``whitened_factorization`` by the full SVD against the Gram route (``decomposition``), timed on
   a 1536 × 6144 and a 6144 × 1536 float32 weight with float64 statistics (α 0.5 with a Fisher,
   α 0 without); the CUDA variants of step 1 check the Gram route's results against the CPU's;
4. the latency benchmark's quick mode on the GPU;
5. refinement of the reference model at 0.4 (compressed on the CPU) on the GPU in float32 and with its
   default autocast (``"auto"``: bfloat16 where the GPU has it), against the CPU's float32 run:
   seconds per step and the held-out distances.

    .venv/bin/python -m benchmarks.gpu_check [--device cuda] [--only STEP ...]

``--device cpu`` runs the same steps on the CPU (a dry run of this script where there is no GPU; step 3
then times weights ``CPU_SHRINK`` times smaller on each side). ``--only`` runs the named steps alone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from safesvd_core import compress
from safesvd_core.plugin import DEFAULTS, Factorization, whitened_factorization

from . import latency
from .measure import zoo_subject
from .refine_subjects import SUBJECTS, compressed_folder, load_compressed_subject

ROOT = Path(__file__).resolve().parents[1]
ZOO_MODEL, RATIO = "scot-ns", 0.4
#: Weights (out × in) the whitened solve is timed on, and how many times smaller each side is on the CPU.
SPEED_SHAPES, CPU_SHRINK = ((1536, 6144), (6144, 1536)), 8
STEPS = ("conformance", "compress", "whitened", "latency", "refine")
#: Refinement step 5: optimiser steps, items of 32 inputs (2-step trajectories), the options.
REFINE_STEPS, REFINE_ITEMS = 100, 32
REFINE_SETTINGS = {"lr": 3e-4, "warmup": 10, "eval_every": 50}
REFERENCE = SUBJECTS["reference"]


def conformance() -> str:
    """pytest's summary of the CUDA variants of the conformance suites."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "same_on_cuda", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip()[-200:]
    return re.sub(r"=+", "", last).strip()


def compress_on(device: torch.device) -> tuple[dict[str, int | None], dict[str, torch.Tensor], float]:
    """Ranks, dense products of the factored layers (on the CPU) and seconds of a ``scot-ns`` compress on
    ``device``."""
    subject = zoo_subject(ZOO_MODEL)
    model = subject.model.to(device)
    batches = [
        {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
        for batch in subject.calibration
    ]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = compress(model, batches, ratio=RATIO, recipe="safe-svd", **subject.compress_options)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    products = {
        name: result.model.get_submodule(name).weight.detach().double().cpu()
        for name, rank in result.ranks.items()
        if rank is not None
    }
    return dict(result.ranks), products, seconds


def zoo_compress(device: torch.device) -> str:
    """The GPU compress against the CPU one, in one line."""
    ranks, products, seconds = compress_on(device)
    cpu_ranks, cpu_products, cpu_seconds = compress_on(torch.device("cpu"))
    same = sum(ranks[name] == cpu_ranks[name] for name in ranks)
    shared = [name for name in products if name in cpu_products]
    worst = max(
        (
            float(torch.linalg.norm(products[n] - cpu_products[n]) / torch.linalg.norm(cpu_products[n]))
            for n in shared
        ),
        default=float("nan"),
    )
    return (
        f"{ZOO_MODEL} safe-svd at {RATIO}: {seconds:.1f} s on {device} vs {cpu_seconds:.1f} s on cpu; "
        f"ranks equal {same}/{len(ranks)}; largest relative difference of a factored layer {worst:.2e}"
    )


def speed_problem(
    shape: tuple[int, int], device: torch.device, shifted: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A float32 weight and the float64 moment ``sigma`` of ``2n`` random input rows on ``device``; with
    ``shifted`` also those of shifted rows (``sigma_shift``, ``sigma_cross``) and a Fisher of ``2m``
    gradient rows."""
    generator = torch.Generator(device=device).manual_seed(0)
    m, n = shape

    def rows(count: int, size: int) -> torch.Tensor:
        return torch.randn(count, size, generator=generator, device=device, dtype=torch.float64)

    weight, inputs = rows(m, n).float(), rows(2 * n, n)
    stats = {"sigma": inputs.mT @ inputs / len(inputs)}
    if shifted:
        moved, grads = inputs + 0.3 * rows(2 * n, n), rows(2 * m, m)
        stats["sigma_shift"] = moved.mT @ moved / len(moved)
        stats["sigma_cross"] = inputs.mT @ moved / len(moved)
        stats["fisher"] = grads.mT @ grads / len(grads)
    return weight, stats


def timed_solve(
    weight: torch.Tensor, stats: dict[str, torch.Tensor], alpha: float, decomposition: str, repeats: int = 2
) -> tuple[float, Factorization]:
    """The best seconds of ``repeats`` calls of ``whitened_factorization`` (rank ``min(m, n) / 4``), and
    its result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        if weight.is_cuda:
            torch.cuda.synchronize(weight.device)
        start = time.perf_counter()
        result = whitened_factorization(
            weight, min(weight.shape) // 4, **stats, alpha=alpha, decomposition=decomposition
        )
        if weight.is_cuda:
            torch.cuda.synchronize(weight.device)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def whitened_speed(device: torch.device) -> list[str]:
    """The full SVD against the Gram route on ``device``: one line per weight and objective."""
    shrink = CPU_SHRINK if device.type == "cpu" else 1
    for decomposition in ("svd", "gram"):  # starts the solver libraries
        timed_solve(*speed_problem((64, 128), device, shifted=True), 0.5, decomposition)
    lines = []
    for m, n in SPEED_SHAPES:
        shape = (m // shrink, n // shrink)
        for alpha, shifted in ((0.5, True), (0.0, False)):
            weight, stats = speed_problem(shape, device, shifted)
            svd, _ = timed_solve(weight, stats, alpha, "svd")
            gram, result = timed_solve(weight, stats, alpha, "gram")
            lines.append(
                f"whitened {shape[0]}×{shape[1]} float32, α {alpha}{' with a Fisher' if shifted else ''}"
                f" on {device}: svd {svd:.3f} s, gram {gram:.3f} s "
                f"(path {result.record.paths['decomposition']}), svd/gram {svd / gram:.1f}×"
            )
            del weight, stats
    if shrink > 1:
        lines.append(f"whitened: a dry run on the CPU, each side {shrink} times smaller than on a GPU")
    return lines


def latency_lines(device: torch.device) -> list[str]:
    """The latency benchmark's quick mode on ``device``, one line per configuration."""
    return [
        latency.line(row, prefix=f"latency {row['config']} on {device}: ")
        + f"; whole model {row['model_ratio']:.3f}"
        for row in latency.quick(device, repeats=DEFAULTS.repeats)
    ]


def _refined(folder: str, device: torch.device, autocast: str) -> dict[str, float | str]:
    """The reference model compressed (on the CPU) in ``folder``, refined on ``device`` with ``autocast``."""
    from safesvd_core import refine

    original, compressed = load_compressed_subject(REFERENCE, folder)
    items = REFERENCE.items(REFINE_ITEMS)
    refined = refine(
        compressed.to(device),
        original.to(device),
        [tuple(tensor.to(device) for tensor in item) for item in items],
        steps=REFINE_STEPS,
        autocast=autocast,
        **REFERENCE.refine_options(original),
        **REFINE_SETTINGS,
    )
    report = refined.report
    return {
        "autocast": report["autocast"],
        "seconds": report["seconds"] / REFINE_STEPS,
        "closed": report["held_out_closed_form"],
        "refined": report["held_out_refined"],
    }


def refine_lines(device: torch.device) -> list[str]:
    """Refinement on ``device`` (float32 and ``auto``; on the CPU float32 and bfloat16) against the
    CPU's float32 run, one line each."""
    with tempfile.TemporaryDirectory() as work:
        folder = compressed_folder(REFERENCE, work)
        cpu = _refined(folder, torch.device("cpu"), "off")
        choices = ("off", "bfloat16") if device.type == "cpu" else ("off", "auto")
        runs = [
            (choice, cpu if device.type == "cpu" and choice == "off" else _refined(folder, device, choice))
            for choice in choices
        ]
    return [
        f"refine on {device} (autocast {choice} → {run['autocast']}): {run['seconds'] * 1000:.0f} ms/step "
        f"(cpu float32 {cpu['seconds'] * 1000:.0f}); held-out {run['closed']:.4g} → {run['refined']:.4g} "
        f"(cpu float32 {cpu['refined']:.4g}, {100 * (run['refined'] / cpu['refined'] - 1):+.1f} %)"
        for choice, run in runs
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--only", action="append", choices=STEPS, help="run only this step (repeatable; default: all)"
    )
    args = parser.parse_args(argv)
    steps = args.only or STEPS
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu-check: CUDA is not available here (torch "
            + torch.__version__
            + "); run it on a machine with a GPU "
            "and a CUDA build of torch, or pass --device cpu for a dry run",
            file=sys.stderr,
        )
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    block = [f"device: {name}, torch {torch.__version__}"]
    if "conformance" in steps:
        block.append(f"conformance (CUDA variants): {conformance()}")
    if "compress" in steps:
        block.append(f"compress: {zoo_compress(device)}")
    if "whitened" in steps:
        block += whitened_speed(device)
    if "latency" in steps:
        block += latency_lines(device)
    if "refine" in steps:
        block += refine_lines(device)
    print("\n== gpu-check ==\n" + "\n".join(block))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
