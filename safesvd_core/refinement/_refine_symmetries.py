"""Refinement inputs multiplied by the symmetries of their PDE family (``RefineOptions.symmetries``):
every training step draws one of the family's symmetries (uniformly, and a uniform shift along the
periodic axes when translations are among them) and carries its item by it; the teacher labels the
result. The draw is seeded by the step, so a resumed run draws the same."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from .._errors import ConfigError
from .._field import FieldDescription
from .._structures import map_structure, structure_leaves
from ..kinds._interfaces import ModelAdapter
from ..kinds._plugins import registry
from ..physics._symmetry import Symmetry, SymmetryGroup
from ..run._rollout import one_step_batches


def _states(value: Any, field: FieldDescription) -> list[Tensor]:
    """The tensors of ``value`` shaped as states of ``field`` (``(..., channels, *grid)``)."""
    return [
        leaf for _, leaf in structure_leaves(value) if isinstance(leaf, Tensor) and _is_state(leaf, field)
    ]


def _is_state(tensor: Tensor, field: FieldDescription) -> bool:
    return tensor.ndim > field.dim and tensor.shape[-field.dim - 1] == len(field.channels)


@attrs.frozen
class SymmetricItems:
    """The family's symmetry ``group`` on ``field``, drawn per step from ``seed``."""

    group: SymmetryGroup
    field: FieldDescription
    seed: int

    def draw(self, step: int, sizes: Sequence[int]) -> Symmetry:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return self.group.draw(self.field, sizes, generator)

    def item(self, step: int, item: Any) -> Any:
        """``item`` carried by the symmetry of ``step``: every tensor shaped as a state of the field
        (the input and the trajectory or target), the others as they are."""
        states = _states(item, self.field)
        if not states:
            return item
        symmetry = self.draw(step, tuple(states[0].shape[-self.field.dim :]))
        return map_structure(
            lambda _, leaf: (
                symmetry.apply(leaf, self.field)
                if isinstance(leaf, Tensor) and _is_state(leaf, self.field)
                else leaf
            ),
            item,
        )


def symmetric_items(
    family: str | None, seed: int, adapter: ModelAdapter, items: Sequence[Any]
) -> SymmetricItems | None:
    """The symmetries of ``family`` on the field of the items (``None`` without a family); a family
    that declares none there, or items without a field description, are refused."""
    if family is None:
        return None
    declared = registry("pde_family").create(family)
    field = adapter.field(one_step_batches(adapter, list(items[:1]))[0])
    if field is None:
        raise ConfigError(
            f"refine symmetries={family!r} needs the field description of the data (its channel roles, "
            "spacing and periodic axes): give adapter_options={'field_description': ...}"
        )
    group = declared.symmetries(field)
    if not group:
        raise ConfigError(
            f"PDE family {family!r} declares no symmetry on this field ({field.dim}-D, periodic "
            f"{list(field.periodic)}): its boundaries keep none; refine without symmetries"
        )
    return SymmetricItems(group=group, field=field, seed=seed)
