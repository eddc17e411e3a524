"""The refinement items split: the held-out share (whole global batches; the last share of each
domain's when the items carry domain labels) and each process's share of the global batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError
from ..kinds._interfaces import ModelAdapter
from ..run._seams import StatisticsReducer


def split_items(
    items: Sequence[Any], share: float, domains: Sequence[str | None] | None = None, world: int = 1
) -> tuple[list[Any], list[Any]]:
    """``(fit, held_out)``, whole global batches of ``world`` consecutive items each: the last ``share``
    of the batches held out (at least one; none for ``share = 0``). With ``domains`` (the items'
    labels), the last ``share`` of each domain's batches, so that the held-out score covers every
    domain even when the items come sorted by domain (a domain of one batch is never held out)."""
    if len(items) % world:
        raise ConfigError(
            f"distributed refinement on {world} processes takes global batches of one item per "
            f"process: give a multiple of {world} refinement items, got {len(items)}"
        )
    batches = len(items) // world
    if share == 0.0:
        return list(items), []
    keys = [None if domains is None else tuple(domains[g * world : (g + 1) * world]) for g in range(batches)]
    groups: dict[Any, list[int]] = {}
    for batch, key in enumerate(keys):
        groups.setdefault(key, []).append(batch)
    held: set[int] = set()
    for members in groups.values():
        count = min(len(members) - 1, max(1, round(share * len(members))))
        held.update(members[len(members) - count :] if count > 0 else [])
    if not held:
        raise ConfigError(
            f"refinement with a held-out share of {share} needs at least 2 items (batches) of one domain, "
            f"got {batches}" + ("" if domains is None else f" in {len(groups)} domains")
        )
    chosen = [(batch in held) for batch in range(batches) for _ in range(world)]
    return (
        [item for item, out in zip(items, chosen) if not out],
        [item for item, out in zip(items, chosen) if out],
    )


def item_domains(adapter: ModelAdapter, items: Sequence[Any]) -> list[str | None] | None:
    """The items' domain labels (``ModelAdapter.domain``), or ``None`` when none is labelled."""
    domains = [adapter.domain(item) for item in items]
    return None if all(domain is None for domain in domains) else domains


def shard(items: Sequence[Any], reducer: StatisticsReducer) -> list[Any]:
    """This process's items: item ``P·g + r`` of every global batch ``g`` (all of them alone; whole
    global batches, as :func:`split_items` gives them)."""
    return list(items[reducer.rank :: reducer.world])


def domain_counts(adapter: ModelAdapter, items: Sequence[Any]) -> dict[str, int]:
    """How many of ``items`` each domain label has."""
    counts: dict[str, int] = {}
    for item in items:
        domain = str(adapter.domain(item))
        counts[domain] = counts.get(domain, 0) + 1
    return counts
