"""Data tests run torch on one intra-op thread, as the generators do (see ``_generator.one_thread``)."""

from __future__ import annotations

import pytest

from safesvd_data._generator import one_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield
