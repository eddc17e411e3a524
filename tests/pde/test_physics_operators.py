"""Divergence and vorticity on fields whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from safesvd_core import ConfigError, FieldDescription, Role
from safesvd_pde.finite_difference import derivative, divergence, vorticity

VELOCITY_2D = (Role.VELOCITY_X, Role.VELOCITY_Y)


def _periodic_mesh(nx: int, ny: int):
    hx, hy = 2 * math.pi / nx, math.pi / ny
    x = hx * torch.arange(nx, dtype=torch.float64)
    y = hy * torch.arange(ny, dtype=torch.float64)
    return (*torch.meshgrid(x, y, indexing="ij"), hx, hy)


def _stream_velocity(n: int) -> tuple[torch.Tensor, FieldDescription]:
    """``u = ∂ψ/∂y, v = −∂ψ/∂x`` of the periodic stream function ``ψ = sin(x) sin(2y)``, analytically."""
    x, y, hx, hy = _periodic_mesh(n, n + n // 2)
    u = 2 * torch.sin(x) * torch.cos(2 * y)
    v = -torch.cos(x) * torch.sin(2 * y)
    field = FieldDescription(channels=("u", "v"), roles=VELOCITY_2D, spacing=(hx, hy), periodic=(True, True))
    return torch.stack([u, v])[None], field


def test_velocity_from_a_stream_function_is_nearly_divergence_free() -> None:
    coarse, fine = (float(divergence(*_stream_velocity(n)).abs().max()) for n in (16, 32))
    assert fine < 0.05  # the field itself is O(1)
    assert math.log2(coarse / fine) >= 1.8  # the residual is the O(h²) truncation error


def test_discrete_stream_function_velocity_is_exactly_divergence_free() -> None:
    field = FieldDescription(
        channels=("u", "v"), roles=VELOCITY_2D, spacing=(0.1, 0.2), periodic=(True, False)
    )
    psi = torch.randn(3, 1, 9, 8, dtype=torch.float64)
    u = derivative(psi, (0, 1), field.spacing, field.periodic)
    v = -derivative(psi, (1, 0), field.spacing, field.periodic)
    velocity = torch.cat([u, v], dim=1)
    assert divergence(velocity, field).shape == (3, 1, 9, 8)
    assert float(divergence(velocity, field).abs().max()) < 1e-10


@pytest.mark.parametrize("axes", [("x", "y"), ("y", "x")])
def test_solid_rotation_has_vorticity_two_omega(axes: tuple[str, str]) -> None:
    omega = 0.7
    field = FieldDescription(
        channels=("u", "v"), roles=VELOCITY_2D, spacing=(0.1, 0.25), periodic=(False, False), axes=axes
    )
    first = 0.1 * torch.arange(6, dtype=torch.float64)
    second = 0.25 * torch.arange(5, dtype=torch.float64) - 0.5
    a, b = torch.meshgrid(first, second, indexing="ij")
    coords = dict(zip(axes, (a, b), strict=True))
    velocity = torch.stack([-omega * coords["y"], omega * coords["x"]])[None]
    result = vorticity(velocity, field)
    assert result.shape == (1, 1, 6, 5)
    torch.testing.assert_close(result, torch.full_like(result, 2 * omega))
    torch.testing.assert_close(divergence(velocity, field), torch.zeros_like(result))


def test_three_dimensional_curl_of_solid_rotations() -> None:
    field = FieldDescription(
        channels=("u", "v", "w"),
        roles=(Role.VELOCITY_X, Role.VELOCITY_Y, Role.VELOCITY_Z),
        spacing=(0.2, 0.1, 0.3),
        periodic=(False, False, False),
    )
    points = [h * torch.arange(n, dtype=torch.float64) for h, n in zip(field.spacing, (5, 6, 4), strict=True)]
    x, y, z = torch.meshgrid(*points, indexing="ij")
    zero = torch.zeros_like(x)
    about_z = torch.stack([-1.5 * y, 1.5 * x, zero])[None]
    about_x = torch.stack([zero, -0.5 * z, 0.5 * y])[None]
    curl = vorticity(about_z + about_x, field)
    assert curl.shape == (1, 3, 5, 6, 4)
    torch.testing.assert_close(curl[:, 0], torch.full_like(x, 1.0)[None])
    torch.testing.assert_close(curl[:, 1], zero[None])
    torch.testing.assert_close(curl[:, 2], torch.full_like(x, 3.0)[None])


def test_operators_name_the_missing_velocity_role() -> None:
    field = FieldDescription(
        channels=("u", "p"), roles=(Role.VELOCITY_X, Role.PRESSURE), spacing=(1.0, 1.0), periodic=(True, True)
    )
    with pytest.raises(ConfigError, match="velocity_y"):
        divergence(torch.zeros(1, 2, 4, 4), field)


def test_a_masked_velocity_channel_counts_as_missing() -> None:
    field = FieldDescription(
        channels=("u", "v"), roles=VELOCITY_2D, spacing=(1.0, 1.0), periodic=(True, True), masked=("v",)
    )
    with pytest.raises(ConfigError, match=r"velocity_y.*v=velocity_y \(masked\)"):
        vorticity(torch.zeros(1, 2, 4, 4), field)


def test_vorticity_needs_two_dimensions() -> None:
    field = FieldDescription(channels=("u",), roles=(Role.VELOCITY_X,), spacing=(1.0,), periodic=(True,))
    with pytest.raises(ConfigError, match="2-D or 3-D"):
        vorticity(torch.zeros(1, 1, 5), field)
