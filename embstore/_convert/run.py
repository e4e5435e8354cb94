"""The conversion driver: input stream, format detection, the reader, the store builder."""

from __future__ import annotations

import os

from .. import format as fmt
from .._build.builder import StoreBuilder, provenance
from ..errors import StoreLimitError
from . import limits
from .detect import detect
from .report import FORMAT_NAMES, ConversionReport
from .sources import Stream
from .state import ConversionState
from .text import TextReader
from .word2vec import Word2VecReader

_BOM = b"\xef\xbb\xbf"


def run(st: ConversionState) -> ConversionReport:
    """Stream the input, detect its format and convert it with the matching reader."""
    stream = Stream(st.source, limits.BLOCK_SIZE, limits.MAX_LINE)
    try:
        if stream.end == stream.start:
            raise st.error("the file is empty; expected word vectors")
        if stream.buf[stream.start:stream.start + 3].tobytes() == _BOM:
            stream.start += 3
            stream.base += 3
        detect(st, stream.buf[stream.start:stream.end], stream.eof)
        with StoreBuilder(st.dst, st.dim, force=st.force, fsync=st.fsync,
                          expected_rows=st.target or 0, label=st.path) as builder:
            try:
                if st.kind == "binary":
                    Word2VecReader(st).read(stream, builder)
                else:
                    TextReader(st).read(stream, builder)
            except StoreLimitError as exc:  # more distinct words than row ids can hold
                raise StoreLimitError(f"{st.path}: {exc}; convert the first rows only "
                                      f"with limit={fmt.MAX_ROWS}") from None
            st.bytes_read = stream.bytes_read
            st.progress.update(st.source.size, force=True)
            # The reader thread must be done with the source before it is read further.
            stream.close(timeout=None)
            st.source.check_complete()
            if builder.n_rows == 0:
                raise st.error("no vectors were converted (every line was skipped)"
                                 if st.skipped else "no vectors found in the file")
            _check_skipped(st)
            source_meta = {"name": os.path.basename(st.path), "format": st.kind,
                           "compression": st.source.compression, "bytes": st.source.size,
                           "declared_rows": st.declared}
            if st.source.member is not None:
                source_meta["member"] = st.source.member
            metadata = provenance(
                source_meta,
                records=st.records, duplicates=builder.duplicates,
                skipped_lines=st.skipped, limit=st.limit)
            built = builder.finish(metadata)
            st.duplicates = built.duplicates
            store_bytes = built.file_bytes
            rows = built.rows
    finally:
        stream.close()
        st.progress.close()
    return ConversionReport(
        source=st.path, destination=str(st.dst), format=st.kind,
        compression=st.source.compression, rows=rows, dim=st.dim, records=st.records,
        duplicates=st.duplicates, skipped_lines=st.skipped, blank_lines=st.blank,
        declared_rows=st.declared, bytes_read=st.bytes_read,
        input_bytes=st.source.size, store_bytes=store_bytes, seconds=0.0,
        skipped_examples=st.examples, member=st.source.member,
    )


def _check_skipped(st: ConversionState) -> None:
    """With ``on_bad_line="skip"``, a conversion that skipped more than half of its records
    (and at least ``limits.SKIP_FAIL_MIN``) fails: the input is not what it was taken for
    (binary data, another format, the wrong options), and a store of what was left would be
    garbage that looks like a result."""
    if st.skipped < limits.SKIP_FAIL_MIN or 2 * st.skipped <= st.records:
        return
    unit = "records" if st.kind == "binary" else "lines"
    shown = "; ".join(st.examples[:3])
    raise st.error(
        f"{st.skipped:,} of {st.records:,} {unit} were bad and skipped, more than half: this "
        f"is not a {FORMAT_NAMES.get(st.kind, st.kind)} file, or not one read with these "
        f"options (first skipped: {shown})",
        hint="check what the file is; nothing was written")
