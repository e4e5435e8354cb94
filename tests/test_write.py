"""``embstore.write``: a store from arrays, through the one store builder.

The oracle is the converter: writing words and vectors gives the store that converting the
same vectors saved as a word2vec file gives, section for section (metadata aside).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import embstore

SAME_SECTIONS = ("vectors", "word_offsets", "word_bytes", "index", "stats")


def _sections(path: Path) -> dict[str, bytes]:
    with embstore.open(path) as s:
        return {e.name: bytes(s.raw(e.offset, e.length)) for e in s.header.sections.values()}


def test_write_equals_convert_of_the_same_vectors(tmp_path: Path, make_text) -> None:
    words = ["the", "Ünïcode", "日本", "emoji🙂", "a b", "of"]
    vecs = np.random.default_rng(3).standard_normal((6, 5)).astype(np.float32)
    src = tmp_path / "v.txt"
    src.write_text(make_text(words, vecs), encoding="utf-8")
    embstore.convert(src, tmp_path / "c.emb", quiet=True)
    result = embstore.write(tmp_path / "w.emb", words, vecs, metadata={"model": "mine", "n": 6})
    assert (result.rows, result.dim, result.duplicates) == (6, 5, 0)
    assert result.file_bytes == (tmp_path / "w.emb").stat().st_size
    a, b = _sections(tmp_path / "c.emb"), _sections(tmp_path / "w.emb")
    for name in SAME_SECTIONS:
        assert a[name] == b[name], name
    with embstore.open(tmp_path / "w.emb") as s:
        assert list(s) == words and s.version == (1, 0)
        assert s.metadata["user"] == {"model": "mine", "n": 6}
        assert s.metadata["source"]["format"] == "arrays"
    assert embstore.verify(tmp_path / "w.emb").ok


def test_write_rounds_float64_streams_memmaps_and_drops_duplicates(tmp_path: Path,
                                                                   monkeypatch) -> None:
    from embstore._build import builder

    monkeypatch.setattr(builder, "BATCH_BYTES", 4 * 3 * 7)  # 7 rows a batch
    n = 100
    words = [f"w{i % 60}" for i in range(n)]  # rows 60.. repeat earlier words
    vecs = np.random.default_rng(0).standard_normal((n, 3))
    mm = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float64,
                                   shape=vecs.shape)
    mm[:] = vecs
    mm.flush()
    ro = np.load(tmp_path / "v.npy", mmap_mode="r")
    result = embstore.write(tmp_path / "s.emb", words, ro)
    assert (result.rows, result.duplicates) == (60, 40)
    with embstore.open(tmp_path / "s.emb") as s:
        np.testing.assert_array_equal(s.vectors, vecs[:60].astype(np.float32))
        assert list(s) == [f"w{i}" for i in range(60)]  # the first of equal words is kept


@pytest.mark.parametrize(("words", "vectors", "error", "match"), [
    (["a", "b"], np.ones((3, 2)), ValueError, "2 words but 3 vectors"),
    (["a"], np.ones(2), ValueError, "2-d"),
    ([], np.ones((0, 2)), ValueError, "no words"),
    (["a", "b"], np.array([[1.0, np.nan], [1, 2]]), embstore.ConversionError, r"'a' \(row 0\)"),
    (["a", "b"], np.array([[1.0, 2], [1e300, 2]]), embstore.ConversionError, r"'b' \(row 1\)"),
    (["a", 7], np.ones((2, 2)), TypeError, "words must be str"),
    (["ok", "bad\ud800"], np.ones((2, 2)), embstore.ConversionError, "surrogate"),
    ("ab", np.ones((2, 2)), TypeError, "single str"),
    (["a"], np.array([["x", "y"]]), TypeError, "real numbers"),
    (["a"], np.ones((1, 0)), embstore.StoreLimitError, "dimension 0"),
])
def test_write_refuses_bad_input(tmp_path: Path, words, vectors, error, match) -> None:
    with pytest.raises(error, match=match):
        embstore.write(tmp_path / "s.emb", words, vectors)
    assert list(tmp_path.iterdir()) == []


def test_write_never_replaces_without_force(tmp_path: Path) -> None:
    dst = tmp_path / "s.emb"
    embstore.write(dst, ["a"], np.ones((1, 2)))
    before = dst.read_bytes()
    with pytest.raises(embstore.StoreExistsError, match="force=True"):
        embstore.write(dst, ["b"], np.zeros((1, 2)))
    assert dst.read_bytes() == before
    embstore.write(dst, ["b"], np.zeros((1, 2)), force=True)
    with embstore.open(dst) as s:
        assert list(s) == ["b"]


def test_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="metadata must be a dict"):
        embstore.write(tmp_path / "s.emb", ["a"], np.ones((1, 2)), metadata=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        embstore.write(tmp_path / "s.emb", ["a"], np.ones((1, 2)), metadata={"x": object()})
    assert list(tmp_path.iterdir()) == []
