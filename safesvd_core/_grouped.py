"""Objects whose fields are grouped in attrs sub-objects, still given flat: ``Plan(lam=...)`` for its
``objective``, ``CompressionJob(hooks=...)`` for its ``seams``, ``CompressionResult(ranks=...)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


def fold_flat(fields: Mapping[str, Any], groups: Mapping[str, type]) -> dict[str, Any]:
    """``fields`` with each group's own fields, given flat, moved into the group (a group object given
    too is evolved by them; none given: the group built from them)."""
    out = dict(fields)
    for group, kind in groups.items():
        flat = {name: out.pop(name) for name in attrs.fields_dict(kind) if name in out}
        given = out.pop(group, None)
        out[group] = kind(**flat) if given is None else attrs.evolve(given, **flat)
    return out


def flat_property(group: str, name: str) -> property:
    """A read-only attribute that reads ``name`` from the object's ``group``."""
    return property(lambda self: getattr(getattr(self, group), name), doc=f"``{group}.{name}``.")
