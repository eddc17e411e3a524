"""Distributed calibration on ``torch.distributed`` (gloo on CPU, nccl on GPU).

Each process takes a disjoint shard of the calibration items (item ``i`` of process ``r`` is
item ``r + i · world`` of the whole). Every statistic is all-reduced (float64 sums and counts; the
energy-balanced estimator first agrees on the union of domains); scalars too. Per-layer work (the
allocation's spectra, the solves) is done by its owner, ``index mod world``, and broadcast.
Nothing is pickled: metadata travels as JSON bytes in a ``uint8`` tensor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .._errors import ConfigError
from ..kinds._interfaces import Reduction
from ..statistics._statistics import CalibrationStatistics
from ._seams import LocalReducer, Shared, StatisticsReducer


def initialised() -> bool:
    """Whether a default ``torch.distributed`` process group exists."""
    return dist.is_available() and dist.is_initialized()


class TorchReduction(Reduction):
    """:class:`Reduction` by ``all_reduce`` (sum) and an all-gather of labels."""

    def __init__(self, reducer: DistributedReducer) -> None:
        self.reducer = reducer

    def sum_(self, tensor: Tensor) -> None:
        if tensor.device == self.reducer.device or self.reducer.backend == "gloo":
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.reducer.group)
            return
        moved = tensor.to(self.reducer.device)
        dist.all_reduce(moved, op=dist.ReduceOp.SUM, group=self.reducer.group)
        tensor.copy_(moved)

    def union(self, labels: Sequence[str]) -> list[str]:
        return self.reducer.union(labels)


class DistributedReducer(StatisticsReducer):
    """The processes of a ``torch.distributed`` group (default: the default group)."""

    def __init__(self, group: Any = None) -> None:
        if not initialised():
            raise ConfigError(
                "distributed compression needs an initialised torch.distributed process group: call "
                "torch.distributed.init_process_group first (torchrun sets up its environment)"
            )
        self.group = group
        self.backend = dist.get_backend(group)
        self.device = (
            torch.device("cuda", torch.cuda.current_device())
            if self.backend == "nccl"
            else torch.device("cpu")
        )
        self._rank, self._world = dist.get_rank(group), dist.get_world_size(group)

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world(self) -> int:
        return self._world

    def reduce(self, statistics: CalibrationStatistics) -> None:
        statistics.reduce(TorchReduction(self))

    def sum_values(self, values: Sequence[float]) -> list[float]:
        tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)
        return tensor.tolist()

    def sum_tensors(self, tensors: Sequence[Tensor]) -> None:
        """One ``all_reduce`` per dtype over the tensors flattened together (a gradient bucket)."""
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for tensor in tensors:
            by_dtype.setdefault(tensor.dtype, []).append(tensor)
        for group in by_dtype.values():
            flat = torch.cat([tensor.reshape(-1) for tensor in group]).to(self.device)
            dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
            offset = 0
            for tensor in group:
                tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
                offset += tensor.numel()

    def union(self, labels: Iterable[str]) -> list[str]:
        return sorted(
            set().union(*(json.loads(text) for text in self.texts(json.dumps(sorted(set(labels))))))
        )

    def texts(self, text: str) -> list[str]:
        data = torch.tensor(list(text.encode()), dtype=torch.uint8, device=self.device)
        length = torch.tensor([data.numel()], dtype=torch.int64, device=self.device)
        lengths = [torch.zeros_like(length) for _ in range(self.world)]
        dist.all_gather(lengths, length, group=self.group)
        longest = int(max(int(n) for n in lengths))
        padded = torch.zeros(longest, dtype=torch.uint8, device=self.device)
        padded[: data.numel()] = data
        gathered = [torch.zeros_like(padded) for _ in range(self.world)]
        dist.all_gather(gathered, padded, group=self.group)
        return [bytes(part[: int(n)].cpu().tolist()).decode() for part, n in zip(gathered, lengths)]

    def global_index(self, local: int) -> int:
        return self.rank + local * self.world

    def share(self, indices: Sequence[int], compute: Callable[[int], Shared]) -> dict[int, Shared]:
        mine = {index: compute(index) for index in indices if self.owner(index) == self.rank}  # in parallel
        return {index: self._broadcast(mine.get(index), self.owner(index)) for index in indices}

    def _broadcast(self, shared: Shared | None, owner: int) -> Shared:
        """``shared`` from ``owner`` to every process (tensors by broadcast, metadata as JSON bytes)."""
        header = (
            None
            if shared is None
            else {
                "meta": shared.meta,
                "tensors": {
                    name: [list(tensor.shape), str(tensor.dtype).removeprefix("torch.")]
                    for name, tensor in shared.tensors.items()
                },
            }
        )
        header = json.loads(
            self._broadcast_bytes(None if header is None else json.dumps(header).encode(), owner)
        )
        tensors = {}
        for name, (shape, dtype) in header["tensors"].items():
            buffer = (
                shared.tensors[name].detach().to(self.device).contiguous()
                if shared is not None
                else torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
            )
            dist.broadcast(buffer, src=owner, group=self.group)
            tensors[name] = buffer if shared is None else shared.tensors[name]
        return Shared(tensors=tensors, meta=header["meta"])

    def _broadcast_bytes(self, data: bytes | None, src: int) -> bytes:
        length = torch.tensor([0 if data is None else len(data)], dtype=torch.int64, device=self.device)
        dist.broadcast(length, src=src, group=self.group)
        buffer = (
            torch.tensor(list(data), dtype=torch.uint8, device=self.device)
            if data is not None
            else torch.empty(int(length), dtype=torch.uint8, device=self.device)
        )
        dist.broadcast(buffer, src=src, group=self.group)
        return bytes(buffer.cpu().tolist())

    def __repr__(self) -> str:
        return f"DistributedReducer(backend={self.backend!r}, rank={self.rank}, world={self.world})"


def processes(distributed: bool | StatisticsReducer | None) -> StatisticsReducer:
    """The processes a compression shares its work with (see ``compress``'s ``distributed``)."""
    if isinstance(distributed, StatisticsReducer):
        return _checked_reducer(distributed)
    if distributed is not None and not isinstance(distributed, bool):
        raise ConfigError(
            "distributed must be True, False, None or a StatisticsReducer (safesvd_core.plugin), got "
            f"{type(distributed).__name__}"
        )
    if distributed is False or (distributed is None and not (initialised() and dist.get_world_size() > 1)):
        return LocalReducer()
    return DistributedReducer()


def _checked_reducer(reducer: StatisticsReducer) -> StatisticsReducer:
    """A reducer given directly: its rank must be within its world."""
    rank, world = reducer.rank, reducer.world
    if (
        not all(isinstance(value, int) and not isinstance(value, bool) for value in (rank, world))
        or not 0 <= rank < world
    ):
        raise ConfigError(
            f"reducer {reducer!r} has rank {rank!r} and world {world!r}: the world must be a positive "
            "int and the rank an int in 0 … world − 1"
        )
    return reducer


def agree_on_data(reducer: StatisticsReducer, count: int, digest: str, what: str) -> None:
    """Every process must pass the same ``what`` items (each takes its shard of them): compare the
    item counts and fingerprints before any pass, and refuse a difference, naming each process's."""
    seen = [json.loads(text) for text in reducer.texts(json.dumps({"items": count, "fingerprint": digest}))]
    if any(entry != seen[0] for entry in seen):
        shown = "; ".join(
            f"process {rank}: {entry['items']} items, fingerprint {entry['fingerprint'][:12]}"
            for rank, entry in enumerate(seen)
        )
        raise ConfigError(
            f"the processes were given different {what} sets ({shown}); every process must pass "
            "the same items in the same order (each takes its own shard of them)"
        )
