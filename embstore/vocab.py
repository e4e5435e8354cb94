"""The vocabulary forms users have, normalised to rows and words.

* a ``dict[str, int]`` such as the legacy Keras ``Tokenizer.word_index`` (1-based; rows with
  no word, like row 0, stay zero);
* a list of tokens where position = row, such as ``TextVectorization.get_vocabulary()``
  (``''`` is padding and stays zero, ``'[UNK]'`` is the OOV token and gets the OOV fill);
* a Keras ``TextVectorization`` or ``StringLookup`` layer (anything with ``get_vocabulary()``);
* a path to a JSON word_index (or JSON token list) or a text file with one token per line.
"""

from __future__ import annotations

import bz2
import json
import lzma
import os
import re
import zlib
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
    toks = [_token(t) for t in tokens]
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
        head = fh.read(HEAD_BYTES)
        # Before reading the rest: a vector file given as the vocabulary can be gigabytes.
        _refuse_other_files(p, head, whole=len(head) < HEAD_BYTES)
        raw = head + fh.read()
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


HEAD_BYTES = 1 << 16  # what is looked at to tell a vocabulary file from other files
FORMS = ("a vocabulary is a JSON word_index or token list, or a text file with one token per "
         "line")
_HEADER_RE = re.compile(rb"^[ \t]*(\d+)[ \t]+(\d+)[ \t\r]*$")
_NUMBER_RE = re.compile(rb"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|inf)$",
                        re.IGNORECASE)
_CONTROL_RE = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")


def _refuse_other_files(p: str, head: bytes, whole: bool) -> None:
    """Refuse a file that is clearly not a vocabulary: a word-vector file (text or binary,
    plain or compressed), a store, an archive, a NumPy array, a pickle, other binary data.
    Read as lines, any of them would be a vocabulary of junk tokens that matches nothing."""
    from ._convert.sources import identify

    found = identify(head)
    if found is not None and found.kind != "utf16":  # that one is an encoding, said below
        if found.kind in _DECOMPRESS:
            inner = _decompressed_head(found.kind, head)
            vectors = _vector_file(inner, whole=False) if inner else None
            if vectors:
                raise VocabularyError(f"{p}: this is a word-vector file ({vectors}, "
                                      f"{found.kind}-compressed), not a vocabulary; {FORMS}")
        hint = {"npy": "if it holds the tokens, load it (numpy.load) and pass the array",
                "pickle": "if it holds a word_index or a Keras Tokenizer, load it (only if you "
                          "trust it: unpickling runs code) and pass its word_index",
                "store": "pass it as the store, not as the vocabulary"}.get(found.kind, FORMS)
        raise VocabularyError(f"{p}: this is {found.what}, not a vocabulary; {hint}")
    vectors = _vector_file(head, whole)
    if vectors:
        raise VocabularyError(f"{p}: this is a word-vector file ({vectors}), not a vocabulary; "
                              f"{FORMS}")
    n = len(_CONTROL_RE.findall(head))
    if n >= 8 and n * 100 >= len(head):
        raise VocabularyError(f"{p}: this is binary data, not a vocabulary; {FORMS}")


def _vector_file(data: bytes, whole: bool) -> str | None:
    """How ``data`` (the start of a file) shows it is a word-vector file, or None."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    nl = data.find(b"\n")
    first = data if nl < 0 else data[:nl]
    m = _HEADER_RE.match(first)
    if m is not None:
        header = f"{int(m.group(1))} {int(m.group(2))}"
        rest = data[nl + 1:] if nl >= 0 else b""
        body = [ln for ln in rest.split(b"\n", 8) if ln.strip()]
        if body and _values_after_word(body[0]) > 0:
            return f"word2vec text header '{header}'"
        if _CONTROL_RE.search(rest[:4096]):
            return f"word2vec binary, header '{header}'"
        return None
    lines = data.split(b"\n")
    if not whole and len(lines) > 1:
        lines.pop()  # cut by the sample
    rows = [ln for ln in lines if ln.strip()][:5]
    counts = {_values_after_word(ln) for ln in rows}
    if rows and len(counts) == 1 and min(counts) >= 3:
        return f"GloVe text: a word and {counts.pop()} numbers on each line"
    return None


def _values_after_word(line: bytes) -> int:
    """The number of fields after the first when they are all numbers, else 0."""
    fields = line.split()
    if len(fields) < 2 or not all(_NUMBER_RE.match(f) for f in fields[1:]):
        return 0
    return len(fields) - 1


def _decompressed_head(kind: str, head: bytes) -> bytes:
    try:
        return _DECOMPRESS[kind]().decompress(head, HEAD_BYTES)  # type: ignore[no-any-return]
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return b""


_DECOMPRESS: dict[str, Any] = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "bz2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
}


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


def _token(t: Any) -> Any:
    """bytes tokens (NumPy ``S`` arrays, TextVectorization on some backends) as str."""
    if isinstance(t, (bytes, bytearray)):
        try:
            return bytes(t).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VocabularyError(f"vocabulary token {bytes(t)!r} is not UTF-8 ({exc.reason} at "
                                  f"byte {exc.start})") from None
    return t


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
