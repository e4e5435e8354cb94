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


def _check_offsets(store: EmbeddingStore, woff: np.ndarray, nb: int) -> int:
    """First row whose offsets are out of order or bounds (-1 if none), window by window."""
    if int(woff[0]) != 0:
        return 0
    step = WINDOW // 8
    base = store.header.sections[fmt.Section.WORD_OFFSETS].offset
    prev = 0
    for a in range(0, woff.size, step):
        part = woff[a:a + step].astype(np.int64)  # a copy of the window: released below
        store.release(base + a * 8, part.size * 8)
        d = np.diff(part, prepend=prev)
        bad = np.flatnonzero((d < 0) | (part > nb))
        if bad.size:
            return max(a + int(bad[0]) - 1, 0)
        prev = int(part[-1])
    if prev != nb:
        return woff.size - 2
    return -1


def _index_runs(store: EmbeddingStore, table: np.ndarray) -> tuple[int, int]:
    """Occupied slots and the longest run of occupied slots (the table wraps around)."""
    step = WINDOW // 8
    base = store.header.sections[fmt.Section.INDEX].offset
    occupied = longest = carry = 0
    lead = -1  # length of the run that starts at slot 0 (joins the last one)
    n = table.shape[0]
    for a in range(0, n, step):
        occ = table[a:a + step, 1] != 0
        store.release(base + a * 8, occ.size * 8)
        occupied += int(occ.sum())
        zeros = np.flatnonzero(~occ)
        if zeros.size == 0:
            carry += occ.size
            continue
        first = carry + int(zeros[0])
        if lead < 0:
            lead = first
        inner = int((np.diff(zeros) - 1).max()) if zeros.size > 1 else 0
        longest = max(longest, first, inner)
        carry = occ.size - 1 - int(zeros[-1])
    if lead < 0:  # no empty slot at all
        return occupied, n
    return occupied, max(longest, carry + lead)


def _check_zeros(store: EmbeddingStore, problem: Any) -> None:
    """The spec's zero bytes: header bytes outside the fields and the table, and the padding
    between sections (covered by the checksums, but a forger recomputes those)."""
    h = store.header
    used = fmt.SECTION_TABLE_OFFSET + len(h.sections) * 32
    key_end = fmt.HASH_KEY_OFFSET + (16 if h.hash_id == fmt.HASH_SIPHASH13 else 0)
    for start, end in ((key_end, fmt.SECTION_TABLE_OFFSET),
                       (used, fmt.HEADER_LENGTH)):
        if store.raw(start, end - start).any():
            problem(f"header bytes {start}..{end - 1} are not zero")
    for entry in h.sections.values():
        pad_end = min(fmt.align(entry.end), h.file_length)
        if pad_end > entry.end and store.raw(entry.end, pad_end - entry.end).any():
            problem(f"padding after the {entry.name} section is not zero")


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

    # 2. vocabulary structure and index.  In windows whose pages are released: a forged
    # sparse file can claim billions of rows at no cost on disk, and verify must not fault in
    # (or allocate) memory in proportion to what the header claims.
    arrays = store.vocab_arrays
    woff, data, table = arrays.offsets, arrays.data, arrays.index
    bad_off = _check_offsets(store, woff, data.size)
    if bad_off >= 0:
        problem(f"word offsets out of order or bounds at row {bad_off}")
    else:
        reasons = {2: "word is not valid UTF-8",
                   3: "index does not lead back to this row (corrupt index or duplicate word)"}
        step = max(1, WINDOW // 64)
        for r0 in range(0, h.n_rows, step):
            bad_rows = np.empty(min(h.n_rows, r0 + step) - r0, dtype=np.uint8)
            kverify.check_rows(woff, data, table, h.n_rows, bad_rows, r0)
            for r in np.flatnonzero(bad_rows)[:MAX_PROBLEMS]:
                problem(f"row {r0 + int(r)}: {reasons[int(bad_rows[r])]}")
            store.release_vocabulary(threshold=0)
    occupied, longest = _index_runs(store, table)
    if occupied != h.n_rows:
        problem(f"index holds {occupied} entries for {h.n_rows} rows")
    if longest > fmt.MAX_PROBES:
        problem(f"index has a run of {longest} occupied slots; the format allows at most "
                f"{fmt.MAX_PROBES} (lookups would stop there)")
    _check_zeros(store, problem)

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
