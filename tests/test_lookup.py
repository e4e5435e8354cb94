"""Batch lookup (store.lookup) against a plain Python dict of word -> row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embstore
from embstore.lookup import encode_words

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"

# Words that differ only in ways a careless comparison would miss.
UNICODE_WORDS = [
    "\u00e9", "e\u0301", "\u00c9", "stra\u00dfe", "STRASSE", "\u00df", "\u0130", "i\u0307",
    "\u0131", "日本", "日本語", "\U0001f600", "\U0001f44d\U0001f3fd", "שלום", "مرحبا",
    "zero\u200bwidth", "\ufb01", "fi", "\u2126", "\u03a9", "123", ".", "'s", "&amp;",
    "a" * 1000, "x", "the",
]


def write_text_vectors(path, words, dim=4, seed=0):
    vecs = np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{len(words)} {dim}\n")
        for w, v in zip(words, vecs, strict=True):
            fh.write(w + " " + " ".join(repr(float(x)) for x in v) + "\n")


class Loaded:
    def __init__(self, store, words):
        self.store = store
        self.words = words
        self.ref = {w: i for i, w in enumerate(words)}

    def expected(self, queries):
        return [self.ref.get(q, -1) for q in queries]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lookup")
    out = {}
    for name, kwargs in (("lee_fasttext.vec", {}), ("euclidean_vectors.bin", {"binary": True}),
                         ("test_glove.txt", {"no_header": True})):
        kv = KeyedVectors.load_word2vec_format(str(GENSIM_DATA / name), **kwargs)
        embstore.convert(GENSIM_DATA / name, tmp / f"{name}.emb", quiet=True)
        out[name] = Loaded(embstore.open(tmp / f"{name}.emb"), list(kv.index_to_key))
    src = tmp / "unicode.vec"
    write_text_vectors(src, UNICODE_WORDS)
    embstore.convert(src, tmp / "unicode.emb", quiet=True)
    out["unicode"] = Loaded(embstore.open(tmp / "unicode.emb"), list(UNICODE_WORDS))
    yield out
    for loaded in out.values():
        loaded.store.close()


@pytest.fixture(params=["lee_fasttext.vec", "euclidean_vectors.bin", "test_glove.txt", "unicode"])
def loaded(request, stores):
    return stores[request.param]


def variants(word):
    return [word.lower(), word.upper(), word.capitalize(), word + "s", word[:-1], " " + word,
            word + "\x00"]


def test_every_word_and_near_misses(loaded):
    queries = []
    for w in loaded.words:
        queries.append(w)
        queries.extend(variants(w))
    queries.extend(["", "\x00", " ", "\n", "definitely-not-a-word", "日本語です"])
    rng = np.random.default_rng(0)
    queries = [queries[i] for i in rng.permutation(len(queries))]
    rows = loaded.store.lookup(queries)
    assert rows.dtype == np.int64
    assert rows.shape == (len(queries),)
    assert rows.tolist() == loaded.expected(queries)
    assert (rows >= 0).sum() >= len(loaded.words)


def test_agrees_with_single_word_path(loaded):
    """The compiled batch path and the pure-Python path of get_index / in / [] agree."""
    queries = loaded.words[:200] + [v for w in loaded.words[:50] for v in variants(w)]
    rows = loaded.store.lookup(queries).tolist()
    for q, r in zip(queries, rows, strict=True):
        assert (q in loaded.store) == (r >= 0)
        if r >= 0:
            assert loaded.store.get_index(q) == r
            np.testing.assert_array_equal(loaded.store[q], loaded.store.vectors[r])
        else:
            assert loaded.store.get(q) is None
            with pytest.raises(KeyError):
                loaded.store.get_index(q)


@pytest.mark.parametrize("form", ["list", "tuple", "ndarray", "object-ndarray", "generator",
                                  "2d-ndarray"])
def test_sequence_forms(stores, form):
    u = stores["unicode"]
    queries = ["日本", "absent", "\u00e9", "e\u0301", "", "\U0001f600", "\ufb01"]
    if form == "list":
        arg = list(queries)
    elif form == "tuple":
        arg = tuple(queries)
    elif form == "ndarray":
        arg = np.array(queries)
    elif form == "object-ndarray":
        arg = np.array(queries, dtype=object)
    elif form == "generator":
        arg = (q for q in queries)
    else:
        queries = queries[:6]
        arg = np.array(queries).reshape(2, 3)
    assert u.store.lookup(arg).tolist() == u.expected(queries)


def test_canonically_equivalent_words_are_distinct(stores):
    u = stores["unicode"]
    rows = u.store.lookup(["\u00e9", "e\u0301", "\u2126", "\u03a9", "\u00df", "\ufb01",
                           "fi"]).tolist()
    assert len(set(rows)) == 7 and min(rows) >= 0


def test_empty_and_numpy_str_items(stores):
    store = stores["unicode"].store
    assert store.lookup([]).shape == (0,)
    assert store.lookup([]).dtype == np.int64
    assert store.lookup(np.array([], dtype=str)).shape == (0,)
    assert store.lookup([np.str_("日本")]).tolist() == [UNICODE_WORDS.index("日本")]


def test_empty_string(stores):
    for loaded in stores.values():
        assert loaded.store.lookup([""]).tolist() == [-1]
        assert "" not in loaded.store


@pytest.mark.parametrize("word", ["\ud800", "\udfff", "a\udcffb", "\udced\udcb2\udc80",
                                  "\ud83d\ude00"])
def test_surrogates_are_not_found(stores, word):
    """A string with lone surrogates cannot be a stored word (stores hold valid UTF-8): it is
    simply absent, in the batch and the single-word paths alike."""
    for loaded in stores.values():
        assert loaded.store.lookup([word, "the"]).tolist() == [-1, loaded.ref.get("the", -1)]
        assert word not in loaded.store
        assert loaded.store.get(word) is None


@pytest.mark.parametrize(("bad", "name"), [
    (["the", 3], "int"), (["the", None], "NoneType"), ([b"the"], "bytes"),
    (np.array([1, 2]), "int"), ((w for w in ["the", 2.5]), "float"),
])
def test_non_str_items_raise_type_error(stores, bad, name):
    with pytest.raises(TypeError, match=name):
        stores["unicode"].store.lookup(bad)


def test_a_single_str_is_refused(stores):
    with pytest.raises(TypeError, match="single str"):
        stores["unicode"].store.lookup("the")


def test_large_batch(stores):
    lee = stores["lee_fasttext.vec"]
    rng = np.random.default_rng(3)
    pool = lee.words + [w.upper() for w in lee.words] + [f"w{i}" for i in range(5000)]
    queries = [pool[i] for i in rng.integers(0, len(pool), 200_000)]
    assert lee.store.lookup(queries).tolist() == lee.expected(queries)


ANY_CHAR = st.characters(exclude_categories=())  # surrogates included


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_matches_dict(stores, data):
    loaded = stores[data.draw(st.sampled_from(sorted(stores)))]
    word = st.one_of(st.sampled_from(loaded.words), st.text(max_size=12),
                     st.text(alphabet=ANY_CHAR, max_size=6),
                     st.sampled_from(loaded.words).map(str.upper))
    queries = data.draw(st.lists(word, max_size=40))
    assert loaded.store.lookup(queries).tolist() == loaded.expected(queries)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=6),
                max_size=30))
def test_encode_words_matches_per_word_encoding(words):
    """The joined encoding (ASCII words measured by characters, the others encoded one by
    one) gives the same buffer and offsets as encoding every word by itself."""
    buf, offsets = encode_words(words)
    encoded = [w.encode("utf-8", "surrogatepass") for w in words]
    assert bytes(buf) == b"".join(encoded)
    assert offsets.tolist() == [0, *np.cumsum([len(e) for e in encoded]).tolist()]


def test_encode_words_accepts_str_subclasses():
    class Word(str):
        pass

    buf, offsets = encode_words([Word("é"), Word("a"), "b"])
    assert bytes(buf) == "éab".encode() and offsets.tolist() == [0, 2, 3, 4]
