"""Generators: the physics checks of each solver, determinism, and targets far from their inputs."""

from __future__ import annotations

import math

import pytest
import torch

from safesvd_core import ConfigError
from safesvd_data import (
    GENERATORS,
    BurgersGenerator,
    EulerGenerator,
    ShallowWaterGenerator,
    WaveGenerator,
    checks,
)

#: Copy-the-input relative L2 error (channel mean) of each default generator, at least.
MIN_COPY_ERROR = 0.2


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_data_generator_pairs_are_seeded_float32_and_far_apart(name: str) -> None:
    cls = GENERATORS[name]
    pairs = cls(samples=4, seed=1).generate()
    again = cls(samples=4, seed=1).generate()
    assert pairs.domain == name and pairs.inputs.shape == (4, len(pairs.field.channels), 32, 32)
    assert pairs.inputs.dtype == torch.float32 and torch.isfinite(pairs.targets).all()
    assert torch.equal(pairs.inputs, again.inputs) and torch.equal(pairs.targets, again.targets)
    initial = [cls(samples=4).initial(torch.Generator().manual_seed(seed)) for seed in (1, 2)]
    assert not torch.equal(*initial)
    assert pairs.copy_error() > MIN_COPY_ERROR


def test_data_generator_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="size must be an integer ≥ 8"):
        WaveGenerator(size=4)
    with pytest.raises(ConfigError, match="seed must be an integer ≥ 0"):
        EulerGenerator(seed=-1)
    with pytest.raises(ConfigError, match="lead_time must be a positive number"):
        BurgersGenerator(lead_time=0)


def test_data_navier_stokes_taylor_green_decays_at_the_viscous_rate() -> None:
    assert checks.navier_stokes_taylor_green() < 1e-5


def test_data_navier_stokes_energy_decays_monotonically() -> None:
    assert (checks.navier_stokes_energy_steps() < 0).all()


def test_data_euler_conserves_mass_momentum_and_energy() -> None:
    assert (checks.euler_drift() < 1e-13).all()
    generator = EulerGenerator(samples=2)
    observed = generator.observe(generator.advance(generator.initial(torch.Generator().manual_seed(0)), 0.5))
    assert (observed[:, 0] > 0).all() and (observed[:, 1] > 0).all()  # density, pressure stay positive


def test_data_shallow_water_conserves_mass_before_the_front_leaves() -> None:
    # only the scheme's exponentially small precursor of the front reaches the outflow edges
    assert checks.shallow_water_mass_drift(0.3) < 1e-9
    defaults = ShallowWaterGenerator()
    assert checks.shallow_water_mass_drift(defaults.spin_up + defaults.lead_time) < 1e-6


def test_data_shallow_water_front_moves_at_the_gravity_wave_speed() -> None:
    assert checks.shallow_water_front_speed(gravity=2.0) == pytest.approx(math.sqrt(2.0), rel=0.03)


def test_data_wave_conserves_energy_and_moves_at_its_speed() -> None:
    assert checks.wave_energy_drift() < 1e-12
    assert checks.wave_translation_error() < 1e-12


def test_data_gray_scott_concentrations_stay_in_the_unit_interval() -> None:
    low, high, spread = checks.gray_scott_range()
    assert low >= 0.0 and high <= 1.0
    assert spread > 0.05  # patterns formed rather than decayed


def test_data_burgers_matches_the_cole_hopf_solution_to_second_order() -> None:
    coarse, fine = checks.burgers_cole_hopf_errors()
    assert coarse < 5e-3 and coarse / fine > 3.5
