"""Batch lookup: encode many words once, then hash, probe and compare them in a kernel.

Also the two policies every batch caller needs and should not write again: case fallbacks
tried after an exact miss (:func:`resolve_rows`), and what a missing word's vector is
(:func:`vectors_of`), so that no caller ever indexes the matrix with a ``-1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FormatError

if TYPE_CHECKING:
    from .store import EmbeddingStore


def _title(word: str) -> str:
    return word.capitalize()


FALLBACKS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "title": _title,  # first letter upper case, the rest lower case
    "upper": str.upper,
}
MISSING_POLICIES = ("error", "zeros", "mean", "nan")
MAX_SHOWN = 10


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
    # str's own methods, never a subclass's: a __len__ (or encode) that lies would make the
    # offsets disagree with the bytes the kernel reads.
    lengths = np.fromiter(map(str.__len__, seq), dtype=np.int64, count=n)
    if not joined.isascii():
        # Characters == bytes for ASCII words; only the others are encoded one by one.
        ascii_words = np.fromiter(map(str.isascii, seq), dtype=bool, count=n)
        for i in np.flatnonzero(~ascii_words).tolist():
            lengths[i] = len(str.encode(seq[i], "utf-8", "surrogatepass"))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(str.encode(joined, "utf-8", "surrogatepass"), dtype=np.uint8)
    if int(offsets[-1]) != buf.size:  # cannot happen with real str; never pass it on if it does
        raise TypeError("words could not be encoded consistently")
    return buf, offsets


def lookup_encoded(store: EmbeddingStore, buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from ._kernels import index as kindex

    arrays = store.vocab_arrays
    out = np.empty(offsets.size - 1, dtype=np.int64)
    if out.size == 0:
        return out
    corrupt = kindex.lookup_words(buf, offsets, arrays.index, arrays.offsets, arrays.data,
                                  len(store), out)
    if corrupt:
        raise FormatError(store.path, "damaged store: the index points outside the vocabulary "
                                      "(run `embstore verify`)")
    return out


def lookup_rows(store: EmbeddingStore, words: Iterable[Any]) -> np.ndarray:
    buf, offsets = encode_words(words)
    return lookup_encoded(store, buf, offsets)


def check_fallbacks(fallbacks: Sequence[str] | str) -> list[str]:
    """The fallback rules as a list; a comma-separated string is accepted (spaces ignored)."""
    if isinstance(fallbacks, str):
        fallbacks = [f.strip() for f in fallbacks.split(",") if f.strip()]
    rules = list(fallbacks)
    for rule in rules:
        if rule not in FALLBACKS:
            raise ValueError(f"unknown fallback {rule!r}; choose from {', '.join(FALLBACKS)}")
    return rules


def resolve_rows(store: EmbeddingStore, words: Sequence[str], fallbacks: Sequence[str] = (),
                 ) -> tuple[np.ndarray, dict[str, int]]:
    """Rows of ``words`` (``-1`` if absent), trying each case fallback in order after an exact
    miss; also how many words each rule found (every rule reported, 0 when unused)."""
    rules = check_fallbacks(fallbacks)
    rows = lookup_rows(store, words)
    fallback_hits: dict[str, int] = dict.fromkeys(rules, 0)
    if rules:
        miss = np.flatnonzero(rows < 0)
        for rule in rules:
            if miss.size == 0:
                break
            # Transform every missing word (map runs the str method in C) and look them all
            # up: a variant equal to its word just misses again, which costs less than
            # filtering in a Python loop.
            alts = list(map(FALLBACKS[rule], [words[i] for i in miss.tolist()]))
            alt_rows = lookup_rows(store, alts)
            hit = alt_rows >= 0
            rows[miss[hit]] = alt_rows[hit]
            fallback_hits[rule] = int(hit.sum())
            miss = miss[~hit]
    return rows, fallback_hits


def vectors_of(store: EmbeddingStore, words: Sequence[str] | np.ndarray, *,
               missing: str = "error", fallbacks: Sequence[str] = ()) -> np.ndarray:
    """``(len(words), dim)`` float32 vectors; a missing word's row follows ``missing``."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_POLICIES)}, not {missing!r}")
    if isinstance(words, str):
        raise TypeError("expected a sequence of words, got a single str")
    seq = words.ravel().tolist() if isinstance(words, np.ndarray) else list(words)
    rows, _ = resolve_rows(store, seq, fallbacks)
    absent = rows < 0
    if absent.any() and missing == "error":
        lost = [seq[i] for i in np.flatnonzero(absent)[:MAX_SHOWN].tolist()]
        n_lost = int(absent.sum())
        more = f" and {n_lost - MAX_SHOWN:,} more" if n_lost > MAX_SHOWN else ""
        raise KeyError(f"{n_lost:,} of {rows.size:,} words are not in the store: "
                       f"{', '.join(map(repr, lost))}{more} (pass missing='zeros', 'mean' or "
                       "'nan' to fill their rows)")
    out = np.take(store.vectors, np.where(absent, 0, rows), axis=0)
    if absent.any():
        fill = {"zeros": 0.0, "nan": np.nan}.get(missing)
        out[absent] = store.mean.astype(np.float32) if fill is None else fill
    return out
