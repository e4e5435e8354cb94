"""``store.subset`` and ``embstore subset``: a store of a vocabulary's words, bit-identical.

The oracle is the source store itself (and the classic loop over the vocabulary): every word
of the vocabulary that the source has is in the subset with exactly its vector, nothing else
is, and the rows follow the order asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import embstore
from embstore.cli import main as cli


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, list[str], np.ndarray]:
    words = [f"w{i}" for i in range(300)] + ["Apple", "berlin", "ÉCOLE"]
    vecs = np.random.default_rng(7).standard_normal((len(words), 8)).astype(np.float32)
    path = tmp_path / "src.emb"
    embstore.write(path, words, vecs)
    return path, words, vecs


def _check_rows(path: Path, want_words: list[str], words: list[str], vecs: np.ndarray) -> None:
    with embstore.open(path) as s:
        assert list(s) == want_words
        rows = [words.index(w) for w in want_words]
        assert np.array_equal(s.vectors.view(np.uint32), vecs[rows].view(np.uint32))
    assert embstore.verify(path).ok


def test_subset_in_store_order(source, tmp_path: Path) -> None:
    path, words, vecs = source
    vocab = {"w250": 1, "w3": 2, "missing": 3, "w3b": 4, "w100": 5}
    with embstore.open(path) as store:
        result = store.subset(vocab, tmp_path / "sub.emb")
    assert (result.rows, result.dim) == (3, 8)
    _check_rows(tmp_path / "sub.emb", ["w3", "w100", "w250"], words, vecs)
    with embstore.open(tmp_path / "sub.emb") as s:
        meta = s.metadata
    assert meta["subset"] == {"vocabulary_words": 5, "order": "store", "fallbacks": []}
    assert meta["source"]["format"] == "embstore-subset" and len(meta["source"]["store_id"]) == 32


def test_subset_in_vocabulary_order_with_fallbacks(source, tmp_path: Path) -> None:
    path, words, vecs = source
    tokens = ["", "[UNK]", "w9", "apple", "Berlin", "w1", "w9", "école", "nothing"]
    with embstore.open(path) as store:
        store.subset(tokens, tmp_path / "sub.emb", order="vocab",
                     fallbacks=["title", "lower", "upper"])
    # the store words found (Apple by title, berlin by lower, ÉCOLE by upper), first use wins
    _check_rows(tmp_path / "sub.emb", ["w9", "Apple", "berlin", "w1", "ÉCOLE"], words, vecs)


def test_subset_of_a_large_store_in_windows(source, tmp_path: Path, monkeypatch) -> None:
    from embstore import subset as subset_mod

    monkeypatch.setattr(subset_mod, "WINDOW_BYTES", 4 * 8 * 5)  # 5 rows a batch
    path, words, vecs = source
    vocab = [words[i] for i in range(0, 300, 3)]
    with embstore.open(path) as store:
        store.subset(vocab, tmp_path / "a.emb")
        store.subset(list(reversed(vocab)), tmp_path / "b.emb", order="vocab")
    _check_rows(tmp_path / "a.emb", vocab, words, vecs)
    _check_rows(tmp_path / "b.emb", list(reversed(vocab)), words, vecs)


def test_subset_refusals(source, tmp_path: Path) -> None:
    path, _, _ = source
    with embstore.open(path) as store:
        with pytest.raises(ValueError, match="order must be"):
            store.subset(["w1"], tmp_path / "x.emb", order="random")
        with pytest.raises(ValueError, match="none of the 2 vocabulary words"):
            store.subset(["zz", "yy"], tmp_path / "x.emb")
        with pytest.raises(embstore.OutputError, match="is the same file as the input"):
            store.subset(["w1"], path, force=True)
        store.subset(["w1"], tmp_path / "x.emb")
        with pytest.raises(embstore.StoreExistsError):
            store.subset(["w2"], tmp_path / "x.emb")
    with embstore.open(path) as store:
        assert len(store) == 303  # untouched


def test_cli_subset(source, tmp_path: Path, capsys) -> None:
    path, words, vecs = source
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"w5": 1, "w2": 2, "apple": 3}), encoding="utf-8")
    out = tmp_path / "sub.emb"
    assert cli(["subset", str(path), str(vocab), str(out), "--order", "vocab",
                "--fallback", "title"]) == 0
    assert "Wrote 3 words x 8" in capsys.readouterr().out
    _check_rows(out, ["w5", "w2", "Apple"], words, vecs)
    assert cli(["subset", str(path), str(vocab), str(out)]) == 1
    assert "--force" in capsys.readouterr().err  # the library's force=True, as a flag
    assert cli(["subset", str(path), str(vocab), str(out), "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2  # no fallback: 'apple' is absent
