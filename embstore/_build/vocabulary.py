"""The vocabulary and its hash index, built incrementally while converting.

Memory is proportional to the vocabulary (about 40 bytes a word with 10-byte words), never to
the vectors, which stream straight to disk.  The index is kept at load <= 0.5 by doubling, and
every rebuild re-inserts rows in order, so the final table is exactly the one
:func:`embstore.format.slot_count` and row-order insertion define: the same input always
gives a byte-identical store.
"""

from __future__ import annotations

import numpy as np

from .. import format as fmt
from .._kernels import index as kindex
from ..errors import StoreLimitError


class VocabularyBuilder:
    """Unique words in first-seen order, their UTF-8 bytes and the open-addressing index."""

    def __init__(self, expected_rows: int = 0) -> None:
        # Trust a header's row count only up to a sane bound: it may be hostile or wrong.
        rows = min(max(expected_rows, 1024), 1 << 22)
        self.n_rows = 0
        self.n_bytes = 0
        self.words = np.empty(rows * 12, dtype=np.uint8)
        self.offsets = np.zeros(rows + 1, dtype=np.uint64)
        self.table = np.zeros((fmt.slot_count(rows), 2), dtype=np.uint32)

    def reserve(self, rows: int, nbytes: int) -> None:
        """Make room for ``rows`` more words totalling ``nbytes`` bytes."""
        need_rows = self.n_rows + rows
        if need_rows > fmt.MAX_ROWS:
            raise StoreLimitError(f"more than {fmt.MAX_ROWS:,} distinct words; a store holds at "
                                  f"most {fmt.MAX_ROWS:,}")
        if need_rows + 1 > self.offsets.size:
            grown = np.zeros(max(need_rows + 1, self.offsets.size * 2), dtype=np.uint64)
            grown[: self.n_rows + 1] = self.offsets[: self.n_rows + 1]
            self.offsets = grown
        need_bytes = self.n_bytes + nbytes
        if need_bytes > self.words.size:
            grown_w = np.empty(max(need_bytes, self.words.size * 2), dtype=np.uint8)
            grown_w[: self.n_bytes] = self.words[: self.n_bytes]
            self.words = grown_w
        if 2 * need_rows > self.table.shape[0]:
            self._rebuild(fmt.slot_count(need_rows))

    def _rebuild(self, slots: int) -> None:
        self.table = np.zeros((slots, 2), dtype=np.uint32)
        kindex.build_index(self.words, self.offsets, self.n_rows, self.table)

    def insert(self, src: np.ndarray, wst: np.ndarray, wen: np.ndarray, cand: np.ndarray,
               keep: np.ndarray) -> int:
        """Add candidate words in order; sets ``keep`` and returns the duplicates dropped."""
        if cand.size == 0:
            return 0
        nbytes = int((wen[cand] - wst[cand]).sum())
        self.reserve(cand.size, nbytes)
        self.n_rows, self.n_bytes, dups = kindex.insert_words(
            src, wst, wen, cand, self.table, self.words, self.offsets, self.n_rows,
            self.n_bytes, keep,
        )
        return int(dups)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(words, offsets, index)`` trimmed to the final vocabulary."""
        slots = fmt.slot_count(self.n_rows)
        if self.table.shape[0] != slots:
            self._rebuild(slots)
        return (self.words[: self.n_bytes], self.offsets[: self.n_rows + 1], self.table)
