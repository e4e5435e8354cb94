"""The store's surface beyond single lookups: pickling by path, iteration, ``store[list]``,
batch getters that cannot hand out another word's vector, closed stores, list-like words,
and files that are not regular files."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import embstore

WORDS = ["the", "of", "Berlin", "naïve", "日本"]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    vecs = np.arange(len(WORDS) * 3, dtype=np.float32).reshape(-1, 3) + 1
    path = tmp_path / "s.emb"
    embstore.write(path, WORDS, vecs)
    return path


def test_iterating_a_store_gives_its_words_in_row_order(store_path: Path) -> None:
    with embstore.open(store_path) as s:
        assert list(s) == WORDS == list(s.words)
        assert dict(zip(s, range(len(s)), strict=True)) == {w: i for i, w in enumerate(WORDS)}


def test_a_list_of_words_gives_a_matrix_or_names_the_missing(store_path: Path) -> None:
    with embstore.open(store_path) as s:
        m = s[["日本", "the", "the"]]
        assert m.dtype == np.float32 and m.shape == (3, 3)
        np.testing.assert_array_equal(m, s.vectors[[4, 0, 0]])
        assert s[np.array(["of"])].shape == (1, 3)
        assert s[[]].shape == (0, 3)
        with pytest.raises(KeyError, match=r"2 of 3 words are not in the store: 'x', 'y'"):
            s[["x", "the", "y"]]
        with pytest.raises(KeyError, match="and 5 more"):
            s[[f"missing{i}" for i in range(15)]]


@pytest.mark.parametrize(("missing", "fill"), [("zeros", 0.0), ("nan", np.nan), ("mean", None)])
def test_get_vectors_fills_missing_rows_by_policy(store_path: Path, missing: str,
                                                  fill: float | None) -> None:
    with embstore.open(store_path) as s:
        got = s.get_vectors(["of", "absent", "berlin"], missing=missing, fallbacks=["title"])
        np.testing.assert_array_equal(got[0], s["of"])
        np.testing.assert_array_equal(got[2], s["Berlin"])
        want = s.mean.astype(np.float32) if fill is None else np.full(3, fill, np.float32)
        np.testing.assert_array_equal(got[1], want)
        # the mistake this replaces: a -1 row id silently selects the last row
        assert s.lookup(["absent"])[0] == -1 and not np.array_equal(got[1], s.vectors[-1])


def test_get_vectors_errors(store_path: Path) -> None:
    with embstore.open(store_path) as s:
        with pytest.raises(KeyError, match=r"'absent'.*missing='zeros'"):
            s.get_vectors(["of", "absent"])
        with pytest.raises(ValueError, match="missing must be one of"):
            s.get_vectors(["of"], missing="last")
        with pytest.raises(ValueError, match="unknown fallback"):
            s.get_vectors(["of"], missing="zeros", fallbacks=["reverse"])
        with pytest.raises(TypeError, match="single str"):
            s.get_vectors("of")


def test_a_store_pickles_as_its_path(store_path: Path) -> None:
    with embstore.open(store_path) as s:
        data = pickle.dumps(s)
        assert len(data) < 300 + len(str(store_path))  # never the vectors
        same = pickle.loads(data)
        assert same.path == s.path and same.store_id == s.store_id
        np.testing.assert_array_equal(same.vectors, s.vectors)
    # in another process, as a worker pool would receive it
    code = ("import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
            "print(len(s), s.get_index('naïve'))")
    run = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().split() == ["5", "3"]


def test_unpickling_refuses_a_replaced_store(store_path: Path, tmp_path: Path) -> None:
    with embstore.open(store_path) as s:
        data = pickle.dumps(s)
    embstore.write(store_path, WORDS, np.zeros((5, 3)), force=True)
    with pytest.raises(embstore.FormatError, match="no longer the store that was pickled"):
        pickle.loads(data)
    with embstore.open(store_path) as s, pytest.raises(embstore.StoreClosedError):
        s.close()
        pickle.dumps(s)


def test_store_id_is_a_content_identity(store_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "copy.emb"
    other.write_bytes(store_path.read_bytes())
    with embstore.open(store_path) as a, embstore.open(other) as b:
        assert a.store_id == b.store_id  # a copy is the same store (a cluster node's copy)
    embstore.write(other, WORDS, np.ones((5, 3)), force=True)
    with embstore.open(store_path) as a, embstore.open(other) as b:
        assert a.store_id != b.store_id


def test_word_list_behaves_like_a_list(store_path: Path) -> None:
    with embstore.open(store_path) as s:
        words = s.words
        assert words.index("Berlin") == 2 and words.index("日本", -1) == 4
        assert words.index("the", 0, -1) == 0
        with pytest.raises(ValueError):
            words.index("the", -2)
        with pytest.raises(ValueError):
            words.index("日本", 0, -1)
        with pytest.raises(TypeError):
            words[1.5]  # type: ignore[call-overload]
        assert words[np.int64(1)] == "of" and words[-1] == "日本"


def test_a_closed_store_raises_everywhere(store_path: Path) -> None:
    s = embstore.open(store_path)
    vectors = s.vectors
    s.close()
    assert "closed" in repr(s)
    for use in (lambda: len(s), lambda: list(s), lambda: s.vectors, lambda: s.words,
                lambda: s.lookup(["the"]), lambda: s.get_vectors(["the"]),
                lambda: s.vocab_arrays, lambda: s.section(1), lambda: s.get(3)):
        with pytest.raises(embstore.StoreClosedError, match="closed"):
            use()
    assert vectors[0, 0] == 1.0  # arrays handed out stay valid


def test_threads_share_one_store(store_path: Path) -> None:
    with embstore.open(store_path) as s:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(200):
                    assert s.lookup(WORDS).tolist() == list(range(5))
                    assert s["naïve"][0] == 10.0
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.emb"
    os.mkfifo(fifo)
    code = (f"import embstore\ntry:\n    embstore.open({str(fifo)!r})\n"
            "except embstore.FormatError as e:\n    print(e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert "not a regular file (a named pipe)" in run.stdout, run.stderr
    with pytest.raises(embstore.FormatError, match="a directory"):
        embstore.open(tmp_path)
