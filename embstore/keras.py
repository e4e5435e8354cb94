"""A Keras ``Embedding`` layer holding a store's vectors for a vocabulary.

::

    from embstore.keras import embedding_layer

    vectorize = keras.layers.TextVectorization(max_tokens=20000)
    vectorize.adapt(texts)
    embed = embedding_layer(store, vectorize, mask_zero=True, oov="random")

Keras (and so TensorFlow or another backend) is imported here only, when a layer is made:
``import embstore`` never imports it.

The matrix goes into the layer's weights, not into its config.  The classic
``embeddings_initializer=Constant(matrix)`` puts the whole matrix into the layer's JSON config,
so a saved ``.keras`` file carries it twice and config parsing becomes slow; the ``weights=``
argument does not exist in Keras 3.0-3.2.  Building the layer and calling ``set_weights`` works
on every Keras 3 version (and on Keras 2) and saves the matrix once, as a weight.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .matrix import VocabLike
    from .store import EmbeddingStore

__all__ = ["embedding_layer"]


def _import_keras() -> Any:
    try:
        import keras
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "embstore.keras needs Keras 3 and a backend: pip install 'embstore[keras]' "
            "tensorflow (or jax / torch)") from exc
    return keras


def embedding_layer(store: EmbeddingStore, vocab: VocabLike, *, trainable: bool = False,
                    mask_zero: bool = False, name: str | None = None,
                    return_result: bool = False, **matrix_options: Any) -> Any:
    """A built ``keras.layers.Embedding`` whose weights are ``store.build_matrix(vocab)``.

    Args:
        store: an open :class:`~embstore.EmbeddingStore`.
        vocab: the vocabulary whose ids the layer will receive: a ``TextVectorization`` or
            ``StringLookup`` layer, a token list (position = id), a ``word_index`` dict or a
            vocabulary file; see :mod:`embstore.vocab`.
        trainable: False (the default) freezes the pretrained vectors.
        mask_zero: pass through to ``Embedding``: id 0 is padding and is masked.
        name: the layer's name (Keras picks one if None).
        return_result: also return the :class:`~embstore.MatrixResult` (hits, misses,
            missing words, and the matrix itself).
        **matrix_options: ``num_words``, ``oov``, ``fallbacks``, ``seed``, ``out``; see
            :func:`embstore.matrix.build_matrix`.

    Returns:
        The layer, or ``(layer, result)`` with ``return_result=True``.

    Memory: the float32 matrix is built once and handed to ``set_weights`` as is; the
    variable is created with the cheap ``zeros`` initializer (no random draws that the matrix
    would overwrite).  While ``set_weights`` runs, the backend holds its own conversion of the
    array as well: on TensorFlow the peak is about four times the matrix.  Unless
    ``return_result`` keeps it, the NumPy matrix is released on return and the variable is
    the only copy.

    Keras 3.0 caveat (seen on 3.0.5): a frozen layer read back by ``keras.saving.load_model``
    has trainable variables again, so ``fit`` updates it; after loading on that version, run
    ``for v in layer.weights: v.trainable = False`` (``layer.trainable = False`` is a no-op
    there because the flag already reads False).
    """
    keras = _import_keras()
    result = store.build_matrix(vocab, **matrix_options)
    rows, dim = result.matrix.shape
    if mask_zero and rows and bool(result.found[0]):
        warnings.warn(
            "mask_zero=True masks id 0, but row 0 of this vocabulary holds a word's vector; "
            "is the vocabulary's padding at id 0?", UserWarning, stacklevel=2)
    # Python ints: Keras 3.15 rejects NumPy integers for input_dim / output_dim.
    layer = keras.layers.Embedding(
        input_dim=int(rows), output_dim=int(dim), embeddings_initializer="zeros",
        mask_zero=bool(mask_zero), name=name)
    layer.build((None,))
    layer.set_weights([result.matrix])
    # Freeze through the setter once the variable exists, never the constructor argument:
    # Keras 3.0 collects a model's trainable variables by the variables' own flag, which only
    # the setter changes, so a layer built with trainable=False is still trained by fit().
    # (The layer starts trainable because the TensorFlow backend skips an assignment of the
    # value an attribute already has.)
    if not trainable:
        layer.trainable = False
    if return_result:
        return layer, result
    return layer

