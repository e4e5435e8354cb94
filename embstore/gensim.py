"""Stores from and to gensim ``KeyedVectors``.

* :func:`from_keyedvectors` writes a store from a ``KeyedVectors`` -- and so from anything
  gensim can load or train (``Word2Vec.wv``, ``FastText.wv``, ``load_facebook_vectors``,
  ``KeyedVectors.load``).  The store is the one :func:`embstore.convert` makes from the same
  vectors saved as a word2vec file: same rows, words, index and vectors, byte for byte; only
  the metadata differs.
* :func:`to_keyedvectors` makes a ``KeyedVectors`` for a subset of a store's words (or all of
  them) with exactly the stored float32 vectors, for gensim's similarity queries.

gensim is imported here only: ``import embstore`` never imports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from ._convert.report import ConversionReport
    from .store import EmbeddingStore

__all__ = ["from_keyedvectors", "to_keyedvectors"]

BATCH_BYTES = 8 << 20  # float32 vectors per batch: bounds the extra memory of a conversion
MAX_SHOWN = 10  # missing words named in a KeyError


def _import_gensim_kv() -> Any:
    try:
        from gensim.models import KeyedVectors
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("embstore.gensim needs gensim 4: pip install 'embstore[gensim]'") from exc
    return KeyedVectors


def _key_text(key: Any) -> str:
    """The word a key is written as in a word2vec file (gensim writes ``f"{key}"``)."""
    return key if isinstance(key, str) else str(key)


def from_keyedvectors(kv: Any, dst: str | os.PathLike[str], *,
                      force: bool = False) -> ConversionReport:
    """Write the vectors of a gensim ``KeyedVectors`` to a new store at ``dst``.

    Rows keep ``kv.index_to_key`` order.  ``kv.vectors`` is streamed in batches of about
    8 MB through the same writer and vocabulary index as :func:`embstore.convert`, so the
    vectors are never copied whole (a memory-mapped ``KeyedVectors.load(..., mmap="r")``
    stays on disk) and the store is byte-identical, outside its metadata, to converting
    ``kv.save_word2vec_format(...)``.  Non-``str`` keys (Doc2Vec tags) are written as
    ``str(key)``, as ``save_word2vec_format`` does; of keys that become the same word the first
    is kept.  float64 vectors are rounded to float32.

    Returns:
        A :class:`~embstore.ConversionReport` (``format`` is ``"keyedvectors"``).

    Raises:
        StoreExistsError: ``dst`` exists and ``force`` is false.
        OutputError: ``dst`` is the file the vectors are mapped from, ends with a separator,
            or with ``force`` is not a store.
        ValueError: ``kv`` is empty.
        ConversionError: a vector is NaN or infinite (after rounding to float32), or a key
            is not valid Unicode (a ``ValueError`` too).
        TypeError: ``kv`` is neither a ``KeyedVectors`` nor a model with ``.wv``.
    """
    from ._atomic import check_destination
    from ._build.builder import StoreBuilder, mapped_file, provenance
    from ._convert.report import ConversionReport

    t0 = time.perf_counter()
    kv = _keyed_vectors_of(kv)
    keys = kv.index_to_key
    vectors = kv.vectors
    n = len(keys)
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ValueError(f"KeyedVectors holds {n} keys but vectors of shape {vectors.shape}")
    if n == 0:
        raise ValueError("the KeyedVectors is empty: there is nothing to write")
    dim = int(vectors.shape[1])
    inputs = [mapped_file(vectors)]  # a KeyedVectors loaded with mmap reads its .npy file
    dst_path = check_destination(dst, inputs=inputs, force=force, kind="store")
    label = f"<{type(kv).__name__}>"
    batch = max(1, min(1 << 18, BATCH_BYTES // (4 * dim)))
    with StoreBuilder(dst_path, dim, force=force, expected_rows=n, label=label,
                      inputs=inputs) as builder:
        for a in range(0, n, batch):
            b = min(n, a + batch)
            builder.add([_key_text(k) for k in keys[a:b]], vectors[a:b], first_row=a)
        metadata = provenance(
            {"name": type(kv).__name__, "format": "keyedvectors", "compression": None,
             "bytes": int(vectors.nbytes), "declared_rows": n},
            records=n, duplicates=builder.duplicates, skipped_lines=0, limit=None)
        built = builder.finish(metadata)
    return ConversionReport(
        source=label, destination=str(dst_path), format="keyedvectors",
        compression=None, rows=built.rows, dim=dim, records=n, duplicates=built.duplicates,
        skipped_lines=0, blank_lines=0, declared_rows=n, bytes_read=int(vectors.nbytes),
        input_bytes=int(vectors.nbytes), store_bytes=built.file_bytes,
        seconds=time.perf_counter() - t0)


def _keyed_vectors_of(model: Any) -> Any:
    """``model`` itself when it is a ``KeyedVectors``; the ``.wv`` of a ``Word2Vec`` /
    ``FastText`` / ``Doc2Vec`` model (what users pass by mistake)."""
    if hasattr(model, "index_to_key") and hasattr(model, "vectors"):
        return model
    wv = getattr(model, "wv", None)
    if wv is not None and hasattr(wv, "index_to_key") and hasattr(wv, "vectors"):
        return wv
    raise TypeError(f"expected a gensim KeyedVectors (or a model with .wv), got "
                    f"{type(model).__name__}")


def _first_repeat(words: list[str]) -> str:
    seen: set[str] = set()
    for w in words:
        if w in seen:
            return w
        seen.add(w)
    raise AssertionError("no repeated word")


def to_keyedvectors(store: EmbeddingStore, words: Iterable[str] | None = None, *,
                    missing: Literal["error", "skip"] = "error") -> Any:
    """A gensim ``KeyedVectors`` with the store's vectors for ``words`` (all words if None).

    Keys are in the order given, vectors are the stored float32 values exactly (a copy:
    the result does not depend on the store staying open).

    Args:
        words: the words to include, in order; each at most once.
        missing: ``"error"`` raises ``KeyError`` naming the words the store lacks;
            ``"skip"`` leaves them out.

    Raises:
        KeyError: some ``words`` are not in the store (``missing="error"``).
        ValueError: a word is repeated, or ``missing`` is not ``"error"``/``"skip"``.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', not {missing!r}")
    KeyedVectors = _import_gensim_kv()
    if words is None:
        keys = list(store.words)
        vectors = np.array(store.vectors, dtype=np.float32, order="C")
    else:
        if isinstance(words, str):
            raise TypeError("words must be a sequence of words, not a single str")
        keys = list(words)
        rows = store.lookup(keys)
        absent = rows < 0
        if absent.any():
            lost = [keys[i] for i in np.flatnonzero(absent).tolist()]
            if missing == "error":
                shown = ", ".join(repr(w) for w in lost[:MAX_SHOWN])
                more = f" and {len(lost) - MAX_SHOWN:,} more" if len(lost) > MAX_SHOWN else ""
                raise KeyError(f"{len(lost):,} of {len(keys):,} words are not in the store: "
                               f"{shown}{more} (pass missing='skip' to leave them out)")
            keep = ~absent
            keys = [w for w, ok in zip(keys, keep.tolist(), strict=True) if ok]
            rows = rows[keep]
        if len(set(keys)) != len(keys):
            raise ValueError(f"word {_first_repeat(keys)!r} is given more than once; "
                             "KeyedVectors keys are unique")
        vectors = np.empty((len(keys), store.dim), dtype=np.float32)
        if len(keys):
            np.take(store.vectors, rows, axis=0, out=vectors)
    kv = KeyedVectors(store.dim, count=0, dtype=np.float32)
    # Fill the public attributes directly, as gensim's own loaders do: add_vectors would
    # re-check every key and re-stack the vectors (a second copy).
    kv.index_to_key = keys
    kv.key_to_index = {w: i for i, w in enumerate(keys)}
    kv.vectors = vectors
    kv.next_index = len(keys)
    return kv
