"""Multi-domain calibration: batches from several pair sets, each labelled with its domain."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import attrs
from torch import Tensor

from safesvd_core.plugin import ConfigError, FieldDescription, positive_int

from .pairs import PairSet


def _sets(value: Iterable[PairSet]) -> tuple[PairSet, ...]:
    sets = tuple(value)
    if not sets or not all(isinstance(item, PairSet) for item in sets):
        raise ConfigError(f"sets: expected one or more PairSet, got {value!r}")
    return sets


@attrs.frozen(kw_only=True, eq=False)
class MultiDomainLoader:
    """Iterates ``(input, target, domain)`` batches, taking one batch from each set in turn.

    A batch never mixes domains (their channels differ). Sets that share a domain label must
    share a field description; :meth:`field` gives it for a label.
    """

    sets: tuple[PairSet, ...] = attrs.field(converter=_sets)
    batch_size: int = attrs.field(default=8, validator=positive_int)

    def __attrs_post_init__(self) -> None:
        for pairs in self.sets:
            if pairs.field != self.field(pairs.domain):
                raise ConfigError(
                    f"sets: domain {pairs.domain!r} appears with two different field descriptions"
                )

    @property
    def domains(self) -> tuple[str, ...]:
        """The domain labels, in order of first appearance."""
        return tuple(dict.fromkeys(pairs.domain for pairs in self.sets))

    def field(self, domain: str) -> FieldDescription:
        """The field description of the samples labelled ``domain``."""
        for pairs in self.sets:
            if pairs.domain == domain:
                return pairs.field
        raise ConfigError(f"domain {domain!r} is not loaded; domains are {', '.join(self.domains)}")

    def __len__(self) -> int:
        return sum(-(-len(pairs) // self.batch_size) for pairs in self.sets)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, str]]:
        streams = [pairs.batches(self.batch_size, with_domain=True) for pairs in self.sets]
        for batch in itertools.chain.from_iterable(itertools.zip_longest(*streams)):
            if batch is not None:
                yield batch


__all__ = ["MultiDomainLoader"]
