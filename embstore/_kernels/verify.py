"""Full verification of a store's vocabulary, index and vectors."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._core import JIT as _JIT
from ._core import parallel_kernel
from .index import probe
from .strings import utf8_valid

# ---------------------------------------------------------------------------------------------
# Full verification


@njit(**_JIT)
def check_offsets(woff, nb):  # type: ignore[no-untyped-def]
    """First row whose offsets are out of order or bounds, or -1."""
    if woff[0] != 0:
        return 0
    for r in range(woff.size - 1):
        if woff[r + 1] < woff[r] or woff[r + 1] > nb:
            return r
    if woff[woff.size - 1] != nb:
        return woff.size - 2
    return -1


@parallel_kernel(work=lambda *a: a[4].size, threshold=10_000)
def check_rows(woff, wbytes, table, n_rows, bad, r0=0):  # type: ignore[no-untyped-def]
    """``bad[i]`` for row ``r0 + i``: 2 invalid UTF-8, 3 the index does not lead back to it.

    ``r0`` lets verify check a window of rows at a time (bounded memory)."""
    for i in prange(bad.size):
        r = r0 + i
        a = np.int64(woff[r])
        b = np.int64(woff[r + 1])
        if not utf8_valid(wbytes, a, b):
            bad[i] = 2
        elif probe(wbytes, a, b, table, woff, wbytes, n_rows) != r:
            bad[i] = 3
        else:
            bad[i] = 0


@parallel_kernel(work=lambda table, *_: table.shape[0], threshold=300_000)
def count_occupied(table):  # type: ignore[no-untyped-def]
    c = 0
    for s in prange(table.shape[0]):
        if table[s, 1] != 0:
            c += 1
    return c


@parallel_kernel(work=lambda vectors, *_: vectors.size, threshold=3_000_000)
def nonfinite_rows(vectors, bad):  # type: ignore[no-untyped-def]
    dim = vectors.shape[1]
    for r in prange(vectors.shape[0]):
        ok = 1
        for j in range(dim):
            if not np.isfinite(vectors[r, j]):
                ok = 0
        bad[r] = 1 - ok
