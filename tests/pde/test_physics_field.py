"""FieldDescription: validation messages, role look-ups, the uniform constructor and dict round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from safesvd_core import ConfigError, FieldDescription, Role
from safesvd_core.testing.strategies import field_descriptions


def _flow(**changes) -> FieldDescription:
    options = dict(
        channels=("u", "v", "rho", "pad"),
        roles=("velocity_x", "velocity_y", "density", "scalar"),
        spacing=(0.1, 0.2),
        periodic=(True, False),
        masked=("pad",),
    )
    return FieldDescription(**{**options, **changes})


@given(field_descriptions())
def test_dict_round_trip(field: FieldDescription) -> None:
    data = field.to_dict()
    assert FieldDescription.from_dict(json.loads(json.dumps(data))) == field


def test_look_ups() -> None:
    field = _flow()
    assert field.dim == 2
    assert field.cell_volume == pytest.approx(0.02)
    assert field.roles[0] is Role.VELOCITY_X
    assert field.velocity_channels() == (0, 1)
    assert field.channels_with_role("density") == [2]
    assert field.channels_with_role(Role.SCALAR) == []
    assert field.channels_with_role(Role.SCALAR, include_masked=True) == [3]
    assert field.active_channels() == (0, 1, 2)
    assert field.index("rho") == 2
    assert field.axis("y") == 1


def test_velocity_channels_follow_tensor_axis_order() -> None:
    field = _flow(axes=("y", "x"))
    assert field.velocity_channels() == (1, 0)
    assert field.axis("x") == 1


def test_uniform_broadcasts_spacing_and_boundary() -> None:
    field = FieldDescription.uniform(
        channels=("h",), roles=("water_height",), dim=3, spacing=0.5, periodic=True
    )
    assert field.spacing == (0.5, 0.5, 0.5)
    assert field.periodic == (True, True, True)
    assert field.axes == ("x", "y", "z")
    assert FieldDescription.uniform(channels=("a", "b")).roles == (Role.SCALAR, Role.SCALAR)
    with pytest.raises(ConfigError, match="dim: expected 1, 2 or 3, got 4"):
        FieldDescription.uniform(channels=("a",), dim=4)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channels": ("u", "u", "rho", "pad")}, "channels: expected unique names, got u more than once"),
        ({"channels": "uv"}, "channels: expected a sequence, got str"),
        ({"channels": ()}, "channels: expected at least one channel"),
        ({"roles": ("velocity_x",)}, r"roles: expected one role per channel \(4\), got 1"),
        (
            {"roles": ("velocity_x", "vel_y", "density", "scalar")},
            r"roles\[1\]: expected one of .*got 'vel_y'",
        ),
        (
            {"roles": ("velocity_x", "velocity_x", "density", "scalar")},
            "at most one channel per vector component",
        ),
        ({"spacing": (0.1, -1.0)}, r"spacing\[1\]: expected a finite number > 0, got -1.0"),
        ({"spacing": (0.1, float("nan"))}, r"spacing\[1\]: expected a finite number > 0"),
        ({"spacing": (0.1,) * 4, "periodic": (True,) * 4}, "spacing: expected 1 to 3 entries"),
        ({"periodic": (True,)}, r"periodic: expected one flag per grid axis \(2\), got 1"),
        ({"periodic": (1, 0)}, r"periodic\[0\]: expected True or False, got 1"),
        ({"masked": ("w",)}, r"masked: expected names among the channels \(u, v, rho, pad\), got w"),
        ({"axes": ("x", "z")}, "axes: expected an ordering of x, y, got x, z"),
    ],
)
def test_invalid_descriptions_name_field_expected_and_received(changes, message) -> None:
    with pytest.raises(ConfigError, match=message):
        _flow(**changes)


def test_missing_roles_are_named() -> None:
    field = FieldDescription.uniform(channels=("u", "p"), roles=("velocity_x", "pressure"))
    with pytest.raises(
        ConfigError, match=r"needs channel role\(s\) velocity_y, which no unmasked channel has"
    ):
        field.velocity_channels()
    with pytest.raises(ConfigError, match="energy, density"):
        field.require_roles(["energy", "density", "pressure"])
    assert field.missing_roles(["pressure", "energy"]) == [Role.ENERGY]
    assert field.has_roles(["pressure"])


def test_shape_checks() -> None:
    field = _flow()
    field.check_shape((2, 4, 8, 8))
    for bad in [(2, 3, 8, 8), (2, 4, 8), (0, 4, 8, 8)]:
        with pytest.raises(ConfigError, match=r"expected shape \(batch, 4, n, n\)"):
            field.check_shape(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"channels": ["a"], "roles": ["scalar"], "spacing": [1.0]}, "missing key"),
        (
            {"channels": ["a"], "roles": ["scalar"], "spacing": [1.0], "periodic": [True], "grid": 3},
            "unknown key",
        ),
        ({"version": 2, "channels": ["a"]}, "version: expected 1, got 2"),
        (["a"], "expected a mapping"),
    ],
)
def test_from_dict_rejects_bad_input(data, message) -> None:
    with pytest.raises(ConfigError, match=message):
        FieldDescription.from_dict(data)
