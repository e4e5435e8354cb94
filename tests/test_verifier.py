"""Full verification: fresh stores pass; a flipped bit anywhere is found; and the structural
checks catch damage even when the checksums were recomputed to match it."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash

import embstore
from embstore import format as fmt

Build = Callable[..., tuple[Path, list[str], np.ndarray]]


def sections(path: Path) -> dict[fmt.Section, fmt.SectionEntry]:
    raw = path.read_bytes()
    return fmt.parse_header(raw[:fmt.HEADER_LENGTH], len(raw), str(path)).sections


def flip(path: Path, offset: int, bit: int = 0) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 1 << bit
    path.write_bytes(bytes(raw))


def rewrite(path: Path, offset: int, data: bytes) -> None:
    """Change bytes, then recompute the block checksums (and the header CRC) so that only
    the structural checks can notice."""
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    secs = fmt.parse_header(bytes(raw[:fmt.HEADER_LENGTH]), len(raw), str(path)).sections
    checks = secs[fmt.Section.CHECKSUMS]
    block = 1 << fmt.BLOCK_LOG2
    for i in range(checks.length // 8):
        lo = fmt.HEADER_LENGTH + i * block
        digest = xxhash.xxh64_intdigest(bytes(raw[lo:min(lo + block, checks.offset)]))
        struct.pack_into("<Q", raw, checks.offset + 8 * i, digest)
    struct.pack_into("<I", raw, 68, 0)
    struct.pack_into("<I", raw, 68, zlib.crc32(bytes(raw[:fmt.HEADER_LENGTH])))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(("n", "dim"), [(1, 1), (10, 3), (2000, 50), (6000, 100)])
def test_fresh_stores_verify(n: int, dim: int, build_store: Build) -> None:
    path, _, _ = build_store(n, dim)
    report = embstore.verify(path)
    assert report.ok and report.problems == []
    assert (report.rows, report.dim) == (n, dim)
    assert report.blocks == sections(path)[fmt.Section.CHECKSUMS].length // 8
    assert str(report).startswith(f"{path}: OK ({n:,} words x {dim}, ")
    d = report.to_dict()
    assert d["ok"] is True and d["blocks_checked"] == report.blocks and d["path"] == str(path)


def test_converted_gensim_files_verify(gensim_data: Path, tmp_path: Path) -> None:
    for name in ("lee_fasttext.vec", "poincare_vectors.bin", "test_glove.txt"):
        dst = tmp_path / f"{name}.emb"
        embstore.convert(gensim_data / name, dst, quiet=True)
        assert embstore.verify(dst).ok, name


SECTION_NAMES = ["vectors", "word_offsets", "word_bytes", "index", "stats", "metadata",
                 "checksums"]


@pytest.mark.parametrize("name", SECTION_NAMES)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("bit", [0, 7])
def test_flipped_bit_in_each_section(name: str, where: str, bit: int,
                                     build_store: Build) -> None:
    path, _, _ = build_store(300, 8)
    entry = sections(path)[fmt.Section[name.upper()]]
    at = {"first": entry.offset, "middle": entry.offset + entry.length // 2,
          "last": entry.end - 1}[where]
    flip(path, at, bit)
    report = embstore.verify(path)
    assert not report.ok and report.problems
    assert "DAMAGED" in str(report)
    if not (name == "word_offsets" and where in ("first", "last")):
        # (the first and last word offsets are checked at open time, see below)
        assert any("checksum mismatch in block 0" in p for p in report.problems), report.problems


def test_flipped_bit_in_padding(build_store: Build) -> None:
    path, _, _ = build_store(5, 2)
    entry = sections(path)[fmt.Section.VECTORS]
    flip(path, entry.end + 10)  # zero padding before the next page
    report = embstore.verify(path)
    assert not report.ok and "checksum mismatch" in report.problems[0]


def test_flipped_bit_in_the_header(build_store: Build) -> None:
    path, _, _ = build_store(5, 2)
    for offset in (0, 9, 30, 70, 200, 4000):
        fresh = path.read_bytes()
        flip(path, offset)
        report = embstore.verify(path)
        assert not report.ok and len(report.problems) == 1, offset
        path.write_bytes(fresh)
    assert embstore.verify(path).ok


def test_damaged_end_offsets_are_refused_at_open(build_store: Build) -> None:
    path, _, _ = build_store(30, 2)
    entry = sections(path)[fmt.Section.WORD_OFFSETS]
    rewrite(path, entry.end - 8, struct.pack("<Q", 1))
    with pytest.raises(embstore.FormatError, match="word offsets"):
        embstore.open(path)
    report = embstore.verify(path)
    assert not report.ok and "word offsets do not span" in report.problems[0]


def test_block_number_and_section_are_reported(build_store: Build) -> None:
    """A store larger than one checksum block: the problem names the right block."""
    path, _, _ = build_store(6000, 100)  # 2.4 MB of vectors: three blocks
    block = 1 << fmt.BLOCK_LOG2
    at = fmt.HEADER_LENGTH + block + 12345
    flip(path, at, 3)
    report = embstore.verify(path)
    assert report.blocks == 3
    assert len(report.problems) == 1
    assert report.problems[0] == (
        f"checksum mismatch in block 1 (bytes {fmt.HEADER_LENGTH + block}.."
        f"{fmt.HEADER_LENGTH + 2 * block - 1}, vectors section)")


# -- structural checks, with the checksums made to match ---------------------------------------


@pytest.fixture
def small(build_store: Build) -> tuple[Path, list[str], np.ndarray]:
    return build_store(50, 4, words=[f"word{i:02d}" for i in range(50)])


def test_checksums_recomputed_leave_a_clean_store_clean(small: Any) -> None:
    path, _, _ = small
    rewrite(path, 0, b"")
    assert embstore.verify(path).ok


def test_invalid_utf8_word(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.WORD_BYTES]
    rewrite(path, entry.offset + 6 * 7 + 1, b"\xff")  # inside word 7
    report = embstore.verify(path)
    assert "row 7: word is not valid UTF-8" in report.problems


def test_word_changed_under_the_index(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.WORD_BYTES]
    rewrite(path, entry.offset + 6 * 12 + 5, b"3")  # word12 -> word13: a duplicate
    report = embstore.verify(path)
    assert any(p.startswith("row 12: index does not lead back") for p in report.problems), (
        report.problems)


def test_offsets_out_of_order(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.WORD_OFFSETS]
    rewrite(path, entry.offset + 8 * 20, struct.pack("<Q", 6 * 30))
    report = embstore.verify(path)
    assert any("word offsets out of order or bounds at row" in p for p in report.problems)


def test_index_slot_cleared(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.INDEX]
    raw = path.read_bytes()[entry.offset:entry.end]
    table = np.frombuffer(raw, dtype="<u4").reshape(-1, 2)
    slot = int(np.flatnonzero(table[:, 1] == 1 + 33)[0])
    rewrite(path, entry.offset + 8 * slot, bytes(8))
    report = embstore.verify(path)
    assert "index holds 49 entries for 50 rows" in report.problems
    assert any(p.startswith("row 33: index does not lead back") for p in report.problems)


def test_index_points_past_the_last_row(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.INDEX]
    raw = path.read_bytes()[entry.offset:entry.end]
    table = np.frombuffer(raw, dtype="<u4").reshape(-1, 2)
    slot = int(np.flatnonzero(table[:, 1] == 1 + 5)[0])
    rewrite(path, entry.offset + 8 * slot + 4, struct.pack("<I", 999))
    report = embstore.verify(path)
    assert not report.ok
    with embstore.open(path) as store, pytest.raises(embstore.FormatError):
        store.get_index("word05")


def test_non_finite_vector(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.VECTORS]
    rewrite(path, entry.offset + 4 * (4 * 9 + 2), struct.pack("<f", float("nan")))
    report = embstore.verify(path)
    assert report.problems == ["row 9: vector has a NaN or infinity"]


def test_non_finite_statistics(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.STATS]
    rewrite(path, entry.offset + 8, struct.pack("<d", float("inf")))
    report = embstore.verify(path)
    assert report.problems == ["statistics section holds non-finite values"]


@pytest.mark.parametrize(("replacement", "message"), [
    (b"x", "metadata is not JSON"),
    (b"\xff", "metadata is not JSON"),
    (None, "metadata is not a JSON object"),
])
def test_damaged_metadata(replacement: bytes | None, message: str, small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.METADATA]
    data = b"[" + b" " * (entry.length - 2) + b"]" if replacement is None else replacement
    rewrite(path, entry.offset, data)
    report = embstore.verify(path)
    assert len(report.problems) == 1 and message in report.problems[0]


def test_metadata_is_plain_json(small: Any) -> None:
    path, _, _ = small
    entry = sections(path)[fmt.Section.METADATA]
    raw = path.read_bytes()[entry.offset:entry.end]
    assert isinstance(json.loads(raw.decode("utf-8")), dict)


def test_verify_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        embstore.verify(tmp_path / "missing.emb")
