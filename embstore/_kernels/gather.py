"""Row copies: compaction while converting, and gathers from a mapped store into matrices."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._core import address, madvise, parallel_kernel


@parallel_kernel(work=lambda src, rows, out, *_: rows.size * out.shape[1], threshold=100_000)
def gather_rows(src, rows, out):  # type: ignore[no-untyped-def]
    """``out[k] = src[rows[k]]`` for every k (compaction of kept rows)."""
    for k in prange(rows.size):
        out[k, :] = src[rows[k], :]



@parallel_kernel(work=lambda v, rows, dest, out, *_: rows.size * out.shape[1], threshold=1_000_000)
def gather_into(vectors, rows, dest, out):  # type: ignore[no-untyped-def]
    """``out[dest[k]] = vectors[rows[k]]``; rows were validated by ``lookup_words``."""
    dim = out.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        d = dest[k]
        for j in range(dim):
            out[d, j] = vectors[r, j]


@parallel_kernel(work=lambda v, rows, d, out, bounds, *_: rows.size * out.shape[1] if bounds.size > 2 else 0, threshold=1_000_000)
def gather_release(vectors, rows, dest, out, bounds, release, page, advice):  # type: ignore[no-untyped-def]
    """``gather_into`` window by window, dropping each window's pages once it is copied.

    ``rows`` are sorted; window ``w`` copies ``rows[bounds[w]:bounds[w + 1]]`` (the rows that
    start in its byte range) and then releases bytes ``release[w]:release[w + 1]`` relative to
    ``vectors[0]`` with ``madvise(advice)`` (``MADV_DONTNEED``).  The caller makes the ranges
    tile the rows' span inside the store's mapping, aligned so that whole huge-page mappings
    are dropped (dropping part of one would remap the rest page by page).  ``vectors`` is a
    read-only file mapping, so this only unmaps pages the page cache keeps; a row that
    straddles into the next range faults a page the next window releases.  Each thread takes a
    run of windows, so about one window per thread is resident at a time.
    """
    dim = out.shape[1]
    base = address(vectors)
    mask = ~(np.int64(page) - 1)
    for w in prange(bounds.size - 1):
        for k in range(bounds[w], bounds[w + 1]):
            r = rows[k]
            d = dest[k]
            for j in range(dim):
                out[d, j] = vectors[r, j]
        lo = (base + release[w]) & mask
        hi = (base + release[w + 1]) & mask
        if hi > lo:
            madvise(lo, hi - lo, np.int32(advice))
