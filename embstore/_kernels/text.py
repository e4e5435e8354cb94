"""Text vector files: newline scanning and line parsing (word2vec text, fastText .vec, GloVe)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._core import HIGH8, LOW7, parallel_kernel
from ._core import JIT as _JIT
from .number import NUM_FALLBACK, NUM_INVALID, NUM_NONFINITE, NUM_OK, parse_number, scan_number
from .strings import utf8_valid

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


@parallel_kernel(work=lambda buf, w, s, e, part, counts, *_: e - s if counts.size > 1 else 0, threshold=1 << 20)
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
        code, v, p = scan_number(buf, i, end)
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


@parallel_kernel(work=lambda buf, lo, hi, *_: int(hi[-1] - lo[0]) if lo.size > 1 else 0, threshold=8 << 10)
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
