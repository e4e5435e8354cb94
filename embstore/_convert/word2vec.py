"""word2vec C binary files: ``count dim`` header, then ``word<space><dim float32>`` records."""

from __future__ import annotations

import numpy as np

from .._build.builder import StoreBuilder
from .._kernels import binary as kbinary
from . import limits
from .detect import junk_word
from .sources import Stream
from .state import ConversionState, show


class Word2VecReader:
    """Reads word2vec binary records into a store builder."""

    def __init__(self, st: ConversionState) -> None:
        self.st = st

    def read(self, stream: Stream, builder: StoreBuilder) -> None:
        """Convert the records after the header into ``builder``."""

        dim = self.st.dim
        rec = dim * 4
        assert self.st.declared is not None
        batch_rows = max(1, limits.ROW_BATCH_BYTES // rec)
        wst = np.empty(batch_rows, dtype=np.int64)
        wen = np.empty(batch_rows, dtype=np.int64)
        vst = np.empty(batch_rows, dtype=np.int64)
        bad = np.empty(batch_rows, dtype=np.uint8)
        badw = np.empty(batch_rows, dtype=np.uint8)
        window = stream.buf[stream.start:stream.end]
        # The same window _detect matched the header in (it may be padded with blanks).
        head_end = window[: 1 << 20].tobytes().find(b"\n")
        pos = stream.start + head_end + 1
        target = self.st.target
        assert target is not None
        while True:
            remaining = target - self.st.records
            if remaining == 0:
                break
            k, new_pos, status, spos = kbinary.scan_binary(
                stream.buf, pos, stream.end, dim, min(remaining, batch_rows), limits.MAX_WORD, wst, wen,
                vst, badw)
            base = stream.base - stream.start  # stream offset of buf[0]
            if k:
                self._binary_batch(stream.buf, k, base, wst, wen, vst, bad, badw, builder)
                pos = new_pos
                continue
            if status == kbinary.BIN_EMPTY_WORD:
                raise self.st.error("expected a word before the vector, found a space",
                                 offset=base + spos)
            if status == kbinary.BIN_WORD_TOO_LONG:
                raise self.st.error(f"no space within {limits.MAX_WORD} bytes: expected 'word<space>' "
                                 "followed by the vector", offset=base + spos,
                                 hint="is this really a word2vec binary file?")
            if not stream.advance(pos):
                rest = stream.buf[stream.start:stream.end].tobytes()
                base = stream.base
                limit = self.st.limit_hint()
                if rest.strip(b"\n"):
                    have = len(rest.lstrip(b"\n"))
                    raise self.st.error(
                        f"truncated record {self.st.records + 1:,}: expected a word, a space and "
                        f"{rec} bytes of vector, found only {have} bytes before the end",
                        offset=base + len(rest) - have,
                        hint=f"header declares {self.st.declared:,} rows; the file is probably "
                             "truncated" + (f" ({limit})" if limit else ""),
                    )
                raise self.st.error(
                    f"header declares {self.st.declared:,} rows but the file ends after "
                    f"{self.st.records:,}", offset=base + len(rest),
                    hint="the file is probably truncated" + (f"; {limit}" if limit else ""),
                )
            pos = stream.start
            self.st.progress.update(self.st.source.consumed)
        if self.st.limit is not None and self.st.limit == target:
            return
        # Header count reached: anything but whitespace after it is an error.
        while True:
            rest = stream.buf[pos:stream.end].tobytes()
            if rest.strip():
                lead = len(rest) - len(rest.lstrip())
                raise self.st.error(
                    f"more rows than the header declares ({self.st.declared:,})",
                    offset=stream.base + (pos - stream.start) + lead,
                    hint=f"fix the header, or pass limit={self.st.declared} to convert only "
                         "the declared rows",
                )
            if not stream.advance(stream.end):
                return
            pos = stream.start

    def _binary_batch(self, work: np.ndarray, k: int, base: int, wst: np.ndarray,
                      wen: np.ndarray, vst: np.ndarray, bad: np.ndarray, badw: np.ndarray,
                      builder: StoreBuilder) -> None:

        out = builder.buffer(wst.size)
        o = out[:k]
        # Serial: the copy is memory-bound, and the reader and writer threads already keep
        # both cores busy; a parallel launch here only adds contention (measured at 3M rows).
        kbinary.copy_binary_vectors.serial(work, vst, k, o, bad)
        self.st.records += k
        good = np.ones(k, dtype=bool)
        if bad[:k].any():
            for i in np.flatnonzero(bad[:k]):
                good[i] = False
                row = o[i]
                j = int(np.flatnonzero(~np.isfinite(row))[0])
                self.st.skip_or_raise(
                    f"value {j + 1} of the vector for {show(work[wst[i]:wen[i]].tobytes())} is "
                    f"{row[j]} (non-finite values are rejected)",
                    offset=base + int(vst[i]) + 4 * j,
                )
        src, s_arr, e_arr = work, wst, wen
        if badw[:k].any():
            if self.st.unicode_errors == "strict":
                for i in np.flatnonzero(badw[:k]):
                    if not good[i]:
                        continue
                    good[i] = False
                    word = work[wst[i]:wen[i]].tobytes()
                    self.st.skip_or_raise(
                        f"word {show(word)} is not valid UTF-8", offset=base + int(wst[i]),
                        hint="the word is binary data, not text: is this really a word2vec "
                             "binary file?" if junk_word(word) else
                             'use unicode_errors="replace" or unicode_errors="ignore"',
                    )
            else:
                src, s_arr, e_arr = self.st.repaired_words(
                    work, wst[:k], wen[:k], badw[:k], np.flatnonzero(good), lstrip_newlines=True)
        self.st.kept(good)
        builder.submit(out, k, src, s_arr, e_arr, np.flatnonzero(good))
