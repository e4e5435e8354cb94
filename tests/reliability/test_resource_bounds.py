"""Absurd sizes and pathological inputs do not turn into large allocations or hangs.

Peak memory is each child process's own ``ru_maxrss`` (see ``relutil.run_child``), compared
with a baseline child doing the same kind of work on a tiny input, so the bounds hold on
any machine.

* A store header claiming huge sizes (CRC recomputed) is refused at open with no
  allocation; a *consistent* 8 GiB sparse store opens and answers reads in O(1) memory.
* Inputs declaring absurd row counts and dimensions fail with a ConversionError (or convert
  what is there) within bounded memory.
* A 1 GiB single line (``EMBSTORE_LONG_LINE_MB`` sizes it) is refused at the 64 MiB line
  limit without reading the rest; millions of duplicate words convert in bounded memory.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import relutil

CONVERT = """
import sys, embstore
try:
    r = embstore.convert(sys.argv[1], sys.argv[2], force=True, quiet=True)
    print("converted", r.rows, r.duplicates)
except embstore.ConversionError as e:
    print("ConversionError", e.line, e.offset, str(e)[:200])
"""

OPEN = """
import sys, embstore
try:
    print("opened", len(embstore.open(sys.argv[1])))
except embstore.FormatError as e:
    print("refused", str(e)[:200])
"""

READ = """
import sys, json, embstore
try:
    s = embstore.open(sys.argv[1])
except embstore.FormatError as e:
    print(json.dumps({"refused": str(e)[:200]})); sys.exit()
out = {"rows": len(s), "dim": s.dim, "in": "a" in s, "lookup": s.lookup(["a", "b"]).tolist(),
       "word0": s.words[0], "wordlast": s.words[-1], "first": s.words[:3],
       "metadata": s.metadata, "mean": float(s.mean[:8].sum()),
       "matrix": s.build_matrix({"a": 1, "b": 2}).matrix.shape}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    d = tmp_path_factory.mktemp("baseline")
    src = d / "tiny.txt"
    src.write_text("2 3\na 1 2 3\nb 4 5 6\n")
    conv = relutil.run_python(CONVERT, str(src), str(d / "tiny.emb"), measure_rss=True)
    assert "converted" in conv.stdout, conv.describe()
    read = relutil.run_python(READ, str(d / "tiny.emb"), measure_rss=True)
    assert '"rows": 2' in read.stdout, read.describe()
    opened = relutil.run_python(OPEN, str(d / "tiny.emb"), measure_rss=True)
    assert "opened 2" in opened.stdout, opened.describe()
    print(f"baseline peak RSS: convert {conv.maxrss_mb:.0f} MB, open {opened.maxrss_mb:.0f} MB, "
          f"open+batch reads {read.maxrss_mb:.0f} MB")
    return {"convert": conv.maxrss_mb, "read": read.maxrss_mb, "open": opened.maxrss_mb}


def _report(what: str, res: relutil.ChildResult) -> None:
    print(f"{what}: peak RSS {res.maxrss_mb:.0f} MB in {res.seconds:.1f} s")


def _forge(path: Path, **fields: int) -> None:
    buf = bytearray(path.read_bytes())
    for name, value in fields.items():
        off, fmt = relutil.HEADER_FIELDS[name]
        struct.pack_into(fmt, buf, off, value)
    relutil.fix_header_crc(buf)
    path.write_bytes(bytes(buf))


@pytest.mark.parametrize("fields", [
    {"n_rows": 0xFFFFFFFE, "dim": 1 << 20},
    {"n_rows": 0xFFFFFFFE, "n_slots": 1 << 33, "vectors.length": (0xFFFFFFFE * 4) << 20},
    {"file_length": 1 << 62},
    {"vectors.offset": (1 << 64) - 4096, "vectors.length": 1 << 60},
    {"metadata.length": 1 << 40},
    {"n_slots": 1 << 62, "index.length": 1 << 65 >> 2},
], ids=["rows-dim", "rows-slots-vectors", "file-length", "vectors-offset", "metadata", "slots"])
def test_store_claiming_huge_sizes_is_refused_without_allocating(
        tmp_path: Path, baselines: dict[str, float], fields: dict[str, int]) -> None:
    import embstore

    src = tmp_path / "s.txt"
    relutil.write_text(src, ["a", "b", "c"], relutil.make_vectors(3, 4))
    path = tmp_path / "s.emb"
    embstore.convert(src, path, quiet=True)
    _forge(path, **{k: v % (1 << 64) for k, v in fields.items()})
    res = relutil.run_python(OPEN, str(path), measure_rss=True)
    assert res.returncode == 0, res.describe()
    assert res.stdout.startswith("refused"), res.stdout
    _report(f"forged header {sorted(fields)}", res)
    assert res.maxrss_mb < baselines["open"] + 8, (res.maxrss_mb, baselines)


def test_consistent_sparse_8gib_store_opens_in_constant_memory(
        tmp_path: Path, baselines: dict[str, float]) -> None:
    """A header describing 2**20 rows x 2048 dims (8 GiB of vectors) over a sparse file of
    zeros: opening and reading a few words costs no memory proportional to the store."""
    from embstore import format as fmt

    n, dim = 1 << 20, 2048
    slots = fmt.slot_count(n)
    lengths = fmt.section_lengths(n, dim, 0, slots, 0)
    sections = fmt.layout(lengths)
    size = sections[fmt.Section.CHECKSUMS].end
    header = fmt.Header(1, 0, size, n, dim, slots, fmt.BLOCK_LOG2, sections)
    path = tmp_path / "sparse.emb"
    with open(path, "wb") as f:
        f.truncate(size)
        f.write(header.pack())
    if os.stat(path).st_blocks * 512 > 64 << 20:
        pytest.skip("this filesystem does not keep the file sparse")
    res = relutil.run_python(READ, str(path), timeout=300, measure_rss=True)
    assert res.returncode == 0, res.describe()
    out = relutil.last_json(res.stdout)
    assert out["rows"] == n and out["lookup"] == [-1, -1] and out["word0"] == ""
    _report("sparse 8 GiB store", res)
    assert res.maxrss_mb < baselines["read"] + 64, (res.maxrss_mb, baselines)
    path.unlink()


def _convert(src: Path, tmp_path: Path, timeout: float = 300) -> relutil.ChildResult:
    res = relutil.run_python(CONVERT, str(src), str(tmp_path / "out.emb"), timeout=timeout,
                             measure_rss=True)
    assert res.returncode == 0 and not res.timed_out, res.describe()
    return res


@pytest.mark.parametrize("case", ["huge-count-text", "huge-count-binary", "max-dim-text",
                                  "max-dim-binary-long-word", "count-just-below-max-rows"])
def test_inputs_declaring_absurd_sizes(tmp_path: Path, baselines: dict[str, float],
                                       case: str) -> None:
    src = tmp_path / "in.vec"
    with open(src, "wb") as f:
        if case == "huge-count-text":
            f.write(b"99999999999999999999 3\n" + b"".join(b"w%d 1 2 3\n" % i for i in range(1000)))
        elif case == "huge-count-binary":
            f.write(b"18446744073709551615 1048576\nw " + bytes(4 << 20) + b"v ")
        elif case == "max-dim-text":
            f.write(b"99999999999999999999 1048576\nw 1\n" + b"\n" * 100_000)
        elif case == "max-dim-binary-long-word":
            f.write(b"1 1048576\n")
            f.truncate(200 << 20)  # a 200 MB 'word' of NUL bytes, with no space
        else:
            f.write(b"4294967294 2\n" + b"".join(b"w%d 1 2\n" % i for i in range(10_000)))
    res = _convert(src, tmp_path)
    assert res.stdout.startswith("ConversionError"), res.stdout
    assert "None None" not in res.stdout, res.stdout  # a line or an offset is given
    assert not (tmp_path / "out.emb").exists()
    _report(f"input {case}", res)
    assert res.maxrss_mb < baselines["convert"] + 160, (res.maxrss_mb, baselines)
    assert res.seconds < 60


def test_one_gigabyte_single_line(tmp_path: Path, baselines: dict[str, float]) -> None:
    mb = relutil.env_int("EMBSTORE_LONG_LINE_MB", 1024)
    src = tmp_path / "line.txt"
    chunk = b"0.1 " * (1 << 18)  # 1 MiB
    with open(src, "wb") as f:
        f.write(b"1 300\nword ")
        for _ in range(mb):
            f.write(chunk)
        f.write(b"\n")
    try:
        res = _convert(src, tmp_path)
    finally:
        src.unlink()
    assert res.stdout.startswith("ConversionError 2 None"), res.stdout
    assert "longer than 64 MiB" in res.stdout
    _report(f"{mb} MiB single line", res)
    # the carried line lives in at most three read buffers of 64 + 8 MiB
    assert res.maxrss_mb < baselines["convert"] + 320, (res.maxrss_mb, baselines)
    assert res.seconds < 60


def test_one_gigabyte_first_line_without_header(tmp_path: Path,
                                                baselines: dict[str, float]) -> None:
    """The same without a header: the dimension is guessed from the first MiB."""
    mb = relutil.env_int("EMBSTORE_LONG_LINE_MB", 1024) // 4
    src = tmp_path / "line.txt"
    chunk = b"0.1 " * (1 << 18)
    with open(src, "wb") as f:
        f.write(b"word ")
        for _ in range(mb):
            f.write(chunk)
    try:
        res = _convert(src, tmp_path)
    finally:
        src.unlink()
    assert res.stdout.startswith("ConversionError 1 None"), res.stdout
    _report(f"{mb} MiB first line, no header", res)
    assert res.maxrss_mb < baselines["convert"] + 320, (res.maxrss_mb, baselines)


def test_millions_of_duplicate_words(tmp_path: Path, baselines: dict[str, float]) -> None:
    n = relutil.env_int("EMBSTORE_DUPLICATES", 3_000_000)
    src = tmp_path / "dups.txt"
    with open(src, "wb") as f:
        f.write(b"%d 2\n" % n)
        f.write(b"the 0.5 0.25\n" * n)
    res = _convert(src, tmp_path)
    assert res.stdout.split() == ["converted", "1", str(n - 1)], res.stdout
    _report(f"{n:,} duplicate lines", res)
    assert res.maxrss_mb < baselines["convert"] + 160, (res.maxrss_mb, baselines)
    import embstore

    s = embstore.open(tmp_path / "out.emb")
    assert list(s.words) == ["the"] and s["the"].tolist() == [0.5, 0.25]
