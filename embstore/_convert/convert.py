"""``embstore.convert``: the entry point of every conversion.

It validates the options and opens the input; the readers and kernels are imported on the
first call, so that importing embstore stays light.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .report import ConversionReport
from .state import ConversionState, Format, OnBadLine, UnicodeErrors


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
    from .run import run
    from .sources import Source

    t0 = time.perf_counter()
    source = Source(src_path)
    try:
        state = ConversionState(source, dst_path, format, limit, unicode_errors, on_bad_line,
                                force, quiet, fsync)
        report = run(state)
    finally:
        source.close()
    report.seconds = time.perf_counter() - t0
    return report
