"""Hostile stores and vocabularies cost bounded work.

* The keyed index hash (SipHash-1-3) against published vectors and CPython's own SipHash.
* A forged index with no empty slot: every lookup stops after ``MAX_PROBES`` slots with a
  FormatError, in the pure-Python path and the kernels alike; verify reports the run.
* verify reports non-zero padding and reserved header bytes.
"""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import embstore
from embstore import format as fmt

SIP_KEY = (int.from_bytes(bytes(range(8)), "little"), int.from_bytes(bytes(range(8, 16)), "little"))
# SipHash-2-4 test vectors of the reference implementation (key 00..0f, message 00..n-1)
SIP24 = {0: "310e0edd47db6f72", 1: "fd67dc93c539f874", 7: "37d1018bf50002ab",
         8: "6224939a79f5f593", 15: "e545be4961ca29a1", 16: "db9bc2577fcc2a3f"}


@pytest.mark.parametrize("n", sorted(SIP24))
def test_siphash_reference_vectors(n: int) -> None:
    want = int.from_bytes(bytes.fromhex(SIP24[n]), "little")
    assert fmt.siphash(*SIP_KEY, bytes(range(n)), 2, 4) == want


def test_siphash13_equals_cpythons_hash() -> None:
    """CPython hashes bytes with SipHash-1-3; with PYTHONHASHSEED=0 its key is zero."""
    samples = [b"a", b"hello world", bytes(range(40)), "naïve 日本".encode()]
    code = "import sys; print([hash(b) for b in eval(sys.stdin.read())])"
    run = subprocess.run([sys.executable, "-c", code], input=repr(samples), text=True,
                         capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
                         check=True)
    got = eval(run.stdout)
    for data, h in zip(samples, got, strict=True):
        mine = ctypes.c_int64(fmt.siphash(0, 0, data)).value
        assert h == (mine if mine != -1 else -2)


def _full_index_store(tmp_path: Path) -> Path:
    """A valid store whose index is then forged to have no empty slot (CRC and checksums
    fixed, so only the index rule catches it)."""
    words = [f"w{i}" for i in range(3000)]
    path = tmp_path / "s.emb"
    embstore.write(path, words, np.ones((3000, 4)))
    raw = bytearray(path.read_bytes())
    with embstore.open(path) as s:
        entry = s.header.sections[fmt.Section.INDEX]
    table = np.frombuffer(raw, dtype="<u4", count=entry.length // 4, offset=entry.offset)
    table = table.reshape(-1, 2).copy()
    empty = table[:, 1] == 0
    table[empty, 0] = 1  # fingerprints that match nothing
    table[empty, 1] = 1  # every empty slot now points at row 0
    raw[entry.offset:entry.end] = table.tobytes()
    _fix_checksums(raw)
    path.write_bytes(bytes(raw))
    return path


def _fix_checksums(raw: bytearray) -> None:
    import xxhash

    struct.pack_into("<I", raw, 68, 0)
    struct.pack_into("<I", raw, 68, zlib.crc32(raw[:4096]))
    h = fmt.parse_header(bytes(raw[:4096]), len(raw), "x")
    checks = h.sections[fmt.Section.CHECKSUMS]
    body = raw[4096:checks.offset]
    for i in range(checks.length // 8):
        digest = xxhash.xxh64(bytes(body[i << 20:(i + 1) << 20])).intdigest()
        struct.pack_into("<Q", raw, checks.offset + 8 * i, digest)
    struct.pack_into("<I", raw, 68, 0)
    struct.pack_into("<I", raw, 68, zlib.crc32(raw[:4096]))


def test_a_full_index_costs_bounded_work(tmp_path: Path) -> None:
    path = _full_index_store(tmp_path)
    with embstore.open(path) as s:  # open stays cheap: nothing proportional to the index
        assert s.header.n_slots == 8192 > fmt.MAX_PROBES
        t0 = time.perf_counter()
        with pytest.raises(embstore.FormatError, match="more than 1024"):
            "absent" in s  # noqa: B015
        with pytest.raises(embstore.FormatError, match="run `embstore verify`"):
            s.lookup(["absent"] * 1000)
        assert time.perf_counter() - t0 < 30  # 8192-slot scans would be 1,000x more work
    report = embstore.verify(path)
    assert not report.ok
    assert any("run of 8192 occupied slots" in p for p in report.problems), report.problems


def test_verify_reports_nonzero_padding_and_header_bytes(tmp_path: Path) -> None:
    path = tmp_path / "s.emb"
    embstore.write(path, ["a", "b"], np.ones((2, 3)))
    raw = bytearray(path.read_bytes())
    h = fmt.parse_header(bytes(raw[:4096]), len(raw), "x")
    stats = h.sections[fmt.Section.STATS]
    raw[stats.end + 5] = 7  # padding after STATS
    raw[100] = 1  # reserved header byte
    _fix_checksums(raw)
    path.write_bytes(bytes(raw))
    report = embstore.verify(path)
    assert not report.ok
    assert "padding after the stats section is not zero" in report.problems
    assert "header bytes 72..127 are not zero" in report.problems
