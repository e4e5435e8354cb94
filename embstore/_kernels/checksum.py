"""XXH64 block checksums (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._core import JIT as _JIT
from ._core import parallel_kernel

# ---------------------------------------------------------------------------------------------
# XXH64 checksums (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md)

XP1 = np.uint64(11400714785074694791)
XP2 = np.uint64(14029467366897019727)
XP3 = np.uint64(1609587929392839161)
XP4 = np.uint64(9650029242287828579)
XP5 = np.uint64(2870177450012600261)


@njit(inline="always", **_JIT)
def _rotl(x, r):  # type: ignore[no-untyped-def]
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@njit(inline="always", **_JIT)
def _read32(buf, p):  # type: ignore[no-untyped-def]
    return (np.uint64(buf[p]) | (np.uint64(buf[p + 1]) << np.uint64(8))
            | (np.uint64(buf[p + 2]) << np.uint64(16)) | (np.uint64(buf[p + 3]) << np.uint64(24)))


@njit(inline="always", **_JIT)
def _round(acc, lane):  # type: ignore[no-untyped-def]
    acc = acc + lane * XP2
    acc = _rotl(acc, 31)
    return acc * XP1


@njit(inline="always", **_JIT)
def _merge(acc, val):  # type: ignore[no-untyped-def]
    acc = acc ^ _round(np.uint64(0), val)
    return acc * XP1 + XP4


@njit(**_JIT)
def xxh64(buf, words, s, e):  # type: ignore[no-untyped-def]
    """XXH64 with seed 0 of ``buf[s:e]``; ``s`` is a multiple of 8.

    ``words`` is ``buf`` viewed as little-endian uint64 (its whole 8-byte prefix), so the
    8-byte lanes are plain loads.
    """
    p = s
    n = e - s
    if n >= 32:
        v1 = XP1 + XP2
        v2 = XP2
        v3 = np.uint64(0)
        v4 = np.uint64(0) - XP1
        limit = e - 32
        while p <= limit:
            w = p >> 3
            v1 = _round(v1, words[w])
            v2 = _round(v2, words[w + 1])
            v3 = _round(v3, words[w + 2])
            v4 = _round(v4, words[w + 3])
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = XP5
    h = h + np.uint64(n)
    while p + 8 <= e:
        h = h ^ _round(np.uint64(0), words[p >> 3])
        h = _rotl(h, 27) * XP1 + XP4
        p += 8
    if p + 4 <= e:
        h = h ^ (_read32(buf, p) * XP1)
        h = _rotl(h, 23) * XP2 + XP3
        p += 4
    while p < e:
        h = h ^ (np.uint64(buf[p]) * XP5)
        h = _rotl(h, 11) * XP1
        p += 1
    h = h ^ (h >> np.uint64(33))
    h = h * XP2
    h = h ^ (h >> np.uint64(29))
    h = h * XP3
    h = h ^ (h >> np.uint64(32))
    return h


@parallel_kernel(work=lambda buf, block, out, *_: buf.size if out.size > 1 else 0, threshold=2 << 20)
def xxh64_blocks(buf, block, out):  # type: ignore[no-untyped-def]
    """``out[i]`` = XXH64 of the i-th ``block``-byte slice of ``buf`` (the last may be short)."""
    n = buf.size
    words = buf[: n - n % 8].view(np.uint64)
    for i in prange(out.size):
        lo = i * block
        out[i] = xxh64(buf, words, lo, min(n, lo + block))
