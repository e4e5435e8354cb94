"""The format module: header encoding, the index hash, slot counts and section layout.

The hash is checked against a reference written here from its specification (FNV-1a 64 then
MurmurHash3's fmix64), not against the code under test, and against the compiled kernel.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embstore import FormatError
from embstore import format as fmt
from embstore._kernels import strings as kstrings

M64 = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64-bit, as published (offset basis 14695981039346656037, prime 2**40 + 435)."""
    h = 14695981039346656037
    for byte in data:
        h ^= byte
        h = (h * 1099511628211) % (1 << 64)
    return h


def fmix64(k: int) -> int:
    """MurmurHash3's 64-bit finaliser."""
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & M64
    k ^= k >> 33
    return k


def reference_hash(data: bytes) -> int:
    return fmix64(fnv1a64(data))


def test_fnv_reference_known_answers() -> None:
    """Published FNV-1a 64 test vectors, so the reference itself is right."""
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8
    assert fmix64(0) == 0


WORDS = [b"", b"a", b"the", b"The", b"foobar", "東京".encode(), "😀".encode(), b"\x00",
         b"\xff" * 3, b"x" * 1000, "New\u00a0York".encode()]


@pytest.mark.parametrize("word", WORDS, ids=range(len(WORDS)))
def test_word_hash_matches_reference(word: bytes) -> None:
    assert fmt.word_hash(word) == reference_hash(word)


def _hash_many(words: list[bytes]) -> list[int]:
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(w) for w in words])
    buf = np.frombuffer(b"".join(words) + b"\0", dtype=np.uint8)
    out = np.empty(len(words), dtype=np.uint64)
    kstrings.hash_many(buf, offsets, out)
    return [int(x) for x in out]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=30))
def test_word_hash_python_kernel_and_reference_agree(words: list[bytes]) -> None:
    want = [reference_hash(w) for w in words]
    assert [fmt.word_hash(w) for w in words] == want
    assert _hash_many(words) == want


def test_kernel_hash_on_fixed_words() -> None:
    assert _hash_many(WORDS) == [reference_hash(w) for w in WORDS]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 1000, 1023, 1024, 1025,
                               3_000_000, fmt.MAX_ROWS])
def test_slot_count(n: int) -> None:
    s = fmt.slot_count(n)
    assert s & (s - 1) == 0  # a power of two
    assert s >= 8 and s >= 2 * n and s > n
    assert s == 8 or s // 2 < 2 * n  # the smallest such
    assert s - 1 <= 0xFFFF_FFFF_FFFF  # slot numbers fit easily


@pytest.mark.parametrize("value", [0, 1, 4095, 4096, 4097, 10**9])
def test_align(value: int) -> None:
    a = fmt.align(value)
    assert a % fmt.PAGE == 0 and value <= a < value + fmt.PAGE


@pytest.mark.parametrize("body", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 5 << 20])
def test_checksum_count(body: int) -> None:
    block = 1 << fmt.BLOCK_LOG2
    assert fmt.checksum_count(body) == -(-body // block)


LAYOUT_CASES = [(1, 1, 0, 0), (1, 1, 1, 2), (7, 3, 20, 100), (1000, 300, 9000, 500),
                (5000, 100, 1, 1 << 20), (3_000_000, 300, 30_000_000, 700)]


@pytest.mark.parametrize(("n", "dim", "word_bytes", "meta"), LAYOUT_CASES)
def test_layout_invariants(n: int, dim: int, word_bytes: int, meta: int) -> None:
    slots = fmt.slot_count(n)
    lengths = fmt.section_lengths(n, dim, word_bytes, slots, meta)
    assert lengths[fmt.Section.VECTORS] == n * dim * 4
    assert lengths[fmt.Section.WORD_OFFSETS] == (n + 1) * 8
    assert lengths[fmt.Section.INDEX] == slots * 8
    assert lengths[fmt.Section.STATS] == dim * 16
    entries = fmt.layout(lengths)
    assert list(entries) == list(fmt.SECTION_ORDER)
    pos = fmt.HEADER_LENGTH
    for kind in fmt.SECTION_ORDER:
        e = entries[kind]
        assert e.kind == kind
        assert e.offset == fmt.align(pos) and e.offset % fmt.PAGE == 0  # next page, in order
        if kind != fmt.Section.CHECKSUMS:
            assert e.length == lengths[kind]
        pos = e.end
    checks = entries[fmt.Section.CHECKSUMS]
    body = checks.offset - fmt.HEADER_LENGTH
    assert checks.length == 8 * fmt.checksum_count(body)
    assert entries[fmt.Section.VECTORS].offset == fmt.HEADER_LENGTH


def _header(n: int = 7, dim: int = 3, word_bytes: int = 20, meta: int = 100,
            minor: int = 0) -> fmt.Header:
    slots = fmt.slot_count(n)
    sections = fmt.layout(fmt.section_lengths(n, dim, word_bytes, slots, meta))
    return fmt.Header(fmt.VERSION_MAJOR, minor, sections[fmt.Section.CHECKSUMS].end, n, dim,
                      slots, fmt.BLOCK_LOG2, sections)


@pytest.mark.parametrize(("n", "dim", "word_bytes", "meta"), LAYOUT_CASES)
def test_header_round_trip(n: int, dim: int, word_bytes: int, meta: int) -> None:
    h = _header(n, dim, word_bytes, meta)
    raw = h.pack()
    assert len(raw) == fmt.HEADER_LENGTH
    assert raw[:8] == fmt.MAGIC == b"\x89EMB\r\n\x1a\n"
    assert fmt.parse_header(raw, h.file_length, "x.emb") == h


def test_header_field_offsets_follow_the_spec() -> None:
    """Offsets from docs/FORMAT.md, read with struct rather than the module's own layout."""
    h = _header(7, 3, 20, 100)
    raw = h.pack()
    assert struct.unpack_from("<HHI", raw, 8) == (1, 0, 4096)
    assert struct.unpack_from("<QQQ", raw, 16) == (h.file_length, 7, 3)
    assert struct.unpack_from("<IIQIII", raw, 40) == (1, 1, h.n_slots, 20, 7, 0)
    crc = struct.unpack_from("<I", raw, 68)[0]
    zeroed = bytearray(raw)
    zeroed[68:72] = b"\0\0\0\0"
    assert crc == zlib.crc32(zeroed)
    for i, kind in enumerate(fmt.SECTION_ORDER):
        k, r1, off, length, r2 = struct.unpack_from("<IIQQQ", raw, 128 + 32 * i)
        assert (k, r1, r2) == (int(kind), 0, 0)
        assert (off, length) == (h.sections[kind].offset, h.sections[kind].length)
    assert raw[128 + 32 * 7:] == bytes(fmt.HEADER_LENGTH - 128 - 32 * 7)
    assert raw[72:128] == bytes(56)


def _repack(raw: bytes, offset: int, fmt_code: str, value: int) -> bytes:
    buf = bytearray(raw)
    struct.pack_into(fmt_code, buf, offset, value)
    struct.pack_into("<I", buf, 68, 0)
    struct.pack_into("<I", buf, 68, zlib.crc32(buf))
    return bytes(buf)


@pytest.mark.parametrize(("offset", "code", "value", "message"), [
    (8, "<H", 2, "upgrade embstore"),
    (8, "<H", 0, "not supported"),
    (12, "<I", 8192, "header length"),
    (16, "<Q", 12345, "header says 12345"),
    (24, "<Q", 0, "row count"),
    (24, "<Q", 8, "section"),
    (32, "<Q", 0, "dimension"),
    (32, "<Q", fmt.MAX_DIM + 1, "dimension"),
    (40, "<I", 2, "dtype"),
    (44, "<I", 9, "hash"),
    (48, "<Q", 12, "index size"),
    (48, "<Q", 4, "index size"),
    (56, "<I", 16, "checksum block"),
    (60, "<I", 6, "sections"),
    (128, "<I", 2, "section 0 has kind 2"),
    (128 + 32 + 8, "<Q", 4096 * 5, "WORD_OFFSETS"),
    (128 + 5 * 32 + 16, "<Q", (1 << 20) + 1, "metadata"),
])
def test_parse_header_rejects(offset: int, code: str, value: int, message: str) -> None:
    h = _header()
    raw = _repack(h.pack(), offset, code, value)
    with pytest.raises(FormatError, match=message) as info:
        fmt.parse_header(raw, h.file_length, "bad.emb")
    assert info.value.path == "bad.emb" and str(info.value).startswith("bad.emb: ")


def test_parse_header_checks_size_and_crc() -> None:
    h = _header()
    raw = h.pack()
    with pytest.raises(FormatError, match="truncated"):
        fmt.parse_header(raw, h.file_length - 1, "x")
    with pytest.raises(FormatError, match="trailing data"):
        fmt.parse_header(raw, h.file_length + 1, "x")
    with pytest.raises(FormatError, match="only 10 bytes"):
        fmt.parse_header(raw[:10], 10, "x")
    flipped = bytearray(raw)
    flipped[2000] ^= 1  # in the zero area, covered by the CRC
    with pytest.raises(FormatError, match="checksum"):
        fmt.parse_header(bytes(flipped), h.file_length, "x")
    with pytest.raises(FormatError, match="magic"):
        fmt.parse_header(b"\x89EMX" + raw[4:], h.file_length, "x")


def test_minor_versions_are_accepted() -> None:
    h = _header(minor=9)
    assert fmt.parse_header(h.pack(), h.file_length, "x").minor == 9
