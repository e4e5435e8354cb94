"""Text vector files (word2vec text, fastText ``.vec``, GloVe): lines parsed in parallel parts
by the compiled core, every quirk and error reported by line number."""

from __future__ import annotations

import numpy as np

from .._build.builder import StoreBuilder
from .._kernels import text as ktext
from . import limits
from .detect import junk_word, looks_binary
from .sources import Stream
from .state import ConversionState, show


class TextReader:
    """Reads the lines of a text vector file into a store builder."""

    def __init__(self, st: ConversionState) -> None:
        self.st = st
        self._last_record_line = -1  # the batch's line where the header's count was reached
        self._input_end = -1  # buffer offset of the end of the input, once it is in the window
        self._batch_before = 0  # records before the current batch
        self._batch_records = np.empty(0, dtype=np.int64)  # the batch's lines that are records

    def read(self, stream: Stream, builder: StoreBuilder) -> None:
        """Convert every line after the header (if any) into ``builder``."""

        dim = self.st.dim
        # At least 64 rows (only dims > 32768 are affected; untouched rows cost no memory):
        # with 2-row batches a hostile run of blank lines parses at a few KB/s.
        batch_rows = min(1 << 18, max(64, limits.ROW_BATCH_BYTES // (4 * dim)))
        meta = np.empty((batch_rows, ktext.META_COLS), dtype=np.int64)
        line_no = 1  # line number of buf[stream.start]
        if self.st.declared is not None:
            window = stream.buf[stream.start:stream.end]
            nl = window[: 1 << 20].tobytes().find(b"\n")
            skip = window.size if nl < 0 else nl + 1
            stream.start += skip
            stream.base += skip
            line_no = 2
        target = self.st.target
        trailing = False  # past the declared rows: only blank lines may follow
        while True:
            s, e = stream.start, stream.end
            buf = stream.buf
            self._input_end = e if stream.eof else -1
            nparts = max(1, -(-(e - s) // limits.PART))
            counts = np.zeros(nparts, dtype=np.int64)
            ends = np.zeros(nparts, dtype=np.int64)
            if e > s:
                ktext.scan_parts(buf, stream.words, s, e, limits.PART, counts, ends)
            has = counts > 0
            last_end = int(ends[has][-1]) if has.any() else s
            if stream.eof and last_end < e:
                counts[-1] += 1  # the last line has no newline
                ends[-1] = e
                has[-1] = True
            consumed = int(ends[has][-1]) if has.any() else s
            if not has.any() and not stream.eof and e - s >= limits.MAX_LINE:
                raise self.st.error(f"line is longer than {limits.MAX_LINE >> 20} MiB (no newline found)",
                                 line=line_no, hint="is this really a text vector file?")
            idx = np.flatnonzero(has)
            starts_all = np.maximum.accumulate(np.where(has, ends, s))
            lo = np.concatenate(([s], starts_all[:-1]))[idx]
            hi = ends[idx]
            cnt = counts[idx]
            if cnt.size and int(cnt.max()) > batch_rows:
                # A part of short (e.g. blank) lines can hold more lines than a batch has
                # rows in ``meta`` and the row buffer: split it so no batch overruns them.
                lo, hi, cnt = split_parts(buf, lo, hi, cnt, batch_rows)
            cum = np.cumsum(cnt)
            k0 = 0
            done = False
            while k0 < lo.size:
                before = int(cum[k0 - 1]) if k0 else 0
                k1 = int(np.searchsorted(cum, before + batch_rows, side="right"))
                k1 = max(k1, k0 + 1)
                first_line = line_no + before
                if trailing:
                    self._check_trailing(buf, int(lo[k0]), int(hi[k1 - 1]), first_line)
                else:
                    # rows relative to the batch: its first part starts at row 0
                    first_row = np.concatenate(([before], cum[k0:k1 - 1])) - before
                    finished = self._text_batch(buf, lo[k0:k1], hi[k0:k1], first_row,
                                                int(cum[k1 - 1]) - before, first_line, meta,
                                                builder, target)
                    if finished:
                        if self.st.limit is not None and self.st.limit == target:
                            done = True
                            break
                        trailing = True
                        last = self._last_record_line
                        n_b = int(cum[k1 - 1]) - before
                        if last + 1 < n_b:
                            self._check_trailing(buf, int(meta[last + 1, ktext.M_LSTART]),
                                                 int(hi[k1 - 1]), first_line + last + 1)
                k0 = k1
            line_no += int(cum[-1]) if cum.size else 0
            self.st.progress.update(self.st.source.consumed)
            if done:
                break
            if not stream.eof and e - consumed > limits.MAX_LINE:
                raise self.st.error(f"line is longer than {limits.MAX_LINE >> 20} MiB (no newline found)",
                                 line=line_no, hint="is this really a text vector file?")
            if not stream.advance(consumed) and consumed >= stream.end:
                break
        if target is not None and self.st.declared is not None and self.st.records < target:
            limit = self.st.limit_hint()
            raise self.st.error(
                f"header declares {self.st.declared:,} rows but the file ends after "
                f"{self.st.records:,}", line=max(line_no - 1, 1),
                hint="the file is probably truncated" + (f"; {limit}" if limit else ""),
            )

    def _check_trailing(self, buf: np.ndarray, a: int, b: int, first_line: int) -> None:
        """Only blank lines may follow the declared rows."""
        chunk = buf[a:b].tobytes()
        stripped = chunk.lstrip()
        if stripped:
            at = len(chunk) - len(stripped)
            raise self.st.error(
                f"more rows than the header declares ({self.st.declared:,})",
                line=first_line + chunk.count(b"\n", 0, at),
                hint=f"fix the header, or pass limit={self.st.declared} to convert only "
                     "the declared rows",
            )
        # Blank lines after the declared rows are skipped like any others: count them.
        self.st.blank += chunk.count(b"\n") + (1 if chunk and not chunk.endswith(b"\n") else 0)

    def _text_batch(self, work: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    first_row: np.ndarray, k: int, first_line: int, meta: np.ndarray,
                    builder: StoreBuilder,
                    target: int | None) -> bool:
        """Parse, check, de-duplicate and queue one batch of ``k`` lines; True once
        ``target`` records have been read."""

        out = builder.buffer(meta.shape[0])
        o = out[:k]
        m = meta[:k]
        # One part (at most 8 KiB, or a split run of short lines) is not worth a parallel
        # launch, which costs more than parsing it.
        parse = ktext.parse_text_parts.serial if lo.size == 1 else ktext.parse_text_parts
        parse(work, lo, hi, first_row, self.st.dim, o, m)
        status = m[:, ktext.M_STATUS]
        blank = status == ktext.LINE_BLANK
        record_idx = np.flatnonzero(~blank)
        finished = False
        self._last_record_line = k - 1
        if target is not None and self.st.records + record_idx.size >= target:
            take = target - self.st.records
            last = int(record_idx[take - 1]) if take > 0 else -1
            self._last_record_line = last
            record_idx = record_idx[:take]
            self.st.blank += int(blank[: last + 1].sum())
            finished = True
        else:
            self.st.blank += int(blank.sum())
        self._batch_before = self.st.records
        self._batch_records = record_idx
        self.st.records += record_idx.size
        rec_status = status[record_idx]
        bad_utf8 = m[record_idx, ktext.M_BADUTF8] != 0
        good = rec_status == ktext.LINE_OK
        if self.st.unicode_errors == "strict":
            good &= ~bad_utf8
        # exact slow path for tokens the kernel could not round exactly
        fb_lines = record_idx[good & (m[record_idx, ktext.M_FALLBACK] > 0)]
        if fb_lines.size:
            good_mask = np.ones(k, dtype=bool)
            for li in self._fallback(work, o, m, fb_lines):
                good_mask[li] = False
            good &= good_mask[record_idx]
        for li in record_idx[~good]:
            self._report_text_line(work, m, int(li), first_line)
        self.st.kept(good)
        cand = record_idx[good]
        src, wst, wen = work, m[:, ktext.M_WSTART], m[:, ktext.M_WEND]
        if self.st.unicode_errors != "strict" and bad_utf8[good].any():
            src, wst, wen = self.st.repaired_words(work, wst, wen, m[:, ktext.M_BADUTF8], cand)
        builder.submit(out, k, src, wst, wen, cand)
        return finished

    def _fallback(self, work: np.ndarray, out: np.ndarray, meta: np.ndarray,
                  lines: np.ndarray) -> list[int]:
        """Exact values for tokens outside the fast path; returns lines found non-finite."""

        total = int(meta[lines, ktext.M_FALLBACK].sum())
        li_a = np.empty(total, dtype=np.int64)
        col_a = np.empty(total, dtype=np.int64)
        s_a = np.empty(total, dtype=np.int64)
        e_a = np.empty(total, dtype=np.int64)
        got = ktext.fallback_tokens(work, self.st.dim, meta, lines, li_a, col_a, s_a, e_a)
        assert got == total
        mv = work.data
        values = np.array([float(bytes(mv[s:e])) for s, e in zip(s_a.tolist(), e_a.tolist(), strict=True)],
                          dtype=np.float64)
        with np.errstate(over="ignore"):
            as32 = values.astype(np.float32)
        out[li_a, col_a] = as32
        nonfinite = ~np.isfinite(as32)
        bad_lines: list[int] = []
        for idx in np.flatnonzero(nonfinite):
            li = int(li_a[idx])
            meta[li, ktext.M_STATUS] = ktext.LINE_NONFINITE
            meta[li, ktext.M_DSTART] = s_a[idx]
            meta[li, ktext.M_DEND] = e_a[idx]
            bad_lines.append(li)
        return bad_lines

    def _report_text_line(self, work: np.ndarray, meta: np.ndarray, li: int,
                          first_line: int) -> None:

        line_no = first_line + li
        status = int(meta[li, ktext.M_STATUS])
        lstart = int(meta[li, ktext.M_LSTART])
        line = work[lstart:meta[li, ktext.M_LEND]].tobytes()
        dim = self.st.dim
        if status in (ktext.LINE_TOO_FEW, ktext.LINE_TOO_MANY):
            found = int(meta[li, ktext.M_DSTART])
            msg = f"expected {dim} values after the word, found {found}"
            hint = "the dimension comes from the header" if self.st.declared else \
                "the dimension comes from line 1"
            lend = int(meta[li, ktext.M_LEND])
            if (status == ktext.LINE_TOO_FEW and self._input_end >= 0
                    and work[lend:self._input_end].tobytes() in (b"", b"\n")):
                # A short last line: the download or copy stopped inside it.
                record = self._batch_before + int(np.searchsorted(self._batch_records, li)) + 1
                limit = self.st.limit_hint(record - 1)
                self.st.skip_or_raise(
                    msg + ", on the last line: the file is probably truncated", line=line_no,
                    hint=limit, skip_hint=False)
                return
        elif status in (ktext.LINE_NOT_NUMBER, ktext.LINE_NONFINITE):
            ts = int(meta[li, ktext.M_DSTART]) - lstart
            te = int(meta[li, ktext.M_DEND]) - lstart
            field_no = len(line[:ts].split()) + 1
            token = show(line[ts:te])
            if status == ktext.LINE_NOT_NUMBER:
                msg = f"field {field_no}: expected a number, found {token}"
            else:
                msg = (f"field {field_no}: value {token} is not finite in float32 "
                       "(NaN, infinity or out of range)")
            hint = None
        else:  # invalid UTF-8 under strict decoding
            ws = int(meta[li, ktext.M_WSTART]) - lstart
            we = int(meta[li, ktext.M_WEND]) - lstart
            word = line[ws:we]
            try:
                word.decode("utf-8")
                at = 0
            except UnicodeDecodeError as exc:
                at = exc.start
            msg = f"word {show(word)} is not valid UTF-8 (byte {at} of the word)"
            if junk_word(word) or looks_binary(line):
                # Another encoding has no control bytes: this is binary data, and decoding
                # it differently would only turn junk into words.
                hint = "the line is binary data, not text: is this really a text vector file?"
            else:
                hint = 'use unicode_errors="replace" or unicode_errors="ignore"'
        self.st.skip_or_raise(msg, line=line_no, hint=hint)


def split_parts(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, cnt: np.ndarray,
                 limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split parts holding more than ``limit`` lines at line boundaries.

    ``buf[lo[c]:hi[c]]`` holds exactly ``cnt[c]`` lines: one newline each, except a last
    line of the input that has none (then ``hi[c]`` is the end of the input).
    """
    los: list[int] = []
    his: list[int] = []
    cnts: list[int] = []
    for a, b, c in zip(lo.tolist(), hi.tolist(), cnt.tolist(), strict=True):
        if c <= limit:
            los.append(a)
            his.append(b)
            cnts.append(c)
            continue
        ends = a + 1 + np.flatnonzero(buf[a:b] == 10)  # just after each newline
        if ends.size < c:
            ends = np.append(ends, b)
        for i in range(0, c, limit):
            j = min(c, i + limit)
            los.append(a if i == 0 else int(ends[i - 1]))
            his.append(int(ends[j - 1]))
            cnts.append(j - i)
    return (np.array(los, dtype=np.int64), np.array(his, dtype=np.int64),
            np.array(cnts, dtype=np.int64))
