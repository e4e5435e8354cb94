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


@parallel_kernel
def check_rows(woff, wbytes, table, n_rows, bad):  # type: ignore[no-untyped-def]
    """``bad[r]``: 2 invalid UTF-8, 3 the index does not lead back to row r."""
    for r in prange(n_rows):
        a = np.int64(woff[r])
        b = np.int64(woff[r + 1])
        if not utf8_valid(wbytes, a, b):
            bad[r] = 2
        elif probe(wbytes, a, b, table, woff, wbytes, n_rows) != r:
            bad[r] = 3
        else:
            bad[r] = 0


@parallel_kernel
def count_occupied(table):  # type: ignore[no-untyped-def]
    c = 0
    for s in prange(table.shape[0]):
        if table[s, 1] != 0:
            c += 1
    return c


@parallel_kernel
def nonfinite_rows(vectors, bad):  # type: ignore[no-untyped-def]
    dim = vectors.shape[1]
    for r in prange(vectors.shape[0]):
        ok = 1
        for j in range(dim):
            if not np.isfinite(vectors[r, j]):
                ok = 0
        bad[r] = 1 - ok
