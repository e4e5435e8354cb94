"""Embedding matrices for a tokenizer's vocabulary, from a mapped store.

The result is exactly the classic recipe's -- load the vectors with gensim, loop over the
vocabulary, copy each found vector into ``np.zeros((rows, dim))`` -- without loading the
vector file: words are encoded once, looked up by a parallel kernel, and the found rows are
gathered in store order so that reads from a cold store stay sequential.  When the gather
spans a large part of a big store, mapped pages are released window by window, so peak memory
stays near the size of the output rather than of the store.
"""

from __future__ import annotations

import io
import mmap
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import format as fmt
from ._atomic import AtomicFile
from .errors import VocabularyError
from .lookup import FALLBACKS, check_fallbacks, resolve_rows
from .vocab import VocabLike, normalize

if TYPE_CHECKING:
    from .store import EmbeddingStore

__all__ = ["FALLBACKS", "OOV_MODES", "MatrixResult", "VocabLike", "build_matrix", "save_matrix"]

OOV_MODES = ("zeros", "mean", "random")

WINDOW_BYTES = 4 << 20  # gather window when releasing mapped pages: a multiple of 2 MiB
RELEASE_SPAN = 64 << 20  # release pages only when the gather spans more than this
WRITE_CHUNK = 64 << 20  # pwrite size where a matrix file cannot be reserved and mapped


@dataclass
class MatrixResult:
    """An embedding matrix and what went into it.

    ``hits``/``misses`` count vocabulary words (padding and ``[UNK]`` excluded), ``missing``
    lists the words not found (in row order), ``found`` marks rows that hold a vector from the
    store, and ``fallback_hits`` counts words found only through each case fallback.
    """

    matrix: np.ndarray
    found: np.ndarray
    hits: int
    misses: int
    missing: list[str]
    fallback_hits: dict[str, int] = field(default_factory=dict)
    oov: str = "zeros"

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def coverage(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def summary(self) -> str:
        by_fallback = sum(self.fallback_hits.values())
        text = f"Matrix {self.rows:,} x {self.dim}: {self.hits:,} found"
        if by_fallback:
            text += f" ({by_fallback:,} by a case fallback)"
        text += f", {self.misses:,} missing"
        if self.misses and self.oov != "zeros":
            text += f" (filled with {self.oov})"
        return text

    def to_dict(self, max_missing: int | None = None) -> dict[str, Any]:
        missing = self.missing if max_missing is None else self.missing[:max_missing]
        return {
            "rows": self.rows, "dim": self.dim, "hits": self.hits, "misses": self.misses,
            "coverage": round(self.coverage, 6), "fallback_hits": dict(self.fallback_hits),
            "oov": self.oov, "missing": missing,
        }

    def __str__(self) -> str:
        return self.summary()


def build_matrix(store: EmbeddingStore, vocab: VocabLike, *, num_words: int | None = None,
                 oov: str = "zeros", fallbacks: Sequence[str] = (), seed: int = 0,
                 out: np.ndarray | None = None, _out_is_zero: bool = False) -> MatrixResult:
    """Build the float32 embedding matrix of ``vocab`` from ``store``.

    Args:
        vocab: a word_index dict, a token list (position = row), a Keras
            TextVectorization/StringLookup layer, or a vocabulary file (JSON or one token per
            line).  See :mod:`embstore.vocab`.
        num_words: like the Keras Tokenizer: rows = min(num_words, max index + 1).
        oov: fill for vocabulary words the store lacks (and ``[UNK]``): ``"zeros"``,
            ``"mean"`` (the store's mean vector) or ``"random"`` (normal draws with the
            store's per-dimension mean and std, reproducible by ``seed``).  Rows with no word
            (padding) are always zero.
        fallbacks: case variants tried in order after an exact miss: ``"lower"``,
            ``"title"`` (``str.capitalize``), ``"upper"``.
        out: a caller's C-contiguous float32 ``(rows, dim)`` array to fill, e.g. an
            ``np.memmap`` for a matrix larger than memory.
    """
    if oov not in OOV_MODES:
        raise ValueError(f"oov must be one of {', '.join(OOV_MODES)}, not {oov!r}")
    fallbacks = check_fallbacks(fallbacks)
    v = normalize(vocab, num_words)
    dim = store.dim
    if out is None:
        matrix = np.zeros((v.rows, dim), dtype=np.float32)  # lazily zero pages
        known_zero = True
    else:
        _check_out(out, v.rows, dim)
        matrix = out
        known_zero = _out_is_zero  # e.g. a freshly created (sparse) .npy memmap

    # Every requested rule is reported, with 0 when it found nothing or was not needed.
    rows, fallback_hits = resolve_rows(store, v.words, fallbacks)
    _check_coverage(store, len(v.words), int(np.count_nonzero(rows >= 0)), fallbacks)

    # The probes touched index, offsets and word pages all over a big store; drop them from
    # this process (the page cache keeps them) so resident memory stays near the output's.
    store.release_vocabulary()
    hit_mask = rows >= 0
    # Classic-recipe semantics when several words share a row: the last found one wins.
    found_idx = np.flatnonzero(hit_mask)
    dest = v.positions[found_idx]
    src_rows = rows[found_idx]
    if not v.unique and dest.size:
        rev = dest[::-1]
        _, first_in_rev = np.unique(rev, return_index=True)
        pick = (dest.size - 1 - first_in_rev)
        dest = dest[pick]
        src_rows = src_rows[pick]
    found = np.zeros(v.rows, dtype=bool)
    found[dest] = True

    # Rows that get the OOV fill: rows of missing words that no other word filled, and [UNK].
    missing_idx = np.flatnonzero(~hit_mask)
    oov_rows = np.union1d(v.positions[missing_idx], v.oov_rows)
    oov_rows = oov_rows[~found[oov_rows]]
    hits = int(found_idx.size)
    # Rows are read in file order (cold reads stay sequential-ish); the per-word arrays are
    # dropped before the gather, when the output is about to become resident.
    order = np.argsort(src_rows)  # ties (rows shared by several words) in any order
    src_rows = src_rows[order]
    dest = dest[order]
    del order, found_idx, hit_mask, rows

    # Touch the output in order first when the gather will write most of it: faulting fresh
    # pages sequentially costs a quarter of faulting them in the gather's scattered order
    # (measured on a 480 MB matrix).  A mostly-missing vocabulary keeps its untouched zero
    # pages instead, so memory stays at what is written.
    if not known_zero or dest.size * 4 >= v.rows:
        matrix.fill(0.0)
    _gather(store, src_rows, dest, matrix)

    if oov_rows.size and oov != "zeros":
        if oov == "mean":
            matrix[oov_rows] = store.mean.astype(np.float32)
        else:
            mean = np.asarray(store.mean, dtype=np.float64)
            std = np.asarray(store.std, dtype=np.float64)
            if not ((std >= 0).all() and np.isfinite(std).all() and np.isfinite(mean).all()):
                from .errors import FormatError

                raise FormatError(store.path, "damaged store: the statistics section holds an "
                                              "invalid mean or standard deviation (run "
                                              "`embstore verify`)")
            # The same numbers as rng.normal(mean, std, size=(n, dim)) -- NumPy computes
            # loc + scale * standard_normal() -- at half the cost of broadcasting loc and
            # scale per draw; drawn in slices (the same stream) to keep temporaries small.
            rng = np.random.default_rng(seed)
            step = max(1, (8 << 20) // (8 * dim))
            for a in range(0, oov_rows.size, step):
                part = oov_rows[a:a + step]
                draws = rng.standard_normal(size=(part.size, dim))
                draws *= std
                draws += mean
                matrix[part] = draws.astype(np.float32)

    # In row order, as documented, whatever the order of the word_index dict.
    by_row = missing_idx[np.argsort(v.positions[missing_idx], kind="stable")]
    missing = [v.words[i] for i in by_row.tolist()]
    return MatrixResult(matrix=matrix, found=found, hits=hits,
                        misses=int(missing_idx.size), missing=missing,
                        fallback_hits=fallback_hits, oov=oov)


MIN_COVERAGE = 0.05  # below this share of found words (and with MIN_COVERAGE_WORDS), a warning
MIN_COVERAGE_WORDS = 20


def _check_coverage(store: EmbeddingStore, words: int, hits: int,
                    fallbacks: Sequence[str]) -> None:
    """No word found is an error (a matrix of fill values would train on nothing); very few
    found is a warning.  Both mean the wrong vocabulary, store or tokenisation, most often."""
    if words == 0 or hits * 1.0 >= MIN_COVERAGE * words:
        return
    if fallbacks:
        case = f"the case fallbacks ({', '.join(fallbacks)}) did not help either"
    else:
        case = ('if the store\'s words are cased differently (e.g. all lower case), try '
                'fallbacks="lower,title"')
    if hits == 0:
        # A warning from the library (a damaged or foreign store may legitimately answer
        # nothing); save_matrix and `embstore matrix` refuse such a matrix.
        warnings.warn(
            f"none of the vocabulary's {words:,} words is in the store {store.path}: no word "
            f"was found; is this the vocabulary for these vectors? {case}",
            UserWarning, stacklevel=3)
        return
    if words >= MIN_COVERAGE_WORDS:
        warnings.warn(
            f"only {hits:,} of the vocabulary's {words:,} words ({hits / words:.1%}) were found "
            f"in the store {store.path}; is this the vocabulary for these vectors? {case}",
            UserWarning, stacklevel=3)


def _check_out(out: np.ndarray, rows: int, dim: int) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, not {type(out).__name__}")
    if out.dtype != np.float32 or out.shape != (rows, dim):
        raise ValueError(f"out must be float32 with shape ({rows}, {dim}), got {out.dtype} {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")


def _gather(store: EmbeddingStore, rows_sorted: np.ndarray, dest_sorted: np.ndarray,
            out: np.ndarray) -> None:
    """Copy ``store.vectors[rows_sorted]`` to ``out[dest_sorted]``; rows in increasing order.

    Reading rows in increasing file order keeps cold reads close to sequential.  When the rows
    span more than ``RELEASE_SPAN`` bytes of the file, they are copied one window at a time and
    each window's pages are dropped from this process's page tables afterwards (the page cache
    keeps them), which bounds resident memory however much of the store is touched.  Both
    steps run in one parallel kernel: launching a kernel per window costs more than the copy.
    """
    from ._kernels import gather as kgather

    if rows_sorted.size == 0:
        return
    vectors = store.vectors
    row_bytes = store.dim * 4
    span = (int(rows_sorted[-1]) - int(rows_sorted[0]) + 1) * row_bytes
    if span <= RELEASE_SPAN or not store.can_release:
        kgather.gather_into(vectors, rows_sorted, dest_sorted, out)
        return
    # Windows are WINDOW_BYTES-aligned byte ranges of the file (a multiple of the 2 MiB huge
    # page); each copies the rows that start in it, then releases exactly its range, clamped
    # to the vectors section so nothing outside the store's mapping is ever touched.
    voff = store.header.sections[fmt.Section.VECTORS].offset
    vlen = len(store) * row_bytes
    first_b = int(rows_sorted[0]) * row_bytes + voff
    end_b = (int(rows_sorted[-1]) + 1) * row_bytes + voff
    edges = np.arange(first_b // WINDOW_BYTES * WINDOW_BYTES, end_b + WINDOW_BYTES,
                      WINDOW_BYTES, dtype=np.int64) - voff  # relative to vectors[0]
    edges[-1] = end_b - voff
    edge_rows = np.maximum(-(-edges // row_bytes), 0)  # first row starting at or after
    bounds = np.searchsorted(rows_sorted, edge_rows, side="left").astype(np.int64)
    page = mmap.PAGESIZE
    release = np.clip(edges, 0, -(-vlen // page) * page)
    release[-1] = min(-(-int(edges[-1]) // page) * page, -(-vlen // page) * page)
    kgather.gather_release(vectors, rows_sorted, dest_sorted, out, bounds, release, page,
                           mmap.MADV_DONTNEED)


def save_matrix(store: EmbeddingStore, vocab: VocabLike, out_path: str | os.PathLike[str],
                *, force: bool = False,
                _before_publish: Callable[[MatrixResult], None] | None = None,
                **options: Any) -> MatrixResult:
    """Build a matrix straight into ``out_path`` (.npy), published atomically; the result's
    ``matrix`` is the saved file, mapped read-only.  ``options`` are :func:`build_matrix`'s.

    ``out_path`` is checked before any work: it may not be the store or the vocabulary file
    (also through a link), and an existing file is replaced only with ``force`` and only if it
    is a ``.npy`` file.  The file's blocks are reserved before the matrix is built into its
    mapping, so a full disk raises :class:`~embstore.StoreWriteError` (never SIGBUS) and leaves
    nothing behind; where the filesystem cannot reserve blocks, the matrix is built in memory
    and written with ``pwrite`` instead.

    Raises:
        StoreExistsError: ``out_path`` exists and ``force`` is false.
        OutputError: ``out_path`` is an input, ends with a separator, or with ``force`` is
            not a ``.npy`` file.
        StoreWriteError: the disk is full, the file too large, or writing failed.
    """
    inputs = [store.path, vocab if isinstance(vocab, (str, os.PathLike)) else None]
    with AtomicFile(out_path, kind="matrix", force=force, inputs=inputs) as out:
        vocabulary = normalize(vocab, options.pop("num_words", None))
        shape = (vocabulary.rows, store.dim)
        header = _npy_header(shape)
        out.pwrite(header, 0)
        length = len(header) + shape[0] * shape[1] * 4
        with open(out.fd, "r+b", buffering=0, closefd=False) as f:
            if shape[0] * shape[1] == 0:  # nothing to map
                result = build_matrix(store, vocabulary, **options)
            elif out.reserve(length):
                # Built straight into the file's mapping: no second copy of the matrix in
                # memory.  Every block is allocated, so writing through the mapping cannot
                # fault.  No msync: like np.save, the page cache writes it back (an msync
                # would wait for the disk); the publishing rename makes it appear whole.
                mm = np.memmap(f, dtype=np.float32, mode="r+", offset=len(header), shape=shape)
                result = build_matrix(store, vocabulary, out=mm, _out_is_zero=True, **options)
                del mm
            else:
                result = build_matrix(store, vocabulary, **options)
                _write_rows(out, result.matrix, len(header))
            if shape[0] * shape[1]:
                result.matrix = np.memmap(f, dtype=np.float32, mode="r", offset=len(header),
                                          shape=shape)
        if result.hits == 0 and result.misses:
            # A file of fill values is never what the user wanted: nothing is published.
            raise VocabularyError(f"none of the vocabulary's {result.misses:,} words is in the "
                                  f"store {store.path}; nothing was written to {out_path} (is "
                                  "this the vocabulary for these vectors? a case fallback such "
                                  'as fallbacks="lower,title" may help)')
        if _before_publish is not None:
            _before_publish(result)  # e.g. the CLI's report: written before the matrix appears
        out.commit()
    return result


def _npy_header(shape: tuple[int, int]) -> bytes:
    """The .npy header ``np.lib.format.open_memmap`` writes for a float32 C-order array."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _write_rows(out: AtomicFile, matrix: np.ndarray, offset: int) -> None:
    """Write a C-contiguous matrix with pwrite, in chunks (write errors are errors, not
    signals)."""
    flat = matrix.reshape(-1).view(np.uint8)
    step = WRITE_CHUNK
    for a in range(0, flat.size, step):
        out.pwrite(flat[a:a + step], offset + a)
