"""embstore.keras.embedding_layer, and build_matrix fed by real Keras vocabulary layers.

Keras runs on the TensorFlow backend with KERAS_HOME in a temporary directory (importing
Keras otherwise writes ~/.keras/keras.json).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import embstore

pytestmark = pytest.mark.keras

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402

GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"


@pytest.fixture(scope="module")
def keras(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras-home")))
        mp.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        keras = pytest.importorskip("keras")
        if int(keras.__version__.split(".")[0]) < 3:
            pytest.skip("Keras 3 is needed")
        keras.utils.set_random_seed(0)
        yield keras


@pytest.fixture(scope="module")
def embedding_layer(keras):
    from embstore.keras import embedding_layer

    return embedding_layer


@pytest.fixture(scope="module")
def lee(tmp_path_factory):
    dst = tmp_path_factory.mktemp("keras-lee") / "lee.emb"
    embstore.convert(GENSIM_DATA / "lee_fasttext.vec", dst, quiet=True)
    with embstore.open(dst) as store:
        yield store, KeyedVectors.load_word2vec_format(str(GENSIM_DATA / "lee_fasttext.vec"))


@pytest.fixture(scope="module")
def lee_texts():
    return (GENSIM_DATA / "lee_background.cor").read_text(encoding="utf-8").splitlines()


def classic_recipe(kv, tokens, fallbacks=()):
    """The tutorial loop over a TextVectorization vocabulary ('' and '[UNK]' left at zero)."""
    rules = {"lower": str.lower, "title": str.capitalize, "upper": str.upper}
    matrix = np.zeros((len(tokens), kv.vector_size), dtype=np.float32)
    for i, word in enumerate(tokens):
        if word in ("", "[UNK]"):
            continue
        for candidate in [word] + [rules[r](word) for r in fallbacks]:
            if candidate in kv.key_to_index:
                matrix[i] = kv[candidate]
                break
    return matrix


def embeddings(layer):
    return np.asarray(layer.get_weights()[0])


# -- import hygiene ------------------------------------------------------------------------------


def test_import_embstore_never_imports_keras_tensorflow_or_gensim(lee, tmp_path):
    store, _ = lee
    code = textwrap.dedent(f"""
        import json, sys
        import embstore
        store = embstore.open({store.path!r})
        store.build_matrix({{"the": 1, "zzz": 2}}, oov="random")
        store.lookup(["the"])
        embstore.convert({str(GENSIM_DATA / "test_glove.txt")!r}, {str(tmp_path / "g.emb")!r},
                         quiet=True)
        import embstore.keras, embstore.gensim  # the modules import their libraries lazily
        embstore.keras.embedding_layer, embstore.gensim.from_keyedvectors
        heavy = ("tensorflow", "keras", "gensim", "jax", "torch")
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


# -- the layer -----------------------------------------------------------------------------------


def test_layer_holds_the_matrix(keras, embedding_layer, lee):
    store, kv = lee
    tokens = ["", "[UNK]", "the", "of", "Sydney", "qwertyuiop"]
    layer = embedding_layer(store, tokens, name="pretrained")
    assert isinstance(layer, keras.layers.Embedding)
    assert layer.built and layer.name == "pretrained"
    assert type(layer.input_dim) is int and type(layer.output_dim) is int
    assert (layer.input_dim, layer.output_dim) == (6, 10)
    assert layer.embeddings.dtype == "float32"
    assert not layer.trainable and layer.trainable_weights == []
    # The variable itself is frozen too: Keras 3.0 collects a model's trainable variables by
    # the variables' own flag.
    assert not any(v.trainable for v in layer.weights)
    np.testing.assert_array_equal(embeddings(layer), classic_recipe(kv, tokens))
    ids = np.array([[2, 3, 0, 5]])
    out = np.asarray(layer(ids))
    np.testing.assert_array_equal(out[0], classic_recipe(kv, tokens)[[2, 3, 0, 5]])


def test_config_holds_no_matrix(keras, embedding_layer, lee):
    store, _ = lee
    layer = embedding_layer(store, list(store.words[:1000]))
    config = keras.saving.serialize_keras_object(layer)
    text = json.dumps(config)
    assert len(text) < 5000  # the 1000 x 10 matrix would be ~200 KB of JSON
    assert "Constant" not in text
    assert layer.get_config()["embeddings_initializer"]["class_name"] == "Zeros"


@pytest.mark.parametrize("form", ["tokens", "word_index", "ndarray", "text-file", "json-file"])
def test_vocabulary_forms(embedding_layer, lee, tmp_path, form):
    store, _ = lee
    tokens = ["", "[UNK]", "the", "says", "Australia", "qwertyuiop", "government"]
    expected = store.build_matrix(tokens, oov="mean")
    if form == "tokens":
        vocab = tokens
    elif form == "word_index":
        vocab = {t: i for i, t in enumerate(tokens) if t not in ("", "[UNK]")}
        expected = store.build_matrix(vocab, oov="mean")
    elif form == "ndarray":
        vocab = np.array(tokens)
    elif form == "text-file":
        vocab = tmp_path / "vocab.txt"
        vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    else:
        vocab = tmp_path / "word_index.json"
        vocab.write_text(json.dumps({"the": 1, "says": 2, "zzz": 3}), encoding="utf-8")
        expected = store.build_matrix({"the": 1, "says": 2, "zzz": 3}, oov="mean")
    layer = embedding_layer(store, vocab, oov="mean")
    np.testing.assert_array_equal(embeddings(layer), expected.matrix)


def test_text_vectorization_layer(keras, embedding_layer, lee, lee_texts):
    """A TextVectorization adapted on text: the matrix is the classic recipe's over its
    get_vocabulary(), with '' zero, and '[UNK]' the OOV fill."""
    store, kv = lee
    vectorize = keras.layers.TextVectorization(max_tokens=3000)
    vectorize.adapt(lee_texts)
    tokens = vectorize.get_vocabulary()
    assert tokens[:2] == ["", "[UNK]"] and len(tokens) == 3000

    result = store.build_matrix(vectorize)
    np.testing.assert_array_equal(result.matrix, classic_recipe(kv, tokens))
    assert result.hits + result.misses == len(tokens) - 2

    titled = store.build_matrix(vectorize, fallbacks=["title"], num_words=1000)
    np.testing.assert_array_equal(titled.matrix, classic_recipe(kv, tokens[:1000], ["title"]))
    assert titled.fallback_hits["title"] > 0

    layer, res = embedding_layer(store, vectorize, oov="random", seed=4, return_result=True)
    np.testing.assert_array_equal(embeddings(layer), res.matrix)
    np.testing.assert_array_equal(res.matrix,
                                  store.build_matrix(tokens, oov="random", seed=4).matrix)
    assert res.matrix[1].any() and not res.matrix[0].any()  # [UNK] filled, padding zero


def test_string_lookup_layer(keras, embedding_layer, lee):
    store, kv = lee
    words = ["the", "Sydney", "qwertyuiop", "of", "government"]
    lookup = keras.layers.StringLookup(vocabulary=words)
    tokens = lookup.get_vocabulary()
    assert tokens[0] == "[UNK]"  # no mask token: id 0 is the OOV id
    result = store.build_matrix(lookup, oov="mean")
    mean = kv.vectors.astype(np.float64).mean(axis=0).astype(np.float32)
    expected = classic_recipe(kv, tokens)
    expected[0] = mean
    expected[tokens.index("qwertyuiop")] = mean
    np.testing.assert_array_equal(result.matrix, expected)
    assert (result.hits, result.missing) == (4, ["qwertyuiop"])
    layer = embedding_layer(store, lookup, oov="mean")
    np.testing.assert_array_equal(embeddings(layer), expected)
    # with a mask token, '' comes first and is padding
    masked = keras.layers.StringLookup(vocabulary=words, mask_token="")
    assert masked.get_vocabulary()[:2] == ["", "[UNK]"]
    assert not store.build_matrix(masked, oov="mean").matrix[0].any()


def test_return_result_and_matrix_options(embedding_layer, lee):
    store, _ = lee
    word_index = {"the": 1, "australia": 2, "sydney": 3, "zzz": 4, "of": 5}
    layer, result = embedding_layer(store, word_index, return_result=True, num_words=5,
                                    fallbacks=["title"], oov="random", seed=1)
    assert isinstance(result, embstore.MatrixResult)
    assert result.rows == layer.input_dim == 5  # 'of' (id 5) is beyond num_words
    assert result.fallback_hits == {"title": 2}
    assert result.missing == ["zzz"]
    np.testing.assert_array_equal(embeddings(layer), result.matrix)
    with pytest.raises(ValueError, match="oov"):
        embedding_layer(store, word_index, oov="bogus")


def test_out_option_builds_into_a_memmap(embedding_layer, lee, tmp_path):
    store, _ = lee
    tokens = ["", "[UNK]", *store.words[:500]]
    out = np.memmap(tmp_path / "m.f32", dtype=np.float32, mode="w+", shape=(502, 10))
    layer, result = embedding_layer(store, tokens, out=out, return_result=True)
    assert result.matrix is out
    np.testing.assert_array_equal(embeddings(layer), store.build_matrix(tokens).matrix)


def test_mask_zero(keras, embedding_layer, lee):
    store, _ = lee
    tokens = ["", "[UNK]", "the", "of", "Sydney"]
    layer = embedding_layer(store, tokens, mask_zero=True)
    assert layer.mask_zero
    ids = np.array([[2, 4, 0, 0], [3, 0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(layer.compute_mask(ids)), ids != 0)
    # Masked pooling ignores padding: padded and unpadded sequences give the same output.
    inp = keras.Input(shape=(None,), dtype="int32")
    model = keras.Model(inp, keras.layers.GlobalAveragePooling1D()(layer(inp)))
    padded = np.asarray(model(np.array([[2, 4, 0, 0, 0]])))
    unpadded = np.asarray(model(np.array([[2, 4]])))
    np.testing.assert_allclose(padded, unpadded, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedding_layer(store, tokens, mask_zero=True)  # row 0 is padding: no warning
    with pytest.warns(UserWarning, match="mask_zero"):
        embedding_layer(store, ["the", "of"], mask_zero=True)  # row 0 holds 'the'


# -- models --------------------------------------------------------------------------------------

POSITIVE = [f"good{i}" for i in range(40)]
NEGATIVE = [f"bad{i}" for i in range(40)]
NEUTRAL = [f"word{i}" for i in range(1500)]
UNSEEN = [f"unseen{i}" for i in range(30)]  # in the texts, not in the store


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    """A store with 64-d vectors whose first dimension carries the sentiment, and texts."""
    rng = np.random.default_rng(0)
    words = POSITIVE + NEGATIVE + NEUTRAL + [f"extra{i}" for i in range(500)]
    vectors = rng.normal(0, 0.3, (len(words), 64)).astype(np.float32)
    vectors[: len(POSITIVE), 0] += 2.0
    vectors[len(POSITIVE): len(POSITIVE) + len(NEGATIVE), 0] -= 2.0
    src = tmp_path_factory.mktemp("sentiment") / "vectors.bin"
    with open(src, "wb") as fh:
        fh.write(f"{len(words)} 64\n".encode())
        for w, v in zip(words, vectors, strict=True):
            fh.write(w.encode() + b" " + v.tobytes())
    embstore.convert(src, src.with_suffix(".emb"), quiet=True)
    texts, labels = [], []
    for _ in range(600):
        label = int(rng.integers(0, 2))
        pool = POSITIVE if label else NEGATIVE
        sentence = list(rng.choice(pool, 3)) + list(rng.choice(NEUTRAL, 6))
        sentence += list(rng.choice(UNSEEN, 1))
        rng.shuffle(sentence)
        texts.append(" ".join(sentence))
        labels.append(label)
    with embstore.open(src.with_suffix(".emb")) as store:
        yield store, texts, np.array(labels, dtype="float32")


def string_batches(texts, labels):
    """Keras feeds strings to a model through TensorFlow tensors (its NumPy adapter refuses
    string arrays)."""
    tf = pytest.importorskip("tensorflow")
    return tf.data.Dataset.from_tensor_slices((tf.constant(texts)[:, None], labels)).batch(32)


def make_model(keras, layer, vectorize):
    inp = keras.Input(shape=(1,), dtype="string")
    x = vectorize(inp)
    x = layer(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def test_frozen_model_trains_saves_and_loads(keras, embedding_layer, sentiment, tmp_path):
    tf = pytest.importorskip("tensorflow")
    store, texts, labels = sentiment
    vectorize = keras.layers.TextVectorization(output_sequence_length=12)
    vectorize.adapt(texts)
    layer, result = embedding_layer(store, vectorize, name="pretrained", oov="random",
                                    return_result=True)
    assert result.missing == sorted(result.missing, key=vectorize.get_vocabulary().index)
    assert set(result.missing) == set(UNSEEN)
    before = embeddings(layer).copy()
    model = make_model(keras, layer, vectorize)
    dense_before = model.layers[-1].get_weights()[0].copy()
    assert len(model.trainable_variables) == 2  # the Dense kernel and bias only
    history = model.fit(string_batches(texts, labels), epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    np.testing.assert_array_equal(embeddings(layer), before)  # frozen
    assert not np.array_equal(model.layers[-1].get_weights()[0], dense_before)  # it trained
    probe = tf.constant([["good1 good2 word3"], ["bad1 bad2 word3"], ["unseen1 word9"]])
    predictions = np.asarray(model.predict(probe, verbose=0))
    assert predictions.shape == (3, 1) and np.isfinite(predictions).all()

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_layer = loaded.get_layer("pretrained")
    np.testing.assert_array_equal(embeddings(loaded_layer), before)
    assert not loaded_layer.trainable
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(loaded.predict(probe, verbose=0)), predictions)
    # The matrix is saved once, as a weight: the file is about the matrix's size.
    matrix_bytes = result.matrix.nbytes
    assert matrix_bytes > 350_000
    assert os.path.getsize(path) < 1.5 * matrix_bytes + 100_000


def test_constant_initializer_would_be_much_bigger(keras, embedding_layer, sentiment, tmp_path):
    """Why weights are set rather than passed as Constant(matrix): the classic way writes the
    matrix into the config as JSON text too, several times the matrix's size."""
    store, texts, _ = sentiment
    vectorize = keras.layers.TextVectorization(output_sequence_length=12)
    vectorize.adapt(texts)
    ours = make_model(keras, embedding_layer(store, vectorize), vectorize)
    matrix = store.build_matrix(vectorize).matrix
    classic_layer = keras.layers.Embedding(
        matrix.shape[0], matrix.shape[1], trainable=False,
        embeddings_initializer=keras.initializers.Constant(matrix))
    classic = make_model(keras, classic_layer, vectorize)
    ours.save(tmp_path / "ours.keras")
    classic.save(tmp_path / "classic.keras")
    ours_size = os.path.getsize(tmp_path / "ours.keras")
    classic_size = os.path.getsize(tmp_path / "classic.keras")
    assert classic_size > 3 * ours_size


def test_trainable_layer_learns(keras, embedding_layer, sentiment):
    store, texts, labels = sentiment
    vectorize = keras.layers.TextVectorization(output_sequence_length=12)
    vectorize.adapt(texts)
    layer = embedding_layer(store, vectorize, trainable=True, mask_zero=True)
    assert layer.trainable and len(layer.trainable_weights) == 1
    before = embeddings(layer).copy()
    model = make_model(keras, layer, vectorize)
    model.fit(string_batches(texts, labels), epochs=1, shuffle=False, verbose=0)
    after = embeddings(layer)
    used = [2, 3, 4]  # the most frequent words of the training texts
    assert not np.array_equal(after[used], before[used])
    np.testing.assert_array_equal(after[0], 0)  # padding is masked: never updated


@pytest.mark.slow
def test_peak_memory(lee, tmp_path):
    """Building a layer costs the float32 matrix plus what the backend needs to copy it into
    its variable; nothing proportional to float64 or to a JSON config."""
    n, dim = 200_000, 100
    src = tmp_path / "big.bin"
    rng = np.random.default_rng(0)
    with open(src, "wb") as fh:
        fh.write(f"{n} {dim}\n".encode())
        block = rng.standard_normal((n, dim)).astype(np.float32)
        for i in range(n):
            fh.write(f"w{i} ".encode() + block[i].tobytes())
    embstore.convert(src, tmp_path / "big.emb", quiet=True)
    code = textwrap.dedent(f"""
        import gc, json, resource
        import keras
        import embstore
        from embstore.keras import embedding_layer
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096
        store = embstore.open({str(tmp_path / "big.emb")!r})
        vocab = ["", "[UNK]"] + [f"w{{i}}" for i in range({n})]
        embedding_layer(store, vocab[:1000])  # warm up the backend
        gc.collect()
        start = rss()
        layer = embedding_layer(store, vocab)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({{"start": start, "peak": peak, "end": rss()}}))
    """)
    env = dict(os.environ, KERAS_HOME=str(tmp_path), KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    matrix_bytes = (n + 2) * dim * 4
    # matrix + store pages + variable + the backend's transient conversion copies
    assert m["peak"] - m["start"] < 5.5 * matrix_bytes + (64 << 20)
    # afterwards: the variable (the NumPy matrix is released) and the mapped store pages
    assert m["end"] - m["start"] < 2.5 * matrix_bytes + (32 << 20)


def test_keras_vocabulary_file(keras, lee, lee_texts, tmp_path):
    """The vocabulary file a TextVectorization writes ('' then '[UNK]' then words, one per
    line) is read as a token file, not mistaken for JSON because of the '['."""
    store, kv = lee
    vectorize = keras.layers.TextVectorization(max_tokens=500)
    vectorize.adapt(lee_texts)
    path = tmp_path / "vocabulary.txt"
    path.write_text("\n".join(vectorize.get_vocabulary()) + "\n", encoding="utf-8")
    np.testing.assert_array_equal(store.build_matrix(path).matrix,
                                  classic_recipe(kv, vectorize.get_vocabulary()))
    assert re.match(r"\n\[UNK\]\n", path.read_text(encoding="utf-8"))
