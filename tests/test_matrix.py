"""build_matrix against the classic recipe.

The reference is what tutorials have done for years: load the vectors with gensim's
``KeyedVectors.load_word2vec_format``, loop over the vocabulary in Python and copy each found
vector into ``np.zeros((rows, dim), float32)``.  Every vocabulary form, ``num_words``, every
OOV fill, the case fallbacks and ``out=`` are checked against that loop on gensim's own test
vectors and on a small generated file of mixed-case words.  The Keras layer forms
(TextVectorization, StringLookup) are in test_keras.py.
"""

from __future__ import annotations

import collections
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import embstore
from embstore import VocabularyError
from embstore import matrix as matrix_mod

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"

CASE_RULES = {"lower": str.lower, "title": str.capitalize, "upper": str.upper}


# -- the reference -----------------------------------------------------------------------------


def classic_recipe(kv, items, rows, fallbacks=()):
    """The tutorial loop.  ``items`` is (word, row) in vocabulary order.

    Returns the matrix, the number of words found, the (row, word) pairs not found and the
    words found per fallback rule.
    """
    matrix = np.zeros((rows, kv.vector_size), dtype=np.float32)
    hits = 0
    missing = []
    by_rule = {rule: 0 for rule in fallbacks}
    for word, i in items:
        if i >= rows:
            continue
        if word in kv.key_to_index:
            matrix[i] = kv[word]
            hits += 1
            continue
        for rule in fallbacks:
            variant = CASE_RULES[rule](word)
            if variant != word and variant in kv.key_to_index:
                matrix[i] = kv[variant]
                hits += 1
                by_rule[rule] += 1
                break
        else:
            missing.append((i, word))
    return matrix, hits, missing, by_rule


def word_index_items(word_index):
    return list(word_index.items())


def token_items(tokens):
    """A TextVectorization vocabulary: '' is padding, '[UNK]' the OOV token, neither looked up."""
    return [(t, i) for i, t in enumerate(tokens) if t not in ("", "[UNK]")]


def oov_fill_rows(items, rows, found_rows, tokens=()):
    """Rows that get the OOV fill: rows of missing words that no found word filled, and [UNK]."""
    fill = {i for word, i in items if i < rows and i not in found_rows}
    fill |= {i for i, t in enumerate(tokens) if t == "[UNK]" and i < rows}
    return sorted(fill)


def found_rows_of(kv, items, rows, fallbacks=()):
    found = set()
    for word, i in items:
        if i >= rows:
            continue
        variants = [word] + [CASE_RULES[r](word) for r in fallbacks]
        if any(v in kv.key_to_index for v in variants):
            found.add(i)
    return found


def tokenizer_word_index(texts):
    """What the legacy Keras Tokenizer builds: lower-cased words by falling count, from 1."""
    counts = collections.Counter()
    for text in texts:
        counts.update(re.findall(r"[a-z0-9']+", text.lower()))
    ordered = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
    return {word: i for i, (word, _) in enumerate(ordered, start=1)}


def vocabulary_tokens(texts, lower=True):
    """What TextVectorization.get_vocabulary() looks like: '', '[UNK]', words by count."""
    counts = collections.Counter()
    for text in texts:
        counts.update(re.findall(r"[\w']+", text.lower() if lower else text))
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ["", "[UNK]"] + [w for w, _ in ordered]


# -- vector files ------------------------------------------------------------------------------

# Words chosen so that each case rule, and their order, matters.
MIXED_WORDS = [
    "apple", "Banana", "CHERRY", "Date", "FIG", "Grape", "grape", "Kiwi", "LEMON", "mango",
    "Nectarine", "Äpfel", "ÉCOLE", "straße", "STRASSE", "ǅemal", "Σίσυφος", "Fire", "日本",
    "naïve", "the", "of",
]
MIXED_WORD_INDEX = {
    "apple": 1, "banana": 2, "cherry": 3, "date": 4, "fig": 5, "grape": 6, "GRAPE": 7,
    "kIWI": 8, "lemon": 9, "Mango": 10, "NECTARINE": 11, "äpfel": 12, "école": 13,
    "straße": 14, "Straße": 15, "ǆemal": 16, "ΣΊΣΥΦΟΣ": 17, "ﬁre": 18, "日本": 19, "naïve": 20,
    "missing": 21, "Missing": 22, "İSTANBUL": 23, "": 24, "the": 26, "of": 27,
}


def write_word2vec_text(path, words, vectors):
    """A word2vec text file; each value printed so that float32(float(text)) is exact."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, row in zip(words, vectors, strict=True):
            fh.write(word + " " + " ".join(repr(float(x)) for x in row) + "\n")


class Vectors(NamedTuple):
    name: str
    store: embstore.EmbeddingStore
    kv: KeyedVectors
    path: Path


def _load(name, tmp):
    if name == "mixed":
        rng = np.random.default_rng(7)
        path = tmp / "mixed.vec"
        write_word2vec_text(path, MIXED_WORDS,
                            rng.normal(0.5, 2.0, (len(MIXED_WORDS), 12)).astype(np.float32))
        kv = KeyedVectors.load_word2vec_format(str(path))
    else:
        path = GENSIM_DATA / name
        kv = KeyedVectors.load_word2vec_format(str(path), binary=name.endswith(".bin"),
                                               no_header=name == "test_glove.txt")
    dst = tmp / f"{name}.emb"
    embstore.convert(path, dst, quiet=True)
    return Vectors(name, embstore.open(dst), kv, path)


VECTOR_NAMES = ["lee_fasttext.vec", "euclidean_vectors.bin", "test_glove.txt", "mixed"]


@pytest.fixture(scope="module")
def all_vectors(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix-stores")
    loaded = {name: _load(name, tmp) for name in VECTOR_NAMES}
    yield loaded
    for v in loaded.values():
        v.store.close()


@pytest.fixture(params=VECTOR_NAMES)
def vectors(request, all_vectors):
    return all_vectors[request.param]


@pytest.fixture(scope="module")
def lee(all_vectors):
    return all_vectors["lee_fasttext.vec"]


@pytest.fixture(scope="module")
def mixed(all_vectors):
    return all_vectors["mixed"]


@pytest.fixture(scope="module")
def lee_texts():
    return (GENSIM_DATA / "lee_background.cor").read_text(encoding="utf-8").splitlines()


def word_index_for(vectors, lee_texts):
    if vectors.name == "mixed":
        return dict(MIXED_WORD_INDEX)
    return tokenizer_word_index(lee_texts)


def tokens_for(vectors, lee_texts):
    if vectors.name == "mixed":
        return ["", "[UNK]"] + [w for w in MIXED_WORD_INDEX if w]
    return vocabulary_tokens(lee_texts, lower=False)


def assert_result_matches(result, kv, items, rows, fallbacks=()):
    ref, hits, missing, by_rule = classic_recipe(kv, items, rows, fallbacks)
    assert result.matrix.dtype == np.float32
    assert result.matrix.shape == (rows, kv.vector_size)
    np.testing.assert_array_equal(result.matrix, ref)
    assert result.hits == hits
    assert result.misses == len(missing)
    assert result.missing == [w for _, w in sorted(missing, key=lambda p: p[0])]
    found = found_rows_of(kv, items, rows, fallbacks)
    assert set(np.flatnonzero(result.found).tolist()) == found
    assert result.fallback_hits == by_rule


# -- vocabulary forms --------------------------------------------------------------------------


def test_word_index_matches_classic_recipe(vectors, lee_texts):
    word_index = word_index_for(vectors, lee_texts)
    result = vectors.store.build_matrix(word_index)
    rows = max(word_index.values()) + 1
    assert result.rows == rows
    assert_result_matches(result, vectors.kv, word_index_items(word_index), rows)
    # Row 0 is the Tokenizer's padding: no word, always zero.
    assert not result.found[0]
    assert not result.matrix[0].any()
    assert result.hits > 0


@pytest.mark.parametrize("num_words", [1, 2, 50, "max", "max+1", "max+1000"])
def test_num_words_like_the_tokenizer(lee, lee_texts, num_words):
    word_index = tokenizer_word_index(lee_texts)
    top = max(word_index.values())
    n = {"max": top, "max+1": top + 1, "max+1000": top + 1000}.get(num_words, num_words)
    result = lee.store.build_matrix(word_index, num_words=n)
    rows = min(n, top + 1)
    assert result.rows == rows
    assert_result_matches(result, lee.kv, word_index_items(word_index), rows)
    # Words with an id >= num_words are skipped: neither hits nor misses.
    assert result.hits + result.misses == sum(1 for i in word_index.values() if i < rows)


def test_token_list_like_text_vectorization(vectors, lee_texts):
    tokens = tokens_for(vectors, lee_texts)
    result = vectors.store.build_matrix(tokens)
    assert result.rows == len(tokens)
    assert_result_matches(result, vectors.kv, token_items(tokens), len(tokens))
    # '' (padding) and '[UNK]' stay zero with oov='zeros' and count as neither hit nor miss.
    assert not result.matrix[:2].any()
    assert result.hits + result.misses == len(tokens) - 2
    assert "" not in result.missing and "[UNK]" not in result.missing


def test_token_list_num_words_truncates(lee, lee_texts):
    tokens = vocabulary_tokens(lee_texts)
    result = lee.store.build_matrix(tokens, num_words=100)
    assert result.rows == 100
    np.testing.assert_array_equal(result.matrix, lee.store.build_matrix(tokens[:100]).matrix)


def test_token_forms_agree(lee, lee_texts, tmp_path):
    """A list, a tuple, a NumPy array, a text file and a JSON list give the same matrix."""
    tokens = vocabulary_tokens(lee_texts)[:500]
    expected = lee.store.build_matrix(tokens)
    txt = tmp_path / "vocab.txt"
    txt.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    crlf = tmp_path / "vocab-crlf.txt"
    crlf.write_bytes("".join(t + "\r\n" for t in tokens).encode("utf-8"))
    no_final_newline = tmp_path / "vocab-nonl.txt"
    no_final_newline.write_text("\n".join(tokens), encoding="utf-8")
    as_json = tmp_path / "vocab.json"
    as_json.write_text(json.dumps(tokens), encoding="utf-8")
    for form in (tuple(tokens), np.array(tokens), txt, str(txt), crlf, no_final_newline,
                 as_json):
        got = lee.store.build_matrix(form)
        np.testing.assert_array_equal(got.matrix, expected.matrix)
        assert (got.hits, got.misses, got.missing) == (expected.hits, expected.misses,
                                                       expected.missing)


def test_vocabulary_text_file_line_is_row(mixed, tmp_path):
    """One token per line, line number = row: an empty line is padding, '[UNK]' the OOV row."""
    lines = ["", "[UNK]", "apple", "banana", "", "nothing-here", "日本"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = mixed.store.build_matrix(path, fallbacks=["title"], oov="mean")
    kv = mixed.kv
    assert result.rows == len(lines)
    mean = kv.vectors.astype(np.float64).mean(axis=0).astype(np.float32)
    np.testing.assert_array_equal(result.matrix[0], 0)
    np.testing.assert_array_equal(result.matrix[1], mean)  # [UNK]
    np.testing.assert_array_equal(result.matrix[2], kv["apple"])
    np.testing.assert_array_equal(result.matrix[3], kv["Banana"])
    np.testing.assert_array_equal(result.matrix[4], 0)  # an empty line in the middle: padding
    np.testing.assert_array_equal(result.matrix[5], mean)
    np.testing.assert_array_equal(result.matrix[6], kv["日本"])
    assert (result.hits, result.misses, result.missing) == (3, 1, ["nothing-here"])


def test_json_word_index_file(vectors, lee_texts, tmp_path):
    word_index = word_index_for(vectors, lee_texts)
    path = tmp_path / "word_index.json"
    path.write_text(json.dumps(word_index, ensure_ascii=False), encoding="utf-8")
    from_file = vectors.store.build_matrix(path, num_words=1000)
    from_dict = vectors.store.build_matrix(word_index, num_words=1000)
    np.testing.assert_array_equal(from_file.matrix, from_dict.matrix)
    assert from_file.missing == from_dict.missing
    rows = min(1000, max(word_index.values()) + 1)
    assert_result_matches(from_file, vectors.kv, word_index_items(word_index), rows)


def test_word_index_in_any_order(lee, lee_texts):
    """A dict not in id order (e.g. a JSON file with sorted keys) gives the same result, with
    the missing words still listed in row order."""
    word_index = tokenizer_word_index(lee_texts)
    shuffled = dict(sorted(word_index.items()))
    a = lee.store.build_matrix(word_index)
    b = lee.store.build_matrix(shuffled)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert a.missing == b.missing
    rows_of_missing = [word_index[w] for w in b.missing]
    assert rows_of_missing == sorted(rows_of_missing)


def test_words_sharing_a_row_last_found_wins(mixed):
    word_index = {"apple": 1, "Date": 1, "nope": 1, "grape": 2, "zzz": 2, "mango": 3}
    result = mixed.store.build_matrix(word_index)
    assert_result_matches(result, mixed.kv, word_index_items(word_index), 4)
    np.testing.assert_array_equal(result.matrix[1], mixed.kv["Date"])
    np.testing.assert_array_equal(result.matrix[2], mixed.kv["grape"])
    # A row that a found word filled is not an OOV row, even if another word there is missing.
    filled = mixed.store.build_matrix(word_index, oov="mean")
    np.testing.assert_array_equal(filled.matrix, result.matrix)


def test_repeated_token_fills_every_row(mixed):
    tokens = ["", "[UNK]", "apple", "grape", "apple"]
    result = mixed.store.build_matrix(tokens)
    np.testing.assert_array_equal(result.matrix[2], mixed.kv["apple"])
    np.testing.assert_array_equal(result.matrix[4], mixed.kv["apple"])
    assert result.hits == 3


def test_odd_words_are_plain_misses(mixed):
    word_index = {"\ud800": 1, "a\udcffb": 2, "": 3, "apple\x00": 4, " apple": 5, "apple": 6}
    result = mixed.store.build_matrix(word_index, fallbacks=["lower", "title", "upper"])
    assert result.hits == 1
    assert result.missing == ["\ud800", "a\udcffb", "", "apple\x00", " apple"]
    assert not result.matrix[:6].any()


# -- OOV fills ---------------------------------------------------------------------------------


def test_store_mean_and_std_are_gensims(vectors):
    """The store's statistics are the float64 mean and (population) std of the vectors."""
    v64 = vectors.kv.vectors.astype(np.float64)
    np.testing.assert_allclose(vectors.store.mean, v64.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(vectors.store.std, v64.std(axis=0), rtol=1e-10, atol=1e-15)


def test_oov_mean(vectors, lee_texts):
    tokens = tokens_for(vectors, lee_texts)
    items = token_items(tokens)
    rows = len(tokens)
    result = vectors.store.build_matrix(tokens, oov="mean")
    ref, hits, missing, _ = classic_recipe(vectors.kv, items, rows)
    mean = vectors.kv.vectors.astype(np.float64).mean(axis=0).astype(np.float32)
    for i in oov_fill_rows(items, rows, found_rows_of(vectors.kv, items, rows), tokens):
        ref[i] = mean
    np.testing.assert_array_equal(result.matrix, ref)
    np.testing.assert_array_equal(result.matrix[1], mean)  # [UNK]
    assert not result.matrix[0].any()  # padding stays zero
    assert (result.hits, result.misses) == (hits, len(missing))
    assert result.oov == "mean"


def random_reference(vectors, tokens, seed, fallbacks=()):
    items = token_items(tokens)
    rows = len(tokens)
    ref, _, _, _ = classic_recipe(vectors.kv, items, rows, fallbacks)
    fill = oov_fill_rows(items, rows, found_rows_of(vectors.kv, items, rows, fallbacks), tokens)
    rng = np.random.default_rng(seed)
    store = vectors.store
    draws = rng.normal(store.mean, store.std, size=(len(fill), store.dim))
    ref[fill] = draws.astype(np.float32)
    return ref, fill


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_oov_random_reference(vectors, lee_texts, seed):
    tokens = tokens_for(vectors, lee_texts)
    result = vectors.store.build_matrix(tokens, oov="random", seed=seed)
    ref, fill = random_reference(vectors, tokens, seed)
    assert fill[0] == 1  # [UNK] comes first: draws go to rows in increasing order
    np.testing.assert_array_equal(result.matrix, ref)
    assert not result.matrix[0].any()


def test_oov_random_reproducible_and_seeded(lee, lee_texts):
    tokens = vocabulary_tokens(lee_texts)
    a = lee.store.build_matrix(tokens, oov="random", seed=3)
    b = lee.store.build_matrix(tokens, oov="random", seed=3)
    c = lee.store.build_matrix(tokens, oov="random", seed=4)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    fill = ~a.found
    fill[0] = False  # padding
    assert fill.sum() > 10
    assert np.all(a.matrix[fill] != c.matrix[fill])
    np.testing.assert_array_equal(a.matrix[a.found], c.matrix[a.found])
    # The draws follow the store's per-dimension distribution.
    many = lee.store.build_matrix(["[UNK]"] + [f"absent-{i}" for i in range(20000)],
                                  oov="random", seed=5).matrix.astype(np.float64)
    np.testing.assert_allclose(many.mean(axis=0), lee.store.mean, atol=0.05 * lee.store.std.max())
    np.testing.assert_allclose(many.std(axis=0), lee.store.std, rtol=0.05)


def test_oov_random_many_rows_is_one_stream(lee):
    """More OOV rows than one slice of draws (about 100k rows at dim 10): still exactly one
    ``normal(mean, std, size=(n_oov_rows, dim))`` in row order."""
    tokens = ["", "[UNK]", "the"] + [f"absent{i}" for i in range(110_000)] + ["of"]
    result = lee.store.build_matrix(tokens, oov="random", seed=11)
    fill = [1, *range(3, 3 + 110_000)]
    rng = np.random.default_rng(11)
    draws = rng.normal(lee.store.mean, lee.store.std, size=(len(fill), lee.store.dim))
    np.testing.assert_array_equal(result.matrix[fill], draws.astype(np.float32))
    np.testing.assert_array_equal(result.matrix[2], lee.kv["the"])
    np.testing.assert_array_equal(result.matrix[-1], lee.kv["of"])
    assert not result.matrix[0].any()


def test_oov_word_index_has_no_unk_row(mixed):
    result = mixed.store.build_matrix(MIXED_WORD_INDEX, oov="mean")
    mean = mixed.kv.vectors.astype(np.float64).mean(axis=0).astype(np.float32)
    assert not result.matrix[0].any()  # row 0: padding, no word
    assert not result.matrix[25].any()  # no word has id 25
    for word in result.missing:
        np.testing.assert_array_equal(result.matrix[MIXED_WORD_INDEX[word]], mean)


# -- case fallbacks ----------------------------------------------------------------------------


@pytest.mark.parametrize("fallbacks", [
    [], ["lower"], ["title"], ["upper"], ["lower", "title", "upper"], ["upper", "title", "lower"],
    ["title", "lower"],
])
def test_fallbacks_match_reference(mixed, fallbacks):
    result = mixed.store.build_matrix(MIXED_WORD_INDEX, fallbacks=fallbacks)
    assert_result_matches(result, mixed.kv, word_index_items(MIXED_WORD_INDEX),
                          max(MIXED_WORD_INDEX.values()) + 1, fallbacks)
    assert set(result.fallback_hits) == set(fallbacks)


def test_fallbacks_by_hand(mixed):
    kv = mixed.kv
    r = mixed.store.build_matrix(MIXED_WORD_INDEX, fallbacks=["lower", "title", "upper"])
    m = r.matrix
    np.testing.assert_array_equal(m[2], kv["Banana"])  # banana -> title
    np.testing.assert_array_equal(m[3], kv["CHERRY"])  # cherry -> upper
    np.testing.assert_array_equal(m[7], kv["grape"])  # GRAPE -> lower before title
    np.testing.assert_array_equal(m[8], kv["Kiwi"])  # kIWI -> title ('kiwi' absent)
    np.testing.assert_array_equal(m[15], kv["straße"])  # Straße -> lower
    np.testing.assert_array_equal(m[16], kv["ǅemal"])  # ǆemal -> title is the titlecase ǅ
    np.testing.assert_array_equal(m[17], kv["Σίσυφος"])  # ΣΊΣΥΦΟΣ -> title
    np.testing.assert_array_equal(m[18], kv["Fire"])  # ﬁre -> 'Fire' (the ligature splits)
    assert "İSTANBUL" in r.missing
    by_title = mixed.store.build_matrix({"GRAPE": 1}, fallbacks=["title", "lower"])
    np.testing.assert_array_equal(by_title.matrix[1], kv["Grape"])
    assert by_title.fallback_hits == {"title": 1, "lower": 0}


def test_fallbacks_on_real_vectors(lee, lee_texts):
    """A lower-casing tokenizer loses the capitalised words of lee_fasttext.vec; 'title' finds
    them back."""
    word_index = tokenizer_word_index(lee_texts)
    plain = lee.store.build_matrix(word_index)
    titled = lee.store.build_matrix(word_index, fallbacks=["title"])
    assert titled.fallback_hits["title"] > 100
    assert titled.hits == plain.hits + titled.fallback_hits["title"]
    assert_result_matches(titled, lee.kv, word_index_items(word_index),
                          max(word_index.values()) + 1, ["title"])


def test_fallbacks_as_comma_string(mixed):
    a = mixed.store.build_matrix(MIXED_WORD_INDEX, fallbacks="lower,title")
    b = mixed.store.build_matrix(MIXED_WORD_INDEX, fallbacks=["lower", "title"])
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert a.fallback_hits == b.fallback_hits


def test_fallbacks_with_random_fill(mixed):
    tokens = ["", "[UNK]"] + [w for w in MIXED_WORD_INDEX if w]
    result = mixed.store.build_matrix(tokens, oov="random", seed=9, fallbacks=["upper", "title"])
    ref, _ = random_reference(mixed, tokens, 9, ["upper", "title"])
    np.testing.assert_array_equal(result.matrix, ref)


# -- out= ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("oov", ["zeros", "mean", "random"])
def test_out_fills_a_memmap(lee, lee_texts, tmp_path, oov):
    tokens = vocabulary_tokens(lee_texts)
    expected = lee.store.build_matrix(tokens, oov=oov, seed=2, fallbacks=["title"])
    path = tmp_path / "matrix.f32"
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(len(tokens), lee.store.dim))
    out[:] = np.nan  # whatever was there before must not leak into the result
    result = lee.store.build_matrix(tokens, oov=oov, seed=2, fallbacks=["title"], out=out)
    assert result.matrix is out
    np.testing.assert_array_equal(out, expected.matrix)
    out.flush()
    del out, result
    on_disk = np.fromfile(path, dtype=np.float32).reshape(len(tokens), lee.store.dim)
    np.testing.assert_array_equal(on_disk, expected.matrix)


def test_out_plain_array(mixed):
    out = np.full((28, mixed.store.dim), 7.0, dtype=np.float32)
    result = mixed.store.build_matrix(MIXED_WORD_INDEX, out=out)
    assert result.matrix is out
    np.testing.assert_array_equal(out, mixed.store.build_matrix(MIXED_WORD_INDEX).matrix)


def test_out_is_checked(mixed):
    build = mixed.store.build_matrix
    dim = mixed.store.dim
    with pytest.raises(ValueError, match="shape"):
        build(MIXED_WORD_INDEX, out=np.zeros((27, dim), np.float32))
    with pytest.raises(ValueError, match="float32"):
        build(MIXED_WORD_INDEX, out=np.zeros((28, dim), np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        build(MIXED_WORD_INDEX, out=np.zeros((dim, 28), np.float32).T)
    read_only = np.zeros((28, dim), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        build(MIXED_WORD_INDEX, out=read_only)
    with pytest.raises(TypeError):
        build(MIXED_WORD_INDEX, out=[[0.0] * dim] * 28)


# -- options, results, summary -------------------------------------------------------------------


def test_bad_options(mixed):
    with pytest.raises(ValueError, match="oov"):
        mixed.store.build_matrix(MIXED_WORD_INDEX, oov="gaussian")
    with pytest.raises(ValueError, match="fallback"):
        mixed.store.build_matrix(MIXED_WORD_INDEX, fallbacks=["snake_case"])
    with pytest.raises(VocabularyError):
        mixed.store.build_matrix(MIXED_WORD_INDEX, num_words=0)
    with pytest.raises(VocabularyError):
        mixed.store.build_matrix(42)


def test_result_fields_and_summary(mixed):
    r = mixed.store.build_matrix(MIXED_WORD_INDEX)
    assert (r.rows, r.dim) == (28, 12)
    assert r.found.dtype == bool and r.found.shape == (28,)
    assert r.summary() == f"Matrix 28 x 12: {r.hits} found, {r.misses} missing"
    assert str(r) == r.summary()
    assert r.coverage == pytest.approx(r.hits / (r.hits + r.misses))

    f = mixed.store.build_matrix(MIXED_WORD_INDEX, fallbacks=["lower", "title", "upper"],
                                 oov="mean")
    n_fb = sum(f.fallback_hits.values())
    assert n_fb > 0
    assert f.summary() == (f"Matrix 28 x 12: {f.hits} found ({n_fb} by a case fallback), "
                           f"{f.misses} missing (filled with mean)")
    d = f.to_dict()
    assert d == {"rows": 28, "dim": 12, "hits": f.hits, "misses": f.misses,
                 "coverage": round(f.coverage, 6), "fallback_hits": f.fallback_hits,
                 "oov": "mean", "missing": f.missing}
    json.dumps(d)  # JSON-ready
    assert f.to_dict(max_missing=1)["missing"] == f.missing[:1]


def test_summary_with_thousands(lee, lee_texts):
    r = lee.store.build_matrix(tokenizer_word_index(lee_texts), oov="random")
    assert r.summary().startswith(f"Matrix {r.rows:,} x 10: {r.hits:,} found, ")
    assert r.summary().endswith(f"{r.misses:,} missing (filled with random)")


def test_nothing_found(mixed):
    r = mixed.store.build_matrix(["", "[UNK]", "xx", "yy"], oov="mean")
    assert (r.hits, r.misses, r.missing) == (0, 2, ["xx", "yy"])
    assert r.coverage == 0.0
    assert not r.found.any()
    assert r.summary() == "Matrix 4 x 12: 0 found, 2 missing (filled with mean)"


def test_windowed_gather_releasing_pages(lee, lee_texts, monkeypatch):
    """The page-releasing gather used for large stores gives the same matrix."""
    word_index = tokenizer_word_index(lee_texts)
    expected = lee.store.build_matrix(word_index, fallbacks=["title"])
    monkeypatch.setattr(matrix_mod, "RELEASE_SPAN", 0)
    monkeypatch.setattr(matrix_mod, "WINDOW_BYTES", 3 * 40)  # a few rows per window
    got = lee.store.build_matrix(word_index, fallbacks=["title"])
    np.testing.assert_array_equal(got.matrix, expected.matrix)
    monkeypatch.setattr(matrix_mod, "WINDOW_BYTES", 1 << 20)
    got = lee.store.build_matrix(word_index, fallbacks=["title"])
    np.testing.assert_array_equal(got.matrix, expected.matrix)
    # Vocabulary pages released after the lookups (done for big stores) fault back in.
    release = type(lee.store).release_vocabulary
    monkeypatch.setattr(type(lee.store), "release_vocabulary",
                        lambda self, threshold=0: release(self, 0))
    for _ in range(2):
        got = lee.store.build_matrix(word_index, fallbacks=["title"])
        np.testing.assert_array_equal(got.matrix, expected.matrix)
        assert got.missing == expected.missing


def test_store_words_in_any_order_match_gensim(vectors):
    """Every stored word is found, in a shuffled order, at gensim's vector."""
    words = list(vectors.kv.index_to_key)
    order = np.random.default_rng(1).permutation(len(words))
    tokens = [words[i] for i in order]
    result = vectors.store.build_matrix(tokens)
    assert result.hits == len(words) and result.misses == 0
    np.testing.assert_array_equal(result.matrix, vectors.kv.vectors[order])


def test_gensim_data_is_present():
    assert os.path.isdir(GENSIM_DATA)
