"""Fingerprints of the engine's output: ranks and factors of reference compressions, hashed.

``python tests/engine_fingerprint.py`` rewrites ``tests/golden/engine.json``; ``test_engine_fingerprint``
recomputes the fingerprints and compares ranks exactly and norms within ``TOLERANCE`` (bit for bit
only when a developer opts in with ``SAFESVD_FINGERPRINT_BITS=1`` on their own machine).
The golden file was written by the engine before it was split into phases
(``git log tests/golden/engine.json``): on the developer's own machine, the opt-in proves that
refactors of the engine change no bit of what it computes. Bits depend on the machine (the
torch build, the CPU's vector instructions, and even the CPU model with the same build and
instructions), so by default the test compares the ranks exactly and the norm of every tensor
(factored layers: their product) within ``TOLERANCE``, naming what differs.
Regenerated on purpose when the factors became balanced (same products, another split). Later default changes
(the ``layer`` stage mode, the sampled Fisher) are opted out of explicitly, so the cases still run
the paths the golden file was made on. Regenerated on purpose again when ``safe-svd`` took the Gram
route (``decomposition="gram"``: the same minimiser from an eigendecomposition of the smaller Gram
matrix, other rounding): ranks unchanged, every norm within 5.7e-5 (safe-svd) and 9.7e-5
(safe-svd-balanced) of the previous golden file, the float32 rounding of the factors carried
through the sequential stages; ``svd-llm`` unchanged bit for bit. Regenerated once more when the
symmetric moments (covariances, Fisher) took BLAS's symmetric rank-k update on the CPU (one
triangle, other rounding): ranks unchanged, every norm within 1.8e-4 of the previous golden file
(safe-svd-balanced's ``blocks.3.query``), 5.3e-5 (safe-svd) and 4.0e-9 (svd-llm), the rounding
carried through the sequential stages as before. Regenerated again when sibling layers (query, key
and value read one input) took their input moments' products once per item, added to each sum
instead of accumulated into it (other rounding): ranks unchanged, every norm within 1.8e-4 of the
previous golden file (safe-svd-balanced's ``blocks.3.query``), 5.7e-5 (safe-svd) and 2.0e-9
(svd-llm).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

GOLDEN = Path(__file__).parent / "golden" / "engine.json"
RATIO = 0.4
#: Relative tolerance of the norms on a machine whose environment differs from the golden one.
TOLERANCE = 1e-4


def _reference() -> tuple[torch.nn.Module, list[Any], dict[str, Any]]:
    from safesvd_zoo import reference

    model = reference.load()
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    return model, reference.batches("calibration", batch_size=16), options


def _with_domains(batches: list[Any]) -> list[Any]:
    """The calibration batches labelled with two alternating pseudo-domains (for safe-svd-balanced)."""
    return [
        (inputs, targets, "even" if index % 2 == 0 else "odd")
        for index, (inputs, targets) in enumerate(batches)
    ]


def digest(result: Any) -> str:
    """sha256 of the ranks (as JSON) and of every tensor of the compressed model's state, in key order."""
    hasher = hashlib.sha256(json.dumps(result.ranks, sort_keys=True).encode())
    state = result.model.state_dict()
    for key in sorted(state):
        tensor = state[key].detach().contiguous().cpu()
        hasher.update(key.encode())
        hasher.update(str(tensor.dtype).encode())
        hasher.update(tensor.numpy().tobytes())
    return hasher.hexdigest()


def summary(result: Any) -> dict[str, Any]:
    """What is compared within a tolerance on another machine: the ranks, and the Frobenius norm of
    every tensor of the compressed model's state (factored layers: of their product)."""
    from safesvd_core import LowRankLinear

    norms = {}
    for name, module in result.model.named_modules():
        if isinstance(module, LowRankLinear):
            norms[name] = float(module.weight.detach().double().norm())
    state = result.model.state_dict()
    for key in sorted(state):
        if ".first." not in key and ".second.weight" not in key:
            norms[key] = float(state[key].detach().double().norm())
    return {"ranks": dict(result.ranks), "norms": norms}


def fingerprints(summaries: dict[str, Any] | None = None) -> dict[str, str]:
    """Case name → digest of the compression of the bundled reference model at ``RATIO``; with
    ``summaries``, each case's :func:`summary` is added to it."""
    from safesvd_core import SpillPolicy, compress

    model, batches, options = _reference()
    before = {"stage_mode": "block", "fisher": "empirical"}  # the defaults when the golden file was made
    cases = {
        "safe-svd": dict(recipe="safe-svd", family="ns-incompressible", **before),
        "svd-llm": dict(recipe="svd-llm"),
        "safe-svd-balanced": dict(recipe="safe-svd-balanced", family="ns-incompressible", **before),
    }
    out = {}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, case in cases.items():
            data = _with_domains(batches) if "balanced" in name else batches
            result = compress(model, data, ratio=RATIO, adapter_options=options, **case)
            out[name] = digest(result)
            if summaries is not None:
                summaries[name] = summary(result)
            with tempfile.TemporaryDirectory() as directory:
                spilled = compress(
                    model,
                    data,
                    ratio=RATIO,
                    adapter_options=options,
                    statistics=SpillPolicy(Path(directory) / "statistics", "512KiB"),
                    **case,
                )
                assert spilled.passes["clean"] > 1, "the spilled case must take several clean passes"
                out[name + " (spilled)"] = digest(spilled)
    finally:
        torch.set_num_threads(previous)
    return out


def environment() -> dict[str, str]:
    """What bit-exact fingerprints depend on beyond the code: the torch build and the CPU's vector
    instructions (AVX2 and AVX-512 kernels round differently). The run pins one thread."""
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability()}


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    summaries: dict[str, Any] = {}
    digests = fingerprints(summaries)
    GOLDEN.write_text(
        json.dumps({"environment": environment(), "fingerprints": digests, "summaries": summaries}, indent=1)
        + "\n"
    )
    print(GOLDEN.read_text())
    sys.exit(0)
