"""Decimal tokens to float32, exactly ``float32(float(token))`` (docs/FORMAT.md, ENGINEERING notes)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._core import HIGH8, LOW7, ctz64, load_u64
from ._core import JIT as _JIT

# ---------------------------------------------------------------------------------------------
# Decimal numbers -> float32, exactly float32(float(token))

NUM_OK = 0
NUM_INVALID = 1
NUM_NONFINITE = 2
NUM_FALLBACK = 3

# 10**k for k = 0..22 are exact in float64, so m * 10**k and m / 10**k with m < 2**53 are
# correctly rounded (Clinger's fast path); the cast to float32 then equals float32(strtod).
POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
TWO53 = np.uint64(1 << 53)


@njit(inline="always", **_JIT)
def _lower(c):  # type: ignore[no-untyped-def]
    return c | 0x20


@njit(**_JIT)
def _is_special(buf, s, e):  # type: ignore[no-untyped-def]
    """inf, infinity or nan (any case), the non-finite spellings float() accepts."""
    n = e - s
    if n == 3:
        a, b, c = _lower(buf[s]), _lower(buf[s + 1]), _lower(buf[s + 2])
        return (a == 105 and b == 110 and c == 102) or (a == 110 and b == 97 and c == 110)
    if n == 8:
        word = (105, 110, 102, 105, 110, 105, 116, 121)  # "infinity"
        for k in range(8):
            if _lower(buf[s + k]) != word[k]:
                return False
        return True
    return False


ASCII0 = np.uint64(0x3030303030303030)
DIGIT_GUARD = np.uint64(0x7676767676767676)
SWAR_MASK = np.uint64(0x000000FF000000FF)
SWAR_MUL1 = np.uint64(0x000F424000000064)  # 100 + (1000000 << 32)
SWAR_MUL2 = np.uint64(0x0000271000000001)  # 1 + (10000 << 32)
POW10_U64 = np.array([10**k for k in range(9)], dtype=np.uint64)


@njit(inline="always", **_JIT)
def _digits8(buf, i, e):  # type: ignore[no-untyped-def]
    """``(n, value)`` of the run of up to 8 ASCII digits at ``buf[i:e]``.

    SWAR: one unaligned 8-byte load, a branch-free test of which bytes are digits, and the
    multiply-shift reduction of up to 8 digits to an integer.
    """
    if i + 8 <= buf.size:
        t = load_u64(buf, i) ^ ASCII0
        nondigit = (((t & LOW7) + DIGIT_GUARD) | t) & HIGH8
        n = 8 if nondigit == 0 else np.int64(ctz64(nondigit) >> np.uint64(3))
        n = min(n, e - i)
        if n <= 0:
            return 0, np.uint64(0)
        v = t << np.uint64((8 - n) * 8)
        v = v * np.uint64(10) + (v >> np.uint64(8))
        v = (((v & SWAR_MASK) * SWAR_MUL1)
             + (((v >> np.uint64(16)) & SWAR_MASK) * SWAR_MUL2)) >> np.uint64(32)
        return n, v & np.uint64(0xFFFFFFFF)
    n = 0
    v = np.uint64(0)
    while n < 8 and i + n < e:
        c = buf[i + n]
        if c < 48 or c > 57:
            break
        v = v * np.uint64(10) + np.uint64(c - 48)
        n += 1
    return n, v


@njit(inline="always", **_JIT)
def scan_number(buf, i, e):  # type: ignore[no-untyped-def]
    """Parse the longest number at ``buf[i:e]``; returns ``(code, value, end)``.

    Grammar: ``[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`` in ASCII.  A
    value with more than 19 digits, or outside Clinger's exact fast path (mantissa < 2**53,
    |power of ten| <= 22), is ``NUM_FALLBACK`` for an exact slow path.  ``NUM_INVALID``
    means no digits or a malformed exponent; the caller checks ``end``.
    """
    neg = False
    if i < e and (buf[i] == 45 or buf[i] == 43):
        neg = buf[i] == 45
        i += 1
    m = np.uint64(0)
    nd = 0
    while True:
        n, v = _digits8(buf, i, e)
        m = m * POW10_U64[n] + v
        nd += n
        i += n
        if n < 8:
            break
    scale = 0
    if i < e and buf[i] == 46:
        i += 1
        f0 = i
        while True:
            n, v = _digits8(buf, i, e)
            m = m * POW10_U64[n] + v
            nd += n
            i += n
            if n < 8:
                break
        scale = f0 - i
    if nd == 0:
        return NUM_INVALID, 0.0, i
    if i < e and (buf[i] == 101 or buf[i] == 69):
        i += 1
        eneg = False
        if i < e and (buf[i] == 45 or buf[i] == 43):
            eneg = buf[i] == 45
            i += 1
        if i >= e or buf[i] < 48 or buf[i] > 57:
            return NUM_INVALID, 0.0, i
        ex = 0
        while i < e:
            c = buf[i]
            if c < 48 or c > 57:
                break
            if ex < 100000:
                ex = ex * 10 + (c - 48)
            i += 1
        scale += -ex if eneg else ex
    if nd > 19:
        return NUM_FALLBACK, 0.0, i
    if m == 0:
        return NUM_OK, -0.0 if neg else 0.0, i
    if m >= TWO53 or scale < -22 or scale > 22:
        return NUM_FALLBACK, 0.0, i
    v = np.float64(m)
    if scale < 0:
        v = v / POW10[-scale]
    else:
        v = v * POW10[scale]
    return NUM_OK, -v if neg else v, i


@njit(**_JIT)
def parse_number(buf, s, e):  # type: ignore[no-untyped-def]
    """Parse all of ``buf[s:e]`` as a number; returns ``(code, value)``."""
    code, v, p = scan_number(buf, s, e)
    if code == NUM_INVALID:
        q = s
        if q < e and (buf[q] == 45 or buf[q] == 43):
            q += 1
        if _is_special(buf, q, e):
            return NUM_NONFINITE, 0.0
        return NUM_INVALID, 0.0
    if p != e:
        return NUM_INVALID, 0.0
    return code, v
