"""The converter against gensim: every vector file in gensim's own test data, read by
``KeyedVectors.load_word2vec_format`` and by ``embstore.convert``, must give the same words in
the same order and bit-identical float32 vectors.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embstore
from embstore._convert import limits as converter

# file -> (gensim keyword arguments, format embstore must detect, rows, dim)
GENSIM_FILES: dict[str, tuple[dict[str, Any], str, int, int]] = {
    "EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt": ({}, "text", 20, 300),
    "IT.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt": ({}, "text", 20, 300),
    "crime-and-punishment.vec": ({}, "text", 291, 5),
    "euclidean_vectors.bin": ({"binary": True}, "binary", 2747, 10),
    "high_precision.kv.bin": ({"binary": True}, "binary", 2, 2),
    "high_precision.kv.txt": ({}, "text", 2, 2),
    "lee_fasttext.vec": ({}, "text", 1762, 10),
    "poincare_vectors.bin": ({"binary": True}, "binary", 1182, 10),
    "test_glove.txt": ({"no_header": True}, "glove", 76, 50),
    "toy-model.vec": ({}, "text", 22, 5),
    "word2vec_pre_kv_c": ({}, "text", 1750, 10),
}
# Files whose words are not all valid UTF-8: gensim needs unicode_errors to read them.
UNICODE_FILES = {
    "pang_lee_polarity_fasttext.vec": 150,  # first line with invalid UTF-8
    "w2v_keyedvectors_load_test.modeldata": 2,
}
SMALL = ["toy-model.vec", "high_precision.kv.bin", "test_glove.txt", "crime-and-punishment.vec"]


@cache
def gensim_load(path: str, **kwargs: Any) -> tuple[list[str], np.ndarray]:
    """gensim's reading of a file (cached: several tests compare against the same one)."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(path, **kwargs)
    return list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)


def gensim_kwargs(name: str) -> dict[str, Any]:
    return dict(GENSIM_FILES[name][0])


@pytest.fixture
def check_against_gensim(tmp_path: Path,
                         assert_same_bits: Callable[[np.ndarray, np.ndarray], None]
                         ) -> Callable[..., Any]:
    """Convert ``src`` and compare the store with gensim reading ``reference``."""
    counter = iter(range(10_000))

    def check(src: Path, reference: Path, gensim_kw: dict[str, Any],
              **options: Any) -> Any:
        dst = tmp_path / f"out{next(counter)}.emb"
        report = embstore.convert(src, dst, quiet=True, **options)
        words, vectors = gensim_load(str(reference), **gensim_kw)
        with embstore.open(dst) as store:
            assert len(store) == len(words)
            assert store.dim == vectors.shape[1]
            assert list(store.words) == words
            assert_same_bits(np.asarray(store.vectors), vectors)
        assert report.rows == len(words)
        assert report.dim == vectors.shape[1]
        return report

    return check


@pytest.mark.parametrize("name", sorted(GENSIM_FILES))
def test_matches_gensim(name: str, gensim_data: Path,
                        check_against_gensim: Callable[..., Any]) -> None:
    kw, fmt, rows, dim = GENSIM_FILES[name]
    path = gensim_data / name
    report = check_against_gensim(path, path, kw)
    assert report.format == fmt
    assert (report.rows, report.dim) == (rows, dim)
    assert report.compression is None
    assert report.duplicates == 0 and report.skipped_lines == 0


@pytest.mark.parametrize("name", sorted(UNICODE_FILES))
@pytest.mark.parametrize("errors", ["replace", "ignore"])
def test_invalid_utf8_matches_gensim(name: str, errors: str, gensim_data: Path,
                                     check_against_gensim: Callable[..., Any]) -> None:
    path = gensim_data / name
    check_against_gensim(path, path, {"unicode_errors": errors}, unicode_errors=errors)


@pytest.mark.parametrize("name", sorted(UNICODE_FILES))
def test_invalid_utf8_strict_names_the_line(name: str, gensim_data: Path,
                                            tmp_path: Path) -> None:
    path = gensim_data / name
    line = UNICODE_FILES[name]
    with pytest.raises(embstore.ConversionError) as info:
        embstore.convert(path, tmp_path / "out.emb", quiet=True)
    err = info.value
    assert err.line == line
    assert str(err).startswith(f"{path}:{line}: ")
    assert "not valid UTF-8" in str(err)
    assert 'unicode_errors="replace"' in str(err)
    assert "\n" not in str(err)
    assert not (tmp_path / "out.emb").exists()
    # gensim refuses the same file under strict decoding too.
    with pytest.raises(UnicodeDecodeError):
        gensim_load(str(path))


def test_pretrained_vec_promises_more_rows_than_it_has(gensim_data: Path,
                                                       tmp_path: Path) -> None:
    path = gensim_data / "pretrained.vec"
    with pytest.raises(embstore.ConversionError) as info:
        embstore.convert(path, tmp_path / "out.emb", quiet=True)
    err = info.value
    assert err.line == 2  # the last line of the file, where the rows run out
    assert str(err).startswith(f"{path}:2: ")
    assert "header declares 3 rows" in str(err) and "ends after 1" in str(err)
    assert "limit=1" in str(err)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(EOFError):
        gensim_load(str(path))


@pytest.mark.parametrize("name", sorted(GENSIM_FILES))
def test_without_extension_detects_format_from_content(name: str, gensim_data: Path,
                                                       tmp_path: Path,
                                                       check_against_gensim: Callable[..., Any]
                                                       ) -> None:
    kw, fmt, _, _ = GENSIM_FILES[name]
    copy = tmp_path / "vectors"
    shutil.copyfile(gensim_data / name, copy)
    report = check_against_gensim(copy, gensim_data / name, kw)
    assert report.format == fmt


@pytest.mark.parametrize("name", ["toy-model.vec", "high_precision.kv.bin"])
def test_misleading_extension_is_ignored(name: str, gensim_data: Path, tmp_path: Path,
                                         check_against_gensim: Callable[..., Any]) -> None:
    """A text file named .bin and a binary file named .txt.gz (but not compressed)."""
    kw, fmt, _, _ = GENSIM_FILES[name]
    copy = tmp_path / ("vectors.bin" if fmt == "text" else "vectors.txt.gz")
    shutil.copyfile(gensim_data / name, copy)
    assert check_against_gensim(copy, gensim_data / name, kw).format == fmt


def _compress(kind: str, data: bytes, member: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, data)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zip"])
@pytest.mark.parametrize("name", [*SMALL, "euclidean_vectors.bin"])
@pytest.mark.parametrize("suffix", ["", ".txt"])
def test_compressed_copies(kind: str, name: str, suffix: str, gensim_data: Path,
                           tmp_path: Path, check_against_gensim: Callable[..., Any]) -> None:
    """Compression is detected from magic bytes, whatever the file is called."""
    kw, fmt, _, _ = GENSIM_FILES[name]
    original = gensim_data / name
    copy = tmp_path / f"compressed{suffix}"
    copy.write_bytes(_compress(kind, original.read_bytes(), name))
    report = check_against_gensim(copy, original, kw)
    assert report.format == fmt
    assert report.compression == kind
    assert report.bytes_read == original.stat().st_size


def test_gzip_with_matching_extension(gensim_data: Path, tmp_path: Path,
                                      check_against_gensim: Callable[..., Any]) -> None:
    """gensim itself can read ``.gz``: compare with its reading of the compressed file."""
    original = gensim_data / "lee_fasttext.vec"
    copy = tmp_path / "lee_fasttext.vec.gz"
    copy.write_bytes(gzip.compress(original.read_bytes()))
    check_against_gensim(copy, copy, {})


@pytest.mark.parametrize("name", ["lee_fasttext.vec", "word2vec_pre_kv_c", "toy-model.vec",
                                  "euclidean_vectors.bin", "poincare_vectors.bin",
                                  "high_precision.kv.bin", "test_glove.txt"])
def test_limit_matches_gensim(name: str, gensim_data: Path,
                              check_against_gensim: Callable[..., Any]) -> None:
    kw, _, rows, _ = GENSIM_FILES[name]
    path = gensim_data / name
    for limit in sorted({1, 2, 7, max(1, rows - 1), rows, rows + 5}):
        report = check_against_gensim(path, path, {**kw, "limit": limit}, limit=limit)
        assert report.rows == min(limit, rows)
        assert report.records == min(limit, rows)


def test_limit_converts_a_truncated_file(gensim_data: Path,
                                         check_against_gensim: Callable[..., Any]) -> None:
    """The hint of the "file ends early" error works: --limit N converts what is there."""
    path = gensim_data / "pretrained.vec"
    report = check_against_gensim(path, path, {"limit": 1}, limit=1)
    assert report.rows == 1 and report.declared_rows == 3


@pytest.mark.parametrize(("name", "fmt"), [
    ("toy-model.vec", "text"),
    ("lee_fasttext.vec", "text"),
    ("high_precision.kv.bin", "binary"),
    ("euclidean_vectors.bin", "binary"),
    ("test_glove.txt", "glove"),
])
def test_explicit_format(name: str, fmt: str, gensim_data: Path,
                         check_against_gensim: Callable[..., Any]) -> None:
    path = gensim_data / name
    report = check_against_gensim(path, path, gensim_kwargs(name), format=fmt)
    assert report.format == fmt


def test_format_text_on_a_file_without_header(gensim_data: Path, tmp_path: Path) -> None:
    path = gensim_data / "test_glove.txt"
    with pytest.raises(embstore.ConversionError) as info:
        embstore.convert(path, tmp_path / "out.emb", format="text", quiet=True)
    assert info.value.line == 1
    assert "expected a header line 'count dim'" in str(info.value)
    assert 'format="glove"' in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_format_binary_on_a_text_file(gensim_data: Path, tmp_path: Path) -> None:
    path = gensim_data / "toy-model.vec"
    with pytest.raises(embstore.ConversionError) as info:
        embstore.convert(path, tmp_path / "out.emb", format="binary", quiet=True)
    assert info.value.offset is not None
    assert list(tmp_path.iterdir()) == []


def test_format_text_on_a_binary_file(gensim_data: Path, tmp_path: Path) -> None:
    path = gensim_data / "euclidean_vectors.bin"
    with pytest.raises(embstore.ConversionError) as info:
        embstore.convert(path, tmp_path / "out.emb", format="text", quiet=True)
    assert info.value.line == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("option", "value"), [
    ("format", "csv"), ("unicode_errors", "surrogateescape"), ("on_bad_line", "warn"),
    ("limit", 0), ("limit", -3), ("limit", 2.5),
])
def test_bad_options_raise_value_error(option: str, value: Any, gensim_data: Path,
                                       tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=option.split("_")[0]):
        embstore.convert(gensim_data / "toy-model.vec", tmp_path / "out.emb",
                         **{option: value})
    assert list(tmp_path.iterdir()) == []


def test_report_and_metadata(gensim_data: Path, tmp_path: Path) -> None:
    src = gensim_data / "lee_fasttext.vec"
    dst = tmp_path / "lee.emb"
    report = embstore.convert(src, dst, quiet=True)
    assert report.source == str(src) and report.destination == str(dst)
    assert report.records == 1762 and report.declared_rows == 1762
    assert report.input_bytes == src.stat().st_size == report.bytes_read
    assert report.store_bytes == dst.stat().st_size
    assert report.seconds > 0 and report.mb_per_s > 0
    line = str(report)
    assert "\n" not in line and "1,762 words x 10" in line and "word2vec text" in line
    d = report.to_dict()
    assert d["rows"] == 1762 and d["format"] == "text" and "mb_per_s" in d
    with embstore.open(dst) as store:
        meta = store.metadata
    assert meta["embstore_version"] == embstore.__version__
    assert meta["source"] == {"name": "lee_fasttext.vec", "format": "text", "compression": None,
                              "bytes": src.stat().st_size, "declared_rows": 1762}
    assert meta["records"] == 1762 and meta["duplicates"] == 0 and meta["limit"] is None


def test_same_input_gives_identical_sections(gensim_data: Path, tmp_path: Path) -> None:
    """The store is determined by its input (the index included); only metadata may differ."""
    src = gensim_data / "poincare_vectors.bin"
    stores = []
    for name in ("a.emb", "b.emb"):
        embstore.convert(src, tmp_path / name, quiet=True)
        stores.append(embstore.open(tmp_path / name))
    a, b = stores
    assert a.header == b.header
    for attr in ("vectors", "mean", "std"):
        assert np.array_equal(getattr(a, attr), getattr(b, attr)), attr
    for attr in ("offsets", "data", "index"):
        assert np.array_equal(getattr(a.vocab_arrays, attr), getattr(b.vocab_arrays, attr)), attr


@pytest.mark.parametrize("name", ["lee_fasttext.vec", "euclidean_vectors.bin", "test_glove.txt",
                                  "pang_lee_polarity_fasttext.vec"])
@pytest.mark.parametrize("block", [4104, 32776])  # the reader needs a multiple of 8
def test_small_blocks_straddle_every_boundary(name: str, block: int, gensim_data: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              check_against_gensim: Callable[..., Any]) -> None:
    """Tiny read blocks, parse parts and row batches put lines and binary records across
    block and batch boundaries everywhere (and several row batches in one block); the
    result must not change."""
    monkeypatch.setattr(converter, "BLOCK_SIZE", block)
    monkeypatch.setattr(converter, "PART", 61)
    monkeypatch.setattr(converter, "MAX_LINE", 1 << 14)
    monkeypatch.setattr(converter, "ROW_BATCH_BYTES", 4 * 100)
    kw = dict(GENSIM_FILES[name][0]) if name in GENSIM_FILES else {"unicode_errors": "replace"}
    path = gensim_data / name
    options = {"unicode_errors": "replace"} if name in UNICODE_FILES else {}
    check_against_gensim(path, path, kw, **options)
    # and with a limit that ends inside a block
    check_against_gensim(path, path, {**kw, "limit": 333}, limit=333, **options)


def test_every_gensim_test_file_converts_or_raises_conversion_error(gensim_data: Path,
                                                                    tmp_path: Path) -> None:
    """gensim's test data is full of files that are not vector files (pickles, .npy,
    corpora, fastText native models, Matrix Market...): each one either converts or is
    refused with a ConversionError -- never another exception, never a partial store."""
    converted = set()
    for path in sorted(p for p in gensim_data.iterdir() if p.is_file()):
        dst = tmp_path / "out.emb"
        try:
            embstore.convert(path, dst, quiet=True)
        except embstore.ConversionError as exc:
            assert "\n" not in str(exc)
            assert str(exc).startswith(str(path))
            assert not dst.exists()
        else:
            converted.add(path.name)
            dst.unlink()
        assert list(tmp_path.iterdir()) == []
    assert converted == set(GENSIM_FILES)
