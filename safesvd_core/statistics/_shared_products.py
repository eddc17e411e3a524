"""Products of rows that several layers read, computed once per item.

Sibling layers read one input tensor (a query, key and value projection read one normalised
input): their input moments add the very same rows, ``xᵀx`` and, in a stage, ``x x̃ᵀ``. Within a
:func:`shared_products` scope a :class:`~._moments.RunningMoment` whose rows were declared
repeated takes the product from the scope when a sibling already computed it, instead of
multiplying again. Rows are recognised by their storage, layout and version counter (an in-place
change between two reads is a new key), and the scope holds them while it lasts, so that no freed
storage can pass for them. Sums differ from unshared ones in rounding only (a product added to a
sum, not accumulated into it).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from torch import Tensor

#: A tensor's identity as rows: device, storage address, shape, strides, dtype, version counter.
RowKey = tuple[Any, ...]


def row_key(rows: Tensor) -> RowKey:
    """What tells ``rows`` apart from any other rows alive at the same time."""
    return (str(rows.device), rows.data_ptr(), tuple(rows.shape), rows.stride(), rows.dtype, rows._version)


class SharedProducts:
    """The products computed so far in one scope, for rows declared ``repeated``."""

    def __init__(self, repeated: frozenset[RowKey]) -> None:
        self.repeated = repeated
        self.reused = 0  # products taken from the scope instead of computed
        self._products: dict[tuple[Any, ...], Tensor] = {}
        self._held: list[Tensor] = []

    def key(self, left: Tensor, right: Tensor | None, sum_: Tensor, upper: bool) -> tuple[Any, ...] | None:
        """The key of ``left``'s product with ``right`` (None: itself) into sums like ``sum_`` (its
        upper triangle only with ``upper``); None where the rows were not declared repeated."""
        keys = (row_key(left), None if right is None else row_key(right))
        if any(key is not None and key not in self.repeated for key in keys):
            return None
        return (*keys, str(sum_.device), sum_.dtype, tuple(sum_.shape), upper)

    def product(
        self, key: tuple[Any, ...], rows: tuple[Tensor, ...], compute: Callable[[], Tensor]
    ) -> Tensor:
        """The product under ``key``: computed by ``compute`` the first time, taken after."""
        if key in self._products:
            self.reused += 1
            return self._products[key]
        self._held.extend(rows)
        self._products[key] = product = compute()
        return product


_ACTIVE: ContextVar[SharedProducts | None] = ContextVar("safesvd_shared_products", default=None)


def active_products() -> SharedProducts | None:
    """The innermost :func:`shared_products` scope, if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def shared_products(rows: Iterable[Tensor | None]) -> Iterator[SharedProducts]:
    """A scope in which the products of rows occurring more than once in ``rows`` (the rows of
    every signal about to be added, ``None`` skipped) are computed once."""
    counts = Counter(row_key(tensor) for tensor in rows if tensor is not None)
    scope = SharedProducts(frozenset(key for key, count in counts.items() if count > 1))
    token = _ACTIVE.set(scope)
    try:
        yield scope
    finally:
        _ACTIVE.reset(token)
