"""The on-disk store format (specified in ``docs/FORMAT.md``), as code.

This module holds everything a reader or writer needs to agree on -- the header layout, the
section table and its rules, the vector storage dtypes, the hash function, the limits -- and
the cheap structural validation done on every open.  It imports only the standard library and
:mod:`embstore.errors`, so that opening a store and looking up single words never needs NumPy
kernels or Numba.

Versions: a file with only the seven core sections and float32 vectors is written as **1.0**,
byte for byte what the 1.0 writer produced, so 1.0 readers keep reading it.  Anything else
(an extension section, another vector dtype) is **1.1**: every section table entry then says
its kind, whether a reader must understand it (``REQUIRED``) and its element dtype, so a reader
skips what it may ignore and refuses, naming it, what it may not.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from .errors import FormatError

MAGIC = b"\x89EMB\r\n\x1a\n"
VERSION_MAJOR = 1
VERSION_MINOR = 1  # the newest minor this code reads and writes
MINOR_CORE = 0  # the minor of a file holding only the core sections, float32

PAGE = 4096
HEADER_LENGTH = PAGE
HASH_FNV1A64_FMIX64 = 1
HASH_SIPHASH13 = 2  # keyed by the header's hash_key (1.1)
HASHES = (HASH_FNV1A64_FMIX64,)  # readable hashes; 2 is specified, not yet written
MAX_PROBES = 1024  # no run of occupied index slots is longer; readers stop there
REHASH_PROBES = 256  # a writer switches to the keyed hash past this many probes
BLOCK_LOG2 = 20  # checksum block: 1 MiB
MAX_ROWS = 0xFFFF_FFFE  # row + 1 must fit a uint32 index entry
MAX_DIM = 1 << 20
MAX_METADATA = 1 << 20

# Fixed header fields, little-endian, at offset 0.
_HEADER = struct.Struct("<8sHHIQQQIIQIIII")
# magic, major, minor, header_length, file_length, n_rows, dim, dtype, hash_id,
# n_slots, block_log2, n_sections, flags, header_crc32
_CRC_OFFSET = _HEADER.size - 4
_HASH_KEY = struct.Struct("<QQ")  # k0, k1 at HASH_KEY_OFFSET (1.1, hash_id 2)
HASH_KEY_OFFSET = 72
SECTION_TABLE_OFFSET = 128
_SECTION = struct.Struct("<IIQQII")  # kind, flags, offset, length, elem, reserved
MAX_SECTIONS = (HEADER_LENGTH - SECTION_TABLE_OFFSET) // _SECTION.size  # 124


class Section(IntEnum):
    """Section kinds this code understands.  1-7 are the core sections of every store, in
    file order; kinds of later features are added here with a number never used before."""

    VECTORS = 1
    WORD_OFFSETS = 2
    WORD_BYTES = 3
    INDEX = 4
    STATS = 5
    METADATA = 6
    CHECKSUMS = 7


SECTION_ORDER = tuple(Section)[:7]  # the core sections, in file order
CORE = frozenset(SECTION_ORDER)

# Section flags (1.1).  Unknown bits are refused: a future flag may change how to read a
# section.
REQUIRED = 1  # a reader that does not know this section's kind must refuse the file
KNOWN_SECTION_FLAGS = REQUIRED


class Elem(IntEnum):
    """Element dtype of a section (1.1 section table); all little-endian."""

    BYTES = 0  # opaque bytes (JSON, UTF-8, a sub-format the section kind defines)
    U8 = 1
    U32 = 2
    U64 = 3
    F32 = 4
    F64 = 5
    F16 = 6
    I8 = 7
    I32 = 8
    I64 = 9


ELEM_SIZE = {Elem.BYTES: 1, Elem.U8: 1, Elem.U32: 4, Elem.U64: 8, Elem.F32: 4, Elem.F64: 8,
             Elem.F16: 2, Elem.I8: 1, Elem.I32: 4, Elem.I64: 8}
ELEM_NUMPY = {Elem.BYTES: "u1", Elem.U8: "u1", Elem.U32: "<u4", Elem.U64: "<u8",
              Elem.F32: "<f4", Elem.F64: "<f8", Elem.F16: "<f2", Elem.I8: "i1",
              Elem.I32: "<i4", Elem.I64: "<i8"}


class VectorDType(IntEnum):
    """How VECTORS stores a row (header field ``dtype``).  Only float32 exists so far; a new
    storage dtype gets a number here, the element dtype of its VECTORS section and any
    section it needs (for example per-row scales, flagged REQUIRED)."""

    FLOAT32 = 1


DTYPE_FLOAT32_LE = int(VectorDType.FLOAT32)
VECTOR_ELEM = {VectorDType.FLOAT32: Elem.F32}

CORE_ELEM = {Section.VECTORS: Elem.F32, Section.WORD_OFFSETS: Elem.U64,
             Section.WORD_BYTES: Elem.U8, Section.INDEX: Elem.U32, Section.STATS: Elem.F64,
             Section.METADATA: Elem.BYTES, Section.CHECKSUMS: Elem.U64}

# Extension kinds this code understands (none yet).  Each entry maps a kind to its element
# dtype; readers look them up with :meth:`Header.section`.
KNOWN_EXTENSIONS: dict[int, Elem] = {}

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
FMIX_C1 = 0xFF51AFD7ED558CCD
FMIX_C2 = 0xC4CEB9FE1A85EC53
MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def fnv1a_fmix64(data: bytes) -> int:
    """FNV-1a 64 of ``data`` followed by the MurmurHash3 ``fmix64`` finaliser (``hash_id`` 1).

    Stable across processes and platforms (unlike Python's salted ``hash``); the finaliser
    spreads FNV's weak low bits, which pick the slot.
    """
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK64
    h ^= h >> 33
    h = (h * FMIX_C1) & MASK64
    h ^= h >> 33
    h = (h * FMIX_C2) & MASK64
    h ^= h >> 33
    return h


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK64


def siphash(k0: int, k1: int, data: bytes, c_rounds: int = 1, d_rounds: int = 3) -> int:
    """SipHash-c-d of ``data`` with key ``(k0, k1)``; SipHash-1-3 is ``hash_id`` 2.

    The pure-Python reference, used by single-word lookups (the kernels have their own).
    """
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & MASK64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & MASK64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & MASK64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & MASK64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rounds(c_rounds)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    rounds(c_rounds)
    v0 ^= last
    v2 ^= 0xFF
    rounds(d_rounds)
    return v0 ^ v1 ^ v2 ^ v3


def word_hash(data: bytes, hash_id: int = HASH_FNV1A64_FMIX64,
              key: tuple[int, int] = (0, 0)) -> int:
    """The index hash of a word's UTF-8 bytes under the store's ``hash_id`` (and key)."""
    if hash_id == HASH_SIPHASH13:
        return siphash(key[0], key[1], data)
    return fnv1a_fmix64(data)


def slot_count(n_rows: int) -> int:
    """Index size a writer uses: the smallest power of two >= 2 * n_rows (at least 8).

    A load factor <= 0.5 keeps linear probing short (about 1.5 probes for a hit, 2.5 for a
    miss) at 8 bytes per slot.
    """
    n = 8
    while n < 2 * n_rows:
        n *= 2
    return n


def align(n: int, to: int = PAGE) -> int:
    return (n + to - 1) // to * to


def checksum_count(body_length: int) -> int:
    """Number of checksum blocks covering ``body_length`` bytes."""
    block = 1 << BLOCK_LOG2
    return (body_length + block - 1) // block


def section_name(kind: int) -> str:
    """``"vectors"`` for a known kind, ``"kind 4242"`` for one this code does not know."""
    try:
        return Section(kind).name.lower()
    except ValueError:
        return f"kind {kind}"


@dataclass(frozen=True)
class SectionEntry:
    """One row of the section table."""

    kind: int
    offset: int
    length: int
    flags: int = REQUIRED
    elem: int = Elem.BYTES

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def required(self) -> bool:
        return bool(self.flags & REQUIRED)

    @property
    def name(self) -> str:
        return section_name(self.kind)


@dataclass(frozen=True)
class ExtraSection:
    """What a writer says about an extension section before it is laid out."""

    kind: int
    length: int
    required: bool
    elem: int = Elem.BYTES


@dataclass(frozen=True)
class Header:
    """The decoded, validated fixed header of a store.

    ``sections`` maps kind to entry in file order; it holds the core sections and every
    extension section, known or not (unknown ones are optional: a required unknown section
    is refused by :func:`parse_header`).
    """

    major: int
    minor: int
    file_length: int
    n_rows: int
    dim: int
    n_slots: int
    block_log2: int
    sections: dict[int, SectionEntry]
    dtype: int = DTYPE_FLOAT32_LE
    hash_id: int = HASH_FNV1A64_FMIX64
    hash_key: tuple[int, int] = (0, 0)

    def section(self, kind: int) -> SectionEntry | None:
        """The entry of ``kind``, or None if the file has no such section."""
        return self.sections.get(kind)

    @property
    def extensions(self) -> list[SectionEntry]:
        """Entries beyond the core seven, in file order."""
        return [e for k, e in self.sections.items() if k not in CORE]

    def pack(self) -> bytes:
        """Encode as the ``HEADER_LENGTH`` bytes that start the file (CRC filled in).

        A 1.0 header keeps the section table's flags and element fields zero, as the 1.0
        writer did; from 1.1 on they are written.
        """
        buf = bytearray(HEADER_LENGTH)
        _HEADER.pack_into(
            buf, 0, MAGIC, self.major, self.minor, HEADER_LENGTH, self.file_length,
            self.n_rows, self.dim, self.dtype, self.hash_id, self.n_slots,
            self.block_log2, len(self.sections), 0, 0,
        )
        described = (self.major, self.minor) != (1, 0)
        if self.hash_id == HASH_SIPHASH13:
            _HASH_KEY.pack_into(buf, HASH_KEY_OFFSET, *self.hash_key)
        for i, entry in enumerate(self.sections.values()):
            _SECTION.pack_into(
                buf, SECTION_TABLE_OFFSET + i * _SECTION.size, int(entry.kind),
                entry.flags if described else 0, entry.offset, entry.length,
                entry.elem if described else 0, 0,
            )
        struct.pack_into("<I", buf, _CRC_OFFSET, zlib.crc32(buf))
        return bytes(buf)


def section_lengths(n_rows: int, dim: int, n_word_bytes: int, n_slots: int,
                    n_metadata: int, dtype: int = DTYPE_FLOAT32_LE) -> dict[Section, int]:
    """Lengths of every core section but CHECKSUMS, which depends on where it starts."""
    item = ELEM_SIZE[VECTOR_ELEM[VectorDType(dtype)]]
    return {
        Section.VECTORS: n_rows * dim * item,
        Section.WORD_OFFSETS: (n_rows + 1) * 8,
        Section.WORD_BYTES: n_word_bytes,
        Section.INDEX: n_slots * 8,
        Section.STATS: dim * 16,
        Section.METADATA: n_metadata,
    }


def layout(lengths: Mapping[Section, int], extras: Iterable[ExtraSection] = (),
           dtype: int = DTYPE_FLOAT32_LE) -> dict[int, SectionEntry]:
    """Place the core sections, then ``extras``, each at the next page boundary, and
    CHECKSUMS last: the only layout a file may have."""
    entries: dict[int, SectionEntry] = {}
    pos = HEADER_LENGTH
    specs: list[tuple[int, int, int, int]] = []
    for core in SECTION_ORDER[:-1]:
        core_elem = VECTOR_ELEM[VectorDType(dtype)] if core == Section.VECTORS else CORE_ELEM[core]
        specs.append((core, lengths[core], REQUIRED, core_elem))
    for extra in extras:
        specs.append((extra.kind, extra.length, REQUIRED if extra.required else 0, extra.elem))
    for kind, length, flags, elem in specs:
        entries[kind] = SectionEntry(kind, pos, length, flags, elem)
        pos = align(pos + length)
    n_checks = checksum_count(pos - HEADER_LENGTH)
    entries[Section.CHECKSUMS] = SectionEntry(Section.CHECKSUMS, pos, n_checks * 8, REQUIRED,
                                              Elem.U64)
    return entries


def minor_for(dtype: int, extras: Iterable[ExtraSection],
              hash_id: int = HASH_FNV1A64_FMIX64) -> int:
    """The oldest minor version that can describe a file: 1.0 unless it needs 1.1."""
    plain = dtype == DTYPE_FLOAT32_LE and hash_id == HASH_FNV1A64_FMIX64 and not list(extras)
    return MINOR_CORE if plain else 1


def parse_header(raw: bytes, actual_size: int, path: str) -> Header:
    """Decode and validate a header against the file's real size.

    Every size and offset is checked with Python integers (no overflow) before anything is
    mapped, so that later code may trust the section bounds.  Content (words, index entries,
    vectors) is not read here; the kernels bound-check what they read from it.
    """
    if actual_size < _HEADER.size or len(raw) < _HEADER.size:
        raise FormatError(path, f"not an embstore store (file is only {actual_size} bytes)")
    (magic, major, minor, header_length, file_length, n_rows, dim, dtype, hash_id, n_slots,
     block_log2, n_sections, flags, crc) = _HEADER.unpack_from(raw, 0)
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
    described = minor >= 1
    if dtype not in VectorDType.__members__.values() or (not described and dtype != DTYPE_FLOAT32_LE):
        raise FormatError(path, f"unsupported vector dtype {dtype}"
                          + ("; the file was written by a newer embstore: upgrade embstore"
                             if described else ""))
    if hash_id not in HASHES or (not described and hash_id != HASH_FNV1A64_FMIX64):
        raise FormatError(path, f"unsupported hash function {hash_id}"
                          + ("; the file was written by a newer embstore: upgrade embstore"
                             if described else ""))
    hash_key = _HASH_KEY.unpack_from(raw, HASH_KEY_OFFSET)
    if hash_id != HASH_SIPHASH13 and described and hash_key != (0, 0):
        raise FormatError(path, "damaged header: a hash key for an unkeyed hash")
    if described and flags != 0:
        raise FormatError(path, f"header flags {flags:#x} are not known to this embstore; "
                                "the file was written by a newer embstore: upgrade embstore")
    if not 1 <= n_rows <= MAX_ROWS:
        raise FormatError(path, f"damaged header: row count {n_rows} out of range")
    if not 1 <= dim <= MAX_DIM:
        raise FormatError(path, f"damaged header: dimension {dim} out of range")
    if n_slots <= n_rows or n_slots & (n_slots - 1):
        raise FormatError(path, f"damaged header: index size {n_slots} for {n_rows} rows")
    if block_log2 != BLOCK_LOG2:
        raise FormatError(path, f"damaged header: checksum block size 2**{block_log2}")
    core = len(SECTION_ORDER)
    if (not described and n_sections != core) or not core <= n_sections <= MAX_SECTIONS:
        raise FormatError(path, f"damaged header: {n_sections} sections, expected "
                                + (f"{core}" if not described else f"{core} to {MAX_SECTIONS}"))

    table = [_SECTION.unpack_from(raw, SECTION_TABLE_OFFSET + i * _SECTION.size)
             for i in range(n_sections)]
    order = list(SECTION_ORDER[:-1]) + [None] * (n_sections - core) + [Section.CHECKSUMS]
    got: list[SectionEntry] = []
    extras: list[ExtraSection] = []
    for i, ((kind, s_flags, offset, length, elem, _reserved), want) in enumerate(
            zip(table, order, strict=True)):
        if want is not None and kind != want:
            raise FormatError(path, f"damaged header: section {i} has kind {kind}")
        if not described:
            # 1.0 tables carry no flags or element dtypes: the core sections imply them.
            s_flags, elem = REQUIRED, CORE_ELEM[Section(kind)]
        if want is None:
            if kind in CORE or kind in (e.kind for e in extras):
                raise FormatError(path, f"damaged header: section {i} repeats kind {kind}")
            if s_flags & ~KNOWN_SECTION_FLAGS:
                raise FormatError(path, f"section {section_name(kind)} has flags {s_flags:#x} "
                                        "not known to this embstore; the file was written by a "
                                        "newer embstore: upgrade embstore")
            if kind not in KNOWN_EXTENSIONS and s_flags & REQUIRED:
                raise FormatError(path, f"required section {section_name(kind)} is not known "
                                        "to this embstore; the file was written by a newer "
                                        "embstore: upgrade embstore")
            if elem not in Elem.__members__.values():
                raise FormatError(path, f"damaged header: section {section_name(kind)} has "
                                        f"element dtype {elem}")
            if kind in KNOWN_EXTENSIONS and elem != KNOWN_EXTENSIONS[kind]:
                raise FormatError(path, f"damaged header: section {section_name(kind)} has "
                                        f"element dtype {elem}, expected "
                                        f"{int(KNOWN_EXTENSIONS[kind])}")
            if length % ELEM_SIZE[Elem(elem)]:
                raise FormatError(path, f"damaged header: section {section_name(kind)} is "
                                        f"{length} bytes, not a whole number of elements")
            extras.append(ExtraSection(kind, length, bool(s_flags & REQUIRED), elem))
        else:
            expect = VECTOR_ELEM[VectorDType(dtype)] if want == Section.VECTORS else CORE_ELEM[want]
            # Core kinds imply their flags and element dtype; a writer may leave both zero
            # (as the 1.0 writer did) or state them, never state something else.
            if (s_flags, elem) == (0, 0):
                s_flags, elem = REQUIRED, expect
            if s_flags != REQUIRED or elem != expect:
                raise FormatError(path, f"damaged header: section {want.name} has flags "
                                        f"{s_flags:#x} and element dtype {elem}, expected "
                                        f"{REQUIRED:#x} and {int(expect)}")
        got.append(SectionEntry(kind, offset, length, s_flags, elem))

    sections = {e.kind: e for e in got}
    if sections[Section.METADATA].length > MAX_METADATA:
        raise FormatError(path, "damaged header: metadata section too large")
    lengths = section_lengths(n_rows, dim, sections[Section.WORD_BYTES].length, n_slots,
                              sections[Section.METADATA].length, dtype)
    expected = layout(lengths, extras, dtype)
    for entry in got:
        want_e = expected[entry.kind]
        if (entry.offset, entry.length) != (want_e.offset, want_e.length):
            raise FormatError(
                path,
                f"damaged header: section {entry.name.upper()} at {entry.offset}+{entry.length}, "
                f"expected {want_e.offset}+{want_e.length}",
            )
    if expected[Section.CHECKSUMS].end != file_length:
        raise FormatError(path, "damaged header: sections do not end at the end of the file")
    return Header(major, minor, file_length, n_rows, dim, n_slots, block_log2, sections,
                  dtype, hash_id, hash_key if hash_id == HASH_SIPHASH13 else (0, 0))
