"""The vocabulary forms users have, normalised to rows and words.

* a ``dict[str, int]`` such as the legacy Keras ``Tokenizer.word_index`` (1-based; rows with
  no word, like row 0, stay zero);
* a list of tokens where position = row, such as ``TextVectorization.get_vocabulary()``
  (``''`` is padding and stays zero, ``'[UNK]'`` is the OOV token and gets the OOV fill);
* a Keras ``TextVectorization`` or ``StringLookup`` layer (anything with ``get_vocabulary()``);
* a path to a JSON word_index (or JSON token list) or a text file with one token per line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from .errors import VocabularyError

PADDING_TOKEN = ""
OOV_TOKEN = "[UNK]"

VocabLike = Union[Mapping[str, int], Iterable[str], str, "os.PathLike[str]", Any]


@dataclass
class Vocabulary:
    """Words to look up and where they go."""

    rows: int
    words: list[str]  # words to look up (special tokens excluded)
    positions: np.ndarray  # int64 row of each word
    oov_rows: np.ndarray  # rows that always get the OOV fill ('[UNK]')
    kind: str  # "word_index" or "tokens"
    unique: bool = True  # no two words share a row


def _check_num_words(num_words: int | None) -> None:
    if num_words is not None and (isinstance(num_words, bool) or not isinstance(num_words, int)
                                  or num_words < 1):
        raise VocabularyError(f"num_words must be a positive int, not {num_words!r}")


def from_word_index(word_index: Mapping[str, int], num_words: int | None) -> Vocabulary:
    """Tokenizer semantics: rows = min(num_words, max index + 1); larger ids are skipped."""
    _check_num_words(num_words)
    words = list(word_index.keys())
    values = list(word_index.values())
    if set(map(type, values)) - {int}:  # the common case is checked in one C-level pass
        for key, v in zip(words, values, strict=True):
            if not _is_int(v):
                raise VocabularyError(
                    f"word_index values must be ints; {key!r} maps to {v!r}")
        values = [int(v) for v in values]
    try:
        positions = np.array(values, dtype=np.int64)
    except OverflowError:
        raise VocabularyError("word_index has an index too large for int64") from None
    if set(map(type, words)) - {str}:  # str subclasses are accepted, checked one by one
        for w in words:
            if not isinstance(w, str):
                raise VocabularyError(f"word_index keys must be str, found {w!r}")
    if positions.size and positions.min() < 0:
        k = int(np.argmin(positions))
        raise VocabularyError(f"word_index has a negative index: {words[k]!r} -> {positions[k]}")
    rows = int(positions.max()) + 1 if positions.size else 1
    if num_words is not None:
        rows = min(rows, num_words)
    inside = positions < rows
    if not inside.all():
        words = [w for w, ok in zip(words, inside.tolist(), strict=True) if ok]
        positions = positions[inside]
    unique = bool(positions.size == 0 or np.bincount(positions, minlength=rows).max() <= 1)
    return Vocabulary(rows, words, positions, np.empty(0, dtype=np.int64), "word_index", unique)


def from_tokens(tokens: Iterable[Any], num_words: int | None) -> Vocabulary:
    """Position = row; ``''`` is padding, ``'[UNK]'`` the OOV token."""
    _check_num_words(num_words)
    toks = [t.decode("utf-8") if isinstance(t, bytes) else t for t in tokens]
    for t in toks:
        if not isinstance(t, str):
            raise VocabularyError(f"vocabulary tokens must be str, found {t!r}")
    if num_words is not None:
        toks = toks[:num_words]
    if not toks:
        raise VocabularyError("the vocabulary is empty")
    positions = np.arange(len(toks), dtype=np.int64)
    special = np.fromiter((t in (PADDING_TOKEN, OOV_TOKEN) for t in toks), dtype=bool,
                          count=len(toks))
    oov_rows = np.fromiter((i for i, t in enumerate(toks) if t == OOV_TOKEN), dtype=np.int64)
    if special.any():
        words = [t for t, s in zip(toks, special.tolist(), strict=True) if not s]
        positions = positions[~special]
    else:
        words = toks
    return Vocabulary(len(toks), words, positions, oov_rows, "tokens")


def from_file(path: str | os.PathLike[str], num_words: int | None) -> Vocabulary:
    """A JSON word_index / token list, or a text file with one token per line (line = row)."""
    p = os.fspath(path)
    with open(p, "rb") as fh:
        raw = fh.read()
    is_json = p.endswith(".json")
    text_start = raw.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    if is_json or text_start in (b"{", b"["):
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # too deeply nested
            if is_json:
                raise VocabularyError(f"{p}: not valid JSON ({exc})") from None
            # Not JSON after all: a token file may start with '[UNK]' or '{' (a Keras
            # vocabulary file is "\n[UNK]\nthe\n...").
            data = None
        if isinstance(data, dict):
            return from_word_index(data, num_words)
        if isinstance(data, list):
            return from_tokens(data, num_words)
        if is_json:
            raise VocabularyError(f"{p}: expected a JSON object (word_index) or list of tokens")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VocabularyError(f"{p}: vocabulary file is not UTF-8 ({exc})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return from_tokens([ln[:-1] if ln.endswith("\r") else ln for ln in lines], num_words)


def normalize(vocab: VocabLike, num_words: int | None) -> Vocabulary:
    """Any supported vocabulary form as a :class:`Vocabulary` (returned as is if it is one)."""
    if isinstance(vocab, Vocabulary):
        return vocab
    if isinstance(vocab, Mapping):
        return from_word_index(vocab, num_words)
    if isinstance(vocab, (str, os.PathLike)):
        return from_file(vocab, num_words)
    get_vocabulary = getattr(vocab, "get_vocabulary", None)
    if callable(get_vocabulary):
        return from_tokens(get_vocabulary(), num_words)
    if isinstance(vocab, np.ndarray):
        return from_tokens(vocab.ravel().tolist(), num_words)
    if isinstance(vocab, Iterable):
        return from_tokens(vocab, num_words)
    raise VocabularyError(
        f"cannot use {type(vocab).__name__} as a vocabulary: expected a word_index dict, a list "
        "of tokens, a Keras TextVectorization/StringLookup layer or a vocabulary file path")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
