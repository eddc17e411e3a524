"""Conservation: which channels count, derived momentum, relative drift values and errors."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import ConfigError, FieldDescription, NumericalError
from safesvd_pde.conservation import Conservation, totals

FLOW = FieldDescription.uniform(
    channels=("rho", "u", "v", "p"), roles=("density", "velocity_x", "velocity_y", "pressure"), spacing=0.5
)


def test_totals_are_sums_times_cell_volume() -> None:
    u = torch.ones(2, 4, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(totals(u, FLOW), torch.full((2, 4), 15 * 0.25, dtype=torch.float64))


def test_relative_mass_drift() -> None:
    reference = torch.ones(1, 4, 4, 4, dtype=torch.float64)
    prediction = reference.clone()
    prediction[:, 0] *= 1.1  # 10 % more mass, and so 10 % more momentum ρu, ρv
    assert float(Conservation(quantities=("mass",))(prediction, reference, FLOW)) == pytest.approx(0.1)
    assert float(Conservation()(prediction, reference, FLOW)) == pytest.approx(0.1)
    no_momentum = Conservation(quantities=("mass", "momentum"), derive_momentum=False)
    assert float(no_momentum(prediction, reference, FLOW)) == pytest.approx(0.1)


def test_a_moved_field_conserves() -> None:
    reference = torch.rand(2, 4, 6, 6, dtype=torch.float64) + 0.5
    shifted = torch.roll(reference, 2, dims=-1)
    assert float(Conservation()(shifted, reference, FLOW)) == pytest.approx(0.0, abs=1e-12)


def test_no_conserved_channel_is_an_error_naming_the_roles() -> None:
    field = FieldDescription.uniform(channels=("c",), roles=("concentration",))
    with pytest.raises(ConfigError, match="density, water_height"):
        Conservation()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), field)


def test_zero_reference_without_floor_raises_instead_of_nan() -> None:
    with pytest.raises(NumericalError, match="conservation"):
        Conservation(eps=0.0)(torch.ones(1, 4, 4, 4), torch.zeros(1, 4, 4, 4), FLOW)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quantities": ("charge",)}, "expected a non-empty subset of mass, momentum, energy"),
        ({"quantities": ()}, "non-empty subset"),
        ({"eps": -1.0}, "eps: expected a finite number ≥ 0"),
    ],
)
def test_bad_options(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Conservation(**options)
