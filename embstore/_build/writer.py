"""Writing a store file atomically.

A store is built in an :class:`~embstore._atomic.AtomicFile`: an unnamed temporary file
(``O_TMPFILE``) in the destination's directory, or a dot-named temporary file where the
filesystem lacks ``O_TMPFILE``.  The header, which is what makes a file a store, is written
last.  Only when everything is on disk is the file given its name: ``link`` (fails if the
destination exists) or ``rename`` over a previous store with ``force``.  A reader that has the
old store mapped keeps its old inode and data; a crash at any point leaves no file at the
destination that looks like a store.  The destination is checked first, by the rules every
output follows (:func:`~embstore._atomic.check_destination`).
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import format as fmt
from .._atomic import TMP_TAG, AtomicFile, remove_stale_temporaries
from ..errors import StoreLimitError

_TMP_TAG = TMP_TAG  # the temporary-name tag, for tests
__all__ = ["StoreWriter", "remove_stale_temporaries"]


class _BlockHasher:
    """XXH64 of consecutive 1 MiB blocks of everything written after the header."""

    def __init__(self) -> None:
        self.serial = False  # True while driven from the writer thread
        self.block = 1 << fmt.BLOCK_LOG2
        self.digests: list[np.ndarray] = []
        self.carry = np.empty(self.block, dtype=np.uint8)
        self.carry_len = 0

    def _hash_full(self, data: np.ndarray) -> None:
        from .._kernels import checksum as kchecksum

        out = np.empty(data.size // self.block, dtype=np.uint64)
        if self.serial:
            kchecksum.xxh64_blocks.serial(data, self.block, out)
        else:
            kchecksum.xxh64_blocks(data, self.block, out)
        self.digests.append(out)

    def update(self, data: np.ndarray) -> None:
        pos = 0
        if self.carry_len:
            take = min(self.block - self.carry_len, data.size)
            self.carry[self.carry_len:self.carry_len + take] = data[:take]
            self.carry_len += take
            pos = take
            if self.carry_len == self.block:
                self._hash_full(self.carry)
                self.carry_len = 0
        full = (data.size - pos) // self.block * self.block
        if full:
            self._hash_full(data[pos:pos + full])
            pos += full
        rest = data.size - pos
        if rest:
            self.carry[:rest] = data[pos:]
            self.carry_len = rest

    def finish(self) -> np.ndarray:
        from .._kernels import checksum as kchecksum

        if self.carry_len:
            out = np.empty(1, dtype=np.uint64)
            kchecksum.xxh64_blocks(self.carry[:self.carry_len], self.block, out)
            self.digests.append(out)
            self.carry_len = 0
        if not self.digests:
            return np.empty(0, dtype=np.uint64)
        return np.concatenate(self.digests)


class StoreWriter:
    """Streams vectors into a new store, then writes the vocabulary and publishes the file.

    Use as a context manager: leaving the block by an exception removes the temporary file.
    Rows are appended with :meth:`write_vectors`; :meth:`finish` writes every other section,
    the checksums and the header, then gives the file its name.  ``inputs`` are the files the
    store is made from (paths or open files): ``dst`` may not be one of them.
    """

    def __init__(self, dst: str | os.PathLike[str], dim: int, *, force: bool = False,
                 fsync: bool = False, inputs: Iterable[object] = ()) -> None:
        self.dim = int(dim)
        self.force = force
        self.fsync = fsync
        if not 1 <= self.dim <= fmt.MAX_DIM:
            raise StoreLimitError(f"dimension {dim} out of range 1..{fmt.MAX_DIM}")
        self._out = AtomicFile(dst, kind="store", force=force, inputs=inputs, fsync=fsync)
        self.dst: Path = self._out.dst
        self._fd = self._out.fd
        self._pos = fmt.HEADER_LENGTH
        self._hasher = _BlockHasher()
        self.n_rows = 0  # rows accepted (queued or written)
        self._rows_written = 0
        self._mean = np.zeros(self.dim, dtype=np.float64)
        self._m2 = np.zeros(self.dim, dtype=np.float64)
        self._closed = False
        # Background writing: the converter fills pooled buffers and submits them; a thread
        # updates the statistics, hashes and writes them while the next batch is parsed.
        self._pool: queue.Queue[np.ndarray] = queue.Queue()
        self._pool_rows = 0
        self._pool_made = 0
        self._jobs: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- temporary file ---------------------------------------------------------------------

    @property
    def _named_tmp(self) -> Path | None:
        """The temporary's path while it has one (``None`` for an ``O_TMPFILE`` file)."""
        return self._out.named_temporary

    def _write(self, data: np.ndarray) -> None:
        view = data.data.cast("B")
        self._out.pwrite(view, self._pos)  # StoreWriteError naming dst on failure
        self._hasher.update(np.frombuffer(view, dtype=np.uint8))
        self._pos += len(view)

    def _pad_to_page(self) -> None:
        pad = fmt.align(self._pos) - self._pos
        if pad:
            self._write(np.zeros(pad, dtype=np.uint8))

    # -- vectors ----------------------------------------------------------------------------

    def write_vectors(self, rows: np.ndarray) -> None:
        """Append ``rows`` (k x dim, float32, finite) to the vector section, synchronously."""
        if rows.ndim != 2 or rows.shape[1] != self.dim or rows.dtype != np.float32:
            raise ValueError(f"expected a (k, {self.dim}) float32 array, got {rows.dtype} {rows.shape}")
        self._drain()
        k = rows.shape[0]
        self._check_room(k)
        self.n_rows += k
        self._append_rows(np.ascontiguousarray(rows), serial=False)

    def buffer(self, rows: int) -> np.ndarray:
        """A ``(rows, dim)`` float32 buffer to fill and pass to :meth:`submit`."""
        self._raise_pending()
        if rows != self._pool_rows:
            self._drain()
            self._pool = queue.Queue()
            self._pool_rows = rows
            self._pool_made = 0
        if self._pool.empty() and self._pool_made < 3:
            self._pool_made += 1
            return np.empty((rows, self.dim), dtype=np.float32)
        while True:
            try:
                return self._pool.get(timeout=0.5)
            except queue.Empty:
                self._raise_pending()

    def submit(self, buf: np.ndarray, k: int) -> None:
        """Queue the first ``k`` rows of a :meth:`buffer` for writing; the buffer returns to
        the pool once written."""
        self._raise_pending()
        self._check_room(k)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="embstore-writer",
                                            daemon=True)
            self._hasher.serial = True
            self._thread.start()
        self.n_rows += k
        self._jobs.put((buf, k))

    def _check_room(self, k: int) -> None:
        if self.n_rows + k > fmt.MAX_ROWS:
            raise StoreLimitError(f"a store holds at most {fmt.MAX_ROWS:,} rows")

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            buf, k = job
            try:
                if self._error is None and k:
                    self._append_rows(buf[:k], serial=True)
            except BaseException as exc:  # re-raised in the submitting thread
                self._error = exc
            finally:
                self._pool.put(buf)

    def _drain(self) -> None:
        """Wait for queued rows to be written; re-raise a failure from the writer thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
            self._hasher.serial = False
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _append_rows(self, rows: np.ndarray, *, serial: bool) -> None:
        if rows.shape[0] == 0:
            return
        self._update_moments(rows, serial)
        self._write(rows.reshape(-1).view(np.uint8))
        self._rows_written += rows.shape[0]

    def _update_moments(self, rows: np.ndarray, serial: bool) -> None:
        """Chan et al.'s pairwise update of per-dimension mean and sum of squared deviations."""
        from .._kernels import stats as kstats

        k = rows.shape[0]
        block = 256
        nb = (k + block - 1) // block
        sums = np.empty((nb, self.dim), dtype=np.float64)
        sqs = np.empty((nb, self.dim), dtype=np.float64)
        shift = rows[0].astype(np.float64)
        moments = kstats.block_moments.serial if serial else kstats.block_moments
        moments(rows, k, block, shift, sums, sqs)
        s1 = sums.sum(axis=0)
        mean_b = shift + s1 / k
        m2_b = np.maximum(sqs.sum(axis=0) - s1 * s1 / k, 0.0)
        n_a = self._rows_written
        n = n_a + k
        delta = mean_b - self._mean
        self._mean += delta * (k / n)
        self._m2 += m2_b + delta * delta * (n_a * k / n)

    # -- the rest of the file -----------------------------------------------------------------

    def finish(self, words: np.ndarray, offsets: np.ndarray, index: np.ndarray,
               metadata: dict[str, Any],
               extras: Sequence[tuple[fmt.ExtraSection, np.ndarray]] = ()) -> int:
        """Write the remaining sections and the header, then publish; returns the file size.

        ``words``/``offsets`` hold the UTF-8 vocabulary in row order and ``index`` the
        ``(slots, 2)`` uint32 table built by the rules of ``docs/FORMAT.md``.  ``extras`` are
        extension sections, written after METADATA in the order given.  The header carries
        the oldest version that describes the file: 1.0 when there are no extras.
        """
        self._drain()
        n = self.n_rows
        if n == 0:
            raise ValueError("a store needs at least one row")
        if offsets.shape != (n + 1,) or int(offsets[-1]) != words.size:
            raise ValueError("word offsets do not match the vocabulary")
        if index.shape != (fmt.slot_count(n), 2):
            raise ValueError("index has the wrong size")
        meta_bytes = json.dumps(metadata, ensure_ascii=False, sort_keys=True).encode("utf-8")
        if len(meta_bytes) > fmt.MAX_METADATA:
            raise StoreLimitError(f"metadata is {len(meta_bytes):,} bytes as JSON; a store "
                                  f"holds at most {fmt.MAX_METADATA:,}")
        std = np.sqrt(self._m2 / n)
        stats = np.concatenate([self._mean, std]).astype("<f8")
        parts = [
            offsets.astype("<u8", copy=False),
            words.astype(np.uint8, copy=False),
            index.astype("<u4", copy=False),
            stats,
            np.frombuffer(meta_bytes, dtype=np.uint8),
            *(data for _, data in extras),
        ]
        for part in parts:
            self._pad_to_page()
            self._write(np.ascontiguousarray(part).reshape(-1).view(np.uint8))
        self._pad_to_page()
        checksums_at = self._pos
        digests = self._hasher.finish().astype("<u8")
        lengths = fmt.section_lengths(n, self.dim, words.size, index.shape[0], len(meta_bytes))
        specs = [spec for spec, _ in extras]
        sections = fmt.layout(lengths, specs)
        if (sections[fmt.Section.CHECKSUMS].offset != checksums_at
                or sections[fmt.Section.CHECKSUMS].length != digests.size * 8):
            raise AssertionError("store layout and written bytes disagree")
        view = digests.data.cast("B")
        self._out.pwrite(view, checksums_at)
        file_length = checksums_at + len(view)
        header = fmt.Header(fmt.VERSION_MAJOR, fmt.minor_for(fmt.DTYPE_FLOAT32_LE, specs),
                            file_length, n, self.dim, index.shape[0], fmt.BLOCK_LOG2,
                            sections)
        self._out.pwrite(header.pack(), 0)
        # fsync (with fsync=True), then link, or rename over a previous store with force:
        # StoreExistsError if a file appeared at dst meanwhile, StoreWriteError on failure.
        self._out.commit()
        self.close()
        return file_length

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    # -- publishing and cleanup ---------------------------------------------------------------

    def close(self) -> None:
        """Stop the writer thread and drop the temporary file (if not yet published)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._out.discard()  # nothing once published

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
