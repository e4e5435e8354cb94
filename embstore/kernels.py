"""Every compiled (Numba) kernel in embstore, and nothing else.

The kernels trust their inputs' shapes and dtypes: the Python functions that call them
(in ``convert``, ``store``, ``lookup``, ``verify``) validate arguments and turn status codes
into exceptions.  What the kernels do *not* trust is content read from a store file: every
row id, word offset and probe sequence taken from disk is bound-checked here against section
sizes validated at open time, and a violation is reported as a status code, never followed.

Parallel kernels are compiled twice: with ``parallel=True`` and as plain serial code.  The
serial twin is used after ``fork()`` in a child whose parent already started GNU OpenMP
threads (Numba's ``omp`` layer aborts such a child), and launches of parallel kernels are
serialised by a lock because Numba's ``workqueue`` layer aborts on concurrent launches.  All
kernels release the GIL, and all are cached on disk (``cache=True``) so a second process
loads machine code instead of compiling.
"""

from __future__ import annotations

import os
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils
from numba.core import types as nbtypes
from numba.extending import intrinsic

_JIT = {"cache": True, "nogil": True}

# ---------------------------------------------------------------------------------------------
# Parallel launch policy


class _LaunchState:
    lock = threading.Lock()
    parallel_used = False
    serial_only = os.environ.get("EMBSTORE_SERIAL", "") not in ("", "0")


def _after_fork_in_child() -> None:
    _LaunchState.lock = threading.Lock()
    if _LaunchState.parallel_used:
        try:
            import numba

            layer = numba.threading_layer()
        except Exception:  # pragma: no cover - numba always answers after a launch
            layer = "omp"
        if layer == "omp":
            _LaunchState.serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ParallelKernel:
    """A ``prange`` kernel with a serial twin; see the module docstring for why."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.parallel = njit(parallel=True, **_JIT)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        self.serial = njit(**_JIT)(twin)

    def __call__(self, *args: Any) -> Any:
        if _LaunchState.serial_only:
            return self.serial(*args)
        with _LaunchState.lock:
            _LaunchState.parallel_used = True
            return self.parallel(*args)


def parallel_kernel(fn: Callable[..., Any]) -> ParallelKernel:
    return ParallelKernel(fn)


# ---------------------------------------------------------------------------------------------
# memcpy between byte offsets of two arrays (LLVM's memcpy: vectorised, any alignment)


def _data_ptr(context, builder, arrty, arr, index, *, bytewise):  # type: ignore[no-untyped-def]
    """LLVM ``i8*`` to byte ``index`` (``bytewise``) or element ``index`` of an array."""
    data = context.make_array(arrty)(context, builder, arr).data
    if bytewise:
        return builder.gep(builder.bitcast(data, cgutils.voidptr_t), [index])
    return builder.bitcast(builder.gep(data, [index]), cgutils.voidptr_t)


@intrinsic
def _memcpy(typingctx, dst, dst_off, src, src_off, nbytes):  # type: ignore[no-untyped-def]
    if not (isinstance(dst, nbtypes.Array) and isinstance(src, nbtypes.Array)):
        return None
    sig = nbtypes.void(dst, nbtypes.intp, src, nbtypes.intp, nbtypes.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        d, doff, s, soff, n = args
        dptr = _data_ptr(context, builder, signature.args[0], d, doff, bytewise=True)
        sptr = _data_ptr(context, builder, signature.args[2], s, soff, bytewise=True)
        cgutils.raw_memcpy(builder, dptr, sptr, n, 1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _load_u64(typingctx, arr, off):  # type: ignore[no-untyped-def]
    """Unaligned little-endian load of 8 bytes at byte offset ``off`` of ``arr``."""
    if not isinstance(arr, nbtypes.Array):
        return None
    sig = nbtypes.uint64(arr, nbtypes.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = _data_ptr(context, builder, signature.args[0], *args, bytewise=True)
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)

    return sig, codegen


@intrinsic
def _ctz64(typingctx, x):  # type: ignore[no-untyped-def]
    """Count trailing zero bits (x != 0)."""
    sig = nbtypes.uint64(nbtypes.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, index):  # type: ignore[no-untyped-def]
    """Hint the CPU to fetch ``arr``'s element ``index`` (flat) into cache; no effect on data."""
    if not isinstance(arr, nbtypes.Array):
        return None
    sig = nbtypes.void(arr, nbtypes.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = _data_ptr(context, builder, signature.args[0], *args, bytewise=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _address(typingctx, arr):  # type: ignore[no-untyped-def]
    """The address of ``arr``'s first byte, as an integer (for page arithmetic)."""
    if not isinstance(arr, nbtypes.Array):
        return None
    sig = nbtypes.int64(arr)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return sig, codegen


@intrinsic
def _madvise(typingctx, addr, length, advice):  # type: ignore[no-untyped-def]
    """libc ``madvise(addr, length, advice)``; returns its result (0 or -1)."""
    sig = nbtypes.int32(nbtypes.int64, nbtypes.int64, nbtypes.int32)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        a, n, adv = args
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(i32, [cgutils.voidptr_t, ir.IntType(64), i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "madvise")
        return builder.call(fn, [builder.inttoptr(a, cgutils.voidptr_t), n, adv])

    return sig, codegen


# ---------------------------------------------------------------------------------------------
# Hashing (see docs/FORMAT.md, "Index")

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
FMIX_C1 = np.uint64(0xFF51AFD7ED558CCD)
FMIX_C2 = np.uint64(0xC4CEB9FE1A85EC53)
U33 = np.uint64(33)
U32 = np.uint64(32)
U1 = np.uint64(1)


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
LOW7_8 = np.uint64(0x7F7F7F7F7F7F7F7F)
HIGH_8 = np.uint64(0x8080808080808080)
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
        t = _load_u64(buf, i) ^ ASCII0
        nondigit = (((t & LOW7_8) + DIGIT_GUARD) | t) & HIGH_8
        n = 8 if nondigit == 0 else np.int64(_ctz64(nondigit) >> np.uint64(3))
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
def _scan_number(buf, i, e):  # type: ignore[no-untyped-def]
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
    code, v, p = _scan_number(buf, s, e)
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


# ---------------------------------------------------------------------------------------------
# Text conversion

LINE_OK = 0
LINE_BLANK = 1
LINE_TOO_FEW = 2
LINE_NOT_NUMBER = 3
LINE_NONFINITE = 4
LINE_TOO_MANY = 5

# meta columns, one row per line
M_STATUS = 0
M_WSTART = 1
M_WEND = 2
M_DSTART = 3  # offending token (errors) / number of values found (TOO_FEW, TOO_MANY)
M_DEND = 4
M_FALLBACK = 5  # number of tokens left for the exact slow path
M_BADUTF8 = 6
M_LSTART = 7  # the line's extent in the buffer (end excludes the newline)
M_LEND = 8
META_COLS = 9


NL8 = np.uint64(0x0A0A0A0A0A0A0A0A)
LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
HIGH8 = np.uint64(0x8080808080808080)
ONES8 = np.uint64(0x0101010101010101)
U7 = np.uint64(7)
U56 = np.uint64(56)


@njit(inline="always", **_JIT)
def _newlines_in_word(w):  # type: ignore[no-untyped-def]
    """Exact number of 0x0A bytes in a 64-bit word (SWAR zero-byte count)."""
    x = w ^ NL8
    t = ((x & LOW7) + LOW7) | x
    m = ~t & HIGH8
    return ((m >> U7) * ONES8) >> U56


@parallel_kernel
def scan_parts(buf, words, s, e, part, counts, ends):  # type: ignore[no-untyped-def]
    """Split ``buf[s:e]`` into parts of ``part`` bytes; per part, count newlines and note
    the position just after the last one (``ends[c]``, 0 if none).  ``words`` is ``buf``
    viewed as uint64, for counting 8 bytes a step."""
    for c in prange(counts.size):
        lo = min(e, s + c * part)
        hi = min(e, lo + part)
        k = 0
        i = lo
        a = min(hi, (lo + 7) // 8 * 8)
        while i < a:
            k += buf[i] == 10
            i += 1
        kw = np.uint64(0)
        for w in range(i >> 3, hi >> 3):
            kw += _newlines_in_word(words[w])
        k += np.int64(kw)
        i = max(i, (hi >> 3) << 3)
        while i < hi:
            k += buf[i] == 10
            i += 1
        counts[c] = k
        ends[c] = 0
        if k:
            i = hi - 1
            while buf[i] != 10:
                i -= 1
            ends[c] = i + 1


@njit(inline="always", **_JIT)
def _is_space(c):  # type: ignore[no-untyped-def]
    return c == 32 or c == 9 or c == 13 or c == 10 or c == 11 or c == 12


@njit(**_JIT)
def _numeric_token(buf, s, e):  # type: ignore[no-untyped-def]
    code, _ = parse_number(buf, s, e)
    return code == NUM_OK or code == NUM_FALLBACK


@njit(inline="always", **_JIT)
def _is_trailing(c):  # type: ignore[no-untyped-def]
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@njit(**_JIT)
def _parse_line_fast(buf, s, end, dim, out, row):  # type: ignore[no-untyped-def]
    """The common line ``word v1 ... vdim`` in one forward pass, finding its end on the way.

    Returns ``(ok, word_end, fallback_tokens, stop)``: on success ``stop`` is the newline (or
    ``end``).  Anything unusual -- leading spaces, a word with spaces, a wrong count, a bad
    token -- returns ``ok = False`` and the line is re-parsed by the careful path.
    """
    i = s
    while i < end:
        c = buf[i]
        if c == 32 or c == 10:
            break
        i += 1
    wend = i
    if i == s:
        return False, wend, 0, i
    fb = 0
    for j in range(dim):
        while i < end and buf[i] == 32:
            i += 1
        if i >= end:
            return False, wend, 0, i
        code, v, p = _scan_number(buf, i, end)
        if code == NUM_INVALID:
            return False, wend, 0, p
        if p < end:
            c = buf[p]
            if c != 32 and c != 10 and not _is_trailing(c):
                return False, wend, 0, p
        if code == NUM_OK:
            f = np.float32(v)
            if not np.isfinite(f):
                return False, wend, 0, p
            out[row, j] = f
        else:
            out[row, j] = np.nan
            fb += 1
        i = p
    while i < end and _is_trailing(buf[i]):
        i += 1
    if i < end and buf[i] != 10:
        return False, wend, 0, i
    return True, wend, fb, i


@njit(**_JIT)
def _parse_line_careful(buf, s, e, dim, out, meta, li):  # type: ignore[no-untyped-def]
    """Parse ``buf[s:e]`` (one line, newline excluded) with every quirk and error handled.

    Fields are separated by runs of ASCII spaces only.  The last ``dim`` fields are the
    values and everything before them is the word, so GloVe's words that contain spaces are
    kept whole -- unless every extra field is itself a number, which is reported as a line
    with too many values.  Trailing ASCII whitespace (including CR) is ignored.
    """
    while e > s and _is_space(buf[e - 1]):
        e -= 1
    while s < e and buf[s] == 32:
        s += 1
    meta[li, M_FALLBACK] = 0
    meta[li, M_BADUTF8] = 0
    if s == e:
        meta[li, M_STATUS] = LINE_BLANK
        return
    status = LINE_OK
    pos = e
    fallback = 0
    for j in range(dim - 1, -1, -1):
        while pos > s and buf[pos - 1] == 32:
            pos -= 1
        te = pos
        while pos > s and buf[pos - 1] != 32:
            pos -= 1
        ts = pos
        if ts == s:
            status = LINE_TOO_FEW
            meta[li, M_DSTART] = dim - 1 - j
            break
        code, value = parse_number(buf, ts, te)
        if code == NUM_OK:
            f = np.float32(value)
            if not np.isfinite(f):
                status = LINE_NONFINITE
            else:
                out[li, j] = f
        elif code == NUM_FALLBACK:
            out[li, j] = np.nan
            fallback += 1
        elif code == NUM_NONFINITE:
            status = LINE_NONFINITE
        else:
            status = LINE_NOT_NUMBER
        if status != LINE_OK:
            meta[li, M_DSTART] = ts
            meta[li, M_DEND] = te
            break
    if status == LINE_OK:
        while pos > s and buf[pos - 1] == 32:
            pos -= 1
        # A word with spaces: if every field after its first is a number, the line has
        # more values than the dimension rather than a multi-word token.
        first_end = s
        while first_end < pos and buf[first_end] != 32:
            first_end += 1
        if first_end < pos:
            extra = 0
            all_numeric = True
            q = first_end
            while q < pos:
                while q < pos and buf[q] == 32:
                    q += 1
                r = q
                while r < pos and buf[r] != 32:
                    r += 1
                if not _numeric_token(buf, q, r):
                    all_numeric = False
                    break
                extra += 1
                q = r
            if all_numeric:
                status = LINE_TOO_MANY
                meta[li, M_DSTART] = dim + extra
        meta[li, M_WSTART] = s
        meta[li, M_WEND] = pos
        if not utf8_valid(buf, s, pos):
            meta[li, M_BADUTF8] = 1
    meta[li, M_FALLBACK] = fallback
    meta[li, M_STATUS] = status


@njit(inline="always", **_JIT)
def _find_newline(buf, i, end):  # type: ignore[no-untyped-def]
    while i < end and buf[i] != 10:
        i += 1
    return i


@parallel_kernel
def parse_text_parts(buf, lo, hi, first_row, dim, out, meta):  # type: ignore[no-untyped-def]
    """Parse whole lines: part ``c`` holds the lines in ``buf[lo[c]:hi[c]]`` (``hi`` is just
    after a newline, or the end of input) and writes rows from ``first_row[c]`` on.

    Each line is parsed in one forward pass when it is ordinary; otherwise its end is found
    and :func:`_parse_line_careful` handles it.  ``meta`` records each line's status, word
    and extent for the caller.
    """
    for c in prange(lo.size):
        pos = lo[c]
        end = hi[c]
        r = first_row[c]
        while pos < end:
            ok, wend, nfb, stop = _parse_line_fast(buf, pos, end, dim, out, r)
            if ok:
                line_end = stop
                meta[r, M_STATUS] = LINE_OK
                meta[r, M_WSTART] = pos
                meta[r, M_WEND] = wend
                meta[r, M_FALLBACK] = nfb
                meta[r, M_BADUTF8] = 0 if utf8_valid(buf, pos, wend) else 1
            else:
                line_end = _find_newline(buf, stop, end)
                _parse_line_careful(buf, pos, line_end, dim, out, meta, r)
            meta[r, M_LSTART] = pos
            meta[r, M_LEND] = line_end
            pos = line_end + 1
            r += 1


@njit(**_JIT)
def fallback_tokens(buf, dim, meta, lines, out_line, out_col, out_s, out_e):  # type: ignore[no-untyped-def]
    """List the tokens of ``lines`` that the parser left for the exact slow path."""
    k = 0
    for li in lines:
        s = meta[li, M_LSTART]
        e = meta[li, M_LEND]
        while e > s and _is_space(buf[e - 1]):
            e -= 1
        pos = e
        for j in range(dim - 1, -1, -1):
            while pos > s and buf[pos - 1] == 32:
                pos -= 1
            te = pos
            while pos > s and buf[pos - 1] != 32:
                pos -= 1
            code, _ = parse_number(buf, pos, te)
            if code == NUM_FALLBACK:
                out_line[k] = li
                out_col[k] = j
                out_s[k] = pos
                out_e[k] = te
                k += 1
    return k


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


@parallel_kernel
def copy_binary_vectors(buf, vst, n, out, bad):  # type: ignore[no-untyped-def]
    """Copy ``n`` little-endian float32 vectors starting at byte offsets ``vst`` into the rows
    of ``out`` (C-contiguous); ``bad[i] = 1`` when row ``i`` holds a NaN or infinity."""
    dim = out.shape[1]
    rb = dim * 4
    for i in prange(n):
        _memcpy(out, i * rb, buf, vst[i], rb)
        ok = True
        for j in range(dim):
            if not np.isfinite(out[i, j]):
                ok = False
        bad[i] = 0 if ok else 1


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
            _prefetch(table, np.int64((hashes[t + PREFETCH_AHEAD] & mask) * np.uint64(2)))
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
                _memcpy(words, n_bytes, src, s, e - s)
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


@parallel_kernel
def gather_rows(src, rows, out):  # type: ignore[no-untyped-def]
    """``out[k] = src[rows[k]]`` for every k (compaction of kept rows)."""
    for k in prange(rows.size):
        out[k, :] = src[rows[k], :]


@parallel_kernel
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


@parallel_kernel
def xxh64_blocks(buf, block, out):  # type: ignore[no-untyped-def]
    """``out[i]`` = XXH64 of the i-th ``block``-byte slice of ``buf`` (the last may be short)."""
    n = buf.size
    words = buf[: n - n % 8].view(np.uint64)
    for i in prange(out.size):
        lo = i * block
        out[i] = xxh64(buf, words, lo, min(n, lo + block))


# ---------------------------------------------------------------------------------------------
# Lookup and gather on an open store

LOOKUP_OK = 0
LOOKUP_CORRUPT = 1


@njit(inline="always", **_JIT)
def _probe(qbuf, s, e, table, woff, wbytes, n_rows):  # type: ignore[no-untyped-def]
    """Row of ``qbuf[s:e]`` or -1; -2 if the store's index or offsets are inconsistent."""
    return _probe_hashed(qbuf, s, e, word_hash(qbuf, s, e), table, woff, wbytes, n_rows)


@njit(inline="always", **_JIT)
def _probe_hashed(qbuf, s, e, h, table, woff, wbytes, n_rows):  # type: ignore[no-untyped-def]
    n_slots = table.shape[0]
    mask = np.uint64(n_slots - 1)
    nb = np.uint64(wbytes.size)
    slot = h & mask
    fp = np.uint32(h >> U32)
    for _ in range(n_slots):
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
    return -1


LOOKUP_CHUNK = 4096


@parallel_kernel
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
                _prefetch(table, np.int64((hashes[i + 24 - lo] & mask) * np.uint64(2)))
            if i + 16 < hi:
                r1 = np.int64(table[hashes[i + 16 - lo] & mask, 1])
                if 0 < r1 <= n_rows:
                    _prefetch(woff, r1 - 1)
            if i + 8 < hi:
                r1 = np.int64(table[hashes[i + 8 - lo] & mask, 1])
                if 0 < r1 <= n_rows:
                    a = woff[r1 - 1]
                    if a < nb:
                        _prefetch(wbytes, np.int64(a))
            r = _probe_hashed(qbuf, qoff[i], qoff[i + 1], hashes[i - lo], table, woff, wbytes,
                              n_rows)
            if r == -2:
                corrupt += 1
                r = -1
            out[i] = r
    return corrupt


@parallel_kernel
def gather_into(vectors, rows, dest, out):  # type: ignore[no-untyped-def]
    """``out[dest[k]] = vectors[rows[k]]``; rows were validated by ``lookup_words``."""
    dim = out.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        d = dest[k]
        for j in range(dim):
            out[d, j] = vectors[r, j]


@parallel_kernel
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
    base = _address(vectors)
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
            _madvise(lo, hi - lo, np.int32(advice))


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
        elif _probe(wbytes, a, b, table, woff, wbytes, n_rows) != r:
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
