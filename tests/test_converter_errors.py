"""Broken inputs fail with one clear line, and leave nothing behind.

``str(ConversionError)`` must be one line naming the file and the line (text) or byte offset
(binary), saying what was expected and what was found.  After a failed conversion nothing
exists at the destination and no temporary file is left in its directory, whichever way the
temporary file was made.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embstore


@pytest.fixture(params=["tmpfile", "named"])
def tmp_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run with the O_TMPFILE writer and with the named-temporary fallback."""
    if request.param == "named":
        monkeypatch.setenv("EMBSTORE_NO_TMPFILE", "1")
    else:
        monkeypatch.delenv("EMBSTORE_NO_TMPFILE", raising=False)
    return str(request.param)


@pytest.fixture
def fails(tmp_path: Path) -> Callable[..., embstore.ConversionError]:
    """Convert ``data`` expecting a ConversionError; check that nothing was left behind."""
    counter = iter(range(10_000))

    def run(data: bytes | str, name: str = "vectors.txt",
            **options: Any) -> embstore.ConversionError:
        k = next(counter)
        folder = tmp_path / f"case{k}"
        folder.mkdir()
        src = folder / name
        src.write_bytes(data.encode() if isinstance(data, str) else data)
        dst = folder / "out.emb"
        with pytest.raises(embstore.ConversionError) as info:
            embstore.convert(src, dst, quiet=True, **options)
        err = info.value
        text = str(err)
        assert len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text, text
        assert text.startswith(f"{src}:"), text
        assert err.path == str(src)
        assert not dst.exists()
        assert sorted(p.name for p in folder.iterdir()) == [name], "temporary file left behind"
        return err

    return run


Fails = Callable[..., embstore.ConversionError]


def line_error(err: embstore.ConversionError, line: int) -> str:
    assert err.line == line and err.offset is None
    assert str(err).startswith(f"{err.path}:{line}: ")
    return str(err)


def offset_error(err: embstore.ConversionError, offset: int) -> str:
    assert err.offset == offset and err.line is None
    assert str(err).startswith(f"{err.path}: at byte offset {offset}: ")
    return str(err)


# -- text: wrong number of values ------------------------------------------------------------

@pytest.mark.parametrize(("data", "line", "found"), [
    ("3 3\nthe 1 2 3\nof 1 2\nand 1 2 3\n", 3, 2),
    ("3 3\nthe 1 2\nof 1 2 3\nand 1 2 3\n", 2, 2),  # the first row: not mistaken for binary
    ("3 3\nthe 1 2 3\nof\nand 1 2 3\n", 3, 0),
    ("the 1 2 3\nof 1 2 3\nand 1\n", 3, 1),
    ("the 1 2 3\r\nof 1 2\r\n", 2, 2),
])
def test_too_few_values(data: str, line: int, found: int, fails: Fails, tmp_mode: str) -> None:
    text = line_error(fails(data), line)
    assert f"expected 3 values after the word, found {found}" in text


@pytest.mark.parametrize(("data", "line", "found"), [
    ("2 2\nthe 1 2 3\nof 1 2\n", 2, 3),
    ("2 2\nthe 1 2\nof 1 2 3 4 5\n", 3, 5),
    ("the 1 2\nof 1 2 3\n", 2, 3),
])
def test_too_many_values(data: str, line: int, found: int, fails: Fails) -> None:
    text = line_error(fails(data), line)
    assert f"expected 2 values after the word, found {found}" in text


@pytest.mark.parametrize(("token", "field"), [
    ("abc", 3), ("1.2.3", 3), ("1e", 3), ("e5", 3), ("--1", 3), ("1,5", 3), ("0x10", 3),
    ("1e5.5", 3), ("+", 3), ("-", 3), (".", 3), ("1_000", 3), ("١", 3), ("1\t2", 3),
])
def test_value_that_is_not_a_number(token: str, field: int, fails: Fails) -> None:
    text = line_error(fails(f"2 2\nthe 1 2\nof 1 {token}\n"), 3)
    assert f"field {field}: expected a number, found {token!r}" in text.replace("\\\\", "\\")


def test_not_a_number_in_the_first_row_is_reported_as_text(fails: Fails) -> None:
    text = line_error(fails("2 2\nthe abc 2\nof 1 2\n"), 2)
    assert "field 2: expected a number, found 'abc'" in text


@pytest.mark.parametrize("token", [
    "nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "-INFINITY",
    "1e39", "-1e39", "3.5e38", "3.4028236e38", "1e400", "-1e4000",
    "340282356779733661637539395458142568448",
])
@pytest.mark.parametrize("where", ["first", "later"])
def test_non_finite_values_are_rejected(token: str, where: str, fails: Fails) -> None:
    rows = ["the 1 2", "of 3 4"]
    i = 0 if where == "first" else 1
    rows[i] = rows[i].replace(" 2", f" {token}").replace(" 4", f" {token}")
    text = line_error(fails("2 2\n" + "\n".join(rows) + "\n"), i + 2)
    assert f"field 3: value {token!r} is not finite in float32" in text


@pytest.mark.parametrize(("data", "line", "field", "token"), [
    ("a 1 2\nb nan 2\n", 2, 2, "nan"),
    ("a nan 2\nb 1 2\n", 1, 2, "nan"),  # the line the dimension is taken from
    ("a 1 -Infinity\nb 1 2\n", 1, 3, "-Infinity"),
])
def test_non_finite_in_glove(data: str, line: int, field: int, token: str,
                             fails: Fails, convert_bytes: Callable[..., Any]) -> None:
    text = line_error(fails(data), line)
    assert f"field {field}: value {token!r} is not finite" in text
    store, report = convert_bytes(data, on_bad_line="skip")
    assert report.skipped_lines == 1 and len(store) == 1 and store.dim == 2


# -- text: row counts --------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "line", "declared", "have"), [
    ("5 2\nthe 1 2\nof 3 4\n", 3, 5, 2),
    ("5 2\nthe 1 2\nof 3 4", 3, 5, 2),
    ("5 2\nthe 1 2\nof 3 4\n\n\n", 5, 5, 2),
    ("5 2\n", 1, 5, 0),
])
def test_header_promises_more_rows_than_present(data: str, line: int, declared: int,
                                                have: int, fails: Fails,
                                                tmp_mode: str) -> None:
    text = line_error(fails(data), line)
    assert f"header declares {declared} rows but the file ends after {have}" in text
    if have:
        assert f"limit={have}" in text


@pytest.mark.parametrize(("data", "line"), [
    ("1 2\nthe 1 2\nof 3 4\n", 3),
    ("2 2\nthe 1 2\nof 3 4\nand 5 6\n", 4),
    ("2 2\nthe 1 2\nof 3 4\n\n\nand 5 6\n", 6),
    ("2 2\nthe 1 2\nof 3 4\njunk", 4),
])
def test_more_rows_than_the_header_declares(data: str, line: int, fails: Fails,
                                            tmp_mode: str) -> None:
    text = line_error(fails(data), line)
    assert "more rows than the header declares" in text
    assert "limit=" in text


def test_more_rows_than_declared_far_after_the_header(fails: Fails,
                                                      make_text: Callable[..., str]) -> None:
    """The extra row is found in a later read block and row batch."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30_000)]
    body = make_text(words, rng.standard_normal((30_000, 3)).astype(np.float32))
    data = body.replace("30000 3", "29999 3", 1)
    line_error(fails(data), 30_001)


# -- binary ------------------------------------------------------------------------------------

def _binary(make_binary: Callable[..., bytes], n: int = 3, dim: int = 4, **kw: Any) -> bytes:
    words = [f"word{i}" for i in range(n)]
    return make_binary(words, np.arange(n * dim, dtype=np.float32).reshape(n, dim), **kw)


@pytest.mark.parametrize("newline", [True, False])
def test_truncated_binary_record(newline: bool, fails: Fails,
                                 make_binary: Callable[..., bytes], tmp_mode: str) -> None:
    data = _binary(make_binary, newline=newline)
    cut = data[:-7]
    record_start = cut.rindex(b"word2")
    text = offset_error(fails(cut, name="v.bin"), record_start)
    assert "truncated record 3: expected a word, a space and 16 bytes of vector" in text
    assert "limit=2" in text


def test_binary_header_promises_more_rows(fails: Fails, make_binary: Callable[..., bytes]
                                          ) -> None:
    data = _binary(make_binary, header=b"5 4\n")
    text = offset_error(fails(data, name="v.bin"), len(data))
    assert "header declares 5 rows but the file ends after 3" in text


@pytest.mark.parametrize("newline", [True, False])
def test_binary_more_rows_than_declared(newline: bool, fails: Fails,
                                        make_binary: Callable[..., bytes]) -> None:
    data = _binary(make_binary, header=b"2 4\n", newline=newline)
    extra = data.index(b"word2")
    text = offset_error(fails(data, name="v.bin"), extra)
    assert "more rows than the header declares (2)" in text


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_binary_non_finite(value: float, fails: Fails, make_binary: Callable[..., bytes]
                           ) -> None:
    vecs = np.ones((3, 4), dtype=np.float32)
    vecs[1, 2] = value
    data = make_binary(["a", "b", "c"], vecs)
    at = data.index(b"b ") + 2 + 2 * 4
    text = offset_error(fails(data, name="v.bin"), at)
    assert f"value 3 of the vector for 'b' is {np.float32(value)}" in text
    assert "non-finite" in text


def test_binary_offsets_are_decompressed_offsets(fails: Fails,
                                                 make_binary: Callable[..., bytes]) -> None:
    import gzip

    data = _binary(make_binary)[:-7]
    err = fails(gzip.compress(data), name="v.bin.gz")
    assert err.offset == data.rindex(b"word2")
    assert f"at decompressed byte offset {err.offset}:" in str(err)


# -- not a vector file at all ----------------------------------------------------------------

def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4), dtype=np.float32))
    return buf.getvalue()


def _existing_store(tmp_path: Path) -> bytes:
    src = tmp_path / "small.txt"
    src.write_text("a 1 2\n")
    embstore.convert(src, tmp_path / "small.emb", quiet=True)
    return (tmp_path / "small.emb").read_bytes()


NOT_VECTORS: dict[str, Callable[[Path], bytes]] = {
    "png": lambda _: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
    "pickle": lambda _: pickle.dumps({"vectors": [1.0, 2.0]}, protocol=4),
    "pickle2": lambda _: pickle.dumps(["a"], protocol=2),
    "npy": lambda _: _npy(),
    "store": _existing_store,
    "zstd": lambda _: b"\x28\xb5\x2f\xfd\x04\x58\x61\x00\x00the 1 2\n",
    "json": lambda _: b'{"the": [1, 2]}\n',
    "html": lambda _: b"<!doctype html>\n<html><body>the 1 2</body></html>\n",
    "csv": lambda _: b"word,v1,v2\nthe,1,2\n",
    "random": lambda _: bytes(np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8)),
    "whitespace": lambda _: b"\n \n\t\n\r\n",
    "header only words": lambda _: b"hello world\nfoo bar\n",
}


@pytest.mark.parametrize("kind", sorted(NOT_VECTORS))
def test_not_a_vector_file(kind: str, fails: Fails, tmp_path: Path) -> None:
    data = NOT_VECTORS[kind](tmp_path)
    err = fails(data, name="vectors.vec")
    text = str(err)
    expected = {
        "pickle": "Python pickle", "pickle2": "Python pickle", "npy": "NumPy .npy",
        "store": "already an embstore store", "zstd": "zstd",
        "whitespace": "only blank lines",
    }.get(kind, "not a word-vector file")
    assert expected in text


def test_gensim_native_files_are_refused_with_a_reason(gensim_data: Path, fails: Fails) -> None:
    err = fails((gensim_data / "word2vec_old").read_bytes(), name="model")
    assert "pickle" in str(err) and "from_keyedvectors" in str(err)
    err = fails((gensim_data / "word2vec_old_sep.syn1neg.npy").read_bytes(), name="x.npy")
    assert ".npy" in str(err)


def test_empty_file(fails: Fails, tmp_mode: str) -> None:
    err = fails(b"")
    assert "the file is empty" in str(err)


@pytest.mark.parametrize("data", [b"0 3\n", b"2 0\nthe\nof\n", b"2 2000000\n"])
def test_header_with_impossible_sizes(data: bytes, fails: Fails) -> None:
    err = fails(data)
    assert err.line == 1


def test_damaged_compressed_input(fails: Fails) -> None:
    import gzip

    data = gzip.compress(b"the 1 2\n" * 5000)
    err = fails(data[: len(data) // 2], name="v.txt.gz")
    assert "gzip" in str(err) and "damaged or truncated" in str(err)


def test_zip_with_several_members(fails: Fails) -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.vec", "the 1 2\n")
        zf.writestr("b.vec", "of 1 2\n")
    err = fails(buf.getvalue(), name="v.zip")
    assert 'zip archive holds 2 files (a.vec, b.vec); choose one with member="a.vec"' in str(err)


# -- on_bad_line="skip" ------------------------------------------------------------------------

def test_skip_bad_lines_counts_and_converts_the_rest(convert_bytes: Callable[..., Any],
                                                     assert_same_bits: Callable[..., None]
                                                     ) -> None:
    data = (
        "7 2\n"
        "good 1 2\n"
        "short 1\n"
        "long 1 2 3\n"
        "nan 1 nan\n"
        "huge 1 1e39\n"
        "text 1 abc\n"
        "fine -3 4.5\n"
    )
    store, report = convert_bytes(data, on_bad_line="skip")
    assert list(store.words) == ["good", "fine"]
    assert_same_bits(np.asarray(store.vectors), np.array([[1, 2], [-3, 4.5]], np.float32))
    assert report.skipped_lines == 5 and report.records == 7 and report.rows == 2
    assert [e.split(":")[0] for e in report.skipped_examples] == [
        "line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "5 bad lines skipped" in str(report)
    assert store.metadata["skipped_lines"] == 5


def test_skip_bad_first_row_of_a_text_file(convert_bytes: Callable[..., Any]) -> None:
    store, report = convert_bytes("2 2\nbad 1 nan\nok 1 2\n", on_bad_line="skip")
    assert report.format == "text" and list(store.words) == ["ok"]


def test_skip_invalid_utf8_under_strict(convert_bytes: Callable[..., Any]) -> None:
    store, report = convert_bytes(b"3 1\na 1\nb\xff 2\nc 3\n", on_bad_line="skip")
    assert list(store.words) == ["a", "c"] and report.skipped_lines == 1


def test_skip_in_binary(convert_bytes: Callable[..., Any],
                        make_binary: Callable[..., bytes]) -> None:
    vecs = np.arange(8, dtype=np.float32).reshape(4, 2)
    vecs[1, 0] = np.nan
    vecs[3, 1] = np.inf
    store, report = convert_bytes(make_binary(["a", "b", "c", "d"], vecs), name="v.bin",
                                  on_bad_line="skip")
    assert list(store.words) == ["a", "c"]
    assert report.skipped_lines == 2
    assert store.vectors.tolist() == [[0, 1], [4, 5]]


def test_skip_everything_is_still_an_error(fails: Fails) -> None:
    err = fails("2 2\na 1\nb 1 2 3\n", on_bad_line="skip")
    assert "every line was skipped" in str(err)


def test_skipped_examples_are_capped(convert_bytes: Callable[..., Any]) -> None:
    data = "ok 1 2\n" + "".join(f"bad{i} 1\n" for i in range(50)) + "end 3 4\n"
    store, report = convert_bytes(data, on_bad_line="skip")
    assert report.skipped_lines == 50 and len(report.skipped_examples) == 10
    assert list(store.words) == ["ok", "end"]


# -- failures never touch the destination ------------------------------------------------------

def test_failed_forced_conversion_keeps_the_old_store(tmp_path: Path, tmp_mode: str) -> None:
    good = tmp_path / "good.txt"
    good.write_text("the 1 2\n")
    dst = tmp_path / "out.emb"
    embstore.convert(good, dst, quiet=True)
    before = dst.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1 2\nof 1\n")
    with pytest.raises(embstore.ConversionError):
        embstore.convert(bad, dst, force=True, quiet=True)
    assert dst.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt", "out.emb"]


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        embstore.convert(tmp_path / "nope.txt", tmp_path / "out.emb")
    assert list(tmp_path.iterdir()) == []


def test_source_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        embstore.convert(tmp_path, tmp_path / "out.emb")


def test_error_names_a_file_given_as_pathlike_or_str(tmp_path: Path) -> None:
    src = tmp_path / "bad.txt"
    src.write_text("the 1 2\nof x 2\n")
    for given in (src, str(src)):
        with pytest.raises(embstore.ConversionError, match=re.escape(f"{src}:2: ")):
            embstore.convert(given, tmp_path / "out.emb", quiet=True)


def test_binary_empty_word_is_refused(fails: Fails, make_binary: Callable[..., bytes]) -> None:
    """gensim would take the key '' here; a record without a word is treated as damage."""
    data = make_binary(["a", "", "c"], np.ones((3, 2)))
    at = data.index(b"\n", data.index(b"a ")) + 1
    text = offset_error(fails(data, name="v.bin"), at)
    assert "expected a word before the vector, found a space" in text


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from embstore._convert import limits as converter

    monkeypatch.setattr(converter, "BLOCK_SIZE", 1024)
    monkeypatch.setattr(converter, "PART", 50)
    monkeypatch.setattr(converter, "MAX_LINE", 1 << 12)
    monkeypatch.setattr(converter, "ROW_BATCH_BYTES", 4 * 2 * 30)


def test_errors_in_later_blocks_name_the_right_line(fails: Fails, small_blocks: None) -> None:
    good = "".join(f"w{i} {i} {-i}\n" for i in range(2000))
    line_error(fails(f"2000 2\n{good}" + "\n" * 500 + "extra 1 2\n"), 2502)
    line_error(fails(f"2001 2\n{good}" + "\n" * 500), 2501)
    bad = good.replace("w1500 1500 -1500\n", "w1500 1500\n")
    line_error(fails(bad), 1501)
    line_error(fails(f"2000 2\n{bad}"), 1502)


def test_line_longer_than_the_maximum(fails: Fails, small_blocks: None) -> None:
    err = fails("a 1 2\n" + "b" * 10_000 + " 1 2\nc 1 2\n")
    text = line_error(err, 2)
    assert "no newline found" in text


@pytest.mark.parametrize("data", [
    "2 2\nthe 1 2\nof 1 x\x0by\n",
    "2 2\nthe 1 2\nof 1 x\x1cy\x85z\u2028\n",
    "\x1b[31mred\x1b[0m\rdone\n",
    b"2 2\nthe 1 2\nof 1 \xff\xfe\r\x0c1\n",
])
def test_messages_escape_control_characters(data: str | bytes, fails: Fails) -> None:
    """Whatever the input holds, the message stays one printable line (``fails`` checks
    ``splitlines``, which also breaks at VT, FF, FS, NEL and U+2028)."""
    text = str(fails(data))
    assert "\x1b" not in text and "\x0b" not in text and "\x0c" not in text


def test_binary_message_escapes_the_word(fails: Fails, make_binary: Callable[..., bytes]) -> None:
    vecs = np.ones((2, 2), dtype=np.float32)
    vecs[1, 1] = np.nan
    err = fails(make_binary(["a", "b\u2028\x1bc"], vecs), name="v.bin")
    assert "\x1b" not in str(err)
