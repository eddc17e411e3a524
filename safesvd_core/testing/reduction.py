"""An in-memory two-process :class:`~safesvd_core.plugin.Reduction`: two threads stand for two ranks.

::

    first, second = on_two_ranks(lambda reduction, rank: estimators[rank].reduce(reduction))

Each rank's :meth:`~ThreadPairReduction.sum_` adds the peer's tensor, :meth:`~ThreadPairReduction.union`
returns the sorted union of both ranks' labels. Ranks that make different collective calls (another
operation, another shape or dtype, or more calls than the peer) fail with an ``AssertionError`` that
says so, where a real all-reduce would hang or mix up tensors: after its work each rank meets its
peer once more, so a peer still making calls finds it has returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from torch import Tensor

from ..kinds._interfaces import Reduction

T = TypeVar("T")

#: Seconds a rank waits for its peer at one collective call before the pair counts as hung.
TIMEOUT = 30.0


_FINISH = "finish"


def _did(operation: str) -> str:
    return "had returned" if operation == _FINISH else f"called {operation}"


class _Exchange:
    """What the two ranks share: one slot per rank, a barrier, and each rank's call log."""

    def __init__(self, timeout: float) -> None:
        self.barrier = threading.Barrier(2, timeout=timeout)
        self.slots: list[Any] = [None, None]
        self.calls: list[list[str]] = [[], []]


class ThreadPairReduction(Reduction):
    """Rank ``rank`` (0 or 1) of a pair of threads that reduce through ``exchange``."""

    def __init__(self, exchange: _Exchange, rank: int) -> None:
        self._exchange = exchange
        self.rank = rank

    def _swap(self, operation: str, value: Any) -> Any:
        """Publish ``value``, wait for the peer, return the peer's value (both read before any rewrite)."""
        exchange = self._exchange
        exchange.calls[self.rank].append(operation)
        exchange.slots[self.rank] = (operation, value)
        exchange.barrier.wait()
        peer_operation, peer_value = exchange.slots[1 - self.rank]
        exchange.barrier.wait()
        call = len(exchange.calls[self.rank])
        assert peer_operation == operation, (
            f"collective call {call}: rank {self.rank} {_did(operation)}, its peer {_did(peer_operation)}; "
            "every process must make the same calls in the same order"
        )
        return peer_value

    def finish(self) -> None:
        """Meet the peer once more after the work, so that a peer still calling fails at once."""
        self._swap(_FINISH, None)

    def sum_(self, tensor: Tensor) -> None:
        peer = self._swap("sum_", tensor.detach().clone())
        assert (peer.shape, peer.dtype) == (tensor.shape, tensor.dtype), (
            f"collective call {len(self._exchange.calls[self.rank])}: rank {self.rank} sums a "
            f"{tensor.dtype} tensor of shape {tuple(tensor.shape)}, its peer a {peer.dtype} tensor of "
            f"shape {tuple(peer.shape)}"
        )
        tensor.add_(peer.to(tensor.device))

    def union(self, labels: Sequence[str]) -> list[str]:
        peer = self._swap("union", list(labels))
        return sorted(set(labels) | set(peer))


def on_two_ranks(work: Callable[[Reduction, int], T], *, timeout: float = TIMEOUT) -> list[T]:
    """Run ``work(reduction, rank)`` for ranks 0 and 1 in two threads; return both results in rank order.

    An exception in either rank is raised here (a rank's own error before its peer's broken barrier).
    """
    exchange = _Exchange(timeout)
    results: list[Any] = [None, None]
    errors: list[BaseException | None] = [None, None]

    def run(rank: int) -> None:
        reduction = ThreadPairReduction(exchange, rank)
        try:
            results[rank] = work(reduction, rank)
            reduction.finish()
        except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread
            errors[rank] = error
            exchange.barrier.abort()  # the peer, waiting for this rank, fails at once

    threads = [threading.Thread(target=run, args=(rank,), name=f"rank-{rank}") for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    own = [
        error for error in errors if error is not None and not isinstance(error, threading.BrokenBarrierError)
    ]
    if own:
        raise own[0]
    if any(errors):
        raise AssertionError(
            f"a rank waited {timeout} s for its peer at a collective call; the calls were "
            f"{exchange.calls[0]} and {exchange.calls[1]}"
        ) from errors[0] or errors[1]
    return results
