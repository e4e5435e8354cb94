"""Batch lookup: encode many words once, then hash, probe and compare them in parallel."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FormatError

if TYPE_CHECKING:
    from .store import EmbeddingStore


def encode_words(words: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 encode ``words`` into one buffer with int64 offsets (``len(words) + 1``).

    Lone surrogates are encoded with ``surrogatepass``: such a word cannot be in a store (its
    words are valid UTF-8), so it is simply not found rather than an error.
    """
    if isinstance(words, np.ndarray):
        words = words.ravel().tolist()
    elif isinstance(words, str):
        raise TypeError("expected a sequence of words, got a single str")
    elif not isinstance(words, (list, tuple)):
        words = list(words)  # a generator is read once; the error path below reads it again
    try:
        encoded = [w.encode("utf-8", "surrogatepass") for w in words]
    except AttributeError:
        bad = next(w for w in words if not isinstance(w, str))
        raise TypeError(f"words must be str, got {type(bad).__name__}: {bad!r}") from None
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)),
                  out=offsets[1:])
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return buf, offsets


def lookup_encoded(store: EmbeddingStore, buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from . import kernels

    store._check_open()
    out = np.empty(offsets.size - 1, dtype=np.int64)
    if out.size == 0:
        return out
    corrupt = kernels.lookup_words(buf, offsets, store._index, store._offsets, store._bytes,
                                   len(store), out)
    if corrupt:
        raise FormatError(store.path, "damaged store: the index points outside the vocabulary "
                                      "(run `embstore verify`)")
    return out


def lookup_rows(store: EmbeddingStore, words: Iterable[Any]) -> np.ndarray:
    buf, offsets = encode_words(words)
    return lookup_encoded(store, buf, offsets)
