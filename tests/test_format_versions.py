"""The format's promise across versions, proved with real files.

* Stores written by the 1.0 writer (``tests/data/v1_0``, kept as fixtures) open and read
  exactly as they did.
* A store with nothing new in it is still a 1.0 file: the frozen 1.0 header rules
  (``format_v1_0.py``) accept it, and its sections are byte-identical to the 1.0 writer's.
* Extension sections: an optional one is skipped by readers that do not know it, a required
  one is refused with a message naming it and a newer embstore; forged tables are refused.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import format_v1_0
import numpy as np
import pytest

import embstore
from embstore import format as fmt
from embstore._build.builder import StoreBuilder

FIXTURES = Path(__file__).parent / "data" / "v1_0"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
REPO = Path(__file__).parent.parent
UNKNOWN_KIND = 0x7E00_0001  # no embstore version defines it


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_1_0_stores_open_and_read_as_before(name: str) -> None:
    want = EXPECTED[name]
    path = FIXTURES / f"{name}.emb"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == want["file_sha256"]
    with embstore.open(path) as store:
        assert store.version == (1, 0) and store.dtype == "float32"
        assert (len(store), store.dim) == (want["rows"], want["dim"])
        assert list(store) == want["words"] == list(store.words)
        got = hashlib.sha256(np.ascontiguousarray(store.vectors).tobytes()).hexdigest()
        assert got == want["vectors_sha256"]
        assert store.mean.tolist() == want["mean"] and store.std.tolist() == want["std"]
        assert store.metadata == want["metadata"]
        for word, row in want["lookup_sample"].items():
            assert store.get_index(word) == row
            assert store.lookup([word]).tolist() == [row]
        assert [e.kind for e in store.header.extensions] == []
    assert embstore.verify(path).ok


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_new_plain_stores_are_1_0_files(name: str, tmp_path: Path) -> None:
    """Re-converting the fixture's source gives a 1.0 file that the 1.0 rules accept, with
    every section but METADATA (which records the time) byte-identical to the fixture."""
    src = REPO / EXPECTED[name]["source"]
    dst = tmp_path / "new.emb"
    embstore.convert(src, dst, quiet=True)
    raw, old = dst.read_bytes(), (FIXTURES / f"{name}.emb").read_bytes()
    assert struct.unpack_from("<HH", raw, 8) == (1, 0)
    h10 = format_v1_0.parse_header(raw[:4096], len(raw), str(dst))
    old_h = format_v1_0.parse_header(old[:4096], len(old), "old")
    for kind in format_v1_0.SECTION_ORDER:
        if kind.name in ("METADATA", "CHECKSUMS"):
            continue
        a, b = h10.sections[kind], old_h.sections[kind]
        assert (a.offset, a.length) == (b.offset, b.length)
        assert raw[a.offset:a.end] == old[b.offset:b.end], kind.name
    assert raw[72:128] == bytes(56)  # 1.0's reserved header bytes stay zero
    for i in range(7):  # ... and so do the table's flags and element fields
        _, flags, _, _, elem, rest = struct.unpack_from("<IIQQII", raw, 128 + 32 * i)
        assert (flags, elem, rest) == (0, 0, 0)


def _build(path: Path, extras: list[tuple[int, np.ndarray, bool]] = (),  # type: ignore[assignment]
           n: int = 50, dim: int = 6) -> tuple[list[str], np.ndarray]:
    words = [f"w{i}" for i in range(n)]
    vecs = np.random.default_rng(1).standard_normal((n, dim)).astype(np.float32)
    with StoreBuilder(path, dim) as b:
        b.add(words, vecs)
        for kind, data, required in extras:
            b.add_section(kind, data, required=required,
                          elem=fmt.Elem.F64 if data.dtype == np.float64 else fmt.Elem.BYTES)
        b.finish({"note": "test"})
    return words, vecs


def test_an_unknown_optional_section_is_skipped(tmp_path: Path) -> None:
    plain, extra = tmp_path / "plain.emb", tmp_path / "extra.emb"
    words, vecs = _build(plain)
    payload = np.arange(1000, dtype=np.float64)
    _build(extra, [(UNKNOWN_KIND, payload, False)])
    raw = extra.read_bytes()
    assert struct.unpack_from("<HH", raw, 8) == (1, 1)
    with pytest.raises(format_v1_0.FormatError, match="8 sections"):
        format_v1_0.parse_header(raw[:4096], len(raw), "x")  # 1.0 readers refuse, never misread
    with embstore.open(extra) as store, embstore.open(plain) as ref:
        assert store.version == (1, 1)
        assert list(store) == words and np.array_equal(store.vectors, ref.vectors)
        assert store.lookup(["w7", "nope"]).tolist() == [7, -1]
        (entry,) = store.header.extensions
        assert (entry.kind, entry.required, entry.elem) == (UNKNOWN_KIND, False, fmt.Elem.F64)
        np.testing.assert_array_equal(store.section(UNKNOWN_KIND), payload)
        assert store.section(0x7E00_0002) is None
        m = store.build_matrix({"w3": 1, "zz": 2})
        np.testing.assert_array_equal(m.matrix[1], vecs[3])
    report = embstore.verify(extra)
    assert report.ok, report.problems
    sections = embstore.cli.info_dict(embstore.open(extra))["sections"]
    assert sections[f"kind {UNKNOWN_KIND}"]["required"] is False


def test_an_unknown_required_section_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "req.emb"
    _build(path, [(UNKNOWN_KIND, np.zeros(16, np.uint8), True)])
    with pytest.raises(embstore.FormatError) as info:
        embstore.open(path)
    text = str(info.value)
    assert f"required section kind {UNKNOWN_KIND}" in text and "newer embstore" in text
    assert text.startswith(f"{path}: ")
    report = embstore.verify(path)
    assert not report.ok and "newer embstore" in report.problems[0]


def test_future_minor_versions_with_extensions_open(tmp_path: Path) -> None:
    path = tmp_path / "x.emb"
    _build(path, [(UNKNOWN_KIND, np.ones(10, np.float64), False)])
    _patch(path, 10, "<H", 9)
    with embstore.open(path) as store:
        assert store.version == (1, 9) and store.get_index("w2") == 2


def _patch(path: Path, offset: int, code: str, value: int) -> None:
    raw = bytearray(path.read_bytes())
    struct.pack_into(code, raw, offset, value)
    struct.pack_into("<I", raw, 68, 0)
    struct.pack_into("<I", raw, 68, zlib.crc32(raw[:4096]))
    path.write_bytes(bytes(raw))


EXTRA_ENTRY = 128 + 32 * 6  # the extension's row in the section table (after METADATA)


@pytest.mark.parametrize(("offset", "code", "value", "message"), [
    (EXTRA_ENTRY + 4, "<I", 0x4, "flags 0x4 not known"),  # an unknown section flag
    (EXTRA_ENTRY + 24, "<I", 99, "element dtype 99"),
    (EXTRA_ENTRY, "<I", int(fmt.Section.STATS), "repeats kind"),
    (EXTRA_ENTRY + 16, "<Q", 7, "not a whole number"),  # 7 bytes of float64
    (EXTRA_ENTRY + 8, "<Q", 4096, "expected"),  # not where the layout puts it
    (128 + 4, "<I", 0x3, "flags 0x3"),  # a core section with a flag it cannot have
    (128 + 24, "<I", int(fmt.Elem.F64), "element dtype"),  # vectors said to be float64
    (40, "<I", 7, "unsupported vector dtype 7; the file was written by a newer embstore"),
    (44, "<I", 3, "unsupported hash function 3; the file was written by a newer"),
    (64, "<I", 1, "header flags 0x1"),
    (60, "<I", 200, "sections, expected 7 to 124"),
])
def test_forged_section_tables_are_refused(tmp_path: Path, offset: int, code: str, value: int,
                                           message: str) -> None:
    path = tmp_path / "x.emb"
    _build(path, [(UNKNOWN_KIND, np.ones(10, np.float64), False)])
    with embstore.open(path):
        pass
    _patch(path, offset, code, value)
    with pytest.raises(embstore.FormatError, match=message):
        embstore.open(path)


def test_the_builder_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with StoreBuilder(tmp_path / "x.emb", 2) as b:
        with pytest.raises(ValueError, match="already in the store"):
            b.add_section(int(fmt.Section.VECTORS), np.zeros(4, np.uint8), required=True)
        b.add_section(UNKNOWN_KIND, np.zeros(4, np.uint8), required=False)
        with pytest.raises(ValueError, match="already in the store"):
            b.add_section(UNKNOWN_KIND, np.zeros(4, np.uint8), required=False)
        with pytest.raises(ValueError, match="F64 elements"):
            b.add_section(UNKNOWN_KIND + 1, np.zeros(7, np.uint8), required=False,
                          elem=fmt.Elem.F64)
        with pytest.raises(ValueError, match="at least one row"):
            b.finish({})
    assert list(tmp_path.iterdir()) == []
