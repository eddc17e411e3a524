"""Symmetries of a PDE family: maps that carry a valid state to a valid state of the same PDE and the
same data distribution (a translation on periodic axes, a reflection, the exchange of two axes), with
the matching changes of the vector components. Refinement multiplies small data by them
(``RefineOptions.symmetries``); a family declares its own (:meth:`PDEFamily.symmetries`)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

from .._errors import ConfigError
from .._field import MOMENTUM_ROLES, VELOCITY_ROLES, FieldDescription


def _component_channels(field: FieldDescription, axis: int) -> list[int]:
    """The channels that carry the vector component along grid axis ``axis`` (velocity, momentum)."""
    name = field.axes[axis]
    return [
        index
        for roles in (VELOCITY_ROLES, MOMENTUM_ROLES)
        if name in roles
        for index in field.channels_with_role(roles[name], include_masked=True)
    ]


@attrs.frozen
class Symmetry:
    """One element of a family's symmetry group on a grid: first the axes ``swap`` exchange (the
    reflection about their diagonal), then each axis in ``flips`` is reflected, then the state is
    shifted by ``shift`` cells per axis (periodic axes only). A state is ``(..., channels, *grid)``."""

    swap: tuple[int, int] | None = None
    flips: tuple[int, ...] = ()
    shift: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        parts = ([f"swap{self.swap}"] if self.swap else []) + [f"flip{axis}" for axis in self.flips]
        parts += [f"shift{self.shift}"] if any(self.shift) else []
        return "+".join(parts) or "identity"

    @property
    def improper(self) -> bool:
        """Whether it reverses orientation (pseudo-scalars such as 2-D vorticity change sign)."""
        return (len(self.flips) + (self.swap is not None)) % 2 == 1

    def apply(self, state: Tensor, field: FieldDescription) -> Tensor:
        """``state`` carried by the symmetry (a new tensor)."""
        dim = field.dim
        if state.ndim < dim + 1 or tuple(state.shape[-dim - 1 :][:1]) != (len(field.channels),):
            raise ConfigError(
                f"symmetry {self.name}: expected a state (..., {len(field.channels)} channels, *grid of "
                f"{dim} axes), got shape {tuple(state.shape)}"
            )
        grid = [state.ndim - dim + axis for axis in range(dim)]
        channel = state.ndim - dim - 1
        out = state
        if self.swap is not None:
            first, second = self.swap
            sizes = (state.shape[grid[first]], state.shape[grid[second]])
            if sizes[0] != sizes[1] or field.spacing[first] != field.spacing[second]:
                raise ConfigError(
                    f"symmetry {self.name}: axes {first} and {second} differ in size or spacing "
                    f"({sizes[0]} × {field.spacing[first]} against {sizes[1]} × {field.spacing[second]}): "
                    "they cannot be exchanged"
                )
            out = out.transpose(grid[first], grid[second])
            order = list(range(len(field.channels)))
            for a, b in zip(_component_channels(field, first), _component_channels(field, second)):
                order[a], order[b] = b, a
            out = out.index_select(channel, torch.tensor(order, device=out.device))
        for axis in self.flips:
            out = out.flip(grid[axis])
            signs = torch.ones(len(field.channels), dtype=out.dtype, device=out.device)
            signs[_component_channels(field, axis)] = -1
            out = out * signs.view(-1, *([1] * dim))
        if any(self.shift):
            if any(shift and not periodic for shift, periodic in zip(self.shift, field.periodic)):
                raise ConfigError(
                    f"symmetry {self.name}: a shift along a non-periodic axis moves the boundary"
                )
            out = torch.roll(out, shifts=list(self.shift), dims=grid)
        return out.contiguous()


def dihedral(
    field: FieldDescription, *, reflect: Sequence[int] = (), exchange: bool = False
) -> tuple[Symmetry, ...]:
    """The reflections of the axes ``reflect`` and, with ``exchange``, of the first two axes' diagonal,
    and their products (the identity left out): the 7 non-trivial symmetries of a square in 2-D."""
    found: list[Symmetry] = []
    swaps = [None, (0, 1)] if exchange and field.dim >= 2 else [None]
    reflect = tuple(reflect)
    flip_sets = [tuple(axis for axis, bit in enumerate(bits) if bit) for bits in _bits(len(reflect))]
    for swap in swaps:
        for chosen in flip_sets:
            flips = tuple(reflect[index] for index in chosen)
            if swap is None and not flips:
                continue
            found.append(Symmetry(swap=swap, flips=flips, shift=(0,) * field.dim))
    return tuple(found)


def _bits(count: int) -> list[tuple[bool, ...]]:
    return [tuple(bool(number >> bit & 1) for bit in range(count)) for number in range(2**count)]


@attrs.frozen
class SymmetryGroup:
    """What a family declares on a grid: ``elements`` (reflections, exchanges and their products) and
    whether any shift along the periodic axes is one too (``translations``). Empty: none."""

    elements: tuple[Symmetry, ...] = ()
    translations: bool = False

    def __bool__(self) -> bool:
        return bool(self.elements) or self.translations

    def draw(self, field: FieldDescription, sizes: Sequence[int], generator: torch.Generator) -> Symmetry:
        """A uniform draw: one of the elements or the identity, then (with ``translations``) a uniform
        shift along every periodic axis."""
        choice = int(torch.randint(len(self.elements) + 1, (1,), generator=generator))
        chosen = Symmetry(shift=(0,) * field.dim) if choice == len(self.elements) else self.elements[choice]
        if not self.translations:
            return chosen
        shift = tuple(
            int(torch.randint(size, (1,), generator=generator)) if periodic else 0
            for size, periodic in zip(sizes, field.periodic)
        )
        return attrs.evolve(chosen, shift=shift)


def periodic_square(field: FieldDescription) -> SymmetryGroup:
    """On a fully periodic grid: every translation, each axis's reflection and, on the first two axes
    when their spacings agree, their exchange (the square's symmetries in 2-D); otherwise none."""
    if not all(field.periodic):
        return SymmetryGroup()
    exchange = field.dim >= 2 and field.spacing[0] == field.spacing[1]
    return SymmetryGroup(
        elements=dihedral(field, reflect=range(field.dim), exchange=exchange), translations=True
    )
