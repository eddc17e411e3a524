"""The default calibration set: every family, built well within a minute, served per domain."""

from __future__ import annotations

import time

import pytest
import torch

from safesvd_core import ConfigError
from safesvd_data import GENERATORS, MultiDomainLoader, NavierStokes2D, WaveGenerator, default_calibration_set


def test_data_default_calibration_set_builds_in_under_a_minute() -> None:
    start = time.perf_counter()
    loader = default_calibration_set()
    seconds = time.perf_counter() - start
    assert seconds < 60, f"the default calibration set took {seconds:.1f} s"
    assert loader.domains == tuple(GENERATORS)
    assert [len(pairs) for pairs in loader.sets] == [16] * len(GENERATORS)
    batches = list(loader)
    assert len(batches) == len(loader) == 2 * len(GENERATORS)
    assert [domain for _, _, domain in batches[: len(GENERATORS)]] == list(GENERATORS)
    for inputs, targets, domain in batches:
        assert inputs.shape[-2:] == (32, 32) and targets.shape == inputs.shape
        loader.field(domain).check_shape(inputs.shape)
    families = {pairs.domain: pairs for pairs in loader.sets}
    assert not torch.equal(families["navier_stokes"].inputs[:, :1], families["wave"].inputs[:, :1])


def test_data_loader_rejects_one_domain_with_two_fields() -> None:
    small, large = WaveGenerator(samples=2, size=8).generate(), WaveGenerator(samples=2, size=16).generate()
    with pytest.raises(ConfigError, match="'wave' appears with two different field descriptions"):
        MultiDomainLoader(sets=[small, large])
    with pytest.raises(ConfigError, match="sets"):
        MultiDomainLoader(sets=[])
    with pytest.raises(ConfigError, match="batch_size"):
        next(small.batches(0))


def test_data_zoo_keeps_its_navier_stokes_module() -> None:
    from safesvd_zoo.navier_stokes import NavierStokes2D as Reexported

    assert Reexported is NavierStokes2D
