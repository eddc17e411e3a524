"""Streaming second moments: float64 sums of outer products plus a row count, mergeable.

Complex rows (the Fourier coefficients of a spectral layer's mode) give complex128 sums of
``a bᴴ``: Hermitian moments ``E[x xᴴ]``, the first complex rows switching the sum to complex.

A moment of rows against themselves (``E[x xᵀ]``: a covariance, a Fisher) is symmetric: on the CPU
in float64 its sum is accumulated one triangle at a time, filled in when read. With torch on one
thread that is BLAS's symmetric rank-k update (``dsyrk``), about half the cost of a full product.
With more threads it is torch's product by block rows (each block row against the columns from its
diagonal on: ``(k + 1) / 2k`` of the full product's work for ``k`` blocks), because scipy's BLAS
threads and torch's OpenMP threads contend for the cores (measured: ``dsyrk`` beside two torch
threads took twice the time of torch's full product).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from scipy.linalg import blas
from torch import Tensor

from .._errors import NumericalError
from ..linalg._linalg import precise_dtype
from ._shared_products import active_products

#: Block rows of a symmetric update with several torch threads: 4 does 62.5 % of the full product's
#: work (measured on two threads, float64, 768 to 3072 wide: 1.5 to 1.6 times faster than it).
SYMMETRIC_BLOCKS = 4
#: The narrowest block row: below it a product's per-call cost outweighs the work saved (a 48-wide
#: moment took 0.13 ms whole against 0.16 ms in four blocks).
SYMMETRIC_BLOCK_WIDTH = 64


class RunningMoment:
    """``E[a bᵀ]`` over rows (``E[a bᴴ]`` for complex rows), accumulated as a sum and a count.

    Two instances built over disjoint chunks merge into the instance built over their union, so
    partial sums from several processes reduce with a plain sum (:meth:`reduce`).
    """

    def __init__(self, rows: int, cols: int, *, device: torch.device | str | None = None) -> None:
        self._sum = torch.zeros(rows, cols, dtype=torch.float64, device=device)
        self._upper_only = False  # only the upper triangle holds the sum (rank-k updates since read)
        self._symmetric = rows == cols  # every update so far was rows against themselves
        self.count = 0

    @property
    def total(self) -> Tensor:
        """``Σ a bᵀ`` (both triangles)."""
        if self._upper_only:
            self._sum = torch.triu(self._sum) + torch.triu(self._sum, 1).mT
            self._upper_only = False
        return self._sum

    @total.setter
    def total(self, value: Tensor) -> None:
        self._sum, self._upper_only = value, False

    def add(self, left: Tensor, right: Tensor | None = None) -> None:
        """Add the rows of ``left`` (``(r, rows)``) against ``right`` (``(r, cols)``, default ``left``)."""
        if self.count == 0 and left.device != self._sum.device:
            self.total = self._sum.to(left.device)  # accumulate where the activations live
        self._take_complex(left.is_complex() or (right is not None and right.is_complex()))
        device, dtype = self._sum.device, self._sum.dtype
        source = left
        left = left.reshape(-1, left.shape[-1]).to(device, dtype)
        paired = left if right is None else right.reshape(-1, right.shape[-1]).to(device, dtype)
        if left.shape[0] != paired.shape[0]:
            raise NumericalError(f"paired rows differ in number: {left.shape[0]} vs {paired.shape[0]}")
        if (left.shape[1], paired.shape[1]) != tuple(self._sum.shape):
            raise NumericalError(
                f"moment of shape {tuple(self._sum.shape)} got rows of widths {left.shape[1]} "
                f"and {paired.shape[1]}"
            )
        self._symmetric = self._symmetric and right is None
        upper = self._symmetric and _symmetric_update_pays(device, dtype)
        if upper and not self._sum.is_contiguous():
            self._sum = self._sum.contiguous()
        scope = active_products()
        key = None if scope is None else scope.key(source, right, self._sum, upper)
        if key is None:
            _accumulate(self._sum if upper else self.total, left, paired, upper)
        else:  # rows a sibling layer reads too: their product is computed once (:mod:`._shared_products`)
            rows = (source,) if right is None else (source, right)
            product = scope.product(
                key, rows, lambda: _accumulate(torch.zeros_like(self._sum), left, paired, upper)
            )
            (self._sum if upper else self.total).add_(product)
        if upper:  # only the upper triangle holds the sum now (a full sum's upper triangle is valid)
            self._upper_only = True
        # a NaN or Inf anywhere in the rows of a square moment reaches its diagonal (x·x, or
        # Inf·0 = NaN), and a sum once non-finite stays so: checking the diagonal is exact and far
        # cheaper than checking every row (a non-square moment is checked whole)
        square = self._sum.shape[0] == self._sum.shape[1]
        if not torch.isfinite(self._sum.diagonal() if square else self._sum).all():
            raise NumericalError("non-finite calibration rows (NaN/Inf); the batch is not skipped silently")
        self.count += left.shape[0]

    def _take_complex(self, complex_rows: bool) -> None:
        """Switch the sum to complex128 at the first complex rows (a real sum so far is cast)."""
        if complex_rows and not self.total.is_complex():
            self.total = self.total.to(torch.complex128)

    def merge(self, other: RunningMoment) -> None:
        """Add ``other``'s sum and count."""
        if other.total.shape != self.total.shape:
            raise NumericalError(
                f"cannot merge moments of shapes {tuple(self.total.shape)} and {tuple(other.total.shape)}"
            )
        self._take_complex(other.total.is_complex())
        self.total += other.total.to(self.total.device, self.total.dtype)
        self.count += other.count

    def reduce(self, sum_: Callable[[Tensor], None]) -> None:
        """Sum and count over every process, with ``sum_`` an in-place all-reduce (sum) of a tensor."""
        sum_(torch.view_as_real(self.total) if self.total.is_complex() else self.total)
        count = torch.tensor(self.count, dtype=torch.int64, device=self.total.device)
        sum_(count)
        self.count = int(count)

    def mean(self) -> Tensor:
        """``Σ a bᵀ / count``."""
        if self.count == 0:
            raise NumericalError("no calibration rows were accumulated")
        return self.total / self.count

    def state_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """Sum and count as tensors."""
        return {
            f"{prefix}sum": self.total.clone(),
            f"{prefix}count": torch.tensor(self.count, dtype=torch.int64),
        }

    def load_state_dict(self, state: Mapping[str, Tensor], prefix: str = "") -> None:
        """Restore from :meth:`state_dict`."""
        total = state[f"{prefix}sum"]
        if total.shape != self.total.shape:
            raise NumericalError(
                f"stored moment has shape {tuple(total.shape)}, expected {tuple(self.total.shape)}"
            )
        self.total = total.to(self.total.device, precise_dtype(total)).clone()
        self.count = int(state[f"{prefix}count"])


def _accumulate(target: Tensor, left: Tensor, paired: Tensor, upper: bool) -> Tensor:
    """``target += leftᵀ paired`` (conjugated when complex), in place; with ``upper`` (``paired`` is
    ``left``, float64 on the CPU, ``target`` contiguous) its upper triangle only: by ``dsyrk`` with
    torch on one thread, else by block rows."""
    if upper and torch.get_num_threads() == 1:
        rows = left.detach().contiguous().numpy()
        # the C-ordered sum seen as Fortran-ordered is its transpose: its lower triangle is our upper
        blas.dsyrk(1.0, rows.T, beta=1.0, c=target.numpy().T, trans=0, lower=1, overwrite_c=1)
    elif upper:
        rows = left.detach()
        step = max(-(-rows.shape[1] // SYMMETRIC_BLOCKS), SYMMETRIC_BLOCK_WIDTH)
        for start in range(0, rows.shape[1], step):
            target[start : start + step, start:].addmm_(rows[:, start : start + step].mT, rows[:, start:])
    else:
        target.addmm_(left.mT, paired.conj() if paired.is_complex() else paired)
    return target


def _symmetric_update_pays(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether a symmetric sum is accumulated one triangle at a time: float64 on the CPU."""
    return device.type == "cpu" and dtype == torch.float64
