"""Physics terms named in a recipe: loss names, ``{"name": ..., **options}`` dicts or ready losses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError
from ..kinds._interfaces import PhysicsLoss
from ..kinds._plugins import registry

PhysicsSpec = str | Mapping[str, Any] | PhysicsLoss


def as_specs(value: Any) -> tuple[PhysicsSpec, ...]:
    """One spec or an iterable of them, as a tuple."""
    if isinstance(value, (str, Mapping, PhysicsLoss)):
        return (value,)
    return tuple(value)


def build_physics(specs: tuple[PhysicsSpec, ...]) -> tuple[PhysicsLoss, ...]:
    """Physics losses from names, ``{"name": ..., **options}`` dicts or ready instances."""
    losses = []
    for spec in specs:
        if isinstance(spec, PhysicsLoss):
            losses.append(spec)
        elif isinstance(spec, str):
            losses.append(registry("physics_loss").create(spec))
        elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            options = {key: value for key, value in spec.items() if key != "name"}
            losses.append(registry("physics_loss").create(spec["name"], **options))
        else:
            raise ConfigError(
                "physics entries are loss names, {'name': ..., **options} dicts or PhysicsLoss objects, "
                f"got {spec!r}"
            )
    return tuple(losses)


def physics_terms(
    physics: tuple[PhysicsSpec, ...], family: str | None, sobolev_order: int | None, sobolev_p: int
) -> tuple[PhysicsLoss, ...]:
    """Explicit ``physics`` wins; else the family's Sobolev loss (order and p overridable)."""
    if physics:
        if sobolev_order is not None:
            raise ConfigError(
                "sobolev_order applies to the family's Sobolev loss; with explicit physics, set it there"
            )
        return build_physics(physics)
    if family is None:
        if sobolev_order is not None:
            raise ConfigError(
                "sobolev_order needs a family (or an explicit physics=[{'name': 'sobolev', ...}])"
            )
        return ()
    chosen = registry("pde_family").get(family)
    order = chosen.sobolev_order if sobolev_order is None else sobolev_order
    return (registry("physics_loss").create("sobolev", order=order, p=sobolev_p),)
