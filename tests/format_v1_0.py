"""The 1.0 reader's header rules, frozen: a verbatim copy of ``embstore/format.py`` as
version 1.0 shipped it (hash and slot helpers left out).

Tests use it as the oracle for "a 1.0 reader opens this file": every store a current writer
makes without extension sections must pass these rules unchanged.  Never edit this file to
make a test pass; it stands for readers already installed on users' machines.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum


class FormatError(Exception):
    def __init__(self, path: str | None, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(message if path is None else f"{path}: {message}")


MAGIC = b"\x89EMB\r\n\x1a\n"
VERSION_MAJOR = 1
VERSION_MINOR = 0

PAGE = 4096
HEADER_LENGTH = PAGE
DTYPE_FLOAT32_LE = 1
HASH_FNV1A64_FMIX64 = 1
BLOCK_LOG2 = 20  # checksum block: 1 MiB
MAX_ROWS = 0xFFFF_FFFE  # row + 1 must fit a uint32 index entry
MAX_DIM = 1 << 20
MAX_METADATA = 1 << 20

# Fixed header fields, little-endian, at offset 0.
_HEADER = struct.Struct("<8sHHIQQQIIQIIII")
# magic, major, minor, header_length, file_length, n_rows, dim, dtype, hash_id,
# n_slots, block_log2, n_sections, flags, header_crc32
_CRC_OFFSET = _HEADER.size - 4
SECTION_TABLE_OFFSET = 128
_SECTION = struct.Struct("<IIQQQ")  # kind, reserved, offset, length, reserved


class Section(IntEnum):
    """Section kinds, in the order they appear in the file."""

    VECTORS = 1
    WORD_OFFSETS = 2
    WORD_BYTES = 3
    INDEX = 4
    STATS = 5
    METADATA = 6
    CHECKSUMS = 7


SECTION_ORDER = tuple(Section)

def align(n: int, to: int = PAGE) -> int:
    return (n + to - 1) // to * to


def checksum_count(body_length: int) -> int:
    """Number of checksum blocks covering ``body_length`` bytes."""
    block = 1 << BLOCK_LOG2
    return (body_length + block - 1) // block


@dataclass(frozen=True)
class SectionEntry:
    kind: Section
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class Header:
    """The decoded, validated fixed header of a store."""

    major: int
    minor: int
    file_length: int
    n_rows: int
    dim: int
    n_slots: int
    block_log2: int
    sections: dict[Section, SectionEntry]

    def pack(self) -> bytes:
        """Encode as the ``HEADER_LENGTH`` bytes that start the file (CRC filled in)."""
        buf = bytearray(HEADER_LENGTH)
        _HEADER.pack_into(
            buf, 0, MAGIC, self.major, self.minor, HEADER_LENGTH, self.file_length,
            self.n_rows, self.dim, DTYPE_FLOAT32_LE, HASH_FNV1A64_FMIX64, self.n_slots,
            self.block_log2, len(self.sections), 0, 0,
        )
        for i, kind in enumerate(SECTION_ORDER):
            entry = self.sections[kind]
            _SECTION.pack_into(
                buf, SECTION_TABLE_OFFSET + i * _SECTION.size, int(kind), 0, entry.offset,
                entry.length, 0,
            )
        struct.pack_into("<I", buf, _CRC_OFFSET, zlib.crc32(buf))
        return bytes(buf)


def section_lengths(n_rows: int, dim: int, n_word_bytes: int, n_slots: int,
                    n_metadata: int) -> dict[Section, int]:
    """Lengths of every section but CHECKSUMS, which depends on where it starts."""
    return {
        Section.VECTORS: n_rows * dim * 4,
        Section.WORD_OFFSETS: (n_rows + 1) * 8,
        Section.WORD_BYTES: n_word_bytes,
        Section.INDEX: n_slots * 8,
        Section.STATS: dim * 16,
        Section.METADATA: n_metadata,
    }


def layout(lengths: dict[Section, int]) -> dict[Section, SectionEntry]:
    """Place sections in order, each at the next page boundary, checksums last."""
    entries: dict[Section, SectionEntry] = {}
    pos = HEADER_LENGTH
    for kind in SECTION_ORDER[:-1]:
        entries[kind] = SectionEntry(kind, pos, lengths[kind])
        pos = align(pos + lengths[kind])
    n_checks = checksum_count(pos - HEADER_LENGTH)
    entries[Section.CHECKSUMS] = SectionEntry(Section.CHECKSUMS, pos, n_checks * 8)
    return entries


def parse_header(raw: bytes, actual_size: int, path: str) -> Header:
    """Decode and validate a header against the file's real size.

    Every size and offset is checked with Python integers (no overflow) before anything is
    mapped, so that later code may trust the section bounds.  Content (words, index entries,
    vectors) is not read here; the kernels bound-check what they read from it.
    """
    if actual_size < _HEADER.size or len(raw) < _HEADER.size:
        raise FormatError(path, f"not an embstore store (file is only {actual_size} bytes)")
    (magic, major, minor, header_length, file_length, n_rows, dim, dtype, hash_id, n_slots,
     block_log2, n_sections, _flags, crc) = _HEADER.unpack_from(raw, 0)
    if magic != MAGIC:
        raise FormatError(path, f"not an embstore store (magic bytes {magic!r}, expected {MAGIC!r})")
    if major != VERSION_MAJOR:
        raise FormatError(
            path,
            f"store format version {major}.{minor} is not supported by this embstore "
            f"(reads {VERSION_MAJOR}.x); upgrade embstore or re-convert the source file",
        )
    if header_length != HEADER_LENGTH or len(raw) < HEADER_LENGTH:
        raise FormatError(path, f"damaged header: header length {header_length}, expected {HEADER_LENGTH}")
    check = bytearray(raw[:HEADER_LENGTH])
    struct.pack_into("<I", check, _CRC_OFFSET, 0)
    if zlib.crc32(check) != crc:
        raise FormatError(path, "damaged header: header checksum mismatch")
    if file_length != actual_size:
        raise FormatError(
            path,
            f"file is {actual_size} bytes but its header says {file_length} "
            f"({'truncated' if actual_size < file_length else 'trailing data'})",
        )
    if dtype != DTYPE_FLOAT32_LE or hash_id != HASH_FNV1A64_FMIX64:
        raise FormatError(path, f"unsupported dtype {dtype} or hash function {hash_id}")
    if not 1 <= n_rows <= MAX_ROWS:
        raise FormatError(path, f"damaged header: row count {n_rows} out of range")
    if not 1 <= dim <= MAX_DIM:
        raise FormatError(path, f"damaged header: dimension {dim} out of range")
    if n_slots <= n_rows or n_slots & (n_slots - 1):
        raise FormatError(path, f"damaged header: index size {n_slots} for {n_rows} rows")
    if block_log2 != BLOCK_LOG2:
        raise FormatError(path, f"damaged header: checksum block size 2**{block_log2}")
    if n_sections != len(SECTION_ORDER):
        raise FormatError(path, f"damaged header: {n_sections} sections, expected {len(SECTION_ORDER)}")

    sections: dict[Section, SectionEntry] = {}
    for i in range(n_sections):
        kind, _r1, offset, length, _r2 = _SECTION.unpack_from(raw, SECTION_TABLE_OFFSET + i * _SECTION.size)
        sections[SECTION_ORDER[i]] = SectionEntry(SECTION_ORDER[i], offset, length)
        if kind != SECTION_ORDER[i]:
            raise FormatError(path, f"damaged header: section {i} has kind {kind}")

    lengths = section_lengths(
        n_rows, dim, sections[Section.WORD_BYTES].length, n_slots,
        sections[Section.METADATA].length,
    )
    if sections[Section.METADATA].length > MAX_METADATA:
        raise FormatError(path, "damaged header: metadata section too large")
    expected = layout(lengths)
    for kind in SECTION_ORDER:
        got = sections[kind]
        want = expected[kind]
        if (got.offset, got.length) != (want.offset, want.length):
            raise FormatError(
                path,
                f"damaged header: section {kind.name} at {got.offset}+{got.length}, "
                f"expected {want.offset}+{want.length}",
            )
    if expected[Section.CHECKSUMS].end != file_length:
        raise FormatError(path, "damaged header: sections do not end at the end of the file")
    return Header(major, minor, file_length, n_rows, dim, n_slots, block_log2, sections)
