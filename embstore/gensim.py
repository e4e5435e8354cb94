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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._version import __version__
from .errors import StoreExistsError

if TYPE_CHECKING:
    from ._convert.converter import ConversionReport
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
        ValueError: ``kv`` is empty, a vector is NaN or infinite (after rounding to
            float32), or a key is not valid Unicode.
    """
    from ._build.vocabulary import VocabularyBuilder
    from ._build.writer import StoreWriter
    from ._convert.converter import ConversionReport

    t0 = time.perf_counter()
    keys = kv.index_to_key
    vectors = kv.vectors
    n = len(keys)
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ValueError(f"KeyedVectors holds {n} keys but vectors of shape {vectors.shape}")
    if n == 0:
        raise ValueError("the KeyedVectors is empty: there is nothing to write")
    dim = int(vectors.shape[1])
    dst_path = Path(dst)
    if not force and dst_path.exists():
        raise StoreExistsError(dst_path)
    batch = max(1, min(1 << 18, BATCH_BYTES // (4 * dim)))
    duplicates = 0
    with StoreWriter(dst_path, dim, force=force) as writer:
        vocab = VocabularyBuilder(n)
        for a in range(0, n, batch):
            b = min(n, a + batch)
            words = [_key_text(k) for k in keys[a:b]]
            try:
                encoded = [w.encode("utf-8") for w in words]
            except UnicodeEncodeError:
                bad = next(w for w in words if not _encodable(w))
                raise ValueError(f"key {bad!r} is not valid Unicode (lone surrogate); a store "
                                 "holds UTF-8 words") from None
            rows = _float32_rows(vectors[a:b])
            finite = np.isfinite(rows).all(axis=1)
            if not finite.all():
                i = int(np.flatnonzero(~finite)[0])
                raise ValueError(f"the vector of {words[i]!r} (row {a + i}) holds NaN or "
                                 "infinity in float32; a store holds finite vectors only")
            k = b - a
            wen = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=k))
            wst = wen - np.fromiter(map(len, encoded), dtype=np.int64, count=k)
            src = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            if src.size == 0:  # every word of the batch is ''
                src = np.zeros(1, dtype=np.uint8)
            keep = np.zeros(k, dtype=np.uint8)
            dups = vocab.insert(src, wst, wen, np.arange(k, dtype=np.int64), keep)
            if dups:
                duplicates += dups
                rows = rows[keep.view(bool)]
            writer.write_vectors(rows)
        words_b, offsets, index = vocab.finish()
        metadata = {
            "embstore_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": {
                "name": type(kv).__name__,
                "format": "keyedvectors",
                "compression": None,
                "bytes": int(vectors.nbytes),
                "declared_rows": n,
            },
            "records": n,
            "duplicates": duplicates,
            "skipped_lines": 0,
            "limit": None,
        }
        store_bytes = writer.finish(words_b, offsets, index, metadata)
        rows_written = writer.n_rows
    return ConversionReport(
        source=f"<{type(kv).__name__}>", destination=str(dst_path), format="keyedvectors",
        compression=None, rows=rows_written, dim=dim, records=n, duplicates=duplicates,
        skipped_lines=0, blank_lines=0, declared_rows=n, bytes_read=int(vectors.nbytes),
        input_bytes=int(vectors.nbytes), store_bytes=store_bytes,
        seconds=time.perf_counter() - t0)


def _encodable(word: str) -> bool:
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_repeat(words: list[str]) -> str:
    seen: set[str] = set()
    for w in words:
        if w in seen:
            return w
        seen.add(w)
    raise AssertionError("no repeated word")


def _float32_rows(block: np.ndarray) -> np.ndarray:
    """``block`` as C-contiguous float32, without a copy when it already is one."""
    if block.dtype == np.float32 and block.flags.c_contiguous:
        return block
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: rejected
        return np.ascontiguousarray(block, dtype=np.float32)


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
