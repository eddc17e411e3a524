"""The engine's output matches the golden run (see ``engine_fingerprint.py``).

Everywhere: the ranks exactly, and the norm of every tensor (factored layers: their product)
within ``TOLERANCE``. Two machines with the same torch build and instruction set still round
differently (LAPACK paths, CPU model, microcode), so no test here needs bit-exact floats across
machines. The bit-for-bit comparison with the golden digests is a developer's check on their own
machine when refactoring: ``SAFESVD_FINGERPRINT_BITS=1 pytest tests/test_engine_fingerprint.py``
after regenerating the golden file there (``python tests/engine_fingerprint.py``) before the
refactor.
"""

from __future__ import annotations

import json
import math
import os

import pytest

import engine_fingerprint

#: Set to 1 to also require the golden digests bit for bit (the golden file made on this machine).
BITS_VARIABLE = "SAFESVD_FINGERPRINT_BITS"


@pytest.fixture(scope="module")
def run() -> tuple[dict, dict, dict]:
    golden = json.loads(engine_fingerprint.GOLDEN.read_text())
    summaries: dict = {}
    digests = engine_fingerprint.fingerprints(summaries)
    return golden, summaries, digests


def test_ranks_exact_and_norms_within_tolerance_of_the_golden_run(run):
    golden, summaries, _ = run
    differences = []
    for case, expected in golden["summaries"].items():
        got = summaries[case]
        if got["ranks"] != expected["ranks"]:
            differences.append(f"{case}: ranks {got['ranks']} ≠ golden {expected['ranks']}")
            continue
        if set(got["norms"]) != set(expected["norms"]):
            differences.append(f"{case}: tensors {sorted(set(got['norms']) ^ set(expected['norms']))} differ")
            continue
        for key, norm in expected["norms"].items():
            if not math.isclose(got["norms"][key], norm, rel_tol=engine_fingerprint.TOLERANCE):
                differences.append(f"{case}: ‖{key}‖ = {got['norms'][key]:.9g}, golden {norm:.9g}")
    assert not differences, (
        f"on {engine_fingerprint.environment()} (golden: {golden['environment']}) beyond the "
        f"relative tolerance {engine_fingerprint.TOLERANCE}: " + "; ".join(differences[:10])
    )


def test_spilled_statistics_give_the_same_bits_on_one_machine(run):
    """Spilling the statistics to disk changes where they live, not one operation: same process, same bits."""
    _, _, digests = run
    for case in ("safe-svd", "svd-llm", "safe-svd-balanced"):
        assert digests[case] == digests[case + " (spilled)"], case


@pytest.mark.skipif(
    os.environ.get(BITS_VARIABLE) != "1",
    reason=f"bit-exact digests are a developer's opt-in check on their own machine ({BITS_VARIABLE}=1)",
)
def test_digests_match_the_golden_run_bit_for_bit(run):
    golden, _, digests = run
    assert golden["environment"] == engine_fingerprint.environment(), (
        f"the golden file was made on {golden['environment']}, this is {engine_fingerprint.environment()}: "
        "regenerate it here (python tests/engine_fingerprint.py) before the refactor"
    )
    assert digests == golden["fingerprints"]
