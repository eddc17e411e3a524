"""The main job: compress the bundled reference PFM at several ratios and print a table."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from safesvd_core import compress

from . import reference

#: Name → options: SAFE-SVD with the incompressible-NS family's Sobolev loss, against SVD-LLM.
VARIANTS: dict[str, dict[str, object]] = {
    "safe-svd (ns-incompressible)": {"recipe": "safe-svd", "family": "ns-incompressible"},
    "svd-llm": {"recipe": "svd-llm"},
}


def run(ratios: Sequence[float] = (0.8, 0.6, 0.4), *, progress: bool = False) -> str:
    """Compress the reference model with each variant at each ratio; return a markdown table."""
    torch.manual_seed(0)
    model = reference.load()
    calibration = reference.batches("calibration", batch_size=16)
    inputs, targets = reference.split("test")
    adapter_options = {"block_names": reference.block_names(model), "include": ["blocks.*"],
                       "field_description": reference.FIELD}

    def test_mse(m: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(torch.mean((m(inputs) - targets) ** 2))

    original = test_mse(model)
    copy_baseline = float(torch.mean((inputs - targets) ** 2))
    rows = [
        "| method | ratio | parameters kept | test MSE | Δ vs original | time (s) |",
        "|---|---|---|---|---|---|",
        f"| original | 1.0 | {sum(p.numel() for p in model.parameters()):,} | {original:.6f} | — | — |",
    ]
    for ratio in ratios:
        for label, options in VARIANTS.items():
            start = time.perf_counter()
            result = compress(model, calibration, ratio=ratio, adapter_options=adapter_options, progress=progress, **options)
            seconds = time.perf_counter() - start
            value = test_mse(result.model)
            change = 100.0 * (value - original) / original
            rows.append(
                f"| {label} | {ratio} | {result.params_after:,} ({result.kept_ratio:.3f}) | {value:.6f} | "
                f"{change:+.2f} % | {seconds:.1f} |"
            )
    rows.append("")
    rows.append(f"Reference model: {reference.NAME} (2-D incompressible NS, lead time {reference.LEAD_TIME}); "
                f"copy-the-input test MSE {copy_baseline:.6f}. Calibration: {len(calibration)} batches of 16.")
    return "\n".join(rows)
