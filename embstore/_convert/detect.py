"""Which format a vector file is in, from its first MiB: word2vec text (with a ``count dim``
header), GloVe (no header) or word2vec binary."""

from __future__ import annotations

import re

import numpy as np

from .. import format as fmt
from .state import ConversionState, show

_HEADER_RE = re.compile(rb"^[ \t]*(\d+)[ \t]+(\d+)[ \t\r]*$")
# ``\d+(?:\.\d*)?`` rather than ``\d+\.?\d*``: the same language without quadratic
# backtracking on a long run of digits followed by a non-digit (a hostile first line).
_NUMBER_RE = re.compile(rb"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
# Non-finite spellings still occupy a value field (they are rejected later, by line).
_SPECIAL_RE = re.compile(rb"^[+-]?(?:nan|inf|infinity)$", re.IGNORECASE)


def detect(st: ConversionState, head: np.ndarray, whole: bool) -> None:
    """Set ``st.kind``, ``st.dim`` and ``st.declared`` from the first MiB of the input."""
    data = head[: 1 << 20].tobytes() if not whole else head.tobytes()
    nl = data.find(b"\n")
    first = data if nl < 0 else data[:nl]
    m = _HEADER_RE.match(first)
    opt = st.format_opt
    if opt in ("text", "binary") and m is None:
        raise st.error(
            f"expected a header line 'count dim', found {show(first)}", line=1,
            hint='for a file without a header use format="glove"',
        )
    if m is not None and opt != "glove":
        count_raw, dim_raw = (g.lstrip(b"0") or b"0" for g in m.groups())
        if len(count_raw) > 20 or len(dim_raw) > 20:
            # int() refuses more than 4300 digits; no real count comes near 20.
            raise st.error("header declares an implausible size (a number with more "
                             "than 20 digits)", line=1)
        count, dim = int(count_raw), int(dim_raw)
        if not 1 <= dim <= fmt.MAX_DIM:
            raise st.error(f"header declares dimension {dim}; expected 1..{fmt.MAX_DIM}",
                             line=1)
        if count == 0:
            raise st.error("header declares 0 rows; there is nothing to convert", line=1)
        st.declared = count
        st.dim = dim
        if opt == "auto":
            rest = data[nl + 1:] if nl >= 0 else b""
            body = rest.lstrip(b" \t\r\n")  # blank lines may follow a text header
            nl2 = body.find(b"\n")
            second = body if nl2 < 0 else body[:nl2]
            # A text file whose first row is bad must be reported as a bad line, not
            # parsed as a broken binary file: binary needs raw float bytes to show.
            text = _looks_like_text(second, dim) or not _looks_like_binary(body, whole)
            st.kind = "text" if text else "binary"
            if not rest.strip():
                st.kind = "text"
        else:
            st.kind = opt
        return
    # No header: GloVe.  The dimension is the number of numeric fields ending the first
    # non-blank line.
    line_no = 1
    for raw_line in data.split(b"\n"):
        if raw_line.strip():
            first = raw_line
            break
        line_no += 1
    else:
        raise st.error("not a word-vector file: found only blank lines"
                         + ("" if whole else " in the first MiB"))
    sample = data[: 1 << 16]
    if looks_binary(sample):
        # Text formats hold no control bytes beyond a stray one; compressed or binary data
        # has them on every line.  Refused here, not read as lines that fail one by one.
        st.binary_text = True
        raise st.error(
            "not a word-vector file: this is binary data in no format embstore knows "
            f"({control_share(sample):.0%} control bytes in the first "
            f"{len(sample):,} bytes; found {show(first)})", offset=0,
            hint="if it is compressed, decompress it first; embstore reads gzip, bz2, xz, "
                 "zip and tar",
        )
    line = first.rstrip(b" \t\r\n\x0b\x0c")
    fields = line.split()
    dim = 0
    for tok in reversed(fields):
        if not (_NUMBER_RE.match(tok) or _SPECIAL_RE.match(tok)):
            break
        dim += 1
    if dim == len(fields) and dim:
        dim -= 1  # the first field is the word even if it looks numeric
    if dim > fmt.MAX_DIM:
        raise st.error(f"line has {dim} values; expected at most {fmt.MAX_DIM}",
                         line=line_no)
    if dim == 0:
        raise st.error(
            "not a word-vector file: expected a header 'count dim' or a line "
            f"'word v1 v2 ...', found {show(first)}", line=line_no,
        )
    st.kind = "glove"
    st.dim = dim


_CONTROL_RE = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")


def control_share(data: bytes) -> float:
    """The share of ``data`` that is control bytes (tab, newline, CR, VT and FF excluded)."""
    return len(_CONTROL_RE.findall(data)) / max(len(data), 1)


def looks_binary(data: bytes) -> bool:
    """Whether ``data`` is binary rather than text: at least 5% control bytes (and 16).

    Text vector files have almost none (a word may hold a stray one, and gensim reads such
    files, so a few must not refuse one); compressed, encrypted or binary data has about 11%
    (29 of the 256 byte values)."""
    n = len(_CONTROL_RE.findall(data))
    return n >= 16 and n * 20 >= len(data)


def junk_word(word: bytes) -> bool:
    """Whether the bytes of a word are binary junk rather than text in another encoding: a
    control byte, or mostly bytes that are not UTF-8 (a Latin-1 ``caf\xe9`` is neither)."""
    if _CONTROL_RE.search(word):
        return True
    bad = len(word) - len(word.decode("utf-8", "ignore").encode("utf-8"))
    return bad >= 4 and 2 * bad > len(word)


def _looks_like_binary(data: bytes, whole: bool) -> bool:
    """Raw float32 records show control bytes or invalid UTF-8 within the first 64 KiB."""
    sample = data[: 1 << 16]
    if _CONTROL_RE.search(sample):
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(sample) < len(data) or not whole
        return not (cut and exc.reason == "unexpected end of data")
    return False


def _looks_like_text(line: bytes, dim: int) -> bool:
    fields = line.rstrip(b" \t\r\n\x0b\x0c").split(b" ")
    fields = [f for f in fields if f]
    if len(fields) < dim + 1:
        return False
    return all(_NUMBER_RE.match(t) for t in fields[-dim:])
