"""Word bytes: the index hash, byte comparison and UTF-8 validation."""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import format as fmt
from ._core import JIT as _JIT
from ._core import U33

# ---------------------------------------------------------------------------------------------
# Hashing (see docs/FORMAT.md, "Index")

FNV_OFFSET = np.uint64(fmt.FNV_OFFSET)
FNV_PRIME = np.uint64(fmt.FNV_PRIME)
FMIX_C1 = np.uint64(fmt.FMIX_C1)
FMIX_C2 = np.uint64(fmt.FMIX_C2)


@njit(inline="always", **_JIT)
def word_hash(buf, s, e):  # type: ignore[no-untyped-def]
    h = FNV_OFFSET
    for i in range(s, e):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    h ^= h >> U33
    h *= FMIX_C1
    h ^= h >> U33
    h *= FMIX_C2
    h ^= h >> U33
    return h


@njit(inline="always", **_JIT)
def bytes_equal(a, a_s, a_e, b, b_s, b_e):  # type: ignore[no-untyped-def]
    n = a_e - a_s
    if n != b_e - b_s:
        return False
    for k in range(n):
        if a[a_s + k] != b[b_s + k]:
            return False
    return True


@njit(**_JIT)
def hash_many(buf, offsets, out):  # type: ignore[no-untyped-def]
    """Hash each ``buf[offsets[i]:offsets[i+1]]`` (used by tests and the Python reference)."""
    for i in range(offsets.size - 1):
        out[i] = word_hash(buf, offsets[i], offsets[i + 1])


# ---------------------------------------------------------------------------------------------
# UTF-8 validation (the same well-formedness rules as Python's strict decoder)


@njit(**_JIT)
def utf8_valid(buf, s, e):  # type: ignore[no-untyped-def]
    i = s
    while i < e:
        c = buf[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:
            return False
        elif c < 0xE0:
            if i + 1 >= e or (buf[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= e:
                return False
            c1 = buf[i + 1]
            if c == 0xE0:
                ok = 0xA0 <= c1 <= 0xBF
            elif c == 0xED:
                ok = 0x80 <= c1 <= 0x9F
            else:
                ok = 0x80 <= c1 <= 0xBF
            if not ok or (buf[i + 2] & 0xC0) != 0x80:
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= e:
                return False
            c1 = buf[i + 1]
            if c == 0xF0:
                ok = 0x90 <= c1 <= 0xBF
            elif c == 0xF4:
                ok = 0x80 <= c1 <= 0x8F
            else:
                ok = 0x80 <= c1 <= 0xBF
            if not ok or (buf[i + 2] & 0xC0) != 0x80 or (buf[i + 3] & 0xC0) != 0x80:
                return False
            i += 4
        else:
            return False
    return True
