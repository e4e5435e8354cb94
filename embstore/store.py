"""Opening a store: one read-only memory map, validated header, zero-copy views.

Opening reads the 4 KiB header and maps the file; nothing proportional to the vocabulary is
read or allocated, so it takes the same few hundred microseconds for 1,000 or 3,000,000
words.  Single-word lookups hash in Python and probe the mapped index; batch lookups and
matrix building go through the compiled kernels (imported on first use, so that ``import
embstore`` and ``embstore.open`` stay light).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import operator
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from . import format as fmt
from .errors import FormatError, StoreClosedError

if TYPE_CHECKING:
    from ._build.builder import BuildResult
    from .matrix import MatrixResult, VocabLike

MAX_SHOWN = 10  # missing words named in a KeyError


def open(path: str | os.PathLike[str]) -> EmbeddingStore:
    """Open a store read-only.  Raises ``FileNotFoundError`` or :class:`FormatError`."""
    return EmbeddingStore(path)


@dataclass(frozen=True)
class VocabArrays:
    """The mapped vocabulary, as the lookup kernels take it: the ``(n_slots, 2)`` uint32
    index, the ``n_rows + 1`` uint64 word offsets and the UTF-8 word bytes."""

    index: np.ndarray
    offsets: np.ndarray
    data: np.ndarray


class EmbeddingStore:
    """A memory-mapped embedding store.

    The mapping protocol of a read-only dict of vectors: ``len(store)``, ``word in store``,
    ``store[word]`` (a float32 copy of the row; ``KeyError`` if absent), ``store[words]`` (a
    ``(n, dim)`` float32 matrix; ``KeyError`` naming the missing words, like gensim's
    ``kv[list]``), ``store.get(word, default)``, ``for word in store`` (words in row order).
    ``store.words`` is a lazy sequence of the words and ``store.vectors`` the read-only mapped
    matrix.

    For modules that build on a store (lookup, matrices, verification, serving) the store
    offers :attr:`vocab_arrays`, :meth:`section`, :meth:`raw`, :meth:`release`,
    :meth:`release_vocabulary` and :attr:`store_id`; nothing outside this module touches its
    mapping.

    The store is safe to share between threads, and between processes by opening the same
    file: the operating system shares the mapped pages.  It pickles as its path: unpickling
    opens the file again and refuses (``FormatError``) if it is no longer the same store.  A
    closed store raises :class:`~embstore.StoreClosedError` on every access.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._map: mmap.mmap | None = None
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(self.path, flags)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FormatError(self.path, f"not a regular file ({_file_kind(st.st_mode)})")
            head = os.pread(fd, fmt.HEADER_LENGTH, 0)
            self.header = fmt.parse_header(head, st.st_size, self.path)
            self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        h = self.header
        sec = h.sections
        self.dim = h.dim
        self._n = h.n_rows
        self._vectors: np.ndarray = self._view(fmt.Section.VECTORS, "<f4").reshape(h.n_rows, h.dim)
        self._vocab = VocabArrays(
            index=self._view(fmt.Section.INDEX, "<u4").reshape(h.n_slots, 2),
            offsets=self._view(fmt.Section.WORD_OFFSETS, "<u8"),
            data=self._view(fmt.Section.WORD_BYTES, "u1"),
        )
        stats = self._view(fmt.Section.STATS, "<f8")
        self._mean: np.ndarray = stats[: h.dim]
        self._std: np.ndarray = stats[h.dim:]
        self._metadata: dict[str, Any] | None = None
        self._store_id: str | None = None
        self._words = WordList(self)
        # Cheap sanity checks on the vocabulary bounds (two values, no scan).
        offsets = self._vocab.offsets
        if int(offsets[0]) != 0 or int(offsets[-1]) != sec[fmt.Section.WORD_BYTES].length:
            raise FormatError(self.path, "damaged store: word offsets do not span the word section")

    def _view(self, kind: int, dtype: str) -> np.ndarray:
        entry = self.header.sections[kind]
        dt = np.dtype(dtype)
        return np.frombuffer(self._map, dtype=dt, count=entry.length // dt.itemsize,  # type: ignore[arg-type]
                             offset=entry.offset)

    # -- the surface feature modules use ---------------------------------------------------------

    def check_open(self) -> None:
        """Raise :class:`~embstore.StoreClosedError` if the store was closed."""
        if self._map is None:
            raise StoreClosedError(self.path)

    @property
    def vectors(self) -> np.ndarray:
        """The ``(len, dim)`` float32 matrix, mapped read-only (no copy)."""
        self.check_open()
        return self._vectors

    @property
    def mean(self) -> np.ndarray:
        """Per-dimension mean of all rows (float64, from the STATS section)."""
        self.check_open()
        return self._mean

    @property
    def std(self) -> np.ndarray:
        """Per-dimension population standard deviation of all rows (float64)."""
        self.check_open()
        return self._std

    @property
    def dtype(self) -> str:
        """How vectors are stored on disk (every getter returns float32)."""
        return fmt.VectorDType(self.header.dtype).name.lower()

    @property
    def vocab_arrays(self) -> VocabArrays:
        """The mapped index, word offsets and word bytes, for the lookup kernels."""
        self.check_open()
        return self._vocab

    def section(self, kind: int) -> np.ndarray | None:
        """A read-only view of section ``kind`` typed by its element dtype, or None if the
        store has no such section (an older writer, or a feature the store lacks)."""
        self.check_open()
        entry = self.header.section(kind)
        if entry is None:
            return None
        return self._view(kind, fmt.ELEM_NUMPY[fmt.Elem(entry.elem)])

    def raw(self, offset: int, length: int) -> np.ndarray:
        """Bytes ``[offset, offset + length)`` of the file as a read-only uint8 view."""
        self.check_open()
        if not 0 <= offset <= offset + length <= self.header.file_length:
            raise ValueError(f"bytes {offset}+{length} are outside the store")
        return np.frombuffer(self._map, dtype=np.uint8, count=length, offset=offset)  # type: ignore[arg-type]

    @property
    def can_release(self) -> bool:
        """Whether :meth:`release` drops pages on this platform (``MADV_DONTNEED``)."""
        return self._map is not None and hasattr(mmap, "MADV_DONTNEED")

    def release(self, offset: int, length: int) -> None:
        """Drop this process's mapped pages of the byte range (``MADV_DONTNEED``); the page
        cache keeps them, so a later access faults them back.  Bounds memory of scans."""
        if not self.can_release:
            return
        a = max(0, offset) // fmt.PAGE * fmt.PAGE
        b = min(fmt.align(offset + length), self.header.file_length)
        if b > a:
            self._map.madvise(mmap.MADV_DONTNEED, a, b - a)  # type: ignore[union-attr]

    def release_vocabulary(self, threshold: int = 16 << 20) -> None:
        """Release the resident pages of the offsets, words and index when they are large
        (after a batch of lookups touched them all over)."""
        sec = self.header.sections
        start = sec[fmt.Section.WORD_OFFSETS].offset
        end = fmt.align(sec[fmt.Section.INDEX].end)
        if end - start >= threshold:
            self.release(start, end - start)

    @property
    def store_id(self) -> str:
        """A fingerprint of this store's content: the header and the block checksums (which
        cover every other byte).  It changes whenever the file is replaced by another store."""
        self.check_open()
        if self._store_id is None:
            checks = self.header.sections[fmt.Section.CHECKSUMS]
            digest = hashlib.blake2b(self.raw(0, fmt.HEADER_LENGTH).data, digest_size=16)
            digest.update(self.raw(checks.offset, checks.length).data)
            self._store_id = digest.hexdigest()
        return self._store_id

    def word_bytes(self, row: int) -> bytes:
        """The UTF-8 bytes of word ``row`` (bounds-checked against the mapped section)."""
        offsets, data = self.vocab_arrays.offsets, self._vocab.data
        a = int(offsets[row])
        b = int(offsets[row + 1])
        if not a <= b <= data.size:
            raise FormatError(self.path, f"damaged store: offsets of row {row} out of bounds")
        return data[a:b].tobytes()

    # -- mapping protocol -----------------------------------------------------------------------

    def __len__(self) -> int:
        self.check_open()
        return self._n

    def __iter__(self) -> Iterator[str]:
        self.check_open()
        return iter(self._words)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._row(word) >= 0

    @overload
    def __getitem__(self, word: str) -> np.ndarray: ...

    @overload
    def __getitem__(self, word: list[str] | np.ndarray) -> np.ndarray: ...

    def __getitem__(self, word: Any) -> np.ndarray:
        if isinstance(word, str):
            row = self._row(word)
            if row < 0:
                raise KeyError(word)
            return np.array(self._vectors[row])
        if isinstance(word, (list, np.ndarray)):  # a tuple is one (absent) key, as in a dict
            return self._rows_of(word)
        self.check_open()
        raise KeyError(word)

    def _rows_of(self, words: Sequence[str] | np.ndarray) -> np.ndarray:
        rows = self.lookup(words)
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            seq = words.ravel().tolist() if isinstance(words, np.ndarray) else list(words)
            lost = [seq[i] for i in missing[:MAX_SHOWN].tolist()]
            more = (f" and {missing.size - MAX_SHOWN:,} more" if missing.size > MAX_SHOWN else "")
            raise KeyError(f"{missing.size:,} of {rows.size:,} words are not in the store: "
                           f"{', '.join(map(repr, lost))}{more}")
        return np.take(self._vectors, rows, axis=0)

    def get(self, word: str, default: Any = None) -> Any:
        """The vector of ``word`` (a float32 copy), or ``default`` if it is absent."""
        self.check_open()
        row = self._row(word) if isinstance(word, str) else -1
        return default if row < 0 else np.array(self._vectors[row])

    def get_index(self, word: str) -> int:
        """Row number of ``word``; ``KeyError`` if absent."""
        self.check_open()
        row = self._row(word) if isinstance(word, str) else -1
        if row < 0:
            raise KeyError(word)
        return row

    def get_vectors(self, words: Sequence[str] | np.ndarray, *, missing: str = "error",
                    fallbacks: Sequence[str] = ()) -> np.ndarray:
        """A ``(len(words), dim)`` float32 matrix of the vectors of ``words``.

        Unlike ``store.vectors[store.lookup(words)]`` -- where a missing word's ``-1``
        silently selects the last row -- a missing word is never given another word's vector:
        ``missing="error"`` raises ``KeyError`` naming the missing words, ``"zeros"``,
        ``"mean"`` (the store's mean vector) and ``"nan"`` fill its row.  ``fallbacks`` are
        the case variants of ``build_matrix`` tried after an exact miss.
        """
        from .lookup import vectors_of

        return vectors_of(self, words, missing=missing, fallbacks=fallbacks)

    @property
    def words(self) -> WordList:
        """The words in row order, decoded on access (never materialised as a list)."""
        self.check_open()
        return self._words

    @property
    def metadata(self) -> dict[str, Any]:
        """Provenance recorded by the writer (source name, format, counts, version)."""
        self.check_open()
        if self._metadata is None:
            raw = bytes(self._view(fmt.Section.METADATA, "u1"))
            try:
                value = json.loads(raw.decode("utf-8")) if raw else {}
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                # RecursionError: hostile JSON nested deeper than the parser's recursion limit
                raise FormatError(self.path, f"damaged store: metadata is not JSON ({exc})") from None
            if not isinstance(value, dict):
                raise FormatError(self.path, "damaged store: metadata is not a JSON object")
            self._metadata = value
        return self._metadata

    @property
    def file_size(self) -> int:
        return self.header.file_length

    @property
    def version(self) -> tuple[int, int]:
        return (self.header.major, self.header.minor)

    # -- single-word path (pure Python; no compiled code needed) ---------------------------------

    def _row(self, word: str) -> int:
        self.check_open()
        data = word.encode("utf-8", "surrogatepass")
        h = fmt.word_hash(data, self.header.hash_id, self.header.hash_key)
        index = self._vocab.index
        n_slots = index.shape[0]
        mask = n_slots - 1
        slot = h & mask
        fp = h >> 32
        for _ in range(min(n_slots, fmt.MAX_PROBES)):
            fp_i, r1 = index[slot]
            if r1 == 0:
                return -1
            if fp_i == fp:
                row = int(r1) - 1
                if row >= self._n:
                    raise FormatError(self.path, f"damaged store: index slot {slot} points past the last row")
                if self.word_bytes(row) == data:
                    return row
            slot = (slot + 1) & mask
        if n_slots <= fmt.MAX_PROBES:
            return -1  # probed the whole (small) table
        raise FormatError(self.path, f"damaged store: a run of more than {fmt.MAX_PROBES} "
                                     "occupied index slots (run `embstore verify`)")

    # -- batch path -----------------------------------------------------------------------------

    def lookup(self, words: Sequence[str] | np.ndarray | Any) -> np.ndarray:
        """Row ids (int64) of ``words``; ``-1`` where a word is absent.

        ``words`` is any iterable of ``str`` (list, tuple, NumPy string array).  The batch is
        encoded once and hashed, probed and compared by a compiled kernel.  Index with the
        result only where it is ``>= 0`` (or use :meth:`get_vectors`).
        """
        from .lookup import lookup_rows

        return lookup_rows(self, words)

    def build_matrix(self, vocab: VocabLike, *, num_words: int | None = None,
                     oov: str = "zeros", fallbacks: Sequence[str] = (), seed: int = 0,
                     out: np.ndarray | None = None) -> MatrixResult:
        """An embedding matrix for a tokenizer's vocabulary; see :func:`embstore.matrix.build_matrix`."""
        from .matrix import build_matrix

        return build_matrix(self, vocab, num_words=num_words, oov=oov, fallbacks=fallbacks,
                            seed=seed, out=out)

    def subset(self, vocab: VocabLike, dst: str | os.PathLike[str], *, order: str = "store",
               num_words: int | None = None, fallbacks: Sequence[str] = (),
               force: bool = False) -> BuildResult:
        """Write a store holding only the words of ``vocab``; see :func:`embstore.subset.subset`."""
        from .subset import subset

        return subset(self, vocab, dst, order=order, num_words=num_words, fallbacks=fallbacks,
                      force=force)

    # -- lifetime and pickling ------------------------------------------------------------------

    def close(self) -> None:
        """Drop this object's references to the mapping; every later access raises.

        The mapping itself is released when the last array viewing it (``vectors`` or a
        slice a caller kept) is garbage collected, so a closed store never invalidates
        arrays already handed out.
        """
        self._vectors = self._mean = self._std = np.empty(0)
        self._vocab = VocabArrays(np.empty((0, 2), np.uint32), np.empty(0, np.uint64),
                                  np.empty(0, np.uint8))
        self._map = None

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        # By path, never by content: a worker maps the file itself (and shares its pages).
        return (_reopen, (self.path, self.store_id))

    def __repr__(self) -> str:
        if self._map is None:
            return f"<EmbeddingStore {self.path!r}: closed>"
        return f"<EmbeddingStore {self.path!r}: {self._n:,} words x {self.dim}>"


def _reopen(path: str, store_id: str) -> EmbeddingStore:
    """Unpickling: open ``path`` again and check that it is the store that was pickled."""
    store = EmbeddingStore(path)
    if store.store_id != store_id:
        store.close()
        raise FormatError(path, "is no longer the store that was pickled (the file was "
                                "replaced); open the new file explicitly")
    return store


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


class WordList(Sequence[str]):
    """The store's words as a read-only sequence, decoded from the mapped bytes on access."""

    def __init__(self, store: EmbeddingStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return len(self._store)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        n = len(self)
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step == 1:
                return self._decode_range(start, max(start, stop))
            return [self[j] for j in range(start, stop, step)]
        i = operator.index(i)  # ints and NumPy integers, as a list accepts; not 1.5
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("word index out of range")
        return self._decode(self._store.word_bytes(i), i)

    def _decode(self, raw: bytes, row: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(self._store.path, f"damaged store: word {row} is not UTF-8") from None

    def _decode_range(self, start: int, stop: int) -> list[str]:
        if start >= stop:
            return []
        st = self._store
        arrays = st.vocab_arrays
        offs = arrays.offsets[start:stop + 1].astype(np.int64)
        if np.any(np.diff(offs) < 0) or offs[0] < 0 or offs[-1] > arrays.data.size:
            raise FormatError(st.path, f"damaged store: word offsets of rows {start}..{stop} out of bounds")
        raw = arrays.data[offs[0]:offs[-1]].tobytes()
        rel = (offs - offs[0]).tolist()
        return [self._decode(raw[rel[k]:rel[k + 1]], start + k) for k in range(stop - start)]

    def __iter__(self) -> Iterator[str]:
        n = len(self)
        step = 65536
        for start in range(0, n, step):
            yield from self._decode_range(start, min(n, start + step))

    def __contains__(self, word: object) -> bool:
        return word in self._store

    def index(self, word: Any, start: int = 0, stop: int | None = None) -> int:
        """Row of ``word``, like ``list.index`` (negative ``start``/``stop`` count from the
        end); ``ValueError`` if it is absent or outside ``[start, stop)``."""
        n = len(self)
        start, stop, _ = slice(start, stop).indices(n)
        row = self._store.get_index(word) if word in self._store else -1
        if row < 0 or not start <= row < stop:
            raise ValueError(f"{word!r} is not in the store")
        return row

    def count(self, word: Any) -> int:
        return 1 if word in self._store else 0

    def __repr__(self) -> str:
        head = self[:5]
        more = ", ..." if len(self) > 5 else ""
        return f"WordList([{', '.join(map(repr, head))}{more}], n={len(self)})"
