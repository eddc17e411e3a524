"""The baseline tests work on matrices of at most 128 × 128: one intra-op thread is faster (two
threads mostly spin-wait, badly so on a loaded machine). The previous setting is restored."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
