"""The GPU check that ``scripts/gpu-check`` runs on a machine with CUDA, ending with one short block:

1. the CUDA variants of the tests (``same_on_cuda``: the conformance suites of physics losses,
   estimators, solvers and adapters; refinement with data on a CUDA model);
2. a compress of ``scot-ns`` at 0.4 with its float64 statistics on the GPU, against the same
   compress on the CPU (ranks, factors, time);
3. the latency benchmark's quick mode on the GPU.

    .venv/bin/python -m benchmarks.gpu_check [--device cuda]

``--device cpu`` runs the same steps on the CPU (a dry run of this script where there is no GPU).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from safesvd_core import compress
from safesvd_core.plugin import DEFAULTS

from . import latency
from .measure import zoo_subject

ROOT = Path(__file__).resolve().parents[1]
ZOO_MODEL, RATIO = "scot-ns", 0.4


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
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
    block = [
        f"device: {name}, torch {torch.__version__}",
        f"conformance (CUDA variants): {conformance()}",
        f"compress: {zoo_compress(device)}",
    ]
    rows = latency.quick(device, repeats=DEFAULTS.repeats)
    block += [
        latency.line(row, prefix=f"latency {row['config']} on {device}: ")
        + f"; whole model {row['model_ratio']:.3f}"
        for row in rows
    ]
    print("\n== gpu-check ==\n" + "\n".join(block))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
