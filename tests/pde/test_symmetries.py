"""Every symmetry a PDE family declares maps the generator's states to states of the same PDE: it
commutes with the solver (the transformed start evolves into the transformed end), and the
transforms of the velocity and of the solver's own state agree."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import ConfigError, FieldDescription, Role, registry
from safesvd_core.plugin import Symmetry
from safesvd_data import GENERATORS

#: family → (its generator, how the generator's state transforms: "observed" when the state is what
#: the generator observes, "pseudo-scalar" for a 2-D vorticity state, sign-reversed by reflections).
CASES = {"ns-incompressible": ("navier_stokes", "pseudo-scalar"), "wave": ("wave", "observed")}
SCALAR = FieldDescription.uniform(channels=("w",), roles=(Role.SCALAR,), spacing=1.0, periodic=True)


def _state_map(case: str, symmetry: Symmetry, field: FieldDescription):
    if case == "observed":
        return lambda state: symmetry.apply(state, field)
    sign = -1.0 if symmetry.improper else 1.0
    return lambda state: sign * symmetry.apply(state, SCALAR)


def _declared():
    found = {}
    for name in registry("pde_family").names():
        family = registry("pde_family").create(name)
        for generator_name, generator_cls in GENERATORS.items():
            group = family.symmetries(generator_cls(samples=2, size=16).field())
            if group:
                found.setdefault(name, []).append(generator_name)
    return found


def test_every_family_that_declares_symmetries_on_a_generator_field_is_checked_here():
    assert set(_declared()) == set(CASES), _declared()


@pytest.mark.parametrize("family_name", sorted(CASES))
def test_each_declared_symmetry_commutes_with_the_solver(family_name):
    generator_name, case = CASES[family_name]
    generator = GENERATORS[generator_name](samples=3, size=16, seed=4)
    field = generator.field()
    group = registry("pde_family").create(family_name).symmetries(field)
    start = generator.initial(torch.Generator().manual_seed(4))
    end = generator.advance(start, 0.25)
    draws = torch.Generator().manual_seed(0)
    symmetries = [*group.elements, *(group.draw(field, (16, 16), draws) for _ in range(4))]
    assert len(group.elements) == 7 and group.translations  # the square's 7 and the shifts
    for symmetry in symmetries:
        state_map = _state_map(case, symmetry, field)
        moved = generator.observe(generator.advance(state_map(start), 0.25))
        expected = symmetry.apply(generator.observe(end), field)
        scale = float(expected.abs().max())
        assert float((moved - expected).abs().max()) <= 1e-9 * scale, symmetry.name
        observed = symmetry.apply(generator.observe(start), field)
        assert float((generator.observe(state_map(start)) - observed).abs().max()) <= 1e-9 * scale


def test_a_wrong_sign_would_be_caught():
    """The check above is not blind: reflecting the velocity without its sign change breaks it."""
    generator = GENERATORS["navier_stokes"](samples=2, size=16, seed=4)
    start = generator.initial(torch.Generator().manual_seed(4))
    unsigned = FieldDescription.uniform(
        channels=("u", "v"), roles=(Role.SCALAR, Role.SCALAR), spacing=1.0, periodic=True
    )
    flip = Symmetry(flips=(0,), shift=(0, 0))
    wrong = flip.apply(generator.observe(start), unsigned)
    right = -flip.apply(start, SCALAR)
    assert float((generator.observe(right) - wrong).abs().max()) > 1e-3


def test_a_family_on_walls_declares_none_and_bad_symmetries_are_refused():
    walls = FieldDescription.uniform(
        channels=("u", "v"), roles=(Role.VELOCITY_X, Role.VELOCITY_Y), spacing=0.1, periodic=False
    )
    assert not registry("pde_family").create("ns-incompressible").symmetries(walls)
    gray_scott = GENERATORS["diffusion_reaction"]().field()
    assert not registry("pde_family").create("diffusion-reaction").symmetries(gray_scott)
    with pytest.raises(ConfigError, match="non-periodic axis"):
        Symmetry(shift=(1, 0)).apply(torch.zeros(1, 2, 4, 4), walls)
    with pytest.raises(ConfigError, match="cannot be exchanged"):
        Symmetry(swap=(0, 1)).apply(torch.zeros(1, 2, 4, 6), walls)
