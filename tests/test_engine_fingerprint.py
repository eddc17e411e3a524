"""The engine's output is bit-identical to the golden fingerprints (see ``engine_fingerprint.py``)."""

from __future__ import annotations

import json

import pytest

import engine_fingerprint


def test_ranks_and_factors_are_bit_identical_to_the_golden_run():
    golden = json.loads(engine_fingerprint.GOLDEN.read_text())
    if golden["environment"] != engine_fingerprint.environment():
        pytest.skip(f"the golden fingerprints were made with {golden['environment']}, this is "
                    f"{engine_fingerprint.environment()}: float results may differ in the last bit")
    assert engine_fingerprint.fingerprints() == golden["fingerprints"]
