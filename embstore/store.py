"""Opening a store: one read-only memory map, validated header, zero-copy views.

Opening reads the 4 KiB header and maps the file; nothing proportional to the vocabulary is
read or allocated, so it takes the same few hundred microseconds for 1,000 or 3,000,000
words.  Single-word lookups hash in Python and probe the mapped index; batch lookups and
matrix building go through the compiled kernels (imported on first use, so that ``import
embstore`` and ``embstore.open`` stay light).
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from . import format as fmt
from .errors import FormatError

if TYPE_CHECKING:
    from .matrix import MatrixResult, VocabLike


def open(path: str | os.PathLike[str]) -> EmbeddingStore:
    """Open a store read-only.  Raises ``FileNotFoundError`` or :class:`FormatError`."""
    return EmbeddingStore(path)


class EmbeddingStore:
    """A memory-mapped embedding store.

    ``len(store)``, ``store.dim``, ``word in store``, ``store[word]`` (a float32 copy of the
    row; ``KeyError`` if absent), ``store.get(word, default)``, ``store.words`` (a lazy
    sequence of ``str`` in row order) and ``store.vectors`` (the read-only mapped matrix).

    The store is safe to share between threads, and between processes by opening the same
    file: the operating system shares the mapped pages.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if not _is_regular(st.st_mode):
                raise FormatError(self.path, "not a regular file")
            head = os.pread(fd, fmt.HEADER_LENGTH, 0)
            self.header = fmt.parse_header(head, st.st_size, self.path)
            self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        h = self.header
        sec = h.sections
        self.dim = h.dim
        self._n = h.n_rows
        self.vectors: np.ndarray = self._view(fmt.Section.VECTORS, "<f4").reshape(h.n_rows, h.dim)
        self._offsets = self._view(fmt.Section.WORD_OFFSETS, "<u8")
        self._bytes = self._view(fmt.Section.WORD_BYTES, "u1")
        self._index = self._view(fmt.Section.INDEX, "<u4").reshape(h.n_slots, 2)
        stats = self._view(fmt.Section.STATS, "<f8")
        self.mean: np.ndarray = stats[: h.dim]
        self.std: np.ndarray = stats[h.dim:]
        self._metadata: dict[str, Any] | None = None
        self._words = WordList(self)
        # Cheap sanity checks on the vocabulary bounds (two values, no scan).
        if int(self._offsets[0]) != 0 or int(self._offsets[-1]) != sec[fmt.Section.WORD_BYTES].length:
            raise FormatError(self.path, "damaged store: word offsets do not span the word section")

    def _view(self, kind: fmt.Section, dtype: str) -> np.ndarray:
        entry = self.header.sections[kind]
        dt = np.dtype(dtype)
        return np.frombuffer(self._map, dtype=dt, count=entry.length // dt.itemsize,
                             offset=entry.offset)

    # -- mapping protocol -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._row(word) >= 0

    def __getitem__(self, word: str) -> np.ndarray:
        row = self._row(word) if isinstance(word, str) else -1
        if row < 0:
            raise KeyError(word)
        return np.array(self.vectors[row])

    def get(self, word: str, default: Any = None) -> Any:
        """The vector of ``word`` (a float32 copy), or ``default`` if it is absent."""
        row = self._row(word) if isinstance(word, str) else -1
        return default if row < 0 else np.array(self.vectors[row])

    def get_index(self, word: str) -> int:
        """Row number of ``word``; ``KeyError`` if absent."""
        row = self._row(word) if isinstance(word, str) else -1
        if row < 0:
            raise KeyError(word)
        return row

    @property
    def words(self) -> WordList:
        """The words in row order, decoded on access (never materialised as a list)."""
        return self._words

    @property
    def metadata(self) -> dict[str, Any]:
        """Provenance recorded by the converter (source name, format, counts, version)."""
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

    def _word_bytes(self, row: int) -> bytes:
        a = int(self._offsets[row])
        b = int(self._offsets[row + 1])
        if not a <= b <= self._bytes.size:
            raise FormatError(self.path, f"damaged store: offsets of row {row} out of bounds")
        return self._bytes[a:b].tobytes()

    def _row(self, word: str) -> int:
        self._check_open()
        data = word.encode("utf-8", "surrogatepass")
        h = fmt.word_hash(data)
        index = self._index
        n_slots = index.shape[0]
        mask = n_slots - 1
        slot = h & mask
        fp = h >> 32
        for _ in range(n_slots):
            fp_i, r1 = index[slot]
            if r1 == 0:
                return -1
            if fp_i == fp:
                row = int(r1) - 1
                if row >= self._n:
                    raise FormatError(self.path, f"damaged store: index slot {slot} points past the last row")
                if self._word_bytes(row) == data:
                    return row
            slot = (slot + 1) & mask
        return -1

    def _release_vocabulary_pages(self, threshold: int = 16 << 20) -> None:
        """Unmap (``MADV_DONTNEED``) the resident pages of the vocabulary sections when they
        are large; later accesses fault them back from the page cache."""
        if self._map is None:
            return
        sec = self.header.sections
        kinds = (fmt.Section.WORD_OFFSETS, fmt.Section.WORD_BYTES, fmt.Section.INDEX)
        start = sec[kinds[0]].offset
        end = fmt.align(sec[kinds[-1]].end)
        if end - start >= threshold:
            self._map.madvise(mmap.MADV_DONTNEED, start, end - start)

    # -- batch path -----------------------------------------------------------------------------

    def lookup(self, words: Sequence[str] | np.ndarray | Any) -> np.ndarray:
        """Row ids (int64) of ``words``; ``-1`` where a word is absent.

        ``words`` is any iterable of ``str`` (list, tuple, NumPy string array).  The batch is
        encoded once and hashed, probed and compared by a parallel compiled kernel.
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

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Drop this object's references to the mapping.

        The mapping itself is released when the last array viewing it (``vectors`` or a
        slice a caller kept) is garbage collected, so a closed store never invalidates
        arrays already handed out.
        """
        for name in ("vectors", "_offsets", "_bytes", "_index", "mean", "std"):
            if hasattr(self, name):
                setattr(self, name, np.empty(0))
        self._map = None  # type: ignore[assignment]
        self._n = 0

    def _check_open(self) -> None:
        if self._map is None:
            raise ValueError(f"{self.path}: the store is closed")

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EmbeddingStore {self.path!r}: {self._n:,} words x {self.dim}>"


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


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
        i = int(i)  # accepts NumPy integers
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("word index out of range")
        return self._decode(self._store._word_bytes(i), i)

    def _decode(self, raw: bytes, row: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(self._store.path, f"damaged store: word {row} is not UTF-8") from None

    def _decode_range(self, start: int, stop: int) -> list[str]:
        if start >= stop:
            return []
        st = self._store
        offs = st._offsets[start:stop + 1].astype(np.int64)
        if np.any(np.diff(offs) < 0) or offs[0] < 0 or offs[-1] > st._bytes.size:
            raise FormatError(st.path, f"damaged store: word offsets of rows {start}..{stop} out of bounds")
        raw = st._bytes[offs[0]:offs[-1]].tobytes()
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
        row = self._store._row(word) if isinstance(word, str) else -1
        if row < 0 or row < start or (stop is not None and row >= stop):
            raise ValueError(f"{word!r} is not in the store")
        return row

    def count(self, word: Any) -> int:
        return 1 if word in self._store else 0

    def __repr__(self) -> str:
        head = self[:5]
        more = ", ..." if len(self) > 5 else ""
        return f"WordList([{', '.join(map(repr, head))}{more}], n={len(self)})"
