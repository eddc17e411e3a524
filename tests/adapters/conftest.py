"""Adapter tests run their small models on one intra-op thread: as fast on tensors this small, and
robust when other processes load the two cores (two spinning OpenMP threads then slow the
per-layer stages by up to 50×)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
