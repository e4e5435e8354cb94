"""word2vec C binary records: finding them in a buffer and copying their vectors."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._core import JIT as _JIT
from ._core import memcpy, parallel_kernel
from .strings import utf8_valid

# ---------------------------------------------------------------------------------------------
# word2vec binary conversion

BIN_DONE = 0  # max_records reached
BIN_NEED_MORE = 1  # ran out of buffered data
BIN_EMPTY_WORD = 2
BIN_WORD_TOO_LONG = 3


@njit(**_JIT)
def scan_binary(buf, pos, end, dim, max_records, max_word, wst, wen, vst, badw):  # type: ignore[no-untyped-def]
    """Find up to ``max_records`` complete records ``word SP <dim float32>`` in ``buf``.

    Like gensim, newlines before a word are skipped (the C tool writes one after each
    vector).  ``badw[k]`` flags words that are not valid UTF-8 (checked only for words with
    a non-ASCII byte).  Returns ``(records, next_pos, status, status_pos)``.
    """
    rec = dim * 4
    k = 0
    while k < max_records:
        p = pos
        while p < end and buf[p] == 10:
            p += 1
        if p == end:
            return k, pos, BIN_NEED_MORE, p
        q = p
        lim = min(end, p + max_word + 1)
        high = 0
        while q < lim:
            c = buf[q]
            if c == 32:
                break
            high |= c
            q += 1
        if q == lim:
            if lim - p > max_word:
                return k, pos, BIN_WORD_TOO_LONG, p
            return k, pos, BIN_NEED_MORE, p
        if q == p:
            return k, pos, BIN_EMPTY_WORD, p
        if q + 1 + rec > end:
            return k, pos, BIN_NEED_MORE, p
        wst[k] = p
        wen[k] = q
        vst[k] = q + 1
        badw[k] = 0 if high < 0x80 or utf8_valid(buf, p, q) else 1
        k += 1
        pos = q + 1 + rec
    return k, pos, BIN_DONE, pos


@parallel_kernel(work=lambda buf, vst, n, out, *_: n * out.shape[1], threshold=3_000_000)
def copy_binary_vectors(buf, vst, n, out, bad):  # type: ignore[no-untyped-def]
    """Copy ``n`` little-endian float32 vectors starting at byte offsets ``vst`` into the rows
    of ``out`` (C-contiguous); ``bad[i] = 1`` when row ``i`` holds a NaN or infinity."""
    dim = out.shape[1]
    rb = dim * 4
    for i in prange(n):
        memcpy(out, i * rb, buf, vst[i], rb)
        ok = True
        for j in range(dim):
            if not np.isfinite(out[i, j]):
                ok = False
        bad[i] = 0 if ok else 1
