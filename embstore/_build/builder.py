"""StoreBuilder: the one way a store is written.

Words and rows of vectors go in, batch after batch; a verified-by-construction store comes
out, published atomically.  The builder owns what every writer must get right and nobody
should write twice: de-duplication (the first of equal words wins, as in gensim), the
finiteness and size limits, the vocabulary index, the statistics, extension sections and the
provenance metadata.  The converter, :func:`embstore.write`, ``gensim.from_keyedvectors``
and ``store.subset`` all write through it.

Two ways in:

* :meth:`StoreBuilder.add` -- ``str`` words and a ``(k, dim)`` array (any float dtype),
  checked and rounded to float32 here.  For callers that have arrays.
* :meth:`StoreBuilder.buffer` + :meth:`StoreBuilder.submit` -- the readers' zero-copy path:
  fill a pooled float32 buffer, point at the words' bytes in the input buffer, and the rows
  are written on a background thread while the next batch is parsed.  The caller has already
  checked values and UTF-8 (it knows the line or byte offset to report).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import format as fmt
from .._kernels import gather as kgather
from .._version import __version__
from ..errors import ConversionError, StoreLimitError
from .vocabulary import VocabularyBuilder
from .writer import StoreWriter

BATCH_BYTES = 8 << 20  # float32 vectors per batch of :func:`write_arrays`


@dataclass(frozen=True)
class BuildResult:
    """What was written."""

    path: str
    rows: int
    dim: int
    duplicates: int
    file_bytes: int


def provenance(source: dict[str, Any], **counts: Any) -> dict[str, Any]:
    """The metadata every writer records: version, time, the source, then ``counts``."""
    return {
        "embstore_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        **counts,
    }


class StoreBuilder:
    """Builds one store at ``dst``; use as a context manager (an exception removes the
    temporary file and leaves ``dst`` untouched).

    ``label`` names the input in error messages (a path, or ``<KeyedVectors>``); ``inputs``
    are the files read to make the store, which ``dst`` may not be (see
    :func:`embstore._atomic.check_destination`).
    """

    def __init__(self, dst: str | os.PathLike[str], dim: int, *, force: bool = False,
                 fsync: bool = False, expected_rows: int = 0, label: str | None = None,
                 inputs: Iterable[object] = ()) -> None:
        self.label = label
        self._writer = StoreWriter(dst, dim, force=force, fsync=fsync, inputs=inputs)
        self.dst = self._writer.dst
        self.dim = self._writer.dim
        self._vocab = VocabularyBuilder(expected_rows)
        self._keep = np.zeros(0, dtype=np.uint8)
        self._extras: list[tuple[fmt.ExtraSection, np.ndarray]] = []
        self.duplicates = 0

    # -- state ----------------------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        """Rows accepted so far (duplicates excluded)."""
        return self._writer.n_rows

    @property
    def mean(self) -> np.ndarray:
        return self._writer.mean

    # -- the readers' path ----------------------------------------------------------------------

    def buffer(self, rows: int) -> np.ndarray:
        """A pooled ``(rows, dim)`` float32 buffer to fill and pass to :meth:`submit`."""
        return self._writer.buffer(rows)

    def submit(self, buf: np.ndarray, k: int, src: np.ndarray, wst: np.ndarray,
               wen: np.ndarray, cand: np.ndarray) -> int:
        """Add the words ``src[wst[i]:wen[i]]`` for ``i`` in ``cand`` (increasing, ``< k``)
        with the vectors ``buf[i]``; rows of ``buf[:k]`` not in ``cand`` are dropped.

        Words must be valid UTF-8 and vectors finite (the caller reports where they are not).
        Duplicates are dropped, the first kept; the surviving rows are compacted in place and
        queued for writing, and ``buf`` goes back to the pool once written.  Returns the number
        of duplicates dropped.
        """
        if self._keep.size < k:
            self._keep = np.zeros(max(k, 2 * self._keep.size), dtype=np.uint8)
        keep = self._keep
        keep[:k] = 0
        dups = self._vocab.insert(src, wst, wen, cand, keep)
        self.duplicates += dups
        kept = cand if dups == 0 else cand[keep[cand] == 1]
        if kept.size != k and kept.size:
            kgather.gather_rows.serial(buf[:k], kept, buf[:k])  # in place: kept[i] >= i
        self._writer.submit(buf, kept.size)
        return dups

    # -- the arrays path ------------------------------------------------------------------------

    def add(self, words: Sequence[str], vectors: np.ndarray, *, first_row: int = 0) -> int:
        """Append ``words`` and their ``vectors`` (``(len(words), dim)``, any real dtype).

        Values are rounded to float32; a NaN or infinity (also one produced by the rounding)
        raises :class:`~embstore.ConversionError` naming the word and its row
        (``first_row`` + position: the caller's numbering).  Returns duplicates dropped.
        """
        k = len(words)
        if vectors.ndim != 2 or vectors.shape != (k, self.dim):
            raise ValueError(f"expected vectors of shape ({k}, {self.dim}), got {vectors.shape}")
        if k == 0:
            return 0
        try:
            encoded = [str.encode(w, "utf-8") for w in words]  # str's, not a subclass's
        except UnicodeEncodeError:
            bad = next(w for w in words if not _encodable(w))
            raise ConversionError(self.label, f"word {bad!r} is not valid Unicode (lone "
                                              "surrogate); a store holds UTF-8 words") from None
        except TypeError:
            bad = next(w for w in words if not isinstance(w, str))
            raise TypeError(f"words must be str, got {type(bad).__name__}: {bad!r}") from None
        rows = _float32_rows(vectors)
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise ConversionError(self.label, f"the vector of {words[i]!r} (row {first_row + i}) "
                                              "holds NaN or infinity in float32; a store holds "
                                              "finite vectors only")
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=k)
        wen = np.cumsum(lengths)
        wst = wen - lengths
        src = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if src.size == 0:  # every word of the batch is ''
            src = np.zeros(1, dtype=np.uint8)
        keep = np.zeros(k, dtype=np.uint8)
        dups = self._vocab.insert(src, wst, wen, np.arange(k, dtype=np.int64), keep)
        if dups:
            self.duplicates += dups
            rows = rows[keep.view(bool)]
        self._writer.write_vectors(rows)
        return dups

    # -- extension sections ---------------------------------------------------------------------

    def add_section(self, kind: int, data: np.ndarray, *, required: bool,
                    elem: fmt.Elem = fmt.Elem.BYTES) -> None:
        """An extension section (written after METADATA, in the order added).

        ``required`` says whether a reader that does not know ``kind`` must refuse the file
        (the data changes what the core sections mean) or may ignore it.
        """
        if kind in fmt.CORE or any(s.kind == kind for s, _ in self._extras):
            raise ValueError(f"section kind {kind} is already in the store")
        if not 0 < kind < 1 << 32:
            raise ValueError(f"section kind {kind} out of range")
        if len(self._extras) + len(fmt.SECTION_ORDER) >= fmt.MAX_SECTIONS:
            raise StoreLimitError(f"a store holds at most {fmt.MAX_SECTIONS} sections")
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        if raw.size % fmt.ELEM_SIZE[elem]:
            raise ValueError(f"section of {raw.size} bytes is not made of {elem.name} elements")
        self._extras.append((fmt.ExtraSection(int(kind), raw.size, required, elem), raw))

    # -- publishing -----------------------------------------------------------------------------

    def finish(self, metadata: dict[str, Any]) -> BuildResult:
        """Write the vocabulary, index, statistics, metadata, extensions and checksums, then
        publish the store at ``dst``."""
        if self.n_rows == 0:
            raise ValueError("a store needs at least one row")
        words, offsets, index = self._vocab.finish()
        size = self._writer.finish(words, offsets, index, metadata, self._extras)
        return BuildResult(str(self.dst), self._writer.n_rows, self.dim, self.duplicates, size)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> StoreBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_arrays(dst: str | os.PathLike[str], words: Iterable[str], vectors: Any, *,
                 force: bool = False, metadata: dict[str, Any] | None = None,
                 label: str = "<arrays>", source: dict[str, Any] | None = None) -> BuildResult:
    """Write ``words`` and ``vectors`` to a new store in batches of about 8 MB, so a mapped
    ``vectors`` (``np.memmap``, a mapped gensim model) is never copied whole."""
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not a single str")
    vectors = np.asanyarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array, got shape {vectors.shape}")
    words = words if isinstance(words, Sequence) else list(words)
    n = len(words)
    if vectors.shape[0] != n:
        raise ValueError(f"{n} words but {vectors.shape[0]} vectors")
    if n == 0:
        raise ValueError("there is nothing to write: no words")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    dim = int(vectors.shape[1])
    batch = max(1, min(1 << 18, BATCH_BYTES // (4 * max(dim, 1))))
    with StoreBuilder(dst, dim, force=force, expected_rows=n, label=label,
                      inputs=[mapped_file(vectors)]) as builder:
        for a in range(0, n, batch):
            b = min(n, a + batch)
            builder.add(list(words[a:b]), vectors[a:b], first_row=a)
        meta = provenance(source or {"name": label, "format": "arrays", "compression": None,
                                     "bytes": int(vectors.nbytes), "declared_rows": n},
                          records=n, duplicates=builder.duplicates, skipped_lines=0, limit=None)
        if metadata:
            meta["user"] = metadata
        return builder.finish(meta)


def mapped_file(array: Any) -> str | None:
    """The file an ``np.memmap`` (or a view of one) maps: an input its store may not replace."""
    seen = 0
    while array is not None and seen < 32:
        if isinstance(array, np.memmap) and getattr(array, "filename", None):
            return str(array.filename)
        array = getattr(array, "base", None)
        seen += 1
    return None


def _encodable(word: str) -> bool:
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _float32_rows(block: np.ndarray) -> np.ndarray:
    """``block`` as C-contiguous float32, without a copy when it already is one."""
    if block.dtype == np.float32 and block.flags.c_contiguous:
        return block
    if not np.issubdtype(block.dtype, np.number) or np.iscomplexobj(block):
        raise TypeError(f"vectors must be real numbers, got dtype {block.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range -> inf: refused
        return np.ascontiguousarray(block, dtype=np.float32)
