"""Mutation fuzzing of ``embstore.convert`` against an independent reference parser.

Every case is a word-vector file (word2vec text, GloVe text or word2vec binary, sometimes
compressed) generated from random words and numbers, then usually damaged: bit flips,
truncation, inserted or deleted bytes, duplicated or swapped lines, absurd header numbers,
long digit runs, NaN/inf tokens, random bytes.  The converter must then either

* produce exactly the store the reference parser below expects (same words in the same order,
  bit-identical float32 vectors, ``verify`` OK), or
* raise :class:`embstore.ConversionError` naming a line or byte offset (a few whole-file
  refusals such as "the file is empty" have no location), leaving nothing at the destination.

Anything else -- another exception type, a crash, a hang, a partial store, different vectors --
is a failure.  The reference parser is plain Python over ``bytes``, written from the documented
semantics (``docs/FORMAT.md`` and the converter's docstrings), not from the kernels.

Run by hand for long campaigns (each run is reproducible from its seed)::

    python tests/reliability/fuzz_converter.py --seconds 600 --seed 7 --crash-dir /tmp/fuzz
    python tests/reliability/fuzz_converter.py --replay /tmp/fuzz/case-7-123.bin

The test suite runs a short campaign in a subprocess, so that a segfault or a hang is seen as
a failure of the campaign rather than of the test runner.  ``--json`` prints the summary as
JSON on the last line of stdout.
"""

from __future__ import annotations

import argparse
import bz2
import faulthandler
import gzip
import io
import json
import lzma
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# Reference semantics (pure Python)

WS = b" \t\r\n\x0b\x0c"  # ASCII whitespace as bytes.strip() knows it
BOM = b"\xef\xbb\xbf"
MAX_DIM = 1 << 20
MAX_WORD = 1 << 20
HEADER = re.compile(rb"[ \t]*([0-9]+)[ \t]+([0-9]+)[ \t\r]*")
NUMBER = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
SPECIAL = re.compile(rb"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)  # non-finite spellings
TOKEN = re.compile(rb"[^ ]+")
CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")

# Errors about the file as a whole, where no line or offset would mean anything.
FILE_LEVEL_REASONS = (
    "the file is empty",
    "found only blank lines",
    "cannot read",  # damaged compressed data / zip member
    "zip archive",
    "damaged zip",
    "zstd",
    "already an embstore store",
    "NumPy .npy",
    "Python pickle",
    ", which embstore does not read",  # a file identified by its magic bytes: the whole file
)


@dataclass
class Expected:
    """What the reference parser says a file must convert to."""

    kind: str | None = None
    words: list[bytes] = field(default_factory=list)
    vectors: np.ndarray | None = None
    error: str | None = None
    line: int | None = None  # first bad line, when the error is about one line
    located: bool = True  # False for whole-file refusals

    @property
    def ok(self) -> bool:
        return self.error is None


def _fail(reason: str, line: int | None = None, located: bool = True) -> Expected:
    return Expected(error=reason, line=line, located=located)


def number_value(tok: bytes) -> np.float32 | None:
    """float32(float(tok)) for a token of the number grammar; None if not finite."""
    with np.errstate(over="ignore"):
        f: np.float32 = np.float32(float(tok))
    return f if bool(np.isfinite(f)) else None


def parse_text_line(line: bytes, dim: int) -> tuple[str, bytes, list[np.float32]]:
    """``("blank"|"bad"|"ok", word, values)`` for one text line (newline excluded).

    Fields are separated by runs of ASCII spaces; the last ``dim`` fields are the values and
    everything before them (inner spaces kept) is the word, unless every field after the
    word's first is a number (then the line has too many values).  Leading spaces and
    trailing ASCII whitespace are ignored.  Words must be UTF-8.
    """
    body = line.rstrip(WS).lstrip(b" ")
    if not body:
        return "blank", b"", []
    toks = [(m.start(), m.end()) for m in TOKEN.finditer(body)]
    if len(toks) < dim + 1:
        return "bad", b"", []
    values: list[np.float32] = []
    for a, b in toks[-dim:]:
        tok = body[a:b]
        if NUMBER.fullmatch(tok) is None:
            return "bad", b"", []
        v = number_value(tok)
        if v is None:
            return "bad", b"", []
        values.append(v)
    word = body[: toks[-dim][0]].rstrip(b" ")
    if b" " in word:
        extras = [t for t in word.split(b" ") if t][1:]
        if all(NUMBER.fullmatch(t) for t in extras):
            return "bad", b"", []
    try:
        word.decode("utf-8")
    except UnicodeDecodeError:
        return "bad", b"", []
    return "ok", word, values


def looks_like_text(line: bytes, dim: int) -> bool:
    fields = [f for f in line.rstrip(WS).split(b" ") if f]
    if len(fields) < dim + 1:
        return False
    return all(NUMBER.fullmatch(t) for t in fields[-dim:])


def looks_like_binary(data: bytes) -> bool:
    """Auto-detection's guess for a small (fully read) file: control bytes or invalid UTF-8."""
    sample = data[: 1 << 16]
    if CONTROL.search(sample):
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(sample) < len(data)
        return not (cut and exc.reason == "unexpected end of data")
    return False


def reference(data: bytes, fmt: str = "auto") -> Expected:
    """The conversion result ``data`` must give with ``format=fmt`` (files up to 8 MiB)."""
    if not data:
        return _fail("the file is empty", located=False)
    start = 3 if data.startswith(BOM) else 0
    d = data[start:]
    nl = d.find(b"\n")
    first = d if nl < 0 else d[:nl]
    m = HEADER.fullmatch(first)
    if fmt in ("text", "binary") and m is None:
        return _fail("expected a header", line=1)
    if m is not None and fmt != "glove":
        raw_count, raw_dim = (g.lstrip(b"0") or b"0" for g in m.groups())
        if len(raw_count) > 20 or len(raw_dim) > 20:
            return _fail("implausible header", line=1)
        count, dim = int(raw_count), int(raw_dim)
        if not 1 <= dim <= MAX_DIM:
            return _fail("dimension out of range", line=1)
        if count == 0:
            return _fail("zero rows", line=1)
        rest = d[nl + 1:] if nl >= 0 else b""
        if fmt == "auto":
            body = rest.lstrip(b" \t\r\n")
            nl2 = body.find(b"\n")
            second = body if nl2 < 0 else body[:nl2]
            text = looks_like_text(second, dim) or not looks_like_binary(body)
            kind = "text" if text or not rest.strip() else "binary"
        else:
            kind = fmt
        if kind == "text":
            return _text(rest, dim, count, first_line=2)
        header_end = start + (nl if nl >= 0 else len(d))
        return _binary(data, header_end + 1, dim, count)
    # GloVe: the dimension is the number of numeric fields ending the first non-blank line.
    line_no = 1
    for raw in d.split(b"\n"):
        if raw.strip(WS):
            break
        line_no += 1
    else:
        return _fail("found only blank lines", located=False)
    fields = raw.rstrip(WS).split()
    dim = 0
    for tok in reversed(fields):
        # a non-finite spelling still occupies a value field (the line is rejected later)
        if NUMBER.fullmatch(tok) is None and SPECIAL.fullmatch(tok) is None:
            break
        dim += 1
    if dim == len(fields) and dim:
        dim -= 1
    if dim > MAX_DIM or dim == 0:
        return _fail("not a vector line", line=line_no)
    exp = _text(d, dim, None, first_line=1)
    if exp.ok:
        exp.kind = "glove"
    return exp


def _text(d: bytes, dim: int, declared: int | None, first_line: int) -> Expected:
    lines = d.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline ends the last line, it does not start another
    words: list[bytes] = []
    vecs: list[list[np.float32]] = []
    seen: set[bytes] = set()
    records = 0
    for i, line in enumerate(lines):
        if declared is not None and records == declared:
            rest = b"\n".join(lines[i:])
            stripped = rest.lstrip(WS)
            if stripped:
                at = len(rest) - len(stripped)
                return _fail("more rows than declared", line=first_line + i + rest.count(b"\n", 0, at))
            break
        status, word, values = parse_text_line(line, dim)
        if status == "blank":
            continue
        if status == "bad":
            return _fail("bad line", line=first_line + i)
        records += 1
        if word not in seen:
            seen.add(word)
            words.append(word)
            vecs.append(values)
    if declared is not None and records < declared:
        return _fail("fewer rows than declared")  # located, but the line is not compared
    if not words:
        return _fail("no vectors")
    return Expected(kind="text", words=words,
                    vectors=np.array(vecs, dtype=np.float32).reshape(len(words), dim))


def _binary(data: bytes, pos: int, dim: int, declared: int) -> Expected:
    n = len(data)
    rec = 4 * dim
    words: list[bytes] = []
    vecs: list[np.ndarray] = []
    seen: set[bytes] = set()
    records = 0
    while records < declared:
        p = pos
        while p < n and data[p] == 10:
            p += 1
        if p == n:
            return _fail("truncated")
        lim = min(n, p + MAX_WORD + 1)
        q = data.find(b" ", p, lim)
        if q < 0:
            return _fail("word too long" if lim - p > MAX_WORD else "truncated")
        if q == p:
            return _fail("empty word")
        if q + 1 + rec > n:
            return _fail("truncated")
        vec = np.frombuffer(data, dtype="<f4", count=dim, offset=q + 1)
        if not np.isfinite(vec).all():
            return _fail("non-finite value")
        word = data[p:q]
        try:
            word.decode("utf-8")
        except UnicodeDecodeError:
            return _fail("word not UTF-8")
        records += 1
        pos = q + 1 + rec
        if word not in seen:
            seen.add(word)
            words.append(word)
            vecs.append(vec.astype(np.float32))
    if data[pos:].strip(WS):
        return _fail("more rows than declared")
    return Expected(kind="binary", words=words, vectors=np.array(vecs, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# Generating valid files

_ALPHABET = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
             "_-'.,;:!?#$%&*/()[]{}<>@^~|\\\"=+`")
_UNICODE = ["é", "ß", "ü", "ø", "中", "文", "ж", "λ", "ی", "😀", "\u200d", "\x7f", "\x01", "\u00a0"]


def random_word(rng: random.Random, spaces: bool) -> bytes:
    n = rng.choice((1, 1, 2, 3, 5, 8, 13, 30))
    chars = []
    for _ in range(n):
        if rng.random() < 0.15:
            chars.append(rng.choice(_UNICODE))
        else:
            chars.append(rng.choice(_ALPHABET))
    w = "".join(chars)
    if spaces and rng.random() < 0.1:
        w = w + " " + "".join(rng.choice("abcxyz") for _ in range(rng.randint(1, 4)))
    return w.encode("utf-8")


def random_float32(rng: random.Random) -> np.float32:
    r = rng.random()
    if r < 0.05:
        x = rng.choice((0.0, -0.0, 1.0, -1.0))
    elif r < 0.1:
        x = struct.unpack("<f", struct.pack("<I", rng.randrange(1, 1 << 23)))[0]  # subnormal
    elif r < 0.15:
        x = rng.choice((3.4028235e38, -3.4028235e38, 1.1754944e-38))  # float32 extremes
    else:
        x = rng.gauss(0, 1) * 10 ** rng.randint(-8, 8)
    v: np.float32 = np.float32(x)
    return v


def spell(rng: random.Random, v: np.float32) -> bytes:
    """A decimal spelling of ``v`` (or a nearby double): the value the file holds is
    whatever float32(float(spelling)) is, so any spelling is a valid test."""
    x = float(v)
    r = rng.random()
    if r < 0.3:
        s = np.format_float_positional(v, unique=True, trim="-")
    elif r < 0.45:
        s = np.format_float_scientific(v, unique=True, trim="-")
    elif r < 0.55:
        s = f"{x:.6f}"
    elif r < 0.65:
        s = f"{x:.17g}"
    elif r < 0.72:
        s = f"{x:.3E}"
    elif r < 0.77:
        s = repr(x) + "".join(rng.choice("0123456789") for _ in range(rng.randint(10, 30)))
        if "e" in s or "inf" in s:
            s = repr(x)
    elif r < 0.82:
        s = f"{x:.9e}".replace("e-0", "e-00").replace("e+0", "e+000")
    elif r < 0.86:
        s = str(int(x)) if abs(x) < 1e15 else repr(x)
    elif r < 0.9:
        s = f"{x:.4f}".replace("0.", ".", 1) if abs(x) < 1 else f"{x:.4f}"
    else:
        s = repr(x)
    if rng.random() < 0.05 and not s.startswith("-"):
        s = "+" + s
    return s.encode("ascii")


def generate_wide(rng: random.Random) -> tuple[bytes, str]:
    """A valid text file with a large dimension and runs of blank lines: a parse batch then
    holds few rows (8 MiB of float32), so lines split across batches and read windows."""
    kind = rng.choice(("text", "glove"))
    dim = rng.choice((2048, 4096, 4096, 40000))  # batches of 1024, 512, 512, 64 rows
    n = rng.choice((1, 2, 3))
    lines = []
    for i in range(n):
        vals = b" ".join(rng.choice((b"0", b"1", b"-1.5", b"0.25", b"2e-3")) for _ in range(dim))
        lines.append(b"w%d %s" % (i, vals))
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(1 if kind == "glove" else 0, len(lines) + 1)
        lines[at:at] = [rng.choice((b"", b" ", b"\r"))] * rng.choice((70, 600, 3000))
    if kind == "text":
        lines.insert(0, b"%d %d" % (n, dim))
    return b"\n".join(lines) + b"\n", kind


def generate(rng: random.Random) -> tuple[bytes, str]:
    """A valid file and its kind, with the quirks real files have."""
    if rng.random() < 0.03:
        return generate_wide(rng)
    kind = rng.choice(("text", "text", "glove", "binary"))
    dim = rng.choice((1, 2, 3, 4, 5, 8, 17))
    n = rng.choice((1, 2, 3, 5, 10, 30))
    words = [random_word(rng, kind != "binary") for _ in range(n)]
    if n > 2 and rng.random() < 0.3:
        words[rng.randrange(1, n)] = words[0]  # a duplicate: the first one wins
    vectors = [[random_float32(rng) for _ in range(dim)] for _ in range(n)]
    if kind == "binary":
        out = [f"{n} {dim}\n".encode()]
        for w, vec in zip(words, vectors, strict=True):
            out.append(w + b" " + np.array(vec, dtype="<f4").tobytes())
            if rng.random() < 0.7:
                out.append(b"\n")
        return b"".join(out), kind
    crlf = rng.random() < 0.1
    eol = b"\r\n" if crlf else b"\n"
    lines = []
    if kind == "text":
        pad = rng.choice((b"", b"", b" ", b"\t"))
        lines.append(pad + f"{n}".encode() + rng.choice((b" ", b"  ", b"\t")) + f"{dim}".encode() + pad)
    for w, vec in zip(words, vectors, strict=True):
        sep = b"  " if rng.random() < 0.1 else b" "
        line = (b" " if rng.random() < 0.05 else b"") + w + sep + b" ".join(spell(rng, v) for v in vec)
        if rng.random() < 0.1:
            line += rng.choice((b" ", b"\t", b" \t ", b"\x0c"))
        lines.append(line)
        if rng.random() < 0.05:
            lines.append(rng.choice((b"", b"  ", b"\t", b"\r")))
    data = eol.join(lines)
    if rng.random() < 0.9:
        data += eol
    if rng.random() < 0.05:
        data = BOM + data
    return data, kind


# ---------------------------------------------------------------------------------------------
# Mutations


def _huge_number(rng: random.Random) -> bytes:
    return rng.choice((
        b"99999999999999999999", b"18446744073709551616", b"4294967295", b"4294967296",
        b"1048576", b"1048577", b"0", b"00000000000000000000000000001",
        b"9" * rng.randint(21, 6000), b"2147483648", b"65536", b"32769", b"300",
    ))


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One or a few random damages; returns the new bytes and a label."""
    ops = []
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.choice(MUTATIONS)
        b = bytearray(op(rng, bytes(b)))
        ops.append(op.__name__.lstrip("_"))
    return bytes(b), "+".join(ops)


def _bit_flip(rng: random.Random, d: bytes) -> bytes:
    if not d:
        return d
    b = bytearray(d)
    i = rng.randrange(len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _byte_set(rng: random.Random, d: bytes) -> bytes:
    if not d:
        return d
    b = bytearray(d)
    b[rng.randrange(len(b))] = rng.choice((0, 10, 13, 32, 9, 0xFF, 0x80, 0xC3, ord("."), ord("e"),
                                           ord("-"), rng.randrange(256)))
    return bytes(b)


def _truncate(rng: random.Random, d: bytes) -> bytes:
    return d[: rng.randrange(len(d) + 1)]


def _insert_bytes(rng: random.Random, d: bytes) -> bytes:
    i = rng.randrange(len(d) + 1)
    ins = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return d[:i] + ins + d[i:]


def _insert_text(rng: random.Random, d: bytes) -> bytes:
    i = rng.randrange(len(d) + 1)
    ins = rng.choice((b"\n", b"\r\n", b" ", b"  ", b"\t", b"nan", b"inf", b"-Infinity", b"1e999",
                      b"1e-999", b"\x00", b"\xff\xfe", b".", b"e", b"--1", b"+.e5", BOM,
                      b"1" * rng.randint(20, 400), b"0." + b"0" * 60 + b"1", b" 1.5", b"\n\n\n"))
    return d[:i] + ins + d[i:]


def _delete_range(rng: random.Random, d: bytes) -> bytes:
    if not d:
        return d
    i = rng.randrange(len(d))
    return d[:i] + d[i + rng.randint(1, 32):]


def _duplicate_line(rng: random.Random, d: bytes) -> bytes:
    lines = d.split(b"\n")
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return b"\n".join(lines)


def _swap_lines(rng: random.Random, d: bytes) -> bytes:
    lines = d.split(b"\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _duplicate_slice(rng: random.Random, d: bytes) -> bytes:
    if not d:
        return d
    i = rng.randrange(len(d))
    j = min(len(d), i + rng.randint(1, 64))
    k = rng.randrange(len(d) + 1)
    return d[:k] + d[i:j] + d[k:]


def _header_number(rng: random.Random, d: bytes) -> bytes:
    nl = d.find(b"\n")
    first = d if nl < 0 else d[:nl]
    rest = b"" if nl < 0 else d[nl:]
    nums = list(re.finditer(rb"[0-9]+", first))
    if not nums:
        return _huge_number(rng) + b" " + _huge_number(rng) + b"\n" + d
    m = rng.choice(nums)
    first = first[: m.start()] + _huge_number(rng) + first[m.end():]
    if rng.random() < 0.2:
        first = rng.choice((b" " * 5000, b"\t" * 5000)) + first
    return first + rest


def _long_token(rng: random.Random, d: bytes) -> bytes:
    i = rng.randrange(len(d) + 1)
    body = rng.choice((b"1" * rng.randint(1000, 60000), b"9" * 30000 + b"x", b"0." + b"0" * 5000 + b"7",
                       b"1e" + b"9" * 50, b"a" * 70000))
    return d[:i] + body + d[i:]


def _repeat_lines(rng: random.Random, d: bytes) -> bytes:
    """Many short lines: with a large dimension a parse batch holds few rows, so this
    drives the converter's batching (lines split across batches and read windows)."""
    lines = d.split(b"\n")
    i = rng.randrange(len(lines))
    k = rng.choice((70, 300, 5000, 20000))
    what = rng.choice((lines[i], b"", b"  ", b"\r"))
    return b"\n".join(lines[:i] + [what] * k + lines[i:])


def _random_bytes(rng: random.Random, d: bytes) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))


def _splice_header(rng: random.Random, d: bytes) -> bytes:
    """Swap a text header for a binary one and back: kind confusion."""
    nl = d.find(b"\n")
    return (rng.choice((b"3 2\n", b"1 1\n", b"2 4\n", b"")) + (d[nl + 1:] if nl >= 0 else d))


MUTATIONS = (_bit_flip, _bit_flip, _byte_set, _truncate, _insert_bytes, _insert_text,
             _insert_text, _delete_range, _duplicate_line, _swap_lines, _duplicate_slice,
             _header_number, _header_number, _long_token, _random_bytes, _splice_header,
             _repeat_lines, _repeat_lines)


def compress(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    kind = rng.choice(("gzip", "bz2", "xz", "zip"))
    if kind == "gzip":
        return gzip.compress(data, mtime=0), kind
    if kind == "bz2":
        return bz2.compress(data), kind
    if kind == "xz":
        return lzma.compress(data), kind
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", rng.choice((zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED))) as z:
        z.writestr("vectors.txt", data)
    return buf.getvalue(), kind


def decompress(data: bytes) -> bytes | None:
    """The plain bytes of a compressed case, or None if they cannot be read."""
    try:
        if data.startswith(b"\x1f\x8b"):
            return gzip.decompress(data)
        if data.startswith(b"BZh"):
            return bz2.decompress(data)
        if data.startswith(b"\xfd7zXZ\x00"):
            return lzma.decompress(data)
        if data.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                members = [i for i in z.infolist() if not i.is_dir()]
                if len(members) != 1:
                    return None
                return z.read(members[0])
    except Exception:
        return None
    return data


# ---------------------------------------------------------------------------------------------
# Checking one case


@dataclass
class Outcome:
    status: str  # "converted", "rejected" or "FAILED"
    detail: str = ""
    notes: list[str] = field(default_factory=list)


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n not in keep)


def _compare(dst: Path, exp: Expected) -> str | None:
    """None if the store at ``dst`` holds exactly ``exp``; else what differs."""
    import embstore

    store = embstore.open(dst)
    try:
        words = [w.encode("utf-8") for w in store.words]
        if words != exp.words:
            diff = next((i for i, (a, b) in enumerate(zip(words, exp.words, strict=False)) if a != b),
                        min(len(words), len(exp.words)))
            return (f"words differ at row {diff}: store {words[diff:diff + 1]!r} "
                    f"reference {exp.words[diff:diff + 1]!r} ({len(words)} vs {len(exp.words)})")
        assert exp.vectors is not None
        got = np.asarray(store.vectors)
        if got.shape != exp.vectors.shape:
            return f"vector shape {got.shape} vs reference {exp.vectors.shape}"
        neq = got.view(np.uint32) != exp.vectors.view(np.uint32)
        if neq.any():
            r, c = map(int, np.argwhere(neq)[0])
            return (f"vector [{r}, {c}] is {got[r, c]!r} ({got[r, c].view(np.uint32):#x}), "
                    f"reference {exp.vectors[r, c]!r} ({exp.vectors[r, c].view(np.uint32):#x})")
        rows = store.lookup([w.decode("utf-8") for w in exp.words])
        if not np.array_equal(rows, np.arange(len(exp.words))):
            return "lookup does not find every word at its row"
    finally:
        store.close()
    report = embstore.verify(dst)
    if not report.ok:
        return f"verify failed on a fresh store: {report.problems}"
    return None


def check_case(data: bytes, workdir: Path, *, name: str = "in.vec") -> Outcome:
    """Convert ``data`` and hold the result against the reference; never raises."""
    import embstore

    work = Path(workdir)
    for entry in os.listdir(work):
        p = work / entry
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    src = work / name
    dst = work / "out.emb"
    src.write_bytes(data)
    plain = decompress(data)
    exp = reference(plain) if plain is not None else _fail("cannot read", located=False)
    try:
        report = embstore.convert(src, dst, quiet=True)
    except embstore.ConversionError as exc:
        return _check_rejection(exc, data, plain, exp, work, src, dst)
    except Exception:
        return Outcome("FAILED", "unexpected exception:\n" + traceback.format_exc())
    left = _leftovers(work, {src.name, dst.name})
    if left:
        return Outcome("FAILED", f"files left next to the store: {left}")
    if plain is None:
        return Outcome("FAILED", "converted a file whose compressed data cannot be read")
    notes = []
    got_kind = report.format
    if not exp.ok or exp.kind != got_kind:
        alt = reference(plain, got_kind)
        if exp.ok:
            notes.append(f"auto-detection chose {got_kind}, the reference {exp.kind}")
        exp = alt
    if not exp.ok:
        return Outcome("FAILED", f"converted as {got_kind} but the reference rejects it "
                                 f"({exp.error}, line {exp.line})")
    try:
        diff = _compare(dst, exp)
    except Exception:
        return Outcome("FAILED", "reading the new store failed:\n" + traceback.format_exc())
    if diff:
        return Outcome("FAILED", f"store differs from the reference ({got_kind}): {diff}")
    if report.rows != len(exp.words):
        return Outcome("FAILED", f"report says {report.rows} rows, store has {len(exp.words)}")
    return Outcome("converted", got_kind, notes)


def _check_rejection(exc: Exception, data: bytes, plain: bytes | None, exp: Expected,
                     work: Path, src: Path, dst: Path) -> Outcome:
    import embstore

    reason = getattr(exc, "reason", str(exc))
    line = getattr(exc, "line", None)
    offset = getattr(exc, "offset", None)
    if dst.exists():
        return Outcome("FAILED", f"a store was left at the destination after: {exc}")
    left = _leftovers(work, {src.name})
    if left:
        return Outcome("FAILED", f"files left after a failed conversion: {left}")
    located = line is not None or offset is not None
    if located and str(line if line is not None else offset) not in str(exc):
        return Outcome("FAILED", f"location missing from the message: {exc}")
    if not located and not any(r in reason for r in FILE_LEVEL_REASONS):
        return Outcome("FAILED", f"rejection without a line or offset: {exc}")
    notes: list[str] = []
    if exp.ok:
        # The reference accepts the file: the converter's auto-detection may have guessed
        # another kind.  Forced to the reference's kind, it must give the reference's store.
        assert plain is not None and exp.kind is not None
        forced = work / "forced.emb"
        try:
            embstore.convert(src, forced, format=exp.kind, quiet=True)
        except embstore.ConversionError as exc2:
            return Outcome("FAILED", f"rejected a file the reference accepts as {exp.kind}: "
                                     f"{exc} / forced: {exc2}")
        except Exception:
            return Outcome("FAILED", "unexpected exception (forced format):\n"
                           + traceback.format_exc())
        diff = _compare(forced, exp)
        if diff:
            return Outcome("FAILED", f"forced {exp.kind}: store differs from the reference: {diff}")
        forced.unlink()
        notes.append(f"auto-detection refused a valid {exp.kind} file: {reason}")
        return Outcome("rejected", reason, notes)
    if exp.line is not None and line is not None and line != exp.line and exp.kind is None:
        notes.append(f"line {line} reported, reference says line {exp.line} ({exp.error})")
    return Outcome("rejected", reason, notes)


# ---------------------------------------------------------------------------------------------
# The campaign


def make_case(rng: random.Random) -> tuple[bytes, str]:
    data, kind = generate(rng)
    label = kind
    r = rng.random()
    if r < 0.8:
        data, ops = mutate(rng, data)
        label += ":" + ops
    if rng.random() < 0.06:
        data, comp = compress(rng, data)
        label += ":" + comp
        if rng.random() < 0.7:
            data, ops = mutate(rng, data)
            label += ":" + ops
    return data, label


def run_campaign(seed: int, iterations: int | None, seconds: float | None, workdir: Path,
                 crash_dir: Path | None, case_timeout: float, verbose: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    t0 = time.monotonic()
    i = 0
    slowest = (0.0, "")
    current = (crash_dir or workdir.parent) / f"current-{seed}.bin"
    current.parent.mkdir(parents=True, exist_ok=True)
    while True:
        if iterations is not None and i >= iterations:
            break
        if seconds is not None and time.monotonic() - t0 >= seconds:
            break
        case_seed = rng.randrange(1 << 62)
        data, label = make_case(random.Random(case_seed))
        # A reproducer survives a crash: the parent finds it and names the case.
        current.write_bytes(data)
        faulthandler.dump_traceback_later(case_timeout, exit=True)
        t1 = time.monotonic()
        outcome = check_case(data, workdir)
        dt = time.monotonic() - t1
        faulthandler.cancel_dump_traceback_later()
        if dt > slowest[0]:
            slowest = (dt, label)
        counts[outcome.status] += 1
        kinds[label.split(":")[0]] += 1
        for note in outcome.notes:
            notes[note.split(":")[0][:80]] += 1
        if outcome.status == "FAILED":
            entry = {"case": i, "case_seed": case_seed, "label": label, "detail": outcome.detail}
            if crash_dir is not None:
                crash_dir.mkdir(parents=True, exist_ok=True)
                path = crash_dir / f"case-{seed}-{i}.bin"
                path.write_bytes(data)
                entry["saved"] = str(path)
            failures.append(entry)
            if verbose:
                print(f"FAILED case {i} ({label}): {outcome.detail}", file=sys.stderr)
        i += 1
    current.unlink(missing_ok=True)
    return {
        "seed": seed, "cases": i, "seconds": round(time.monotonic() - t0, 2),
        "outcomes": dict(counts), "kinds": dict(kinds), "notes": dict(notes),
        "slowest_case": [round(slowest[0], 3), slowest[1]],
        "failures": failures[:20], "n_failures": len(failures),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, help="number of cases (default: unlimited)")
    ap.add_argument("--seconds", type=float, help="stop after this many seconds")
    ap.add_argument("--case-timeout", type=float, default=60.0,
                    help="a case running longer than this is a hang (exit 1 with a traceback)")
    ap.add_argument("--crash-dir", type=Path, help="save failing inputs here")
    ap.add_argument("--workdir", type=Path, help="scratch directory (default: a new temp dir)")
    ap.add_argument("--replay", type=Path, help="check one saved input and print the outcome")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.iterations is None and args.seconds is None and args.replay is None:
        args.seconds = 60.0
    base = Path(tempfile.mkdtemp(prefix="embstore-fuzz-", dir=args.workdir))
    work = base / "case"
    work.mkdir()
    try:
        if args.replay is not None:
            outcome = check_case(args.replay.read_bytes(), work)
            print(f"{outcome.status}: {outcome.detail}")
            for note in outcome.notes:
                print(f"  note: {note}")
            return 0 if outcome.status != "FAILED" else 1
        summary = run_campaign(args.seed, args.iterations, args.seconds, work, args.crash_dir,
                               args.case_timeout, args.verbose)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
    return 1 if summary["n_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
