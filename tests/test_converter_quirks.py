"""Real-world quirks of vector files, each on a tiny hand-made input.

Where gensim can read a quirky file, the store must match gensim; where gensim cannot (blank
lines, words with spaces, BOM before a header, runs of spaces), the expected result is
written out here.  Every value must equal ``np.float32(float(token))`` bit for bit.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embstore

Convert = Callable[..., tuple[embstore.EmbeddingStore, Any]]
SameBits = Callable[[np.ndarray, np.ndarray], None]


def gensim_read(path: Path, **kwargs: Any) -> tuple[list[str], np.ndarray]:
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(path), **kwargs)
    # With duplicate words gensim 4 leaves unused slots (None keys, zero rows) at the end.
    words = [w for w in kv.index_to_key if w is not None]
    assert all(w is None for w in kv.index_to_key[len(words):])
    return words, np.asarray(kv.vectors[: len(words)], dtype=np.float32)


def expect(store: embstore.EmbeddingStore, words: list[str], vectors: Any,
           same_bits: SameBits) -> None:
    assert list(store.words) == words
    same_bits(np.asarray(store.vectors), np.asarray(vectors, dtype=np.float32))
    for row, word in enumerate(words):
        assert store.get_index(word) == row


@pytest.fixture
def matches_gensim(tmp_path: Path, assert_same_bits: SameBits) -> Callable[..., Any]:
    """Convert ``data`` and compare with gensim reading the same bytes."""
    counter = iter(range(10_000))

    def check(data: bytes, gensim_kw: dict[str, Any], **options: Any) -> Any:
        k = next(counter)
        src = tmp_path / f"quirk{k}.txt"
        src.write_bytes(data)
        dst = tmp_path / f"quirk{k}.emb"
        report = embstore.convert(src, dst, quiet=True, **options)
        words, vectors = gensim_read(src, **gensim_kw)
        with embstore.open(dst) as store:
            expect(store, words, vectors, assert_same_bits)
        return report

    return check


# -- separators and whitespace ---------------------------------------------------------------

UNICODE_SPACE_WORDS = [
    "a\u00a0b",  # no-break space
    "\u3000x",  # ideographic space
    "c\u2003",  # em space at the end of the word
    "d\u2009e",  # thin space
    "\u200b",  # zero-width space alone
    "f\u202fg",  # narrow no-break space
    "h\u1680",  # ogham space mark
    "i\u0085j",  # NEL: str.split() would split here
    "k\u2028l",  # line separator: str.splitlines() would split here
    "m\x1cn",  # ASCII file separator: str.split() splits here too
    "o\tp",  # a tab inside a word is not a separator
    "\u00a0",  # a word that is only a no-break space
]


@pytest.mark.parametrize("header", [True, False])
def test_unicode_spaces_stay_inside_words(header: bool, matches_gensim: Callable[..., Any],
                                          make_text: Callable[..., str]) -> None:
    vecs = np.arange(len(UNICODE_SPACE_WORDS) * 3, dtype=np.float32).reshape(-1, 3) / 7
    data = make_text(UNICODE_SPACE_WORDS, vecs, header=header).encode("utf-8")
    report = matches_gensim(data, {} if header else {"no_header": True})
    assert report.rows == len(UNICODE_SPACE_WORDS)
    assert report.format == ("text" if header else "glove")


def test_unicode_spaces_fixture_file(data_dir: Path, tmp_path: Path,
                                     assert_same_bits: SameBits) -> None:
    """The stored fixture: GloVe words with U+00A0, U+2003, U+3000 and emoji."""
    dst = tmp_path / "out.emb"
    embstore.convert(data_dir / "unicode_words.txt", dst, quiet=True)
    words, vectors = gensim_read(data_dir / "unicode_words.txt", no_header=True)
    with embstore.open(dst) as store:
        expect(store, words, vectors, assert_same_bits)
        assert "New\u00a0York" in store and "New York" not in store
        assert "東京" in store and "😀" in store


def test_glove_words_containing_ascii_spaces(data_dir: Path, tmp_path: Path,
                                             assert_same_bits: SameBits) -> None:
    """GloVe 840B has words like '. . .' and 'at name@domain.com': the last dim fields are
    the values, everything before them (inner spacing kept) is the word."""
    dst = tmp_path / "out.emb"
    report = embstore.convert(data_dir / "glove_spaced_words.txt", dst, quiet=True)
    assert report.format == "glove" and report.dim == 3
    words = [". . .", "at name@domain.com", "the", "a  b", "x . y .", ":)  :("]
    vectors = [[0.1, 0.2, 0.3], [-1.5, 2.5, 1e-3], [1, 2, 3], [4, 5, 6], [7, 8, 9],
               [0.5, -0.5, 0]]
    with embstore.open(dst) as store:
        expect(store, words, vectors, assert_same_bits)


def test_spaced_words_in_a_file_with_header(convert_bytes: Convert,
                                            assert_same_bits: SameBits) -> None:
    store, report = convert_bytes("2 2\n. . . 1 2\nat name@domain.com 3 4\n")
    assert report.format == "text"
    expect(store, [". . .", "at name@domain.com"], [[1, 2], [3, 4]], assert_same_bits)


@pytest.mark.parametrize("header", [True, False])
def test_crlf_line_endings(header: bool, matches_gensim: Callable[..., Any]) -> None:
    lines = ["the 0.1 -0.2 0.3", "of 1e-3 2E+2 -0", "日本 4 5 6"]
    if header:
        lines.insert(0, "3 3")
    data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    report = matches_gensim(data, {} if header else {"no_header": True})
    assert report.rows == 3


def test_crlf_fixture_file(data_dir: Path, tmp_path: Path, assert_same_bits: SameBits) -> None:
    dst = tmp_path / "out.emb"
    embstore.convert(data_dir / "crlf.vec", dst, quiet=True)
    assert b"\r\n" in (data_dir / "crlf.vec").read_bytes()
    words, vectors = gensim_read(data_dir / "crlf.vec")
    with embstore.open(dst) as store:
        expect(store, words, vectors, assert_same_bits)


@pytest.mark.parametrize("trailer", [" ", "   ", "\t", " \t ", " \r", "\x0b", "\x0c"])
def test_trailing_whitespace(trailer: str, matches_gensim: Callable[..., Any]) -> None:
    """fastText .vec files end every line with a space; other ASCII whitespace is trailing
    too (it ends the line for gensim's rstrip)."""
    data = f"2 3\nthe 1 2 3{trailer}\nof 4 5 6{trailer}\n".encode()
    matches_gensim(data, {})
    glove = f"the 1 2 3{trailer}\nof 4 5 6{trailer}\n".encode()
    matches_gensim(glove, {"no_header": True})


@pytest.mark.parametrize(("data", "words", "blank"), [
    (b"2 2\n\nw 1 2\nv 3 4\n", ["w", "v"], 1),
    (b"2 2\nw 1 2\n\n\nv 3 4\n", ["w", "v"], 2),
    (b"2 2\nw 1 2\nv 3 4\n\n\n", ["w", "v"], 2),
    (b"2 2\n\nw 1 2\n   \nv 3 4\n\t\n", ["w", "v"], 3),
    (b"2 2\r\n\r\nw 1 2\r\n \r\nv 3 4\r\n", ["w", "v"], 2),
    (b"\n\nw 1 2\nv 3 4\n", ["w", "v"], 2),
    (b"w 1 2\n\n \nv 3 4\n", ["w", "v"], 2),
    (b"w 1 2\nv 3 4\n\n\n\n", ["w", "v"], 3),
    (b"w 1 2\nv 3 4\n  ", ["w", "v"], 1),
])
def test_blank_lines_are_skipped_and_counted(data: bytes, words: list[str], blank: int,
                                             convert_bytes: Convert,
                                             assert_same_bits: SameBits) -> None:
    store, report = convert_bytes(data)
    expect(store, words, [[1, 2], [3, 4]], assert_same_bits)
    assert report.blank_lines == blank
    assert report.records == 2 and report.skipped_lines == 0


def test_blank_lines_do_not_count_against_the_header_or_limit(convert_bytes: Convert,
                                                              assert_same_bits: SameBits
                                                              ) -> None:
    data = b"3 1\n\na 1\n\nb 2\n\n\nc 3\n"
    store, report = convert_bytes(data, limit=2)
    expect(store, ["a", "b"], [[1], [2]], assert_same_bits)
    assert report.blank_lines == 2  # the ones before the limit was reached
    store, report = convert_bytes(data)
    expect(store, ["a", "b", "c"], [[1], [2], [3]], assert_same_bits)
    assert report.blank_lines == 4


@pytest.mark.parametrize("data", [
    b"2 2\nw  1   2\nv 3    4\n",
    b"2 2\n  w 1 2\n v  3 4  \n",
    b"2  2\nw 1 2\nv 3 4\n",
    b" 2 2 \nw 1 2\nv 3 4\n",
    b"w    1 2\n   v 3     4\n",
])
def test_runs_of_spaces(data: bytes, convert_bytes: Convert, assert_same_bits: SameBits) -> None:
    store, _ = convert_bytes(data)
    expect(store, ["w", "v"], [[1, 2], [3, 4]], assert_same_bits)


@pytest.mark.parametrize("data", [
    b"2 2\nw 1 2\nv 3 4",
    b"2 2\nw 1 2\nv 3 4 ",
    b"w 1 2\nv 3 4",
    b"w 1 2\r\nv 3 4\r",
])
def test_no_newline_at_end_of_file(data: bytes, matches_gensim: Callable[..., Any]) -> None:
    matches_gensim(data, {} if data[:2] == b"2 " else {"no_header": True})


def test_no_newline_at_end_of_binary(make_binary: Callable[..., bytes],
                                     matches_gensim: Callable[..., Any]) -> None:
    data = make_binary(["a", "b"], np.array([[1, 2], [3, 4]]), newline=True)
    matches_gensim(data[:-1], {"binary": True})


# -- duplicates --------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [True, False])
def test_duplicate_words_keep_the_first(header: bool, matches_gensim: Callable[..., Any]
                                        ) -> None:
    rows = ["the 1 1", "of 2 2", "the 3 3", "and 4 4", "of 5 5", "the 6 6", "THE 7 7"]
    data = ("\n".join(([f"{len(rows)} 2"] if header else []) + rows) + "\n").encode()
    report = matches_gensim(data, {} if header else {"no_header": True})
    assert report.rows == 4 and report.records == 7 and report.duplicates == 3
    assert "3 duplicate words dropped (first kept)" in str(report)


def test_duplicate_words_binary(make_binary: Callable[..., bytes],
                                matches_gensim: Callable[..., Any]) -> None:
    words = ["a", "b", "a", "é", "b", "é", "c"]
    vecs = np.arange(14, dtype=np.float32).reshape(7, 2)
    report = matches_gensim(make_binary(words, vecs), {"binary": True})
    assert report.duplicates == 3 and report.rows == 4


def test_many_duplicates_across_batches(matches_gensim: Callable[..., Any],
                                        make_text: Callable[..., str]) -> None:
    rng = np.random.default_rng(5)
    words = [f"w{int(i)}" for i in rng.integers(0, 700, 4000)]
    vecs = rng.standard_normal((len(words), 4)).astype(np.float32)
    report = matches_gensim(make_text(words, vecs).encode(), {})
    assert report.rows == len(set(words))
    assert report.duplicates == len(words) - len(set(words))


# -- invalid UTF-8 ---------------------------------------------------------------------------

BAD_WORDS = [
    b"caf\xe9",  # latin-1
    b"\xff",  # becomes the empty word under 'ignore'
    b"\x80abc",  # lone continuation byte
    b"\xc0\xaf",  # overlong encoding of '/'
    b"\xed\xa0\x80x",  # UTF-16 surrogate
    b"\xf0\x9f\x98",  # emoji cut short (as word2vec.c truncates long words)
    b"\xf5\x80\x80\x80",  # beyond U+10FFFF
    b"ok\xe3\x81",  # truncated CJK
    b"ok\xe3\x82",  # ... the same word after 'ignore'/'replace': a duplicate
]


def bad_utf8_text(header: bool) -> bytes:
    lines = [w + f" {i} {-i} 0.5".encode() for i, w in enumerate([b"good", *BAD_WORDS, b"end"])]
    if header:
        lines.insert(0, f"{len(lines)} 3".encode())
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("errors", ["replace", "ignore"])
@pytest.mark.parametrize("header", [True, False])
def test_invalid_utf8_replace_and_ignore_match_gensim(errors: str, header: bool,
                                                      matches_gensim: Callable[..., Any]
                                                      ) -> None:
    kw: dict[str, Any] = {"unicode_errors": errors}
    if not header:
        kw["no_header"] = True
    report = matches_gensim(bad_utf8_text(header), kw, unicode_errors=errors)
    assert report.duplicates >= 1  # the two truncated words repair to the same word


def test_ignore_can_produce_the_empty_word(convert_bytes: Convert,
                                           assert_same_bits: SameBits) -> None:
    store, _ = convert_bytes(b"2 2\n\xff\xfe 1 2\nv 3 4\n", unicode_errors="ignore")
    expect(store, ["", "v"], [[1, 2], [3, 4]], assert_same_bits)
    assert "" in store and store[""].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("header", [True, False])
def test_invalid_utf8_strict_fails_on_the_right_line(header: bool, convert_bytes: Convert
                                                     ) -> None:
    with pytest.raises(embstore.ConversionError) as info:
        convert_bytes(bad_utf8_text(header))
    line = 3 if header else 2  # "caf\xe9" is the second record
    assert info.value.line == line
    assert re.search(rf":{line}: word 'caf\\+xe9' is not valid UTF-8", str(info.value))


@pytest.mark.parametrize("errors", ["replace", "ignore"])
@pytest.mark.parametrize("newline", [True, False])
def test_invalid_utf8_binary_matches_gensim(errors: str, newline: bool,
                                            make_binary: Callable[..., bytes],
                                            matches_gensim: Callable[..., Any]) -> None:
    words = [b"good", *BAD_WORDS, b"end"]
    vecs = np.arange(len(words) * 2, dtype=np.float32).reshape(-1, 2)
    data = make_binary(words, vecs, newline=newline)
    matches_gensim(data, {"binary": True, "unicode_errors": errors}, unicode_errors=errors)


def test_invalid_utf8_binary_strict(make_binary: Callable[..., bytes],
                                    convert_bytes: Convert) -> None:
    data = make_binary([b"good", b"caf\xe9"], np.ones((2, 2)))
    with pytest.raises(embstore.ConversionError) as info:
        convert_bytes(data, name="v.bin")
    assert info.value.offset == data.index(b"caf\xe9")
    at = info.value.offset
    assert re.search(rf"at byte offset {at}: word 'caf\\+xe9' is not valid UTF-8", str(info.value))


# -- byte order mark ---------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf2 2\nthe 1 2\nof 3 4\n",
    b"\xef\xbb\xbfthe 1 2\nof 3 4\n",
    b"\xef\xbb\xbf2 2\r\nthe 1 2\r\nof 3 4\r\n",
])
def test_utf8_bom_at_the_start(data: bytes, convert_bytes: Convert,
                               assert_same_bits: SameBits) -> None:
    store, report = convert_bytes(data)
    expect(store, ["the", "of"], [[1, 2], [3, 4]], assert_same_bits)
    assert report.blank_lines == 0
    assert "\ufeffthe" not in store
    compressed, report2 = convert_bytes(gzip.compress(data))
    expect(compressed, ["the", "of"], [[1, 2], [3, 4]], assert_same_bits)
    assert report2.compression == "gzip"


def test_utf8_bom_before_a_binary_file(make_binary: Callable[..., bytes],
                                       convert_bytes: Convert, assert_same_bits: SameBits
                                       ) -> None:
    data = b"\xef\xbb\xbf" + make_binary(["the", "of"], np.array([[1, 2], [3, 4]]))
    store, report = convert_bytes(data)
    assert report.format == "binary"
    expect(store, ["the", "of"], [[1, 2], [3, 4]], assert_same_bits)


def test_bom_inside_a_word_is_kept(convert_bytes: Convert, assert_same_bits: SameBits) -> None:
    """Only a BOM at the very start of the file is dropped."""
    store, _ = convert_bytes("2 1\nthe 1\n\ufeffof 2\n")
    expect(store, ["the", "\ufeffof"], [[1], [2]], assert_same_bits)


# -- binary layout -----------------------------------------------------------------------------

@pytest.mark.parametrize("newline", [True, False])
@pytest.mark.parametrize("dim", [1, 2, 3, 50])
def test_binary_with_and_without_newlines(newline: bool, dim: int,
                                          make_binary: Callable[..., bytes],
                                          make_words: Callable[..., list[str]],
                                          matches_gensim: Callable[..., Any]) -> None:
    rng = np.random.default_rng(dim)
    words = make_words(40, rng)
    vecs = rng.standard_normal((40, dim)).astype(np.float32)
    vecs[0, 0] = 10.0  # 0x41200000: bytes that look like "\x00\x00 A"
    vecs[1, 0] = np.float32(np.frombuffer(b"\n\n\n\n", dtype="<f4")[0])  # all newline bytes
    vecs[2, 0] = np.float32(np.frombuffer(b"    ", dtype="<f4")[0])  # all space bytes
    report = matches_gensim(make_binary(words, vecs, newline=newline), {"binary": True})
    assert report.format == "binary" and report.rows == 40


def test_binary_written_by_gensim(tmp_path: Path, make_words: Callable[..., list[str]],
                                  convert_bytes: Convert, assert_same_bits: SameBits) -> None:
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(11)
    words = make_words(300, rng)
    vecs = rng.standard_normal((300, 7)).astype(np.float32)
    kv = KeyedVectors(7)
    kv.add_vectors(words, vecs)
    for binary in (True, False):
        path = tmp_path / f"saved_{binary}"
        kv.save_word2vec_format(str(path), binary=binary)
        store, report = convert_bytes(path.read_bytes())
        assert report.format == ("binary" if binary else "text")
        expect(store, words, vecs, assert_same_bits)


# -- numbers -----------------------------------------------------------------------------------

TOKENS = [
    "0", "-0", "+0", "-0.0", "0.0", "0e0", "-0e-5", "0.000",
    "1", "+1", "-1", "1.", "-1.", ".5", "+.5", "-.5", "-.5e-3", "5.e3",
    "1e5", "1E5", "1e+05", "1E-05", "1.5E-7", "-2.5e+10", "6.02214076e23",
    "0.1", "0.2", "0.3", "-0.7", "3.14159265358979323846264338327950288",
    "0.123456789012345", "0.1234567890123456", "0.12345678901234567", "1234567.1234567891",
    "9007199254740992", "9007199254740993", "18446744073709551615", "18446744073709551616",
    "1234567890123456789", "12345678901234567890", "123456789012345678901234567890",
    "1.000000000000000000e+00", "-3.141592653589793116e+00", "2.718281828459045091e-05",
    "1.000000000000000056e-01", "9.999999999999999778e-01",
    "00000000000000000000001.5", "0.0000000000000000000000000000001",
    "1e22", "1e23", "1e-22", "1e-23", "4.5e22", "123e-20",
    "1e-38", "1.17549435e-38", "1.1754942e-38",  # around the smallest normal float32
    "1e-45", "1.401298464324817e-45", "-1.4e-45", "7.006492321624085e-46", "7.1e-46",
    "1e-46", "1e-50", "1e-400", "-1e-400", "4.9406564584124654e-324",
    "3.4028235e38", "-3.4028234663852886e+38", "3.4028234e38", "3.40282356e38",
    "1.00000005960464477539062500001", "1.0000000596046447753906250", "1.00000017881393432617187",
    "16777217", "16777216.5", "0.000000059604644775390625",
]


@pytest.mark.parametrize("layout", ["fast", "careful"])
def test_every_value_is_float32_of_float(layout: str, convert_bytes: Convert,
                                         assert_same_bits: SameBits) -> None:
    """Each token as a one-value line and all of them on one long line.  A leading space
    sends lines through the careful parser, so both line parsers are checked."""
    lead = "" if layout == "fast" else " "
    want = np.array([np.float32(float(t)) for t in TOKENS], dtype=np.float32)
    single = "".join(f"{lead}w{i} {t}\n" for i, t in enumerate(TOKENS))
    store, _ = convert_bytes(single)
    assert store.dim == 1
    assert_same_bits(np.asarray(store.vectors[:, 0]), want)
    wide = f"{lead}all " + " ".join(TOKENS) + "\n"
    store, _ = convert_bytes(wide)
    assert store.dim == len(TOKENS)
    assert_same_bits(np.asarray(store.vectors[0]), want)


def test_values_match_gensim(matches_gensim: Callable[..., Any]) -> None:
    data = "".join(f"w{i} {t} {t}\n" for i, t in enumerate(TOKENS)).encode()
    matches_gensim(data, {"no_header": True})


@pytest.mark.parametrize("fmt", ["%.18e", "%.9g", "%.17g", "%r", "%.30f", "%.6f", "%g"])
def test_savetxt_formats(fmt: str, tmp_path: Path, matches_gensim: Callable[..., Any]) -> None:
    """Files written with numpy.savetxt, e.g. its default '%.18e' (19 significant digits)."""
    rng = np.random.default_rng(3)
    values = rng.standard_normal((50, 8)) * np.logspace(-30, 30, 8)
    values[0, :3] = [0.0, -0.0, 1e-44]
    buf = io.BytesIO()
    if fmt == "%r":
        rows = [" ".join(repr(float(x)) for x in row) for row in values]
        buf.write(("\n".join(rows) + "\n").encode())
    else:
        np.savetxt(buf, values, fmt=fmt)
    lines = buf.getvalue().decode().splitlines()
    data = "".join(f"word{i} {line}\n" for i, line in enumerate(lines)).encode()
    report = matches_gensim(data, {"no_header": True})
    assert report.rows == 50


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
float64s = st.floats(allow_nan=False, allow_infinity=False,
                     min_value=-3.4e38, max_value=3.4e38)
# ASCII digits only: float() also takes other Unicode digits and '_', which are not numbers
# in vector files.
decimal_tokens = st.from_regex(
    r"\A[+-]?([0-9]{1,25}(\.[0-9]{0,25})?|\.[0-9]{1,25})([eE][+-]?[0-9]{1,2})?\Z",
    fullmatch=True)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(finite32.map(repr), float64s.map(repr),
                                  float64s.map(lambda x: f"{x:.18e}"),
                                  float64s.map(lambda x: f"{x:.9g}"), decimal_tokens),
                        min_size=1, max_size=40))
def test_generated_tokens_are_float32_of_float(values: list[str], convert_bytes: Convert,
                                               assert_same_bits: SameBits) -> None:
    with np.errstate(over="ignore"):
        values = [v for v in values if np.isfinite(np.float32(float(v)))] or ["0"]
    want = np.array([np.float32(float(v)) for v in values], dtype=np.float32)
    data = "".join(f"t{i} {v}\n" for i, v in enumerate(values))
    store, _ = convert_bytes(data)
    assert_same_bits(np.asarray(store.vectors[:, 0]), want)


# -- everything at once, against a plain-Python reading --------------------------------------


def reference_read(data: bytes, dim: int, header: bool) -> tuple[list[str], np.ndarray, int]:
    """A slow, obvious reading of the documented rules: lines split on LF, trailing ASCII
    whitespace dropped, blank lines skipped, fields separated by runs of ASCII spaces, the
    last ``dim`` fields are the values and everything before them is the word, the first of
    duplicate words kept.  Returns ``(words, vectors, blank lines)``."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if header:
        lines = lines[1:]
    words: list[str] = []
    rows: list[list[np.float32]] = []
    seen: set[str] = set()
    blank = 0
    for line in lines:
        line = line.rstrip(b" \t\r\x0b\x0c").lstrip(b" ")
        if not line:
            blank += 1
            continue
        m = re.fullmatch(rb"(.*?) +((?:[^ ]+ +){%d}[^ ]+)" % (dim - 1), line)
        assert m is not None, line
        word = m.group(1).decode("utf-8")
        values = m.group(2).split()
        if word in seen:
            continue
        seen.add(word)
        words.append(word)
        rows.append([np.float32(float(v)) for v in values])
    return words, np.array(rows, dtype=np.float32).reshape(-1, dim), blank


def quirky_file(rng: np.random.Generator, n: int, dim: int, header: bool) -> bytes:
    pieces = ["the", "of", "日本", "a\u00a0b", ". . .", "x  y", "😀", "at name@x.com", "é"]
    out: list[bytes] = []
    count = 0
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            out.append(rng.choice([b"", b"   ", b"\r", b" \t "]))
            continue
        word = "".join(rng.choice(pieces) for _ in range(int(rng.integers(1, 3))))
        if r < 0.12 and count:
            word = "the"  # a duplicate, sooner or later
        values = [rng.choice(TOKENS[:60]) for _ in range(dim)]
        sep = " " if rng.random() < 0.8 else "   "
        line = word + sep + sep.join(values)
        if rng.random() < 0.2:
            line += rng.choice([" ", "  ", "\t", " \r"])
        if rng.random() < 0.1:
            line = " " + line
        out.append(line.encode("utf-8"))
        count += 1
    body = b"\n".join(out) + (b"\n" if rng.random() < 0.7 else b"")
    return (f"{count} {dim}\n".encode() + body) if header else body


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("block", [None, 2048, 8192])
def test_random_quirky_files_against_a_plain_reading(seed: int, block: int | None,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     assert_same_bits: SameBits) -> None:
    """With small blocks, lines straddle blocks, parse parts and row batches, and a block
    holds several row batches."""
    from embstore._convert import limits as converter

    if block is not None:
        monkeypatch.setattr(converter, "BLOCK_SIZE", block)
        monkeypatch.setattr(converter, "PART", 97)
        monkeypatch.setattr(converter, "MAX_LINE", 1 << 12)
        monkeypatch.setattr(converter, "ROW_BATCH_BYTES", 4 * 3 * 20)
    rng = np.random.default_rng(seed)
    header = seed % 2 == 0
    data = quirky_file(rng, 3000, 3, header)
    src = tmp_path / "quirky.txt"
    src.write_bytes(data)
    report = embstore.convert(src, tmp_path / "q.emb", quiet=True)
    words, vectors, blank = reference_read(data, 3, header)
    with embstore.open(tmp_path / "q.emb") as store:
        expect(store, words, vectors, assert_same_bits)
    assert report.blank_lines == blank
    assert report.duplicates == report.records - len(words)
