"""The compiled kernels against plain-Python references: number parsing against ``float``,
UTF-8 validation against Python's strict decoder, XXH64 against the xxhash package, lookup
and gather against dictionaries and fancy indexing -- and every parallel kernel against its
serial twin."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

import embstore
from embstore import format as fmt
from embstore._kernels import _core as kcore
from embstore._kernels import binary as kbinary
from embstore._kernels import checksum as kchecksum
from embstore._kernels import gather as kgather
from embstore._kernels import index as kindex
from embstore._kernels import number as knumber
from embstore._kernels import stats as kstats
from embstore._kernels import strings as kstrings
from embstore._kernels import text as ktext
from embstore._kernels import verify as kverify

# -- parse_number ------------------------------------------------------------------------------


def parse(token: bytes, slack: bytes = b"") -> tuple[int, float]:
    """parse_number on ``token`` followed by ``slack`` bytes that are not part of it (the
    SWAR digit loads read 8 bytes at a time, past the token's end)."""
    buf = np.frombuffer(token + slack, dtype=np.uint8)
    code, value = knumber.parse_number(buf, 0, len(token))
    return int(code), float(value)


def check_token(token: str) -> None:
    want = float(token)
    for slack in (b"", b"0123456789", b" 1.5\n", b"e5"):
        code, value = parse(token.encode(), slack)
        assert code in (knumber.NUM_OK, knumber.NUM_FALLBACK), (token, slack, code)
        if code == knumber.NUM_OK:
            # the fast path is exact in float64, so exact in float32 after the cast
            assert value == want or (value == 0 and want == 0), (token, value, want)
            assert np.signbit(value) == np.signbit(want), token
    # embedded in the middle of a buffer as well
    buf = np.frombuffer(b"xx " + token.encode() + b" 99999999", dtype=np.uint8)
    code, value = knumber.parse_number(buf, 3, 3 + len(token))
    assert code in (knumber.NUM_OK, knumber.NUM_FALLBACK)
    if code == knumber.NUM_OK:
        assert value == want


FIXED = ["0", "-0", "+0", "1", "-1", "+7", "1.", ".5", "-.5", "+.5", "0.1", "3.14159",
         "1e5", "1E5", "1e+5", "1e-5", "-2.5E-3", "12345678", "123456789", "1234567890123456",
         "9007199254740991", "9007199254740993", "1234567890123456789",
         "12345678901234567890", "0.000000000000000000001", "1e22", "1e23", "1e-22", "1e-23",
         "5e-324", "1e-400", "1e308", "1.7976931348623157e308", "00000001", "0.00000000",
         "1.000000000000000000e+00", "99999999", "100000000", "4.5", "0e0", "0e-999999999",
         "3.4028234663852886e+38", "1.401298464324817e-45", "123.456e-7", "8" * 40]


@pytest.mark.parametrize("token", FIXED)
def test_parse_number_fixed(token: str) -> None:
    check_token(token)


ASCII_DECIMAL = st.from_regex(
    r"\A[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,3})?\Z",
    fullmatch=True)


@settings(max_examples=500, deadline=None)
@given(ASCII_DECIMAL)
def test_parse_number_generated_decimals(token: str) -> None:
    check_token(token)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False),
       st.sampled_from(["{!r}", "{:.18e}", "{:.9g}", "{:.17g}", "{:f}", "{:.3e}", "{:g}"]))
def test_parse_number_formatted_floats(x: float, spec: str) -> None:
    check_token(spec.format(x))


def test_parse_number_mostly_takes_the_fast_path() -> None:
    """Ordinary vector values (up to 9 significant digits) never need the slow path."""
    rng = np.random.default_rng(0)
    for x in rng.standard_normal(2000).astype(np.float32):
        code, value = parse(f"{x:.6f}".encode(), b" ")
        assert code == knumber.NUM_OK and value == float(f"{x:.6f}")
        code, _ = parse(repr(float(x)).encode(), b" ")
        assert code in (knumber.NUM_OK, knumber.NUM_FALLBACK)


@pytest.mark.parametrize("token", ["nan", "NaN", "-nan", "+NAN", "inf", "-inf", "+Inf",
                                   "infinity", "-Infinity", "INFINITY"])
def test_parse_number_non_finite_spellings(token: str) -> None:
    assert parse(token.encode())[0] == knumber.NUM_NONFINITE


@pytest.mark.parametrize("token", ["", "+", "-", ".", "e5", "1e", "1e+", "1.2.3", "--1", "+-1",
                                   "1,5", "0x10", "1_0", "abc", "1 2", "1\t", " 1", "na", "infin",
                                   "nan1", "1e5.5", "١", "1f", "\x00", "1e-"])
def test_parse_number_invalid(token: str) -> None:
    assert parse(token.encode("utf-8"), b"7")[0] == knumber.NUM_INVALID
    assert parse(token.encode("utf-8"))[0] == knumber.NUM_INVALID


# -- utf8_valid ------------------------------------------------------------------------------


def strict_ok(data: bytes) -> bool:
    try:
        data.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return False
    return True


def check_utf8(data: bytes) -> None:
    buf = np.frombuffer(data + b"\x80\x80\x80", dtype=np.uint8)  # junk after the end
    assert bool(kstrings.utf8_valid(buf, 0, len(data))) == strict_ok(data), data


EDGE_UTF8 = [
    b"", b"a", b"\x7f", b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xdf\xbf",
    b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xed\xa0\x80",
    b"\xed\xbf\xbf", b"\xee\x80\x80", b"\xef\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
    b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80", b"\xff", b"\xfe", b"\xc2", b"\xe3\x81", b"\xf0\x9f\x98",
    b"a\xc2", b"\xe3\x81\x82\xe3", "日本語😀".encode(), b"\xef\xbb\xbf", b"\xc2\x41",
    b"\xe3\x41\x82", b"\xf0\x9f\x41\x80",
]


@pytest.mark.parametrize("data", EDGE_UTF8)
def test_utf8_valid_edges(data: bytes) -> None:
    check_utf8(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_utf8_valid_random_bytes(data: bytes) -> None:
    check_utf8(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.integers(0, 80), st.integers(0, 255))
def test_utf8_valid_mutated_text(text: str, at: int, byte: int) -> None:
    """Valid text with one byte changed: mostly near-valid sequences."""
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    check_utf8(bytes(raw))
    if raw:
        raw[at % len(raw)] = byte
        check_utf8(bytes(raw))


def test_utf8_valid_respects_the_range() -> None:
    buf = np.frombuffer(b"\xff ok \xff", dtype=np.uint8)
    assert kstrings.utf8_valid(buf, 1, 5)
    assert not kstrings.utf8_valid(buf, 0, 5)
    assert not kstrings.utf8_valid(buf, 1, 6)


# -- xxh64 -----------------------------------------------------------------------------------

SIZES = [*range(0, 70), 95, 96, 97, 127, 128, 129, 1023, 1024, 1025, 4096, 65535, 100_003]


def test_xxh64_against_xxhash() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 200_000, dtype=np.uint8)
    words = data[: data.size - data.size % 8].view(np.uint64)
    for size in SIZES:
        for start in (0, 8, 64, 4096 + 8):
            end = start + size
            got = int(kchecksum.xxh64(data, words, start, end))
            assert got == xxhash.xxh64_intdigest(data[start:end].tobytes()), (start, size)


@pytest.mark.parametrize("block", [1 << 20, 4096, 1000, 64, 8])
@pytest.mark.parametrize("size", [0, 1, 7, 4095, 4096, 4097, (1 << 20) + 13, 3 << 20])
def test_xxh64_blocks_against_xxhash(block: int, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    n = -(-size // block)
    want = [xxhash.xxh64_intdigest(data[i * block:(i + 1) * block].tobytes()) for i in range(n)]
    for kernel in (kchecksum.xxh64_blocks.parallel, kchecksum.xxh64_blocks.serial):
        out = np.zeros(n, dtype=np.uint64)
        kernel(data, block, out)
        assert out.tolist() == want


def test_xxh64_blocks_on_a_read_only_map(build_store: Callable[..., Any]) -> None:
    """The checksums stored by the writer are XXH64 of the mapped body, as the spec says."""
    path, _, _ = build_store(3000, 100)
    raw = path.read_bytes()
    with embstore.open(path) as store:
        checks = store.header.sections[fmt.Section.CHECKSUMS]
        body = store.raw(4096, checks.offset - 4096)
        assert not body.flags.writeable
        n = checks.length // 8
        assert n == 2  # the body is a little over 1 MiB
        out = np.empty(n, dtype=np.uint64)
        kchecksum.xxh64_blocks(body, 1 << 20, out)
    stored = np.frombuffer(raw, dtype="<u8", count=n, offset=checks.offset)
    want = [xxhash.xxh64_intdigest(raw[4096 + (i << 20):min(checks.offset, 4096 + ((i + 1) << 20))])
            for i in range(n)]
    assert out.tolist() == stored.tolist() == want


# -- lookup_words and gather_into ------------------------------------------------------------


def encode(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    raw = [w.encode("utf-8", "surrogatepass") for w in words]
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in raw])
    return np.frombuffer(b"".join(raw), dtype=np.uint8), offsets


@pytest.fixture
def mapped(build_store: Callable[..., Any]) -> Any:
    path, words, vecs = build_store(5000, 6, seed=3)
    store = embstore.open(path)
    yield store, words, vecs
    store.close()


def queries(words: list[str], rng: np.random.Generator) -> list[str]:
    picked = [words[int(i)] for i in rng.integers(0, len(words), 3000)]
    missing = ["", "zzzzzzzzzz", words[0] + "x", words[1][:-1] + "\u00a0", "\ud800", "東京の"]
    q = picked + missing + picked[:50]
    rng.shuffle(q)  # type: ignore[arg-type]
    return q


def test_lookup_words_against_a_dict(mapped: Any) -> None:
    store, words, _ = mapped
    index = {w: i for i, w in enumerate(words)}
    q = queries(words, np.random.default_rng(0))
    want = [index.get(w, -1) for w in q]
    qbuf, qoff = encode(q)
    assert not store.vocab_arrays.index.flags.writeable and not store.vocab_arrays.data.flags.writeable
    tables = {
        "mapped": (store.vocab_arrays.index, store.vocab_arrays.offsets, store.vocab_arrays.data),
        "copies": (np.array(store.vocab_arrays.index), np.array(store.vocab_arrays.offsets), np.array(store.vocab_arrays.data)),
    }
    for arrays in tables.values():
        for kernel in (kindex.lookup_words.parallel, kindex.lookup_words.serial):
            out = np.full(len(q), -7, dtype=np.int64)
            corrupt = kernel(qbuf, qoff, *arrays, len(store), out)
            assert corrupt == 0
            assert out.tolist() == want


def test_lookup_words_bounds_checks_a_corrupt_index(mapped: Any) -> None:
    store, words, _ = mapped
    table = np.array(store.vocab_arrays.index)
    row = store.get_index(words[10])
    slot = int(np.flatnonzero(table[:, 1] == row + 1)[0])
    table[slot, 1] = len(store) + 100  # points past the last row
    qbuf, qoff = encode([words[10], words[11]])
    out = np.empty(2, dtype=np.int64)
    corrupt = kindex.lookup_words(qbuf, qoff, table, store.vocab_arrays.offsets, store.vocab_arrays.data, len(store),
                                   out)
    assert corrupt == 1 and out[0] == -1 and out[1] == 11


def test_lookup_words_stops_on_a_full_table(mapped: Any) -> None:
    """A damaged table without empty slots must not loop forever."""
    store, words, _ = mapped
    table = np.array(store.vocab_arrays.index)
    table[:, 1] = np.where(table[:, 1] == 0, 1, table[:, 1])
    table[:, 0] = np.where(table[:, 0] == 0, 1, table[:, 0])
    qbuf, qoff = encode(["definitely-absent", words[5]])
    out = np.empty(2, dtype=np.int64)
    kindex.lookup_words(qbuf, qoff, table, store.vocab_arrays.offsets, store.vocab_arrays.data, len(store), out)
    assert out[0] == -1 and out[1] == 5


def test_gather_into_against_fancy_indexing(mapped: Any) -> None:
    store, _, vecs = mapped
    rng = np.random.default_rng(2)
    rows = rng.integers(0, len(store), 4000).astype(np.int64)
    dest = rng.permutation(6000)[:4000].astype(np.int64)
    want = np.zeros((6000, store.dim), dtype=np.float32)
    want[dest] = vecs[rows]
    for source in (store.vectors, np.array(store.vectors)):
        for kernel in (kgather.gather_into.parallel, kgather.gather_into.serial):
            out = np.zeros((6000, store.dim), dtype=np.float32)
            kernel(source, rows, dest, out)
            assert np.array_equal(out.view(np.uint32), want.view(np.uint32))


def _mapping_rss_kb(address: int) -> int:
    """Resident kB of the mapping of this process that contains ``address``."""
    inside = False
    with open("/proc/self/smaps", encoding="ascii") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "Rss:":
                return int(line.split()[1])
    raise AssertionError("address not mapped")


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED") or not os.path.exists("/proc/self/smaps"),
                    reason="needs madvise and /proc/self/smaps (Linux)")
def test_gather_release_copies_rows_and_drops_their_pages(tmp_path: Path) -> None:
    """Window by window, the rows are copied exactly and the windows' pages leave this
    process's resident set (the file mapping is read-only, so nothing is lost)."""
    dim, n = 300, 40_000  # 48 MB of rows
    data = np.random.default_rng(5).standard_normal((n, dim)).astype(np.float32)
    path = tmp_path / "rows.f32"
    data.tofile(path)
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    vectors = np.frombuffer(mm, dtype=np.float32).reshape(n, dim)
    rng = np.random.default_rng(6)
    rows = np.sort(rng.choice(n, 12_000, replace=False)).astype(np.int64)
    dest = rng.permutation(12_000).astype(np.int64)
    window = 1 << 20  # bytes; vectors[0] is page-aligned (the file is mapped from offset 0)
    edges = np.arange(0, n * dim * 4 + window, window, dtype=np.int64)
    edges[-1] = n * dim * 4
    bounds = np.searchsorted(rows, -(-edges // (dim * 4))).astype(np.int64)
    for kernel in (kgather.gather_release.parallel, kgather.gather_release.serial):
        assert np.array_equal(vectors[::300].sum(axis=1), data[::300].sum(axis=1))  # fault in
        before = _mapping_rss_kb(vectors.ctypes.data)
        out = np.zeros((12_000, dim), dtype=np.float32)
        kernel(vectors, rows, dest, out, bounds, edges, mmap.PAGESIZE, mmap.MADV_DONTNEED)
        want = np.zeros_like(out)
        want[dest] = data[rows]
        assert np.array_equal(out.view(np.uint32), want.view(np.uint32))
        after = _mapping_rss_kb(vectors.ctypes.data)
        # The windows tile the whole file: nothing of it stays mapped.
        assert after <= 64 < before, (before, after)
    del vectors
    mm.close()


# -- serial twins ----------------------------------------------------------------------------


def both(kernel: Any, make_args: Callable[[], tuple[Any, ...]]) -> tuple[Any, Any, Any, Any]:
    """Run the parallel and the serial build on fresh copies of the same arguments."""
    pa = make_args()
    pr = kernel.parallel(*pa)
    sa = make_args()
    sr = kernel.serial(*sa)
    return pa, pr, sa, sr


def assert_same(pa: tuple[Any, ...], pr: Any, sa: tuple[Any, ...], sr: Any) -> None:
    assert (pr is None and sr is None) or np.array_equal(np.asarray(pr), np.asarray(sr))
    for a, b in zip(pa, sa, strict=True):
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


TEXT = (b"the 0.1 0.2 0.3\n  spaced  1 2 3  \nbad 1 x 3\n\nshort 1\nlong 1 2 3 4\n"
        b"nan 1 nan 2\n\xff\xfe 1 2 3\nfine 1e-3 +5 -0\r\nbig 1.000000000000000000e+00 2 3\n")


def test_scan_parts_twins_and_reference() -> None:
    data = TEXT * 50
    pad = (-len(data)) % 8
    buf = np.frombuffer(data + bytes(pad), dtype=np.uint8)
    words = buf.view(np.uint64)
    part = 37
    nparts = -(-len(data) // part)

    def args() -> tuple[Any, ...]:
        return (buf, words, 0, len(data), part, np.zeros(nparts, np.int64),
                np.zeros(nparts, np.int64))

    pa, pr, sa, sr = both(ktext.scan_parts, args)
    assert_same(pa, pr, sa, sr)
    counts, ends = pa[5], pa[6]
    for c in range(nparts):
        chunk = data[c * part:(c + 1) * part]
        assert counts[c] == chunk.count(b"\n")
        assert ends[c] == (c * part + chunk.rindex(b"\n") + 1 if b"\n" in chunk else 0)


def test_parse_text_parts_twins() -> None:
    data = TEXT * 20
    buf = np.frombuffer(data + bytes(16), dtype=np.uint8)
    nl = [i + 1 for i, b in enumerate(data) if b == 10]
    starts = [0, *nl[:-1]]
    # three parts of whole lines
    cut = [0, len(nl) // 3, 2 * len(nl) // 3, len(nl)]
    lo = np.array([starts[cut[i]] for i in range(3)], dtype=np.int64)
    hi = np.array([nl[cut[i + 1] - 1] for i in range(3)], dtype=np.int64)
    first_row = np.array(cut[:3], dtype=np.int64)

    def args() -> tuple[Any, ...]:
        return (buf, lo, hi, first_row, 3, np.zeros((len(nl), 3), np.float32),
                np.zeros((len(nl), ktext.META_COLS), np.int64))

    pa, pr, sa, sr = both(ktext.parse_text_parts, args)
    assert_same(pa, pr, sa, sr)
    status = pa[6][:10, ktext.M_STATUS].tolist()
    assert status == [ktext.LINE_OK, ktext.LINE_OK, ktext.LINE_NOT_NUMBER,
                      ktext.LINE_BLANK, ktext.LINE_TOO_FEW, ktext.LINE_TOO_MANY,
                      ktext.LINE_NONFINITE, ktext.LINE_OK, ktext.LINE_OK, ktext.LINE_OK]
    assert pa[6][7, ktext.M_BADUTF8] == 1
    assert pa[6][9, ktext.M_FALLBACK] == 1  # the 19-digit token
    assert pa[5][0].tolist() == [np.float32(0.1), np.float32(0.2), np.float32(0.3)]


def test_copy_binary_vectors_twins() -> None:
    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((300, 5)).astype("<f4")
    vecs[17, 3] = np.nan
    vecs[200, 0] = -np.inf
    rec = b"".join(b"w%d " % i + v.tobytes() for i, v in enumerate(vecs))
    buf = np.frombuffer(rec, dtype=np.uint8)
    vst = []
    pos = 0
    for _ in range(300):
        pos = rec.index(b" ", pos) + 1
        vst.append(pos)
        pos += 20
    vst_a = np.array(vst, dtype=np.int64)

    def args() -> tuple[Any, ...]:
        return buf, vst_a, 300, np.zeros((300, 5), np.float32), np.zeros(300, np.uint8)

    pa, pr, sa, sr = both(kbinary.copy_binary_vectors, args)
    assert_same(pa, pr, sa, sr)
    assert np.array_equal(pa[3].view(np.uint32), vecs.view(np.uint32))
    assert np.flatnonzero(pa[4]).tolist() == [17, 200]


def test_gather_rows_block_moments_and_checks_twins(mapped: Any) -> None:
    store, _, vecs = mapped
    rng = np.random.default_rng(6)
    rows = np.sort(rng.choice(len(store), 1000, replace=False)).astype(np.int64)
    pa, pr, sa, sr = both(kgather.gather_rows,
                          lambda: (vecs, rows, np.zeros((1000, store.dim), np.float32)))
    assert_same(pa, pr, sa, sr)
    assert np.array_equal(pa[2], vecs[rows])

    x = np.asarray(store.vectors)
    shift = x[0].astype(np.float64)
    nb = -(-len(store) // 256)
    pa, pr, sa, sr = both(kstats.block_moments,
                          lambda: (x, len(store), 256, shift, np.zeros((nb, store.dim)),
                                   np.zeros((nb, store.dim))))
    assert_same(pa, pr, sa, sr)
    d = x.astype(np.float64) - shift
    np.testing.assert_allclose(pa[4].sum(axis=0), d.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pa[5].sum(axis=0), (d * d).sum(axis=0), rtol=1e-12)

    pa, pr, sa, sr = both(kverify.check_rows,
                          lambda: (store.vocab_arrays.offsets, store.vocab_arrays.data, store.vocab_arrays.index, len(store),
                                   np.full(len(store), 9, np.uint8)))
    assert_same(pa, pr, sa, sr)
    assert not pa[4].any()
    assert kverify.count_occupied.parallel(store.vocab_arrays.index) == len(store)
    assert kverify.count_occupied.serial(store.vocab_arrays.index) == len(store)

    bad = np.array(vecs)
    bad[[3, 4000], [1, 5]] = [np.nan, np.inf]
    pa, pr, sa, sr = both(kverify.nonfinite_rows, lambda: (bad, np.zeros(len(bad), np.uint8)))
    assert_same(pa, pr, sa, sr)
    assert np.flatnonzero(pa[1]).tolist() == [3, 4000]


def test_serial_only_mode_gives_the_same_store(tmp_path: Path, gensim_data: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """After fork() in an OpenMP process only serial twins run; the result is identical."""
    src = gensim_data / "lee_fasttext.vec"
    embstore.convert(src, tmp_path / "parallel.emb", quiet=True)
    monkeypatch.setattr(kcore._LaunchState, "serial_only", True)
    embstore.convert(src, tmp_path / "serial.emb", quiet=True)
    a = embstore.open(tmp_path / "parallel.emb")
    b = embstore.open(tmp_path / "serial.emb")
    for attr in ("vectors", "mean", "std"):
        assert np.array_equal(getattr(a, attr), getattr(b, attr)), attr
    for attr in ("offsets", "data", "index"):
        assert np.array_equal(getattr(a.vocab_arrays, attr), getattr(b.vocab_arrays, attr)), attr
    assert embstore.verify(tmp_path / "serial.emb").ok
