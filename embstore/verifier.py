"""Full verification of a store: every byte against its checksum, every structure for sense.

``embstore.open`` only validates the header (its CRC, sizes and offsets), which is enough to
make every read path safe.  ``verify`` additionally proves the content: the XXH64 of every
1 MiB block, word offsets in order, words valid UTF-8, the index leading back to every row
and to nothing else, finite vectors and statistics, and readable metadata.  Large sections
are scanned in windows whose mapped pages are released afterwards, so memory stays small.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import format as fmt
from .errors import FormatError
from .store import EmbeddingStore

WINDOW = 256 << 20
MAX_PROBLEMS = 20


@dataclass
class VerifyReport:
    path: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    dim: int = 0
    blocks: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "problems": self.problems, "rows": self.rows,
                "dim": self.dim, "blocks_checked": self.blocks, "seconds": round(self.seconds, 3)}

    def __str__(self) -> str:
        if self.ok:
            return (f"{self.path}: OK ({self.rows:,} words x {self.dim}, {self.blocks:,} blocks "
                    f"checked in {self.seconds:.2f} s)")
        shown = "; ".join(self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return f"{self.path}: DAMAGED: {shown}{more}"


def _section_of(header: fmt.Header, offset: int) -> str:
    for entry in header.sections.values():  # in file order
        if offset < fmt.align(entry.end):
            return entry.name
    return "end of file"


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check a store completely; the report's ``ok`` is True only if every byte is as written."""
    from ._kernels import checksum as kchecksum
    from ._kernels import verify as kverify

    t0 = time.perf_counter()
    p = os.fspath(path)
    try:
        store = EmbeddingStore(p)
    except FormatError as exc:
        return VerifyReport(p, False, [exc.reason], seconds=time.perf_counter() - t0)
    problems: list[str] = []
    h = store.header

    def problem(text: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)

    # 1. checksums of every block after the header
    checks = h.sections[fmt.Section.CHECKSUMS]
    body = store.raw(fmt.HEADER_LENGTH, checks.offset - fmt.HEADER_LENGTH)
    stored = store.raw(checks.offset, checks.length).view("<u8")
    block = 1 << h.block_log2
    per_window = max(1, WINDOW // block)
    n_blocks = stored.size
    for b0 in range(0, n_blocks, per_window):
        b1 = min(n_blocks, b0 + per_window)
        chunk = body[b0 * block:min(body.size, b1 * block)]
        got = np.empty(b1 - b0, dtype=np.uint64)
        kchecksum.xxh64_blocks(chunk, block, got)
        bad = np.flatnonzero(got != stored[b0:b1])
        for i in bad[: MAX_PROBLEMS]:
            at = fmt.HEADER_LENGTH + (b0 + int(i)) * block
            problem(f"checksum mismatch in block {b0 + int(i)} (bytes {at}..{at + block - 1}, "
                    f"{_section_of(h, at)} section)")
        store.release(fmt.HEADER_LENGTH + b0 * block, chunk.size)

    # 2. vocabulary structure and index
    arrays = store.vocab_arrays
    woff = arrays.offsets
    nb = arrays.data.size
    bad_off = kverify.check_offsets(woff, np.uint64(nb))
    if bad_off >= 0:
        problem(f"word offsets out of order or bounds at row {bad_off}")
    else:
        bad_rows = np.empty(h.n_rows, dtype=np.uint8)
        kverify.check_rows(woff, arrays.data, arrays.index, h.n_rows, bad_rows)
        reasons = {2: "word is not valid UTF-8",
                   3: "index does not lead back to this row (corrupt index or duplicate word)"}
        for r in np.flatnonzero(bad_rows)[:MAX_PROBLEMS]:
            problem(f"row {int(r)}: {reasons[int(bad_rows[r])]}")
        occupied = int(kverify.count_occupied(arrays.index))
        if occupied != h.n_rows:
            problem(f"index holds {occupied} entries for {h.n_rows} rows")

    # 3. vectors, statistics, metadata
    vec = store.vectors
    rows_per_window = max(1, WINDOW // (4 * h.dim))
    base = h.sections[fmt.Section.VECTORS].offset
    for r0 in range(0, h.n_rows, rows_per_window):
        part = vec[r0:r0 + rows_per_window]
        flags = np.empty(part.shape[0], dtype=np.uint8)
        kverify.nonfinite_rows(part, flags)
        for r in np.flatnonzero(flags)[:MAX_PROBLEMS]:
            problem(f"row {r0 + int(r)}: vector has a NaN or infinity")
        store.release(base + r0 * 4 * h.dim, part.nbytes)
    if not (np.isfinite(store.mean).all() and np.isfinite(store.std).all()):
        problem("statistics section holds non-finite values")
    elif (store.std < 0).any():
        problem("statistics section holds a negative standard deviation")
    try:
        _ = store.metadata
    except FormatError as exc:
        problem(exc.reason)
    report = VerifyReport(p, not problems, problems, h.n_rows, h.dim, n_blocks,
                          time.perf_counter() - t0)
    store.close()
    return report
