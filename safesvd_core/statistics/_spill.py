"""Low-memory clean statistics: a memory cap, and layer groups that each fit under it.

With a :class:`SpillPolicy`, the clean pass runs once per group of layers (in forward order)
whose estimator states fit under ``max_bytes``; each group's sums go to ``directory`` (see
:meth:`CalibrationStatistics.spill`) before the next group starts, and the allocation and the
stages read one layer at a time back. Peak statistics memory is then one group, at the cost of
one clean pass per group (``result.passes["clean"]``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from .._errors import ConfigError

_UNITS = {"": 1, "B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def parse_bytes(value: int | str) -> int:
    """``6 * 2**30``, ``"6GiB"``, ``"500 MB"`` → bytes."""
    if isinstance(value, bool):
        raise ConfigError(
            f"the statistics' memory cap must be bytes (an int) or a size like '6GiB', got {value!r}"
        )
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if match is None or match.group(2).upper() not in _UNITS:
        raise ConfigError(
            f"the statistics' memory cap must be bytes (an int) or a size like '6GiB', got {value!r}"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _positive_bytes(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{attribute.name} must be a positive number of bytes, got {value!r}")


@attrs.frozen
class SpillPolicy:
    """Keep at most ``max_bytes`` (bytes, or a size like ``"6GiB"``) of clean statistics in memory;
    spill the rest to ``directory``, a new or empty directory kept afterwards
    (``compress(..., statistics=SpillPolicy("stats", "6GiB"))``)."""

    directory: Path = attrs.field(converter=Path)
    max_bytes: int = attrs.field(converter=parse_bytes, validator=_positive_bytes)

    def for_process(self, rank: int, world: int) -> SpillPolicy:
        """The policy of process ``rank`` of ``world``: its own subdirectory when there are several
        (each spills its own copy, on node-local disks), checked to be new or empty."""
        policy = self if world == 1 else attrs.evolve(self, directory=self.directory / f"rank-{rank}")
        if policy.directory.exists() and any(policy.directory.iterdir()):
            raise ConfigError(
                f"the spill directory {policy.directory} is not empty; give a new or empty directory "
                "(to resume from it, pass statistics=CalibrationStatistics.open(it))"
            )
        return policy


def layer_groups(
    sizes: Mapping[str, int],
    order: Sequence[str],
    max_bytes: int,
    together: Mapping[str, str] | None = None,
) -> list[list[str]]:
    """Consecutive runs of ``order`` whose summed ``sizes`` stay within ``max_bytes``.

    ``together``: layer → the first of the siblings reading its input (the probe's input groups).
    Consecutive siblings go in one group where they fit together, so that their products are
    shared (:mod:`._shared_products`) as in a run that holds every layer, to the same bits.
    A single layer over the cap is an error: it could never be held, whatever the grouping.
    """
    for name in order:
        if sizes[name] > max_bytes:
            raise ConfigError(
                f"the statistics of layer {name!r} alone take {sizes[name]:,} bytes, more than "
                f"the cap of {max_bytes:,} (SpillPolicy's max_bytes); raise the cap"
            )
    root = {name: (together or {}).get(name, name) for name in order}
    units: list[list[str]] = []  # consecutive siblings
    for name in order:
        if units and root[units[-1][-1]] == root[name]:
            units[-1].append(name)
        else:
            units.append([name])
    groups: list[list[str]] = []
    held = 0
    for unit in units:
        size = sum(sizes[name] for name in unit)
        for part in [unit] if size <= max_bytes else [[name] for name in unit]:
            part_size = sum(sizes[name] for name in part)
            if not groups or held + part_size > max_bytes:
                groups.append([])
                held = 0
            groups[-1].extend(part)
            held += part_size
    return groups
