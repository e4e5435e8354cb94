"""The vocabulary's open-addressing index: building it while converting, and probing it."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import format as fmt
from ._core import JIT as _JIT
from ._core import U1, U32, memcpy, parallel_kernel, prefetch
from .strings import bytes_equal, word_hash

# ---------------------------------------------------------------------------------------------
# Building the index while converting


PREFETCH_AHEAD = 16


@njit(**_JIT)
def insert_words(src, wst, wen, cand, table, words, offsets, n_rows, n_bytes, keep):  # type: ignore[no-untyped-def]
    """Append the words ``src[wst[i]:wen[i]]`` for ``i`` in ``cand`` to the vocabulary.

    A word already present is a duplicate: ``keep[i] = 0`` and the first occurrence wins, as
    in gensim.  The caller guarantees room in ``table`` (load <= 0.5 after the batch),
    ``words`` and ``offsets``.  Hashes are computed first so that the index slot of the word
    ``PREFETCH_AHEAD`` places ahead can be prefetched: the table is larger than the caches
    and each probe would otherwise wait for memory.  Returns ``(n_rows, n_bytes, dups)``.
    """
    mask = np.uint64(table.shape[0] - 1)
    nc = cand.size
    hashes = np.empty(nc, dtype=np.uint64)
    for t in range(nc):
        i = cand[t]
        hashes[t] = word_hash(src, wst[i], wen[i])
    dups = 0
    for t in range(nc):
        if t + PREFETCH_AHEAD < nc:
            prefetch(table, np.int64((hashes[t + PREFETCH_AHEAD] & mask) * np.uint64(2)))
        i = cand[t]
        s = wst[i]
        e = wen[i]
        h = hashes[t]
        slot = h & mask
        fp = np.uint32(h >> U32)
        while True:
            r1 = table[slot, 1]
            if r1 == 0:
                table[slot, 0] = fp
                table[slot, 1] = np.uint32(n_rows + 1)
                memcpy(words, n_bytes, src, s, e - s)
                n_bytes += e - s
                n_rows += 1
                offsets[n_rows] = n_bytes
                keep[i] = 1
                break
            if table[slot, 0] == fp:
                r = r1 - 1
                if bytes_equal(words, offsets[r], offsets[r + 1], src, s, e):
                    keep[i] = 0
                    dups += 1
                    break
            slot = (slot + U1) & mask
    return n_rows, n_bytes, dups


@njit(**_JIT)
def build_index(words, offsets, n_rows, table):  # type: ignore[no-untyped-def]
    """Insert rows ``0..n_rows-1`` (unique words) into an empty ``table`` in row order."""
    mask = np.uint64(table.shape[0] - 1)
    for r in range(n_rows):
        h = word_hash(words, offsets[r], offsets[r + 1])
        slot = h & mask
        while table[slot, 1] != 0:
            slot = (slot + U1) & mask
        table[slot, 0] = np.uint32(h >> U32)
        table[slot, 1] = np.uint32(r + 1)



# ---------------------------------------------------------------------------------------------
# Lookup and gather on an open store

@njit(inline="always", **_JIT)
def probe(qbuf, s, e, table, woff, wbytes, n_rows):  # type: ignore[no-untyped-def]
    """Row of ``qbuf[s:e]`` or -1; -2 if the store's index or offsets are inconsistent."""
    return probe_hashed(qbuf, s, e, word_hash(qbuf, s, e), table, woff, wbytes, n_rows)


@njit(inline="always", **_JIT)
def probe_hashed(qbuf, s, e, h, table, woff, wbytes, n_rows):  # type: ignore[no-untyped-def]
    n_slots = table.shape[0]
    mask = np.uint64(n_slots - 1)
    nb = np.uint64(wbytes.size)
    slot = h & mask
    fp = np.uint32(h >> U32)
    # No run of occupied slots is longer than MAX_PROBES (docs/FORMAT.md): stopping there
    # bounds the work of a lookup in a forged table that has no empty slot.
    for _ in range(min(n_slots, MAX_PROBES)):
        r1 = np.int64(table[slot, 1])
        if r1 == 0:
            return -1
        if table[slot, 0] == fp:
            r = r1 - 1
            if r >= n_rows:
                return -2
            a = woff[r]
            b = woff[r + 1]
            if a > b or b > nb:
                return -2
            if bytes_equal(wbytes, np.int64(a), np.int64(b), qbuf, s, e):
                return r
        slot = (slot + U1) & mask
    return -1 if n_slots <= MAX_PROBES else -2


MAX_PROBES = fmt.MAX_PROBES
LOOKUP_CHUNK = 4096


@parallel_kernel(work=lambda *a: a[-1].size, threshold=16_384)
def lookup_words(qbuf, qoff, table, woff, wbytes, n_rows, out):  # type: ignore[no-untyped-def]
    """Row id of every query word (``-1`` if absent); returns the number of corrupt probes.

    A lookup in a large store is three dependent cache misses: the index slot, the word's
    offsets, the word's bytes.  Queries are processed in chunks -- hash the chunk, then probe
    it as a software pipeline that prefetches the slot of the query 24 places ahead, the
    offsets of the one 16 ahead (its slot is cached by then) and the bytes of the one 8
    ahead -- so the misses of many queries overlap instead of being paid one after another.
    Prefetches only read what the bound checks allow.
    """
    nq = qoff.size - 1
    nchunks = (nq + LOOKUP_CHUNK - 1) // LOOKUP_CHUNK
    mask = np.uint64(table.shape[0] - 1)
    nb = np.uint64(wbytes.size)
    corrupt = 0
    for c in prange(nchunks):
        lo = c * LOOKUP_CHUNK
        hi = min(nq, lo + LOOKUP_CHUNK)
        hashes = np.empty(hi - lo, dtype=np.uint64)
        for i in range(lo, hi):
            hashes[i - lo] = word_hash(qbuf, qoff[i], qoff[i + 1])
        for i in range(lo, hi):
            if i + 24 < hi:
                prefetch(table, np.int64((hashes[i + 24 - lo] & mask) * np.uint64(2)))
            if i + 16 < hi:
                r1 = np.int64(table[hashes[i + 16 - lo] & mask, 1])
                if 0 < r1 <= n_rows:
                    prefetch(woff, r1 - 1)
            if i + 8 < hi:
                r1 = np.int64(table[hashes[i + 8 - lo] & mask, 1])
                if 0 < r1 <= n_rows:
                    a = woff[r1 - 1]
                    if a < nb:
                        prefetch(wbytes, np.int64(a))
            r = probe_hashed(qbuf, qoff[i], qoff[i + 1], hashes[i - lo], table, woff, wbytes,
                              n_rows)
            if r == -2:
                corrupt += 1
                r = -1
            out[i] = r
    return corrupt
