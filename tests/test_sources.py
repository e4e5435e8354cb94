"""Input sources: compression chosen from magic bytes (never from the name), refusal of files
that are something else, and the sliding read window the parsers rely on."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import embstore
from embstore._convert.sources import Source, Stream

DATA = b"".join(b"word%d %d.5 -%d e\n" % (i, i, i) for i in range(5000))


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


COMPRESSORS: dict[str | None, Callable[[bytes], bytes]] = {
    None: lambda d: d,
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zip": lambda d: zipped({"inner.txt": d}),
}


def read_all(source: Source, chunk: int = 4096) -> bytes:
    out = bytearray()
    buf = bytearray(chunk)
    while True:
        n = source.readinto(memoryview(buf))
        if n == 0:
            return bytes(out)
        out += buf[:n]


@pytest.mark.parametrize("kind", list(COMPRESSORS), ids=str)
@pytest.mark.parametrize("name", ["vectors", "vectors.txt", "vectors.bin.gz", "vectors.zip"])
def test_compression_from_magic_bytes(kind: str | None, name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(COMPRESSORS[kind](DATA))
    source = Source(path)
    try:
        assert source.compression == kind
        assert read_all(source) == DATA
        assert source.consumed <= source.size
        if kind in (None, "gzip", "bz2", "xz"):
            assert source.consumed == path.stat().st_size == source.size
    finally:
        source.close()


def test_stored_zip_member(tmp_path: Path) -> None:
    path = tmp_path / "v.zip"
    path.write_bytes(zipped({"dir/v.txt": DATA}, zipfile.ZIP_STORED))
    source = Source(path)
    try:
        assert source.member == "dir/v.txt" and read_all(source, 999) == DATA
    finally:
        source.close()


def test_zip_directory_entries_are_not_members(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("folder/", b"")
        zf.writestr("folder/v.txt", b"the 1 2\n")
    path = tmp_path / "v.zip"
    path.write_bytes(buf.getvalue())
    store_path = tmp_path / "v.emb"
    report = embstore.convert(path, store_path, quiet=True)
    assert report.compression == "zip"
    with embstore.open(store_path) as store:
        assert list(store.words) == ["the"]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"\x28\xb5\x2f\xfd" + bytes(30), "zstd"),
    (b"\x93NUMPY\x01\x00" + bytes(30), "NumPy"),
    (b"\x80\x04\x95" + bytes(30), "pickle"),
    (b"\x89EMB\r\n\x1a\n" + bytes(30), "already an embstore store"),
    (zipped({"folder/": b""}), "zip archive holds no files"),
    (zipped({"a": b"1", "b": b"2"}), 'holds 2 files (a, b); choose one with member="a"'),
    (b"PK\x03\x04" + bytes(40), "damaged zip"),
])
def test_refused_sources(data: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    with pytest.raises(embstore.ConversionError) as info:
        Source(path)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz"])
def test_truncated_compressed_data(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "v"
    packed = COMPRESSORS[kind](DATA)
    path.write_bytes(packed[: len(packed) * 2 // 3])
    # Found when the first bytes are peeked (bz2 decompresses whole blocks) or while reading.
    with pytest.raises(embstore.ConversionError, match="damaged or truncated") as info:
        source = Source(path)
        try:
            read_all(source)
        finally:
            source.close()
    assert kind in str(info.value)


def test_corrupt_gzip_crc(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(DATA))
    packed[-6] ^= 0xFF  # the CRC-32 in the trailer
    path = tmp_path / "v.gz"
    path.write_bytes(bytes(packed))
    source = Source(path)
    try:
        with pytest.raises(embstore.ConversionError):
            read_all(source)
    finally:
        source.close()


@pytest.mark.parametrize("kind", list(COMPRESSORS), ids=str)
@pytest.mark.parametrize("block", [8, 64, 4096, 1 << 16])
def test_stream_window_reassembles_the_input(kind: str | None, block: int,
                                             tmp_path: Path) -> None:
    """Consume the window in irregular steps, always keeping an unconsumed tail: the bytes
    seen in order, and ``base`` as the offset of ``buf[start]``, must match the input."""
    path = tmp_path / "v"
    path.write_bytes(COMPRESSORS[kind](DATA))
    rng = np.random.default_rng(block)
    source = Source(path)
    stream = Stream(source, block, max_carry=256)
    seen = bytearray()
    try:
        while True:
            s, e = stream.start, stream.end
            window = stream.buf[s:e].tobytes()
            assert DATA[stream.base:stream.base + len(window)] == window
            assert stream.base == len(seen)
            # consume some, carry at most max_carry bytes into the next block
            keep = min(e - s, int(rng.integers(0, 200)))
            consumed = e - keep
            seen += stream.buf[s:consumed].tobytes()
            if not stream.advance(consumed):
                seen += stream.buf[stream.start:stream.end].tobytes()
                break
        assert bytes(seen) == DATA
        assert stream.eof and stream.bytes_read == len(DATA)
    finally:
        stream.close()
        source.close()


def test_stream_closes_mid_way(tmp_path: Path) -> None:
    """Closing after the first block stops the reader thread (no hang, no error)."""
    path = tmp_path / "v.gz"
    path.write_bytes(gzip.compress(DATA * 20))
    source = Source(path)
    stream = Stream(source, 4096, max_carry=64)
    assert stream.end - stream.start == 4096 and not stream.eof
    stream.close()
    source.close()
    assert not stream.reader._thread.is_alive()


def test_stream_carry_larger_than_head_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v"
    path.write_bytes(DATA)
    source = Source(path)
    stream = Stream(source, 1024, max_carry=16)
    try:
        with pytest.raises(ValueError, match="carry"):
            stream.advance(stream.start)
    finally:
        stream.close()
        source.close()


def test_source_sizes_for_progress(tmp_path: Path) -> None:
    path = tmp_path / "v.zip"
    path.write_bytes(zipped({"v.txt": DATA}))
    source = Source(path)
    try:
        # progress follows the compressed bytes of the member
        assert source.size == zipfile.ZipFile(path).infolist()[0].compress_size
        read_all(source)
        assert source.consumed == source.size
    finally:
        source.close()
