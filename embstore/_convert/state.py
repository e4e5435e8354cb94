"""The state of one conversion: options, counters, progress and the wording of errors.

Shared by every reader (one module per foreign format) and the driver, so that counters,
skipping and messages behave the same whatever the input format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import ConversionError
from ..progress import Progress
from . import limits

if TYPE_CHECKING:
    from .sources import Source

Format = Literal["auto", "text", "glove", "binary"]
UnicodeErrors = Literal["strict", "replace", "ignore"]
OnBadLine = Literal["error", "skip"]


class ConversionState:
    """One conversion run's options and counters, and the helpers that report on them."""

    def __init__(self, source: Source, dst: Path, format: Format, limit: int | None,
                 unicode_errors: UnicodeErrors, on_bad_line: OnBadLine, force: bool,
                 quiet: bool, fsync: bool, *, member: str | None = None) -> None:
        self.source = source
        self.path = source.path
        self.dst = dst
        self.format_opt = format
        self.member = member  # the archive member asked for (source.member: the one read)
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
        self.trailing_skipped = 0  # records skipped since the last one kept
        self.blank = 0
        self.binary_text = False  # a text input whose bytes look binary (set by detect)
        self.examples: list[str] = []
        self.bytes_read = 0
        self.declared: int | None = None
        self.dim = 0
        self.kind = ""

    def error(self, message: str, *, line: int | None = None, offset: int | None = None,
              hint: str | None = None) -> ConversionError:
        return ConversionError(self.path, message, line=line, offset=offset, hint=hint,
                               compressed=self.compressed)

    def skip_or_raise(self, message: str, *, line: int | None = None, offset: int | None = None,
                      hint: str | None = None, skip_hint: bool = True) -> None:
        if self.on_bad_line == "error":
            if skip_hint:
                hint = (hint + "; " if hint else "") + 'or skip bad lines with on_bad_line="skip"'
            raise self.error(message, line=line, offset=offset, hint=hint)
        self.skipped += 1
        if len(self.examples) < limits.MAX_EXAMPLES:
            where = f"line {line}" if line is not None else f"offset {offset}"
            self.examples.append(f"{where}: {message}")

    def kept(self, good: np.ndarray) -> None:
        """Record which of a batch's records (in input order) were kept, for
        :attr:`complete_records`."""
        kept_at = np.flatnonzero(good)
        if kept_at.size:
            self.trailing_skipped = int(good.size - 1 - kept_at[-1])
        else:
            self.trailing_skipped += int(good.size)

    @property
    def complete_records(self) -> int:
        """Records up to the last one kept: ``limit=`` this converts what is there, also with
        ``on_bad_line="error"`` when only records at the end were skipped."""
        return self.records - self.trailing_skipped

    def limit_hint(self, records: int | None = None) -> str | None:
        """``"limit=N converts what is there"``, where ``N`` records are complete."""
        n = self.complete_records if records is None else records
        return f"limit={n} converts what is there" if n > 0 else None

    @property
    def target(self) -> int | None:
        """Records to read: the header's count and/or the limit."""
        counts = [c for c in (self.declared, self.limit) if c is not None]
        return min(counts) if counts else None

    def repair(self, raw: bytes) -> bytes:
        return raw.decode("utf-8", self.unicode_errors).encode("utf-8")

    def repaired_words(self, work: np.ndarray, wst: np.ndarray, wen: np.ndarray,
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


def show(raw: bytes, width: int = 40) -> str:
    """A short printable rendering of bytes from the input for error messages."""
    text = raw.decode("utf-8", "backslashreplace")
    if len(text) > width:
        text = text[: width - 3] + "..."
    # Quote by hand: repr() would double the backslashes of the escapes made above.
    text = "".join(c if c.isprintable() or c == "\\" else repr(c)[1:-1] for c in text)
    return f"'{text}'"
