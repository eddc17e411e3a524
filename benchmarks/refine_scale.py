"""Refinement at scale on this machine: one process against two (gloo, loopback), and the teacher's
memory by cache mode.

    python -m benchmarks.refine_scale            # writes docs/results/refine-scale.md
    python -m benchmarks.refine_scale --quick    # fewer steps and items: checks the script

The reference model (`ns2d-transformer`) compressed by `safe-svd` at 0.4 (one process), then refined
from that saved model (`refine`) on fresh 2-step trajectories: two processes with one thread each,
every global step one item of 32 inputs per process, against one process with two threads on the same
global batches merged (64 inputs a step). Reported: seconds per global step (the refinement's own
time), the speed-up, and the relative difference of a test output. Then the peak memory (the
process's max RSS) of one-process refinements with the teacher's predictions all cached against
recomputed (``teacher_cache_bytes=0``), at two numbers of items.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from safesvd_core.testing.loopback import run_on_loopback

from .report import header

RATIO = 0.4
SETTINGS = {"lr": 3e-4, "warmup": 5, "held_out": 0.0}  # no held-out split: the last state is compared


def _setup() -> tuple[Any, dict[str, Any]]:
    from safesvd_zoo import reference

    model = reference.load()
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    return model, options


def _fresh(items: int, batch: int) -> list[Any]:
    from safesvd_zoo import reference

    return reference.trajectory_batches(items * batch, 2, seed=101, batch_size=batch)


def _merged(items: list[Any]) -> list[Any]:
    return [tuple(torch.cat([a, b]) for a, b in zip(items[i], items[i + 1])) for i in range(0, len(items), 2)]


def _test_output(model: Any) -> torch.Tensor:
    from safesvd_zoo import reference

    with torch.no_grad():
        return model(reference.batches("test", batch_size=64)[0][0])


def _refine(folder: str, items: list[Any], steps: int, **extra: Any) -> tuple[Any, dict[str, Any]]:
    from safesvd_core import load_compressed, refine
    from safesvd_zoo import reference

    model, options = _setup()
    compressed = load_compressed(reference.load(), folder)
    refined = refine(
        compressed, model, items, steps=steps, adapter_options=options, eval_every=steps, **SETTINGS, **extra
    )
    return refined.model, refined.report


def _two(rank: int, world: int, folder: str, out: str, items: int, steps: int) -> None:
    torch.set_num_threads(1)
    model, report = _refine(folder, _fresh(2 * items, 32), steps)
    if rank == 0:
        save_file({"output": _test_output(model).contiguous()}, str(Path(out) / "two.safetensors"))
        (Path(out) / "two.json").write_text(json.dumps({"seconds": report["seconds"]}))


def _peak(folder: str, items: int, steps: int, cap: int, queue: Any) -> None:
    torch.set_num_threads(1)
    _, report = _refine(folder, _fresh(items, 32), steps, teacher_cache_bytes=cap)
    queue.put(
        {"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "teacher": report["teacher"]}
    )


def _peak_in_a_fresh_process(folder: str, items: int, steps: int, cap: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak, args=(folder, items, steps, cap, queue))
    process.start()
    found = queue.get()
    process.join()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and items: checks the script")
    parser.add_argument("--out", type=Path, default=Path("docs/results/refine-scale.md"))
    args = parser.parse_args(argv)
    steps, items = (4, 4) if args.quick else (60, 16)  # items: global batches (two of 32 inputs each)
    from safesvd_core import compress, save_compressed
    from safesvd_zoo import reference

    torch.set_num_threads(1)
    model, options = _setup()
    with tempfile.TemporaryDirectory() as work:
        folder = str(Path(work) / "compressed")
        result = compress(
            model,
            reference.trajectory_batches(32, 5),
            ratio=RATIO,
            family="ns-incompressible",
            adapter_options=options,
        )
        save_compressed(result, folder)
        run_on_loopback(_two, 2, folder, work, items, steps)
        two = json.loads((Path(work) / "two.json").read_text())["seconds"]
        torch.set_num_threads(2)
        one_model, one_report = _refine(folder, _merged(_fresh(2 * items, 32)), steps)
        torch.set_num_threads(1)
        got = load_file(str(Path(work) / "two.safetensors"))["output"]
        expected = _test_output(one_model)
        difference = float(torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected))
        peaks = {
            (count, cap): _peak_in_a_fresh_process(folder, count, steps, cap)
            for count in ((8, 16) if args.quick else (64, 256))
            for cap in (2**40, 0)
        }
    one = one_report["seconds"]
    lines = [
        header(
            "Refinement at scale: processes and teacher memory",
            "python -m benchmarks.refine_scale",
            threads="one process with 2 threads against two processes with 1 thread each",
        )
    ]
    lines.append(
        f"The reference model at ratio {RATIO} (safe-svd, 32 trajectories × 5 steps), saved, then refined "
        f"from the folder (`refine`) for {steps} steps on {2 * items} fresh 2-step trajectory items of 32 "
        f"inputs ({items} global batches of 64 inputs), lr {SETTINGS['lr']}, no held-out split (the "
        "last state is kept and compared). Seconds are the refinement's own (its report), per global step.\n"
    )
    lines.append("| processes | threads each | s / global step | speed-up | test output vs one process |")
    lines.append("|---|---|---|---|---|")
    lines.append(f"| 1 | 2 | {one / steps:.3f} | 1.00 | — |")
    lines.append(f"| 2 (gloo) | 1 | {two / steps:.3f} | {one / two:.2f} | {difference:.1e} relative |")
    target = "met" if one / two >= 1.6 else "missed"
    lines.append(f"\nTarget ≥ 1.6× per global step on 2 cores: **{target}** ({one / two:.2f}×).\n")
    lines.append(
        "Peak memory (max RSS of a fresh process: model, teacher, data and refinement) by teacher mode:\n"
    )
    lines.append("| items (× 32 inputs) | teacher | peak MiB | cached items | recomputed predictions |")
    lines.append("|---|---|---|---|---|")
    for (count, cap), found in peaks.items():
        mode = "all cached" if cap else "recomputed (cap 0)"
        teacher = found["teacher"]
        lines.append(
            f"| {count} | {mode} | {found['peak_mib']:.0f} | {teacher['cached_items']} | "
            f"{teacher['recomputed']} |"
        )
    lines.append(
        "\nWith the cap at 0 nothing is cached and the peak does not grow with the number of items beyond "
        "the items themselves; a cap in between keeps the first items' predictions up to it.\n"
    )
    text = "\n".join(lines)
    if args.quick:
        print(text)
        return 0
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
