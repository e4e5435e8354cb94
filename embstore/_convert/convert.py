"""``embstore.convert``: the entry point of every conversion.

It validates the options and opens the input; the readers and kernels are imported on the
first call, so that importing embstore stays light.
"""

from __future__ import annotations

import os
import time
from typing import BinaryIO

from .._atomic import check_destination
from .report import ConversionReport
from .state import ConversionState, Format, OnBadLine, UnicodeErrors


def convert(
    src: str | os.PathLike[str] | BinaryIO,
    dst: str | os.PathLike[str],
    *,
    format: Format = "auto",
    member: str | None = None,
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
            or word2vec C binary; plain, gzip, bz2, xz, a zip or a tar (plain or gzip, bz2,
            xz).  A path, ``"-"`` for standard input (streamed; compressed input too) or a
            binary file object (read from where it is, never closed).
        dst: the store to create.  It appears only once complete.
        format: ``"auto"`` detects from the content; ``"text"`` (with header), ``"glove"``
            (no header) or ``"binary"`` force one.
        member: the member of a zip or tar archive to convert, by its name in the archive
            (or its file name).  Without it the archive must hold one vector file; metadata
            (``__MACOSX/``, ``._*``, ``.DS_Store``, READMEs, licences) is ignored.
        limit: convert only the first ``limit`` records, like gensim's ``limit``.
        unicode_errors: how to decode words that are not valid UTF-8 (gensim's meaning).
        on_bad_line: ``"error"`` stops at the first malformed line; ``"skip"`` skips and
            counts malformed lines (non-finite values included).
        force: replace an existing store at ``dst`` (atomically; readers of the old store
            keep it).  Anything else at ``dst`` is refused, and ``dst`` is never ``src``.
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
        OutputError: ``dst`` is ``src`` (also through a link), ends with a separator, or with
            ``force`` is not a store.
        StoreWriteError: the store could not be written (disk full, file too large).
    """
    if format not in ("auto", "text", "glove", "binary"):
        raise ValueError(f"format must be auto, text, glove or binary, not {format!r}")
    if unicode_errors not in ("strict", "replace", "ignore"):
        raise ValueError(f"unicode_errors must be strict, replace or ignore, not {unicode_errors!r}")
    if on_bad_line not in ("error", "skip"):
        raise ValueError(f"on_bad_line must be error or skip, not {on_bad_line!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer, not {limit!r}")
    if member is not None and (not isinstance(member, str) or not member):
        raise ValueError(f"member must be a non-empty str, not {member!r}")
    if isinstance(src, (str, bytes, os.PathLike)) and os.fspath(src) != "-":
        src_path = os.fsdecode(os.fspath(src))
        if os.path.isdir(src_path):
            raise IsADirectoryError(21, "is a directory, expected a vector file", src_path)
    # Before any work: a file name, not the input (also through a link), not an existing file
    # without force, and with force only a previous store.
    dst_path = check_destination(dst, inputs=[src], force=force, kind="store")
    from .run import run
    from .sources import Source

    t0 = time.perf_counter()
    source = Source(src, member=member)
    try:
        state = ConversionState(source, dst_path, format, limit, unicode_errors, on_bad_line,
                                force, quiet, fsync, member=member)
        report = run(state)
    finally:
        source.close()
    report.seconds = time.perf_counter() - t0
    return report
