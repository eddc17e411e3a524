"""Checked access to HDF5 groups, datasets and attributes: a missing piece is a named :class:`ConfigError`."""

from __future__ import annotations

from typing import Any

import numpy as np

from safesvd_core.plugin import ConfigError


def _where(group: Any) -> str:
    return f"{group.file.filename}:{group.name}"


def member(group: Any, name: str, *, layout: str) -> Any:
    """``group[name]``, or a :class:`ConfigError` naming what the ``layout`` expected and what the group
    holds."""
    if name not in group:
        if group.name == "/" and not len(group):
            raise ConfigError(
                f"{layout}: {group.file.filename} is an empty HDF5 file (no dataset or group: an interrupted "
                "download or write?); give the file again"
            )
        held = ", ".join(sorted(group.keys())) or "nothing"
        raise ConfigError(f"{layout}: expected {name!r} in {_where(group)}, which holds {held}")
    return group[name]


def attribute(obj: Any, name: str, *, layout: str) -> Any:
    """An attribute of a group or dataset, with bytes decoded to ``str``."""
    if name not in obj.attrs:
        raise ConfigError(f"{layout}: expected the attribute {name!r} on {_where(obj)}")
    return text(obj.attrs[name])


def text(value: Any) -> Any:
    """Decode bytes (and arrays of them) that h5py returns for string attributes."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [text(item) for item in value.tolist()]
    return value


__all__ = ["attribute", "member", "text"]
