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
    seq: list[Any] | tuple[Any, ...]
    if isinstance(words, np.ndarray):
        seq = words.ravel().tolist()
    elif isinstance(words, str):
        raise TypeError("expected a sequence of words, got a single str")
    elif isinstance(words, (list, tuple)):
        seq = words
    else:
        seq = list(words)  # a generator is read once; the error path below reads it again
    try:
        joined = "".join(seq)  # one join and one encode in C, no bytes object per word
    except TypeError:
        bad = next(w for w in seq if not isinstance(w, str))
        raise TypeError(f"words must be str, got {type(bad).__name__}: {bad!r}") from None
    n = len(seq)
    lengths = np.fromiter(map(len, seq), dtype=np.int64, count=n)
    if not joined.isascii():
        # Characters == bytes for ASCII words; only the others are encoded one by one.
        ascii_words = np.fromiter(map(str.isascii, seq), dtype=bool, count=n)
        for i in np.flatnonzero(~ascii_words).tolist():
            lengths[i] = len(seq[i].encode("utf-8", "surrogatepass"))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    return buf, offsets


def lookup_encoded(store: EmbeddingStore, buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from ._kernels import index as kindex

    store._check_open()
    out = np.empty(offsets.size - 1, dtype=np.int64)
    if out.size == 0:
        return out
    corrupt = kindex.lookup_words(buf, offsets, store._index, store._offsets, store._bytes,
                                   len(store), out)
    if corrupt:
        raise FormatError(store.path, "damaged store: the index points outside the vocabulary "
                                      "(run `embstore verify`)")
    return out


def lookup_rows(store: EmbeddingStore, words: Iterable[Any]) -> np.ndarray:
    buf, offsets = encode_words(words)
    return lookup_encoded(store, buf, offsets)
