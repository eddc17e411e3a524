"""The engine's output matches the golden fingerprints (see ``engine_fingerprint.py``): bit for bit
where the environment is the golden one, within a stated tolerance elsewhere."""

from __future__ import annotations

import json
import math

import engine_fingerprint


def test_ranks_and_factors_match_the_golden_run():
    golden = json.loads(engine_fingerprint.GOLDEN.read_text())
    summaries: dict = {}
    digests = engine_fingerprint.fingerprints(summaries)
    differences = []  # checked everywhere; the golden environment must also match bit for bit
    for case, expected in golden["summaries"].items():
        got = summaries[case]
        if got["ranks"] != expected["ranks"]:
            differences.append(f"{case}: ranks {got['ranks']} ≠ golden {expected['ranks']}")
            continue
        for key, norm in expected["norms"].items():
            if not math.isclose(got["norms"][key], norm, rel_tol=engine_fingerprint.TOLERANCE):
                differences.append(f"{case}: ‖{key}‖ = {got['norms'][key]:.9g}, golden {norm:.9g}")
    assert not differences, (
        f"on {engine_fingerprint.environment()} (golden: {golden['environment']}) beyond the "
        f"relative tolerance {engine_fingerprint.TOLERANCE}: " + "; ".join(differences[:10])
    )
    if golden["environment"] == engine_fingerprint.environment():
        assert digests == golden["fingerprints"]
