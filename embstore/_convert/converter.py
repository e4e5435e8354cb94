"""Streaming conversion of word2vec/GloVe/fastText vector files into a store.

The input is read in blocks (decompressed on a reader thread), parsed by compiled kernels
over the raw bytes, de-duplicated into the vocabulary index, and the vectors are streamed to
the store file as they are parsed.  Memory is bounded by the block size plus the vocabulary;
the vectors are never all in RAM.

Semantics follow gensim's ``KeyedVectors.load_word2vec_format`` wherever gensim can read a
file: the same words in the same order, the first of duplicate words kept, and every value
exactly ``float32(float(token))``.  Where gensim fails on real-world quirks (blank lines, runs
of spaces, words containing spaces, CRLF), the quirk is handled and documented here.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import format as fmt
from .._build.vocabulary import VocabularyBuilder
from .._build.writer import StoreWriter
from .._kernels import binary as kbinary
from .._kernels import gather as kgather
from .._kernels import text as ktext
from .._version import __version__
from ..errors import ConversionError
from ..progress import Progress
from .sources import Source, Stream

Format = Literal["auto", "text", "glove", "binary"]
UnicodeErrors = Literal["strict", "replace", "ignore"]
OnBadLine = Literal["error", "skip"]

BLOCK_SIZE = 8 << 20  # bytes read per block: small enough to stay in L3 while parsed
PART = 8192  # bytes of text per parallel work item
MAX_LINE = 64 << 20  # longest accepted text line
MAX_WORD = 1 << 20  # longest accepted binary word
ROW_BATCH_BYTES = 8 << 20  # float32 output per kernel batch
MAX_EXAMPLES = 10

_HEADER_RE = re.compile(rb"^[ \t]*(\d+)[ \t]+(\d+)[ \t\r]*$")
# ``\d+(?:\.\d*)?`` rather than ``\d+\.?\d*``: the same language without quadratic
# backtracking on a long run of digits followed by a non-digit (a hostile first line).
_NUMBER_RE = re.compile(rb"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
# Non-finite spellings still occupy a value field (they are rejected later, by line).
_SPECIAL_RE = re.compile(rb"^[+-]?(?:nan|inf|infinity)$", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"

FORMAT_NAMES = {
    "text": "word2vec text",
    "glove": "GloVe text (no header)",
    "binary": "word2vec binary",
}


@dataclass
class ConversionReport:
    """What a conversion did; ``str(report)`` is the one-line summary the CLI prints."""

    source: str
    destination: str
    format: str
    compression: str | None
    rows: int
    dim: int
    records: int
    duplicates: int
    skipped_lines: int
    blank_lines: int
    declared_rows: int | None
    bytes_read: int
    input_bytes: int
    store_bytes: int
    seconds: float
    skipped_examples: list[str] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        """Decompressed input megabytes (10**6) parsed per second."""
        return self.bytes_read / 1e6 / max(self.seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mb_per_s"] = round(self.mb_per_s, 1)
        return d

    def __str__(self) -> str:
        kind = FORMAT_NAMES.get(self.format, self.format)
        if self.compression:
            kind += f", {self.compression}"
        text = (
            f"Converted {self.rows:,} word{'' if self.rows == 1 else 's'} x {self.dim} ({kind}) "
            f"from {self.source} "
            f"to {self.destination} in {self.seconds:.2f} s ({self.mb_per_s:,.0f} MB/s)"
        )
        extras = []
        if self.duplicates:
            extras.append(f"{self.duplicates:,} duplicate words dropped (first kept)")
        if self.skipped_lines:
            extras.append(f"{self.skipped_lines:,} bad lines skipped")
        if extras:
            text += "; " + ", ".join(extras)
        return text


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    format: Format = "auto",
    limit: int | None = None,
    unicode_errors: UnicodeErrors = "strict",
    on_bad_line: OnBadLine = "error",
    force: bool = False,
    quiet: bool = False,
    fsync: bool = False,
) -> ConversionReport:
    """Convert a word-vector file into a store at ``dst``.

    Args:
        src: word2vec text (``count dim`` header), fastText ``.vec``, GloVe text (no header)
            or word2vec C binary; plain, gzip, bz2, xz or a single-file zip.
        dst: the store to create.  It appears only once complete.
        format: ``"auto"`` detects from the content; ``"text"`` (with header), ``"glove"``
            (no header) or ``"binary"`` force one.
        limit: convert only the first ``limit`` records, like gensim's ``limit``.
        unicode_errors: how to decode words that are not valid UTF-8 (gensim's meaning).
        on_bad_line: ``"error"`` stops at the first malformed line; ``"skip"`` skips and
            counts malformed lines (non-finite values included).
        force: replace an existing ``dst`` (atomically; readers of the old store keep it).
        quiet: never show a progress bar (it only appears on a terminal anyway).
        fsync: flush the store to disk before publishing it, so that it also survives an
            operating-system crash or power loss.  Publishing is atomic either way: an
            interrupted conversion never leaves a partial store.  Off by default because it
            makes conversion as slow as the disk (about 0.5 GB/s on the reference machine).

    Returns:
        A :class:`ConversionReport`.

    Raises:
        ConversionError: the input is malformed; the message names the line or byte offset.
        StoreExistsError: ``dst`` exists and ``force`` is false.
    """
    if format not in ("auto", "text", "glove", "binary"):
        raise ValueError(f"format must be auto, text, glove or binary, not {format!r}")
    if unicode_errors not in ("strict", "replace", "ignore"):
        raise ValueError(f"unicode_errors must be strict, replace or ignore, not {unicode_errors!r}")
    if on_bad_line not in ("error", "skip"):
        raise ValueError(f"on_bad_line must be error or skip, not {on_bad_line!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer, not {limit!r}")
    src_path = os.fspath(src)
    if os.path.isdir(src_path):
        raise IsADirectoryError(21, "is a directory, expected a vector file", src_path)
    dst_path = Path(dst)
    if dst_path.is_dir():
        raise IsADirectoryError(21, "is a directory, expected the path of a store to create",
                                str(dst_path))
    if not force and dst_path.exists():
        from ..errors import StoreExistsError

        raise StoreExistsError(dst_path)
    t0 = time.perf_counter()
    source = Source(src_path)
    try:
        job = _Conversion(source, dst_path, format, limit, unicode_errors, on_bad_line, force,
                          quiet, fsync)
        report = job.run()
    finally:
        source.close()
    report.seconds = time.perf_counter() - t0
    return report


class _Conversion:
    """One conversion run; holds the streaming state shared by the text and binary paths."""

    def __init__(self, source: Source, dst: Path, format: Format, limit: int | None,
                 unicode_errors: UnicodeErrors, on_bad_line: OnBadLine, force: bool,
                 quiet: bool, fsync: bool) -> None:
        self.source = source
        self.path = source.path
        self.dst = dst
        self.format_opt = format
        self.limit = limit
        self.unicode_errors = unicode_errors
        self.on_bad_line = on_bad_line
        self.force = force
        self.fsync = fsync
        self.progress = Progress(f"Converting {os.path.basename(self.path)}", source.size,
                                 enabled=Progress.wanted(quiet))
        self.compressed = source.compression is not None
        # counters
        self.records = 0
        self.duplicates = 0
        self.skipped = 0
        self.blank = 0
        self.examples: list[str] = []
        self.bytes_read = 0
        self.declared: int | None = None
        self.dim = 0
        self.kind = ""
        self._last_record_line = -1

    # -- helpers --------------------------------------------------------------------------------

    def error(self, message: str, *, line: int | None = None, offset: int | None = None,
              hint: str | None = None) -> ConversionError:
        return ConversionError(self.path, message, line=line, offset=offset, hint=hint,
                               compressed=self.compressed)

    def skip_or_raise(self, message: str, *, line: int | None = None, offset: int | None = None,
                      hint: str | None = None) -> None:
        if self.on_bad_line == "error":
            hint = (hint + "; " if hint else "") + "or skip bad lines with --on-bad-line skip"
            raise self.error(message, line=line, offset=offset, hint=hint)
        self.skipped += 1
        if len(self.examples) < MAX_EXAMPLES:
            where = f"line {line}" if line is not None else f"offset {offset}"
            self.examples.append(f"{where}: {message}")

    @property
    def target(self) -> int | None:
        """Records to read: the header's count and/or the limit."""
        counts = [c for c in (self.declared, self.limit) if c is not None]
        return min(counts) if counts else None

    def repair(self, raw: bytes) -> bytes:
        return raw.decode("utf-8", self.unicode_errors).encode("utf-8")

    # -- driver ---------------------------------------------------------------------------------

    def run(self) -> ConversionReport:
        stream = Stream(self.source, BLOCK_SIZE, MAX_LINE)
        try:
            if stream.end == stream.start:
                raise self.error("the file is empty; expected word vectors")
            if stream.buf[stream.start:stream.start + 3].tobytes() == _BOM:
                stream.start += 3
                stream.base += 3
            self._detect(stream.buf[stream.start:stream.end], stream.eof)
            with StoreWriter(self.dst, self.dim, force=self.force, fsync=self.fsync) as writer:
                vocab = VocabularyBuilder(self.target or 0)
                try:
                    if self.kind == "binary":
                        self._run_binary(stream, writer, vocab)
                    else:
                        self._run_text(stream, writer, vocab)
                except OverflowError as exc:  # more distinct words than row ids can hold
                    raise self.error(f"{exc}; a store holds at most {fmt.MAX_ROWS:,}",
                                     hint="convert the first rows only with --limit") from None
                self.bytes_read = stream.bytes_read
                self.progress.update(self.source.size, force=True)
                if writer.n_rows == 0:
                    raise self.error("no vectors were converted (every line was skipped)"
                                     if self.skipped else "no vectors found in the file")
                words, offsets, index = vocab.finish()
                metadata = {
                    "embstore_version": __version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "source": {
                        "name": os.path.basename(self.path),
                        "format": self.kind,
                        "compression": self.source.compression,
                        "bytes": self.source.size,
                        "declared_rows": self.declared,
                    },
                    "records": self.records,
                    "duplicates": self.duplicates,
                    "skipped_lines": self.skipped,
                    "limit": self.limit,
                }
                store_bytes = writer.finish(words, offsets, index, metadata)
                rows = writer.n_rows
        finally:
            stream.close()
            self.progress.close()
        return ConversionReport(
            source=self.path, destination=str(self.dst), format=self.kind,
            compression=self.source.compression, rows=rows, dim=self.dim, records=self.records,
            duplicates=self.duplicates, skipped_lines=self.skipped, blank_lines=self.blank,
            declared_rows=self.declared, bytes_read=self.bytes_read,
            input_bytes=self.source.size, store_bytes=store_bytes, seconds=0.0,
            skipped_examples=self.examples,
        )

    # -- format detection -----------------------------------------------------------------------

    def _detect(self, head: np.ndarray, whole: bool) -> None:
        data = head[: 1 << 20].tobytes() if not whole else head.tobytes()
        nl = data.find(b"\n")
        first = data if nl < 0 else data[:nl]
        m = _HEADER_RE.match(first)
        opt = self.format_opt
        if opt in ("text", "binary") and m is None:
            raise self.error(
                f"expected a header line 'count dim', found {_show(first)}", line=1,
                hint="for a file without a header use --format glove",
            )
        if m is not None and opt != "glove":
            count_raw, dim_raw = (g.lstrip(b"0") or b"0" for g in m.groups())
            if len(count_raw) > 20 or len(dim_raw) > 20:
                # int() refuses more than 4300 digits; no real count comes near 20.
                raise self.error("header declares an implausible size (a number with more "
                                 "than 20 digits)", line=1)
            count, dim = int(count_raw), int(dim_raw)
            if not 1 <= dim <= fmt.MAX_DIM:
                raise self.error(f"header declares dimension {dim}; expected 1..{fmt.MAX_DIM}",
                                 line=1)
            if count == 0:
                raise self.error("header declares 0 rows; there is nothing to convert", line=1)
            self.declared = count
            self.dim = dim
            if opt == "auto":
                rest = data[nl + 1:] if nl >= 0 else b""
                body = rest.lstrip(b" \t\r\n")  # blank lines may follow a text header
                nl2 = body.find(b"\n")
                second = body if nl2 < 0 else body[:nl2]
                # A text file whose first row is bad must be reported as a bad line, not
                # parsed as a broken binary file: binary needs raw float bytes to show.
                text = _looks_like_text(second, dim) or not _looks_like_binary(body, whole)
                self.kind = "text" if text else "binary"
                if not rest.strip():
                    self.kind = "text"
            else:
                self.kind = opt
            return
        # No header: GloVe.  The dimension is the number of numeric fields ending the first
        # non-blank line.
        line_no = 1
        for raw_line in data.split(b"\n"):
            if raw_line.strip():
                first = raw_line
                break
            line_no += 1
        else:
            raise self.error("not a word-vector file: found only blank lines"
                             + ("" if whole else " in the first MiB"))
        line = first.rstrip(b" \t\r\n\x0b\x0c")
        fields = line.split()
        dim = 0
        for tok in reversed(fields):
            if not (_NUMBER_RE.match(tok) or _SPECIAL_RE.match(tok)):
                break
            dim += 1
        if dim == len(fields) and dim:
            dim -= 1  # the first field is the word even if it looks numeric
        if dim > fmt.MAX_DIM:
            raise self.error(f"line has {dim} values; expected at most {fmt.MAX_DIM}",
                             line=line_no)
        if dim == 0:
            raise self.error(
                "not a word-vector file: expected a header 'count dim' or a line "
                f"'word v1 v2 ...', found {_show(first)}", line=line_no,
            )
        self.kind = "glove"
        self.dim = dim

    # -- text -----------------------------------------------------------------------------------

    def _run_text(self, stream: Stream, writer: StoreWriter, vocab: VocabularyBuilder) -> None:

        dim = self.dim
        # At least 64 rows (only dims > 32768 are affected; untouched rows cost no memory):
        # with 2-row batches a hostile run of blank lines parses at a few KB/s.
        batch_rows = min(1 << 18, max(64, ROW_BATCH_BYTES // (4 * dim)))
        meta = np.empty((batch_rows, ktext.META_COLS), dtype=np.int64)
        keep = np.zeros(batch_rows, dtype=np.uint8)
        line_no = 1  # line number of buf[stream.start]
        if self.declared is not None:
            window = stream.buf[stream.start:stream.end]
            nl = window[: 1 << 20].tobytes().find(b"\n")
            skip = window.size if nl < 0 else nl + 1
            stream.start += skip
            stream.base += skip
            line_no = 2
        target = self.target
        trailing = False  # past the declared rows: only blank lines may follow
        while True:
            s, e = stream.start, stream.end
            buf = stream.buf
            nparts = max(1, -(-(e - s) // PART))
            counts = np.zeros(nparts, dtype=np.int64)
            ends = np.zeros(nparts, dtype=np.int64)
            if e > s:
                ktext.scan_parts(buf, stream.words, s, e, PART, counts, ends)
            has = counts > 0
            last_end = int(ends[has][-1]) if has.any() else s
            if stream.eof and last_end < e:
                counts[-1] += 1  # the last line has no newline
                ends[-1] = e
                has[-1] = True
            consumed = int(ends[has][-1]) if has.any() else s
            if not has.any() and not stream.eof and e - s >= MAX_LINE:
                raise self.error(f"line is longer than {MAX_LINE >> 20} MiB (no newline found)",
                                 line=line_no, hint="is this really a text vector file?")
            idx = np.flatnonzero(has)
            starts_all = np.maximum.accumulate(np.where(has, ends, s))
            lo = np.concatenate(([s], starts_all[:-1]))[idx]
            hi = ends[idx]
            cnt = counts[idx]
            if cnt.size and int(cnt.max()) > batch_rows:
                # A part of short (e.g. blank) lines can hold more lines than a batch has
                # rows in ``meta`` and the row buffer: split it so no batch overruns them.
                lo, hi, cnt = _split_parts(buf, lo, hi, cnt, batch_rows)
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
                                                keep, writer, vocab, target)
                    if finished:
                        if self.limit is not None and self.limit == target:
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
            self.progress.update(self.source.consumed)
            if done:
                break
            if not stream.eof and e - consumed > MAX_LINE:
                raise self.error(f"line is longer than {MAX_LINE >> 20} MiB (no newline found)",
                                 line=line_no, hint="is this really a text vector file?")
            if not stream.advance(consumed) and consumed >= stream.end:
                break
        if target is not None and self.declared is not None and self.records < target:
            raise self.error(
                f"header declares {self.declared:,} rows but the file ends after "
                f"{self.records:,}", line=max(line_no - 1, 1),
                hint=f"the file is probably truncated; --limit {self.records} converts what is there"
                if self.records else None,
            )

    def _check_trailing(self, buf: np.ndarray, a: int, b: int, first_line: int) -> None:
        """Only blank lines may follow the declared rows."""
        chunk = buf[a:b].tobytes()
        stripped = chunk.lstrip()
        if stripped:
            at = len(chunk) - len(stripped)
            raise self.error(
                f"more rows than the header declares ({self.declared:,})",
                line=first_line + chunk.count(b"\n", 0, at),
                hint=f"fix the header, or pass --limit {self.declared} to convert only "
                     "the declared rows",
            )
        # Blank lines after the declared rows are skipped like any others: count them.
        self.blank += chunk.count(b"\n") + (1 if chunk and not chunk.endswith(b"\n") else 0)

    def _text_batch(self, work: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    first_row: np.ndarray, k: int, first_line: int, meta: np.ndarray,
                    keep: np.ndarray, writer: StoreWriter, vocab: VocabularyBuilder,
                    target: int | None) -> bool:
        """Parse, check, de-duplicate and queue one batch of ``k`` lines; True once
        ``target`` records have been read."""

        out = writer.buffer(meta.shape[0])
        o = out[:k]
        m = meta[:k]
        # One part (at most 8 KiB, or a split run of short lines) is not worth a parallel
        # launch, which costs more than parsing it.
        parse = ktext.parse_text_parts.serial if lo.size == 1 else ktext.parse_text_parts
        parse(work, lo, hi, first_row, self.dim, o, m)
        status = m[:, ktext.M_STATUS]
        blank = status == ktext.LINE_BLANK
        record_idx = np.flatnonzero(~blank)
        finished = False
        self._last_record_line = k - 1
        if target is not None and self.records + record_idx.size >= target:
            take = target - self.records
            last = int(record_idx[take - 1]) if take > 0 else -1
            self._last_record_line = last
            record_idx = record_idx[:take]
            self.blank += int(blank[: last + 1].sum())
            finished = True
        else:
            self.blank += int(blank.sum())
        self.records += record_idx.size
        rec_status = status[record_idx]
        bad_utf8 = m[record_idx, ktext.M_BADUTF8] != 0
        good = rec_status == ktext.LINE_OK
        if self.unicode_errors == "strict":
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
        cand = record_idx[good]
        src, wst, wen = work, m[:, ktext.M_WSTART], m[:, ktext.M_WEND]
        if self.unicode_errors != "strict" and bad_utf8[good].any():
            src, wst, wen = self._repaired_words(work, wst, wen, m[:, ktext.M_BADUTF8], cand)
        self._insert_and_submit(src, wst, wen, cand, k, keep, out, writer, vocab)
        return finished

    def _fallback(self, work: np.ndarray, out: np.ndarray, meta: np.ndarray,
                  lines: np.ndarray) -> list[int]:
        """Exact values for tokens outside the fast path; returns lines found non-finite."""

        total = int(meta[lines, ktext.M_FALLBACK].sum())
        li_a = np.empty(total, dtype=np.int64)
        col_a = np.empty(total, dtype=np.int64)
        s_a = np.empty(total, dtype=np.int64)
        e_a = np.empty(total, dtype=np.int64)
        got = ktext.fallback_tokens(work, self.dim, meta, lines, li_a, col_a, s_a, e_a)
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

    def _repaired_words(self, work: np.ndarray, wst: np.ndarray, wen: np.ndarray,
                        bad: np.ndarray, rows: np.ndarray, *, lstrip_newlines: bool = False,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The words of ``rows`` in a separate buffer, those flagged in ``bad`` decoded with
        ``unicode_errors`` and re-encoded (rare: only batches holding invalid UTF-8).

        ``lstrip_newlines`` follows gensim's binary reader, which strips newlines from the
        start of the decoded word.  A word can become empty under "ignore"; gensim keeps it
        as the key '', and so do we.
        """
        pieces = []
        s_arr = np.zeros(wst.shape[0], dtype=np.int64)
        e_arr = np.zeros(wst.shape[0], dtype=np.int64)
        pos = 0
        for r in rows.tolist():
            raw = work[wst[r]:wen[r]].tobytes()
            if bad[r]:
                raw = self.repair(raw)
                if lstrip_newlines:
                    raw = raw.lstrip(b"\n")
            pieces.append(raw)
            s_arr[r] = pos
            pos += len(raw)
            e_arr[r] = pos
        return np.frombuffer(b"".join(pieces), dtype=np.uint8), s_arr, e_arr

    def _insert_and_submit(self, src: np.ndarray, wst: np.ndarray, wen: np.ndarray,
                           cand: np.ndarray, k: int, keep: np.ndarray, out: np.ndarray,
                           writer: StoreWriter, vocab: VocabularyBuilder) -> None:
        """Add the candidate rows' words to the vocabulary, drop duplicates from the first
        ``k`` rows of ``out`` and queue what is left for writing."""

        keep[:k] = 0
        dups = vocab.insert(src, wst, wen, cand, keep)
        self.duplicates += dups
        kept = cand if dups == 0 else cand[keep[cand] == 1]
        if kept.size != k and kept.size:
            kgather.gather_rows.serial(out[:k], kept, out[:k])  # in place: kept[i] >= i
        writer.submit(out, kept.size)

    def _report_text_line(self, work: np.ndarray, meta: np.ndarray, li: int,
                          first_line: int) -> None:

        line_no = first_line + li
        status = int(meta[li, ktext.M_STATUS])
        lstart = int(meta[li, ktext.M_LSTART])
        line = work[lstart:meta[li, ktext.M_LEND]].tobytes()
        dim = self.dim
        if status in (ktext.LINE_TOO_FEW, ktext.LINE_TOO_MANY):
            found = int(meta[li, ktext.M_DSTART])
            msg = f"expected {dim} values after the word, found {found}"
            hint = "the dimension comes from the header" if self.declared else \
                "the dimension comes from line 1"
        elif status in (ktext.LINE_NOT_NUMBER, ktext.LINE_NONFINITE):
            ts = int(meta[li, ktext.M_DSTART]) - lstart
            te = int(meta[li, ktext.M_DEND]) - lstart
            field_no = len(line[:ts].split()) + 1
            token = _show(line[ts:te])
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
            msg = f"word {_show(word)} is not valid UTF-8 (byte {at} of the word)"
            hint = "use --unicode-errors replace or ignore"
        self.skip_or_raise(msg, line=line_no, hint=hint)

    # -- binary ---------------------------------------------------------------------------------

    def _run_binary(self, stream: Stream, writer: StoreWriter, vocab: VocabularyBuilder) -> None:

        dim = self.dim
        rec = dim * 4
        assert self.declared is not None
        batch_rows = max(1, ROW_BATCH_BYTES // rec)
        wst = np.empty(batch_rows, dtype=np.int64)
        wen = np.empty(batch_rows, dtype=np.int64)
        vst = np.empty(batch_rows, dtype=np.int64)
        bad = np.empty(batch_rows, dtype=np.uint8)
        badw = np.empty(batch_rows, dtype=np.uint8)
        keep = np.zeros(batch_rows, dtype=np.uint8)
        window = stream.buf[stream.start:stream.end]
        # The same window _detect matched the header in (it may be padded with blanks).
        head_end = window[: 1 << 20].tobytes().find(b"\n")
        pos = stream.start + head_end + 1
        target = self.target
        assert target is not None
        while True:
            remaining = target - self.records
            if remaining == 0:
                break
            k, new_pos, status, spos = kbinary.scan_binary(
                stream.buf, pos, stream.end, dim, min(remaining, batch_rows), MAX_WORD, wst, wen,
                vst, badw)
            base = stream.base - stream.start  # stream offset of buf[0]
            if k:
                self._binary_batch(stream.buf, k, base, wst, wen, vst, bad, badw, keep, writer,
                                   vocab)
                pos = new_pos
                continue
            if status == kbinary.BIN_EMPTY_WORD:
                raise self.error("expected a word before the vector, found a space",
                                 offset=base + spos)
            if status == kbinary.BIN_WORD_TOO_LONG:
                raise self.error(f"no space within {MAX_WORD} bytes: expected 'word<space>' "
                                 "followed by the vector", offset=base + spos,
                                 hint="is this really a word2vec binary file?")
            if not stream.advance(pos):
                rest = stream.buf[stream.start:stream.end].tobytes()
                base = stream.base
                if rest.strip(b"\n"):
                    have = len(rest.lstrip(b"\n"))
                    raise self.error(
                        f"truncated record {self.records + 1:,}: expected a word, a space and "
                        f"{rec} bytes of vector, found only {have} bytes before the end",
                        offset=base + len(rest) - have,
                        hint=f"header declares {self.declared:,} rows; the file is probably "
                             "truncated" + (f" (--limit {self.records} converts what is there)"
                                            if self.records else ""),
                    )
                raise self.error(
                    f"header declares {self.declared:,} rows but the file ends after "
                    f"{self.records:,}", offset=base + len(rest),
                    hint="the file is probably truncated" + (
                        f"; --limit {self.records} converts what is there" if self.records else ""),
                )
            pos = stream.start
            self.progress.update(self.source.consumed)
        if self.limit is not None and self.limit == target:
            return
        # Header count reached: anything but whitespace after it is an error.
        while True:
            rest = stream.buf[pos:stream.end].tobytes()
            if rest.strip():
                lead = len(rest) - len(rest.lstrip())
                raise self.error(
                    f"more rows than the header declares ({self.declared:,})",
                    offset=stream.base + (pos - stream.start) + lead,
                    hint=f"fix the header, or pass --limit {self.declared} to convert only "
                         "the declared rows",
                )
            if not stream.advance(stream.end):
                return
            pos = stream.start

    def _binary_batch(self, work: np.ndarray, k: int, base: int, wst: np.ndarray,
                      wen: np.ndarray, vst: np.ndarray, bad: np.ndarray, badw: np.ndarray,
                      keep: np.ndarray, writer: StoreWriter, vocab: VocabularyBuilder) -> None:

        out = writer.buffer(wst.size)
        o = out[:k]
        # Serial: the copy is memory-bound, and the reader and writer threads already keep
        # both cores busy; a parallel launch here only adds contention (measured at 3M rows).
        kbinary.copy_binary_vectors.serial(work, vst, k, o, bad)
        self.records += k
        good = np.ones(k, dtype=bool)
        if bad[:k].any():
            for i in np.flatnonzero(bad[:k]):
                good[i] = False
                row = o[i]
                j = int(np.flatnonzero(~np.isfinite(row))[0])
                self.skip_or_raise(
                    f"value {j + 1} of the vector for {_show(work[wst[i]:wen[i]].tobytes())} is "
                    f"{row[j]} (non-finite values are rejected)",
                    offset=base + int(vst[i]) + 4 * j,
                )
        src, s_arr, e_arr = work, wst, wen
        if badw[:k].any():
            if self.unicode_errors == "strict":
                for i in np.flatnonzero(badw[:k]):
                    if not good[i]:
                        continue
                    good[i] = False
                    self.skip_or_raise(
                        f"word {_show(work[wst[i]:wen[i]].tobytes())} is not valid UTF-8",
                        offset=base + int(wst[i]), hint="use --unicode-errors replace or ignore",
                    )
            else:
                src, s_arr, e_arr = self._repaired_words(
                    work, wst[:k], wen[:k], badw[:k], np.flatnonzero(good), lstrip_newlines=True)
        self._insert_and_submit(src, s_arr, e_arr, np.flatnonzero(good), k, keep, out, writer,
                                vocab)


_CONTROL_RE = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")


def _looks_like_binary(data: bytes, whole: bool) -> bool:
    """Raw float32 records show control bytes or invalid UTF-8 within the first 64 KiB."""
    sample = data[: 1 << 16]
    if _CONTROL_RE.search(sample):
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(sample) < len(data) or not whole
        return not (cut and exc.reason == "unexpected end of data")
    return False



def _split_parts(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, cnt: np.ndarray,
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


def _looks_like_text(line: bytes, dim: int) -> bool:
    fields = line.rstrip(b" \t\r\n\x0b\x0c").split(b" ")
    fields = [f for f in fields if f]
    if len(fields) < dim + 1:
        return False
    return all(_NUMBER_RE.match(t) for t in fields[-dim:])


def _show(raw: bytes, width: int = 40) -> str:
    """A short printable rendering of bytes from the input for error messages."""
    text = raw.decode("utf-8", "backslashreplace")
    if len(text) > width:
        text = text[: width - 3] + "..."
    # Quote by hand: repr() would double the backslashes of the escapes made above.
    text = "".join(c if c.isprintable() or c == "\\" else repr(c)[1:-1] for c in text)
    return f"'{text}'"
