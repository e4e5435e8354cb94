"""embstore.gensim: stores from KeyedVectors, and KeyedVectors from stores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import embstore
from embstore import StoreExistsError
from embstore import format as fmt

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402
from gensim.models.fasttext import load_facebook_vectors  # noqa: E402

from embstore import gensim as eg  # noqa: E402

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"

# Sections that must be byte-identical between two stores of the same vectors; METADATA (and
# so CHECKSUMS) record where a store came from and when.
SAME_BYTES = (fmt.Section.VECTORS, fmt.Section.WORD_OFFSETS, fmt.Section.WORD_BYTES,
              fmt.Section.INDEX)


def section_bytes(store, kind):
    entry = store.header.sections[kind]
    return bytes(store.raw(entry.offset, entry.length))


def assert_same_store(a_path, b_path):
    with embstore.open(a_path) as a, embstore.open(b_path) as b:
        assert (len(a), a.dim, a.header.n_slots) == (len(b), b.dim, b.header.n_slots)
        for kind in SAME_BYTES:
            assert section_bytes(a, kind) == section_bytes(b, kind), kind.name
        # Statistics are accumulated batch by batch; batch sizes may differ in the last bit.
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(a.std, b.std, rtol=1e-12, atol=1e-15)


def load(name):
    return KeyedVectors.load_word2vec_format(str(GENSIM_DATA / name),
                                             binary=name.endswith(".bin"),
                                             no_header=name == "test_glove.txt")


def made_up_kv(n=50, dim=8, dtype=np.float32, seed=0):
    keys = [f"w{i}" for i in range(n - 6)] + ["日本", "straße", "naïve", "Ω", "😀", "UPPER"]
    kv = KeyedVectors(dim, dtype=dtype)
    kv.add_vectors(keys, np.random.default_rng(seed).normal(size=(n, dim)).astype(dtype))
    return kv


def no_leftovers(directory, keep):
    return sorted(os.listdir(directory)) == sorted(keep)


# -- from_keyedvectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lee_fasttext.vec", "euclidean_vectors.bin", "test_glove.txt"])
def test_same_store_as_converting_the_file(tmp_path, name):
    kv = load(name)
    report = eg.from_keyedvectors(kv, tmp_path / "kv.emb")
    embstore.convert(GENSIM_DATA / name, tmp_path / "file.emb", quiet=True)
    assert_same_store(tmp_path / "kv.emb", tmp_path / "file.emb")
    assert (report.rows, report.dim, report.records, report.duplicates) == (
        len(kv), kv.vector_size, len(kv), 0)
    assert report.format == "keyedvectors"
    assert "Converted" in str(report)
    with embstore.open(tmp_path / "kv.emb") as store:
        assert list(store.words) == list(kv.index_to_key)
        np.testing.assert_array_equal(store.vectors, kv.vectors)
        assert store.metadata["source"]["format"] == "keyedvectors"
        assert store.metadata["records"] == len(kv)
    assert embstore.verify(tmp_path / "kv.emb").ok


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_store_as_save_word2vec_format(tmp_path, binary, dtype):
    kv = made_up_kv(dtype=dtype)
    src = tmp_path / ("kv.bin" if binary else "kv.txt")
    kv.save_word2vec_format(str(src), binary=binary)
    eg.from_keyedvectors(kv, tmp_path / "kv.emb")
    embstore.convert(src, tmp_path / "file.emb", quiet=True)
    assert_same_store(tmp_path / "kv.emb", tmp_path / "file.emb")


def test_many_small_batches(tmp_path, monkeypatch):
    """Batch boundaries (here every 37 rows) do not change the store."""
    kv = load("lee_fasttext.vec")
    eg.from_keyedvectors(kv, tmp_path / "one.emb")
    monkeypatch.setattr(eg, "BATCH_BYTES", 37 * 4 * kv.vector_size)
    eg.from_keyedvectors(kv, tmp_path / "many.emb")
    assert_same_store(tmp_path / "one.emb", tmp_path / "many.emb")


def test_fasttext_model_vectors(tmp_path):
    """Anything gensim loads: a fastText .bin model's word vectors."""
    kv = load_facebook_vectors(str(GENSIM_DATA / "lee_fasttext.bin"))
    eg.from_keyedvectors(kv, tmp_path / "ft.emb")
    with embstore.open(tmp_path / "ft.emb") as store:
        assert len(store) == len(kv.index_to_key)
        for word in kv.index_to_key[:: max(1, len(kv.index_to_key) // 100)]:
            np.testing.assert_array_equal(store[word], kv[word])


def test_memory_mapped_keyedvectors(tmp_path):
    kv = load("euclidean_vectors.bin")
    kv.save(str(tmp_path / "kv.model"), sep_limit=0)  # vectors in their own .npy file
    mapped = KeyedVectors.load(str(tmp_path / "kv.model"), mmap="r")
    assert isinstance(mapped.vectors, np.memmap)
    eg.from_keyedvectors(mapped, tmp_path / "mapped.emb")
    eg.from_keyedvectors(kv, tmp_path / "plain.emb")
    assert_same_store(tmp_path / "mapped.emb", tmp_path / "plain.emb")


def test_keys_are_written_as_str_and_first_duplicate_wins(tmp_path):
    kv = KeyedVectors(3)
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    kv.add_vectors([7, "a", "7", "b"], vectors)  # 7 and "7" are one word in a word2vec file
    report = eg.from_keyedvectors(kv, tmp_path / "k.emb")
    assert (report.rows, report.records, report.duplicates) == (3, 4, 1)
    with embstore.open(tmp_path / "k.emb") as store:
        assert list(store.words) == ["7", "a", "b"]
        np.testing.assert_array_equal(store.vectors, vectors[[0, 1, 3]])


def test_empty_and_spaced_words(tmp_path):
    kv = KeyedVectors(2)
    kv.add_vectors(["", "two words", "tab\there"], np.eye(3, 2, dtype=np.float32))
    eg.from_keyedvectors(kv, tmp_path / "odd.emb")
    with embstore.open(tmp_path / "odd.emb") as store:
        assert store.lookup(["", "two words", "tab\there", "two"]).tolist() == [0, 1, 2, -1]
    assert embstore.verify(tmp_path / "odd.emb").ok


def test_existing_destination(tmp_path):
    kv = made_up_kv()
    dst = tmp_path / "kv.emb"
    eg.from_keyedvectors(kv, dst)
    before = dst.read_bytes()
    with pytest.raises(StoreExistsError):
        eg.from_keyedvectors(made_up_kv(seed=1), dst)
    assert dst.read_bytes() == before
    eg.from_keyedvectors(made_up_kv(seed=1), dst, force=True)
    with embstore.open(dst) as store:
        np.testing.assert_array_equal(store.vectors, made_up_kv(seed=1).vectors)


@pytest.mark.parametrize("problem", ["nan", "inf", "float32-overflow", "surrogate", "empty"])
def test_bad_input_leaves_nothing(tmp_path, problem):
    kv = made_up_kv(dtype=np.float64)
    if problem == "nan":
        kv.vectors[30, 2] = np.nan
        match = "'w30'"
    elif problem == "inf":
        kv.vectors[0, 0] = -np.inf
        match = "'w0'"
    elif problem == "float32-overflow":
        kv.vectors[5, 1] = 1e300
        match = "'w5'"
    elif problem == "surrogate":
        kv = KeyedVectors(2)
        kv.add_vectors(["ok", "bad\ud800"], np.ones((2, 2), dtype=np.float32))
        match = "surrogate"
    else:
        kv = KeyedVectors(4)
        match = "empty"
    with pytest.raises(ValueError, match=match):
        eg.from_keyedvectors(kv, tmp_path / "bad.emb")
    assert no_leftovers(tmp_path, [])


# -- to_keyedvectors -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lee(tmp_path_factory):
    dst = tmp_path_factory.mktemp("gensim") / "lee.emb"
    embstore.convert(GENSIM_DATA / "lee_fasttext.vec", dst, quiet=True)
    with embstore.open(dst) as store:
        yield store, load("lee_fasttext.vec")


def same_bits(a, b):
    return a.dtype == b.dtype == np.float32 and np.array_equal(a.view(np.uint32),
                                                               b.view(np.uint32))


def test_to_keyedvectors_subset_in_order(lee):
    store, ref = lee
    words = ["said", "the", "The", "Australia", "of", "Sydney"]
    kv = eg.to_keyedvectors(store, words)
    assert isinstance(kv, KeyedVectors)
    assert kv.index_to_key == words
    assert kv.key_to_index == {w: i for i, w in enumerate(words)}
    assert len(kv) == len(words) and kv.vector_size == store.dim
    assert same_bits(kv.vectors, np.stack([ref[w] for w in words]))
    for w in words:
        assert same_bits(kv[w], ref[w])
    # gensim's own operations work on it
    assert kv.most_similar("the", topn=1)[0][0] in words
    assert kv.similarity("the", "of") == pytest.approx(ref.similarity("the", "of"), rel=1e-6)


def test_to_keyedvectors_all_words_equals_gensim_loading_the_file(lee):
    store, ref = lee
    kv = eg.to_keyedvectors(store)
    assert kv.index_to_key == ref.index_to_key
    assert same_bits(kv.vectors, ref.vectors)
    assert kv.vectors.flags.c_contiguous and kv.vectors.flags.writeable


def test_to_keyedvectors_missing_words(lee):
    store, _ = lee
    with pytest.raises(KeyError) as info:
        eg.to_keyedvectors(store, ["the", "qwertyuiop", "of", "zxcvb"])
    message = str(info.value)
    assert "'qwertyuiop'" in message and "'zxcvb'" in message and "2 of 4" in message
    many = [f"absent{i}" for i in range(25)]
    with pytest.raises(KeyError, match="and 15 more"):
        eg.to_keyedvectors(store, many)
    kv = eg.to_keyedvectors(store, ["the", "qwertyuiop", "of", "zxcvb"], missing="skip")
    assert kv.index_to_key == ["the", "of"]
    assert same_bits(kv.vectors, store.vectors[[store.get_index("the"), store.get_index("of")]])


def test_to_keyedvectors_argument_errors(lee):
    store, _ = lee
    with pytest.raises(ValueError, match="more than once"):
        eg.to_keyedvectors(store, ["the", "of", "the"])
    with pytest.raises(ValueError, match="missing"):
        eg.to_keyedvectors(store, ["the"], missing="ignore")
    with pytest.raises(TypeError, match="single str"):
        eg.to_keyedvectors(store, "the")
    with pytest.raises(TypeError):
        eg.to_keyedvectors(store, ["the", 3])


def test_to_keyedvectors_empty_and_generator(lee):
    store, _ = lee
    assert len(eg.to_keyedvectors(store, [])) == 0
    kv = eg.to_keyedvectors(store, (w for w in ["of", "the"]))
    assert kv.index_to_key == ["of", "the"]


def test_to_keyedvectors_outlives_the_store(tmp_path):
    eg.from_keyedvectors(made_up_kv(), tmp_path / "kv.emb")
    store = embstore.open(tmp_path / "kv.emb")
    kv = eg.to_keyedvectors(store, ["日本", "w3"])
    store.close()
    del store
    assert same_bits(kv["日本"], made_up_kv()["日本"])


def test_round_trip(tmp_path, lee):
    store, _ = lee
    eg.from_keyedvectors(eg.to_keyedvectors(store), tmp_path / "again.emb")
    assert_same_store(store.path, tmp_path / "again.emb")
