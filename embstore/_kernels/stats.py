"""Per-dimension statistics of the rows being written."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._core import parallel_kernel


@parallel_kernel(work=lambda x, n, b, s, sums, *_: n * x.shape[1] if sums.shape[0] > 1 else 0, threshold=1_000_000)
def block_moments(x, n, block, shift, sums, sqs):  # type: ignore[no-untyped-def]
    """Per-block column sums of ``x - shift`` and of its squares, in float64, one pass.

    Shifting by a row of the data keeps the sum-of-squares formula numerically sound for
    float32 inputs.
    """
    nb = sums.shape[0]
    dim = x.shape[1]
    for b in prange(nb):
        lo = b * block
        hi = min(n, lo + block)
        for j in range(dim):
            sums[b, j] = 0.0
            sqs[b, j] = 0.0
        for i in range(lo, hi):
            for j in range(dim):
                d = np.float64(x[i, j]) - shift[j]
                sums[b, j] += d
                sqs[b, j] += d * d
