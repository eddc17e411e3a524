"""What a field tensor ``(batch, channels, *grid)`` holds: channel roles, grid spacing, boundaries.

Axis convention: grid axis ``i`` of a tensor is tensor dimension ``2 + i`` and has spacing
``spacing[i]``. By default the grid axes are ``(x, y, z)`` in tensor order (dimension 2 is ``x``);
``axes`` names them otherwise, e.g. ``("y", "x")`` for image layout ``(batch, channels, H, W)``.
A ``velocity_x`` channel is the velocity component along the axis named ``x``.

This module holds no tensors and does not import torch.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from ._errors import ConfigError

#: Version of the dict written by :meth:`FieldDescription.to_dict`.
FORMAT_VERSION = 1

#: Names of the spatial axes, in their default tensor order.
AXES = ("x", "y", "z")


class Role(enum.StrEnum):
    """The physical meaning of one channel."""

    VELOCITY_X = "velocity_x"
    VELOCITY_Y = "velocity_y"
    VELOCITY_Z = "velocity_z"
    MOMENTUM_X = "momentum_x"
    MOMENTUM_Y = "momentum_y"
    MOMENTUM_Z = "momentum_z"
    DENSITY = "density"
    PRESSURE = "pressure"
    ENERGY = "energy"
    WATER_HEIGHT = "water_height"
    CONCENTRATION = "concentration"
    SCALAR = "scalar"


#: Axis name → the velocity role along it, and the same for momentum.
VELOCITY_ROLES: Mapping[str, Role] = {"x": Role.VELOCITY_X, "y": Role.VELOCITY_Y, "z": Role.VELOCITY_Z}
MOMENTUM_ROLES: Mapping[str, Role] = {"x": Role.MOMENTUM_X, "y": Role.MOMENTUM_Y, "z": Role.MOMENTUM_Z}

#: Vector-component roles: at most one channel may carry each.
_COMPONENT_ROLES = frozenset(VELOCITY_ROLES.values()) | frozenset(MOMENTUM_ROLES.values())


def parse_role(value: Any, field: str = "role") -> Role:
    """``value`` as a :class:`Role`; anything else is a :class:`ConfigError` naming ``field`` and the
    roles."""
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise ConfigError(f"{field}: expected one of {choices}; got {value!r}") from None


def _sequence(field: str, item: Callable[[Any, str], Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A converter: any non-string iterable → tuple, each item converted by ``item``."""

    def convert(value: Any) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ConfigError(f"{field}: expected a sequence, got {type(value).__name__} {value!r}")
        return tuple(item(element, f"{field}[{index}]") for index, element in enumerate(value))

    return convert


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def _spacing(value: Any, field: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{field}: expected a finite number > 0, got {value!r}")
    return float(value)


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{field}: expected True or False, got {value!r}")
    return value


def _default_axes(self: FieldDescription) -> tuple[str, ...]:
    return AXES[: len(self.spacing)]


def _duplicates(values: Iterable[Any]) -> list[str]:
    return sorted(str(value) for value, count in Counter(values).items() if count > 1)


@attrs.frozen(kw_only=True)
class FieldDescription:
    """Channel names and roles, masked channels, and per-axis spacing and periodicity.

    ``spacing`` has one entry per grid axis (its length is the spatial dimension, 1 to 3);
    ``periodic`` and ``axes`` have the same length. ``masked`` names channels that carry no data
    (padding in multi-physics models): losses skip them and role look-ups ignore them.
    """

    channels: tuple[str, ...] = attrs.field(converter=_sequence("channels", _name))
    roles: tuple[Role, ...] = attrs.field(converter=_sequence("roles", parse_role))
    spacing: tuple[float, ...] = attrs.field(converter=_sequence("spacing", _spacing))
    periodic: tuple[bool, ...] = attrs.field(converter=_sequence("periodic", _flag))
    masked: tuple[str, ...] = attrs.field(default=(), converter=_sequence("masked", _name))
    axes: tuple[str, ...] = attrs.field(
        default=attrs.Factory(_default_axes, takes_self=True), converter=_sequence("axes", _name)
    )

    def __attrs_post_init__(self) -> None:
        if not self.channels:
            raise ConfigError("channels: expected at least one channel name, got none")
        if duplicated := _duplicates(self.channels):
            raise ConfigError(f"channels: expected unique names, got {', '.join(duplicated)} more than once")
        if len(self.roles) != len(self.channels):
            raise ConfigError(
                f"roles: expected one role per channel ({len(self.channels)}), got {len(self.roles)}"
            )
        if not 1 <= len(self.spacing) <= 3:
            raise ConfigError(
                f"spacing: expected 1 to 3 entries (one per grid axis), got {len(self.spacing)}"
            )
        if len(self.periodic) != len(self.spacing):
            raise ConfigError(
                f"periodic: expected one flag per grid axis ({len(self.spacing)}), got {len(self.periodic)}"
            )
        if sorted(self.axes) != sorted(AXES[: self.dim]):
            raise ConfigError(
                f"axes: expected an ordering of {', '.join(AXES[: self.dim])}, got {', '.join(self.axes)}"
            )
        if unknown := sorted(set(self.masked) - set(self.channels)):
            raise ConfigError(
                f"masked: expected names among the channels ({', '.join(self.channels)}), "
                f"got {', '.join(unknown)}"
            )
        if duplicated := _duplicates(self.masked):
            raise ConfigError(f"masked: expected unique names, got {', '.join(duplicated)} more than once")
        components = [role for role in self.roles if role in _COMPONENT_ROLES]
        if duplicated := _duplicates(components):
            raise ConfigError(
                f"roles: expected at most one channel per vector component, got {', '.join(duplicated)} twice"
            )

    @classmethod
    def uniform(
        cls,
        *,
        channels: Sequence[str],
        roles: Sequence[Role | str] | None = None,
        dim: int = 2,
        spacing: float = 1.0,
        periodic: bool = False,
        masked: Sequence[str] = (),
    ) -> FieldDescription:
        """The same spacing and boundary on every axis; roles default to ``scalar``."""
        if isinstance(dim, bool) or dim not in (1, 2, 3):
            raise ConfigError(f"dim: expected 1, 2 or 3, got {dim!r}")
        return cls(
            channels=channels,
            roles=[Role.SCALAR] * len(channels) if roles is None else roles,
            spacing=[spacing] * dim,
            periodic=[periodic] * dim,
            masked=masked,
        )

    @property
    def dim(self) -> int:
        """Number of spatial axes."""
        return len(self.spacing)

    @property
    def cell_volume(self) -> float:
        """Product of the spacings: the volume (area, length) of one grid cell."""
        return math.prod(self.spacing)

    def index(self, channel: str) -> int:
        """Position of the channel named ``channel``."""
        if channel not in self.channels:
            raise ConfigError(
                f"channel {channel!r} is not in this field; channels are {', '.join(self.channels)}"
            )
        return self.channels.index(channel)

    def axis(self, name: str) -> int:
        """Grid-axis index (tensor dimension minus 2) of the axis named ``name``."""
        if name not in self.axes:
            raise ConfigError(
                f"axis {name!r} is not in this {self.dim}-D field; axes are {', '.join(self.axes)}"
            )
        return self.axes.index(name)

    def active_channels(self) -> tuple[int, ...]:
        """Indices of the channels that are not masked."""
        return tuple(i for i, name in enumerate(self.channels) if name not in self.masked)

    def channels_with_role(self, role: Role | str, *, include_masked: bool = False) -> list[int]:
        """Indices of the channels with ``role`` (masked ones only if ``include_masked``)."""
        wanted = parse_role(role, "role")
        return [
            i
            for i, (name, have) in enumerate(zip(self.channels, self.roles, strict=True))
            if have == wanted and (include_masked or name not in self.masked)
        ]

    def has_roles(self, roles: Iterable[Role | str]) -> bool:
        """Whether every role in ``roles`` is carried by at least one unmasked channel."""
        return not self.missing_roles(roles)

    def missing_roles(self, roles: Iterable[Role | str]) -> list[Role]:
        """The roles in ``roles`` that no unmasked channel carries, in the order given."""
        wanted = [parse_role(role, "role") for role in roles]
        return [role for role in wanted if not self.channels_with_role(role)]

    def require_roles(self, roles: Iterable[Role | str], *, context: str = "this computation") -> None:
        """Raise :class:`ConfigError` naming every role of ``roles`` that no unmasked channel carries,
        and how to give a channel its role (Python and a ``safesvd compress`` config, with an example)."""
        if missing := self.missing_roles(roles):
            raise ConfigError(
                f"{context} needs channel role(s) {', '.join(role.value for role in missing)}, "
                f"which no unmasked channel has; {self._describe()}. {self._role_hint(missing)}"
            )

    def velocity_channels(self) -> tuple[int, ...]:
        """Velocity channel per grid axis, in tensor axis order (the component along axis ``i`` first)."""
        self.require_roles([VELOCITY_ROLES[axis] for axis in self.axes], context=f"a {self.dim}-D velocity")
        return tuple(self.channels_with_role(VELOCITY_ROLES[axis])[0] for axis in self.axes)

    def check_shape(self, shape: Sequence[int]) -> None:
        """Raise :class:`ConfigError` unless ``shape`` is ``(batch, len(channels), *grid)`` of this
        dimension."""
        shape = tuple(shape)
        if len(shape) != 2 + self.dim or shape[1] != len(self.channels) or min(shape, default=0) < 1:
            grid = ", ".join(["n"] * self.dim)
            raise ConfigError(
                f"field tensor: expected shape (batch, {len(self.channels)}, {grid}) for channels "
                f"{', '.join(self.channels)} on a {self.dim}-D grid, got {shape}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/TOML-compatible dict; :meth:`from_dict` reads it back."""
        return {
            "version": FORMAT_VERSION,
            "channels": list(self.channels),
            "roles": [role.value for role in self.roles],
            "spacing": list(self.spacing),
            "periodic": list(self.periodic),
            "masked": list(self.masked),
            "axes": list(self.axes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldDescription:
        """Rebuild a description written by :meth:`to_dict` (``masked``, ``axes``, ``version`` optional)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"field description: expected a mapping, got {type(data).__name__}")
        values = dict(data)
        version = values.pop("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ConfigError(f"field description version: expected {FORMAT_VERSION}, got {version!r}")
        known = {field.name for field in attrs.fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ConfigError(
                f"field description: unknown key(s) {', '.join(unknown)}; "
                f"expected keys among {', '.join(sorted(known))}"
            )
        if missing := [key for key in ("channels", "roles", "spacing", "periodic") if key not in values]:
            raise ConfigError(f"field description: missing key(s) {', '.join(missing)}")
        return cls(**values)

    def _role_hint(self, missing: Sequence[Role]) -> str:
        """How to say which channel holds each ``missing`` role, with example values built from this field:
        the missing roles given to its unmasked channels, ``scalar`` ones first."""
        unmasked = [name for name in self.channels if name not in self.masked] or list(self.channels)
        plain = sorted(unmasked, key=lambda name: self.roles[self.channels.index(name)] != Role.SCALAR)
        given = dict(zip(plain, missing))
        roles = [given.get(name, role).value for name, role in zip(self.channels, self.roles, strict=True)]
        mapping = ", ".join(f'"{name}": "{role.value}"' for name, role in given.items())
        table = ", ".join(f'{name} = "{role.value}"' for name, role in given.items())
        listed = ", ".join(f'"{role}"' for role in roles)
        return (
            f"Say which channel holds it, e.g. {', '.join(f'{n} → {r.value}' for n, r in given.items())}. "
            f"Python: roles=[{listed}] in the FieldDescription (the generic adapter's field_description=; a "
            f"framework adapter takes roles= itself), or TheWell(path, roles={{{mapping}}}) for a The Well "
            f"file. A safesvd compress config: [data] options = {{ roles = {{ {table} }} }} beside "
            f'the_well = "...", or roles = [{listed}] in [adapter] options.field_description (a framework '
            "adapter: [adapter] options.roles)"
        )

    def _describe(self) -> str:
        pairs = ", ".join(
            f"{name}={role.value}" + (" (masked)" if name in self.masked else "")
            for name, role in zip(self.channels, self.roles, strict=True)
        )
        return f"channels are {pairs}"
