"""PDE families: registration, Sobolev orders (App. C.3), required roles and metrics."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import ConfigError, FieldDescription, Role, available, registry
from safesvd_core.plugin import PDEFamily

ORDERS = {
    "ns-incompressible": 2,
    "euler-compressible": 1,
    "ns-compressible": 1,
    "wave": 1,
    "shallow-water": 1,
    "diffusion-reaction": 2,
}


def _field_for(family: PDEFamily, *, drop: Role | None = None) -> FieldDescription:
    roles = sorted(set(family.required_roles) | {Role.VELOCITY_X, Role.VELOCITY_Y, Role.DENSITY})
    roles = [role for role in roles if role != drop]
    return FieldDescription.uniform(
        channels=[role.value for role in roles], roles=roles, spacing=0.1, periodic=True
    )


def test_the_six_families_are_registered() -> None:
    assert available("pde_family") == sorted(ORDERS)


def test_the_built_in_losses_are_registered() -> None:
    assert {"sobolev", "divergence", "divergence-free", "vorticity", "conservation"} <= set(
        available("physics_loss")
    )


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_sobolev_order_follows_the_paper(name: str) -> None:
    family = registry("pde_family").create(name)
    assert family.sobolev_order == ORDERS[name]
    (loss,) = family.default_losses()
    assert (loss.name, loss.order, loss.p) == ("sobolev", ORDERS[name], 1)
    assert registry("pde_family").create(name, p=2).metrics()["sobolev"].p == 2


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_metrics_run_on_a_suitable_field(name: str) -> None:
    family = registry("pde_family").create(name)
    field = _field_for(family)
    family.check(field)
    prediction, reference = torch.randn(2, 2, len(field.channels), 8, 8, dtype=torch.float64)
    prediction[:, field.channels_with_role(Role.DENSITY)] += 3.0
    metrics = family.metrics()
    assert "sobolev" in metrics
    for metric in metrics.values():
        value = metric(prediction, reference, field)
        assert value.shape == () and torch.isfinite(value) and value >= 0


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_a_missing_role_is_named(name: str) -> None:
    family = registry("pde_family").create(name)
    for role in family.required_roles:
        with pytest.raises(ConfigError, match=rf"PDE family {name!r} needs channel role\(s\) {role.value}\b"):
            family.check(_field_for(family, drop=role))


def test_velocity_families_need_every_component_in_3d() -> None:
    family = registry("pde_family").create("ns-incompressible")
    field = FieldDescription.uniform(channels=("u", "v"), roles=("velocity_x", "velocity_y"), dim=3)
    with pytest.raises(ConfigError, match="velocity_z"):
        family.check(field)


def test_velocity_metrics_only_where_velocity_exists() -> None:
    metrics = {name: set(registry("pde_family").create(name).metrics()) for name in ORDERS}
    assert metrics["ns-incompressible"] == {"sobolev", "divergence-free", "vorticity"}
    assert metrics["euler-compressible"] == {"sobolev", "divergence", "vorticity", "conservation"}
    assert metrics["wave"] == metrics["diffusion-reaction"] == {"sobolev"}
    assert metrics["shallow-water"] == {"sobolev", "conservation"}


def test_bad_family_option() -> None:
    with pytest.raises(ConfigError, match="ns-incompressible p must be one of 1, 2, got 3"):
        registry("pde_family").create("ns-incompressible", p=3)


def test_importing_the_plugin_registers_nothing() -> None:
    from safesvd_core.plugin import PluginManager
    from safesvd_pde import plugin

    manager = PluginManager(autoload=False)
    assert manager.registry("physics_loss").names() == []
    manager.register(plugin, name="pde")
    assert manager.registry("pde_family").names() == sorted(ORDERS)
    assert manager.registry("physics_loss").names() == [
        "conservation",
        "divergence",
        "divergence-free",
        "sobolev",
        "vorticity",
    ]
