"""Opening and reading a store: the mapping API, words, vectors, statistics, metadata, and
refusing damaged headers."""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

import embstore
from embstore import format as fmt

Build = Callable[..., tuple[Path, list[str], np.ndarray]]


@pytest.fixture(params=[(1, 1), (7, 3), (1000, 16), (20_000, 5)],
                ids=lambda p: f"{p[0]}x{p[1]}")
def sized(request: pytest.FixtureRequest, build_store: Build
          ) -> Iterator[tuple[embstore.EmbeddingStore, list[str], np.ndarray]]:
    n, dim = request.param
    path, words, vecs = build_store(n, dim, seed=n)
    store = embstore.open(path)
    yield store, words, vecs
    store.close()


def test_basic_mapping_api(sized: tuple[embstore.EmbeddingStore, list[str], np.ndarray],
                           assert_same_bits: Callable[..., None]) -> None:
    store, words, vecs = sized
    n, dim = vecs.shape
    assert len(store) == n and store.dim == dim
    assert store.vectors.shape == (n, dim) and store.vectors.dtype == np.float32
    assert_same_bits(np.asarray(store.vectors), vecs)
    rng = np.random.default_rng(0)
    for row in rng.integers(0, n, min(n, 300)).tolist():
        w = words[row]
        assert w in store
        got = store[w]
        assert_same_bits(got, vecs[row])
        assert got.flags.writeable and got.flags.owndata  # a copy, not a view of the map
        assert_same_bits(store.get(w), vecs[row])
        assert store.get_index(w) == row
    absent = ["", "not-a-word", words[0] + "\u00a0", words[0].upper() + "ZZ", "\ud800"]
    for w in absent:
        if w in words:
            continue
        assert w not in store
        assert store.get(w) is None
        sentinel = object()
        assert store.get(w, sentinel) is sentinel
        with pytest.raises(KeyError):
            store[w]
        with pytest.raises(KeyError):
            store.get_index(w)


def test_non_string_keys(build_store: Build) -> None:
    path, words, _ = build_store(5, 2)
    with embstore.open(path) as store:
        for key in (0, None, b"abc", words[0].encode(), 1.5, (words[0],)):
            assert key not in store
            with pytest.raises(KeyError):
                store[key]  # type: ignore[index]
            assert store.get(key, "d") == "d"  # type: ignore[arg-type]


def test_vectors_are_read_only_and_mapped(build_store: Build, tmp_path: Path) -> None:
    path, _, vecs = build_store(100, 4)
    with embstore.open(path) as store:
        v = store.vectors
        assert not v.flags.writeable
        with pytest.raises(ValueError):
            v[0, 0] = 1.0
        with pytest.raises(ValueError):
            v.setflags(write=True)
        base: Any = v
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        if isinstance(base, memoryview):
            base = base.obj
        assert isinstance(base, mmap.mmap)
        assert not store.mean.flags.writeable and not store.std.flags.writeable
        kept = store.vectors[10:20]
    # Arrays handed out stay valid after close: the mapping lives while they do.
    assert np.array_equal(kept, vecs[10:20])


def test_words_sequence(sized: tuple[embstore.EmbeddingStore, list[str], np.ndarray]) -> None:
    store, words, _ = sized
    wl = store.words
    n = len(words)
    assert isinstance(wl, Sequence) and isinstance(wl, embstore.WordList)
    assert len(wl) == n
    assert list(wl) == words
    assert wl[0] == words[0] and wl[-1] == words[-1] and wl[n // 2] == words[n // 2]
    assert wl[-n] == words[0]
    assert wl[np.int64(n - 1)] == words[-1]
    for sl in (slice(None), slice(0, 3), slice(-3, None), slice(2, n - 1, 2), slice(None, None, -1),
               slice(n, n + 5), slice(5, 2), slice(-n - 10, 2), slice(1, None, 7)):
        assert wl[sl] == words[sl], sl
    for bad in (n, -n - 1, 10**12):
        with pytest.raises(IndexError):
            wl[bad]
    assert words[-1] in wl and "not-a-word" not in wl and cast(Any, 3) not in wl
    assert wl.index(words[-1]) == n - 1
    assert wl.index(words[0], 0, 1) == 0
    with pytest.raises(ValueError):
        wl.index("not-a-word")
    with pytest.raises(ValueError):
        wl.index(words[0], 1)
    assert wl.count(words[0]) == 1 and wl.count("not-a-word") == 0
    assert list(reversed(wl))[:3] == words[::-1][:3]
    assert "WordList([" in repr(wl) and f"n={n}" in repr(wl)


def test_words_are_lazy(build_store: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexing one word decodes one word, not the vocabulary."""
    path, words, _ = build_store(5000, 2)
    with embstore.open(path) as store:
        calls: list[int] = []
        original = embstore.WordList._decode

        def counting(self: embstore.WordList, raw: bytes, row: int) -> str:
            calls.append(row)
            return original(self, raw, row)

        monkeypatch.setattr(embstore.WordList, "_decode", counting)
        assert store.words[4321] == words[4321]
        assert calls == [4321]
        assert store.words[100:103] == words[100:103]
        assert calls == [4321, 100, 101, 102]


def test_mean_and_std_match_numpy(gensim_data: Path, tmp_path: Path) -> None:
    """STATS holds the float64 mean and population std of each dimension of gensim's
    reading of the file."""
    from gensim.models import KeyedVectors

    for name, kw in (("lee_fasttext.vec", {}), ("euclidean_vectors.bin", {"binary": True}),
                     ("EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt", {})):
        dst = tmp_path / f"{name}.emb"
        embstore.convert(gensim_data / name, dst, quiet=True)
        kv = KeyedVectors.load_word2vec_format(str(gensim_data / name), **kw)
        ref = kv.vectors.astype(np.float64)
        with embstore.open(dst) as store:
            assert store.mean.dtype == np.float64 and store.std.dtype == np.float64
            np.testing.assert_allclose(store.mean, ref.mean(axis=0), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(store.std, ref.std(axis=0), rtol=1e-10, atol=1e-15)


def test_stats_over_many_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 make_binary: Callable[..., bytes]) -> None:
    """Moments are merged across writer batches; large offsets test their stability."""
    from embstore._convert import limits as converter

    monkeypatch.setattr(converter, "ROW_BATCH_BYTES", 4 * 3 * 97)
    rng = np.random.default_rng(9)
    vecs = (rng.standard_normal((5000, 3)) * [1e-3, 1.0, 10.0] + [1e4, -3.0, 0.0]).astype(
        np.float32)
    src = tmp_path / "v.bin"
    src.write_bytes(make_binary([f"w{i}" for i in range(5000)], vecs))
    embstore.convert(src, tmp_path / "v.emb", quiet=True)
    ref = vecs.astype(np.float64)
    with embstore.open(tmp_path / "v.emb") as store:
        np.testing.assert_allclose(store.mean, ref.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(store.std, ref.std(axis=0), rtol=1e-8)


def test_single_row_has_zero_std(build_store: Build) -> None:
    path, _, vecs = build_store(1, 4)
    with embstore.open(path) as store:
        assert np.array_equal(store.std, np.zeros(4))
        assert np.array_equal(store.mean, vecs[0].astype(np.float64))


def test_metadata(tmp_path: Path) -> None:
    src = tmp_path / "v.txt"
    src.write_text("3 2\na 1 2\nb 3 4\na 5 6\n")
    embstore.convert(src, tmp_path / "v.emb", quiet=True, limit=3)
    with embstore.open(tmp_path / "v.emb") as store:
        meta = store.metadata
        assert meta is store.metadata  # parsed once
        assert meta["source"]["name"] == "v.txt" and meta["source"]["format"] == "text"
        assert meta["source"]["declared_rows"] == 3
        assert meta["records"] == 3 and meta["duplicates"] == 1 and meta["limit"] == 3
        assert meta["embstore_version"] == embstore.__version__
        assert meta["created"].endswith("Z")
        assert store.version == (1, 0)
        assert store.file_size == (tmp_path / "v.emb").stat().st_size
        assert repr(store) == f"<EmbeddingStore {str(tmp_path / 'v.emb')!r}: 2 words x 2>"


def test_unusual_words(convert_bytes: Callable[..., Any]) -> None:
    words = ["New\u00a0York", "😀", "🇯🇵", "東京", "café", "cafe\u0301", "a b", "Ω", "x\x7f",
             "ﬁ", "\u200d", "tab\there"]
    data = "".join(f"{w} {i} {-i}\n" for i, w in enumerate(words))
    store, _ = convert_bytes(data)
    assert list(store.words) == words
    for i, w in enumerate(words):
        assert store.get_index(w) == i and store[w].tolist() == [i, -i]
    # Unicode-equivalent spellings are different keys: no normalisation.
    assert store.get_index("café") != store.get_index("cafe\u0301")
    assert "New York" not in store and "fi" not in store


def test_the_empty_word(convert_bytes: Callable[..., Any]) -> None:
    """'ignore' can turn a word into '', which is an ordinary key."""
    store, _ = convert_bytes(b"3 1\n\xff 7\nx 8\n\xfe\xfe 9\n", unicode_errors="ignore")
    assert list(store.words) == ["", "x"]
    assert "" in store and store[""].tolist() == [7.0] and store.get_index("") == 0
    assert store.words.index("") == 0 and store.words[0] == ""


def test_context_manager_and_close(build_store: Build) -> None:
    path, words, _ = build_store(10, 2)
    with embstore.open(path) as store:
        assert words[3] in store
        kept = store.vectors  # arrays handed out stay valid after close
    assert kept.shape == (10, 2) and float(kept.sum()) == float(kept.sum())
    # A closed store raises on every access rather than looking empty.
    for use in (lambda: store[words[3]], lambda: words[3] in store,
                lambda: store.lookup([words[3]]), lambda: store.vectors, lambda: len(store),
                lambda: list(store), lambda: store.words, lambda: store.mean,
                lambda: store.get(words[3]), lambda: store[[words[3]]], lambda: store.metadata,
                lambda: store.build_matrix([words[3]]), lambda: store.store_id):
        with pytest.raises(ValueError, match="closed"):
            use()
    store.close()  # idempotent


@pytest.mark.parametrize("opener", [str, Path])
def test_open_accepts_str_and_pathlike(opener: Callable[[Any], Any], build_store: Build) -> None:
    path, _, _ = build_store(3, 2)
    with embstore.open(opener(path)) as store:
        assert store.path == str(path) and len(store) == 3


def test_many_open_stores_share_the_file(build_store: Build) -> None:
    path, words, _ = build_store(50, 3)
    stores = [embstore.open(path) for _ in range(50)]
    assert all(s.get_index(words[7]) == 7 for s in stores)
    for s in stores:
        s.close()


# -- damaged headers -------------------------------------------------------------------------

def _damage(path: Path, offset: int, data: bytes, *, fix_crc: bool) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    if fix_crc:
        head = bytearray(raw[:fmt.HEADER_LENGTH])
        struct.pack_into("<I", head, 68, 0)
        struct.pack_into("<I", raw, 68, zlib.crc32(head))
    path.write_bytes(bytes(raw))


def test_wrong_magic(build_store: Build) -> None:
    path, _, _ = build_store(5, 2)
    _damage(path, 1, b"XMB", fix_crc=True)
    with pytest.raises(embstore.FormatError, match="not an embstore store") as info:
        embstore.open(path)
    assert info.value.path == str(path) and str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("major", [2, 7, 65535])
def test_newer_major_version_says_upgrade(major: int, build_store: Build) -> None:
    path, _, _ = build_store(5, 2)
    _damage(path, 8, struct.pack("<H", major), fix_crc=True)
    with pytest.raises(embstore.FormatError) as info:
        embstore.open(path)
    text = str(info.value)
    assert f"version {major}.0" in text and "upgrade embstore" in text


def test_newer_minor_version_opens(build_store: Build) -> None:
    path, words, _ = build_store(5, 2)
    _damage(path, 10, struct.pack("<H", 3), fix_crc=True)
    with embstore.open(path) as store:
        assert store.version == (1, 3) and words[2] in store


def test_header_checksum(build_store: Build) -> None:
    path, _, _ = build_store(5, 2)
    _damage(path, 24, struct.pack("<Q", 6), fix_crc=False)
    with pytest.raises(embstore.FormatError, match="header checksum mismatch"):
        embstore.open(path)


@pytest.mark.parametrize("keep", [0, 10, 100, 4095, 4096, -1])
def test_truncated_store(keep: int, build_store: Build) -> None:
    path, _, _ = build_store(200, 8)
    raw = path.read_bytes()
    path.write_bytes(raw[:keep] if keep >= 0 else raw[:-1])
    with pytest.raises(embstore.FormatError) as info:
        embstore.open(path)
    if keep >= 100:
        assert "truncated" in str(info.value)


def test_trailing_data(build_store: Build) -> None:
    path, _, _ = build_store(20, 2)
    with path.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(embstore.FormatError, match="trailing data"):
        embstore.open(path)


def test_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("the 1 2\n" * 1000)
    with pytest.raises(embstore.FormatError, match="not an embstore store"):
        embstore.open(path)
    with pytest.raises(FileNotFoundError):
        embstore.open(tmp_path / "missing.emb")
    with pytest.raises(embstore.FormatError, match="not a regular file"):
        embstore.open(tmp_path)
    assert issubclass(embstore.FormatError, embstore.EmbstoreError)
