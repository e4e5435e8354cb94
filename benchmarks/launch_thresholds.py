"""Serial twin vs parallel launch of every ``@parallel_kernel``, by work size, idle and busy.

    python benchmarks/launch_thresholds.py                       # idle and busy, every kernel
    python benchmarks/launch_thresholds.py --kernels lookup_words,gather_into --load busy
    NUMBA_THREADING_LAYER=omp python benchmarks/launch_thresholds.py --json omp.json

Why it exists: a Numba parallel region is not free.  On an idle machine it costs a few
microseconds to wake the pool; when the other cores are busy, a region that has handed part of
its range to a thread the OS has not scheduled yet waits for it (milliseconds under GNU OpenMP,
which splits the range statically).  ``ParallelKernel`` therefore runs the serial twin when a
call's work is below the kernel's ``threshold``; this script measures where those thresholds
should be, on this machine, under the threading layer Numba picks here.

For every kernel and every work size of a geometric sweep it times single calls of the serial
twin and of the parallel kernel (the Numba dispatchers themselves, not ``ParallelKernel``, so
the policy under test does not choose for them), alternating the two, with a short sleep
between calls so the pool's threads go back to sleep as they do between a server's requests.
``--load busy`` runs the same sweep while a spinner process pinned to the last core of this
process's affinity burns CPU.  The table gives medians (and p90) in microseconds, parallel /
serial, and the smallest work size from which parallel wins idle and stays within
``--busy-slack`` of serial when busy: the threshold this machine suggests.

Work sizes are in the unit of each kernel's ``work`` function (``embstore/_kernels``): queries,
rows, slots, bytes or float32 values.  Kernels that read a store use ``--store`` (default: a
100k-word store converted from the benchmark data, cached beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable (a PYTHONPATH
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # embstore still wins)

# Pinned to one core; exits when its parent does (a killed sweep leaves no spinner behind).
_SPINNER = """
import os, sys
parent = os.getppid()
os.sched_setaffinity(0, {%d})
sys.stdout.write("ready\\n")
sys.stdout.flush()
while os.getppid() == parent:
    for _ in range(1000000):
        pass
"""


@contextlib.contextmanager
def spinner(core: int | None) -> Iterator[None]:
    """A busy loop pinned to ``core`` for the duration of the block (nothing if None)."""
    if core is None:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _SPINNER % core],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the spinner did not start (rc={proc.poll()})")
        time.sleep(0.2)
        yield
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class Case:
    kernel: Any  # a ParallelKernel
    sizes: list[int]
    make: Callable[[int], tuple[Any, ...]]  # work size -> arguments
    unit: str


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine so far (Linux; zeros elsewhere)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:8]]
    except OSError:
        return 0, 0
    return sum(v) - v[3] - v[4], sum(v)


def background_load(before: tuple[int, int], own_cpu_s: float, spinner_on: bool) -> float:
    """Fraction of the machine's CPU used by other processes since ``before``: this process
    and the spinner subtracted.  A sweep run next to someone else's work is not "idle"."""
    busy, total = _cpu_ticks()
    d_busy, d_total = busy - before[0], total - before[1]
    if d_total <= 0:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    wall = d_total / tick / ncpu
    other = d_busy / tick - own_cpu_s - (wall if spinner_on else 0.0)
    return max(0.0, other / (wall * ncpu))


def wait_quiet(limit: float, timeout: float = 600.0) -> float:
    """Wait (up to ``timeout`` s) until other processes use less than ``limit`` of the
    machine over one second; returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        before, cpu0 = _cpu_ticks(), time.process_time()
        time.sleep(1.0)
        bg = background_load(before, time.process_time() - cpu0, False)
        if bg < limit or time.monotonic() > deadline:
            return bg
        time.sleep(2.0)


def _geom(lo: int, hi: int) -> list[int]:
    out = []
    v = 1
    while v <= hi:
        for m in (1, 3):
            if lo <= v * m <= hi:
                out.append(v * m)
        v *= 10
    return out


def open_store(path: str | None, rows: int = 100_000) -> Any:
    """``path``, or a store of ``rows`` benchmark words converted once and cached."""
    import embstore

    if path is None:
        from benchmarks import generate

        src = generate.vector_file("binary", rows, quiet=True)
        p = src.path.with_suffix(src.path.suffix + ".emb")
        try:
            with embstore.open(p) as s:
                ok = len(s) == src.rows
        except (OSError, embstore.EmbstoreError):
            ok = False
        if not ok:
            embstore.convert(src.path, p, force=True, quiet=True)
        path = str(p)
    return embstore.open(path)


def cases(store: Any) -> dict[str, Case]:
    from embstore._kernels import binary, checksum, gather, index, stats, text, verify
    from embstore.lookup import encode_words

    rng = np.random.default_rng(7)
    n_store = len(store)
    dim = store.dim
    vectors = np.asarray(store.vectors)
    present = store.words[: min(n_store, 200_000)]
    pool = [*present, *(f"absent-{i}" for i in range(len(present) // 10))]
    qbuf, qoff = encode_words([pool[i] for i in rng.integers(0, len(pool), 1_000_000)])
    src = np.ascontiguousarray(vectors[: min(n_store, 100_000)])

    def lookup(n: int) -> tuple[Any, ...]:
        return (qbuf, qoff[: n + 1], store.vocab_arrays.index, store.vocab_arrays.offsets, store.vocab_arrays.data, n_store,
                np.empty(n, np.int64))

    def rows(n: int) -> np.ndarray:
        return np.sort(rng.integers(0, src.shape[0], n)).astype(np.int64)

    def gather_into(v: int) -> tuple[Any, ...]:
        n = max(1, v // dim)
        return (vectors, rows(n), rng.permutation(n).astype(np.int64),
                np.empty((n, dim), np.float32))

    def gather_rows(v: int) -> tuple[Any, ...]:
        n = max(1, v // dim)
        return (src, rows(n), np.empty((n, dim), np.float32))

    binbuf = np.frombuffer(src[:20_000].astype("<f4").tobytes(), np.uint8)

    def copy_binary(v: int) -> tuple[Any, ...]:
        n = max(1, min(20_000, v // dim))
        vst = np.arange(n, dtype=np.int64) * (4 * dim)
        return (binbuf, vst, n, np.empty((n, dim), np.float32), np.empty(n, np.uint8))

    def moments(v: int) -> tuple[Any, ...]:
        n = max(1, min(src.shape[0], v // dim))
        nb = -(-n // 256)
        return (src[:n], n, 256, src[0].astype(np.float64), np.empty((nb, dim)),
                np.empty((nb, dim)))

    raw = np.frombuffer(np.random.default_rng(3).bytes(256 << 20), np.uint8)

    def xxh(b: int) -> tuple[Any, ...]:
        block = 1 << 20 if b >= 2 << 20 else 1 << 16
        return (raw[:b], block, np.empty(-(-b // block), np.uint64))

    from benchmarks import generate

    lines = generate.text_rows(present[:30_000], src[:30_000])
    tbuf = np.frombuffer(lines + bytes(8), np.uint8)
    twords = tbuf[: tbuf.size // 8 * 8].view(np.uint64)
    nl = np.flatnonzero(tbuf[: len(lines)] == 10) + 1

    def scan(b: int) -> tuple[Any, ...]:
        part = 8192
        k = max(1, -(-b // part))
        return (tbuf, twords, 0, b, part, np.zeros(k, np.int64), np.zeros(k, np.int64))

    def parse(b: int) -> tuple[Any, ...]:
        stop = int(nl[np.searchsorted(nl, b)]) if b < nl[-1] else int(nl[-1])
        edges = np.unique(np.concatenate(([0], nl[np.searchsorted(nl, np.arange(
            8192, stop, 8192))], [stop])))
        lo, hi = edges[:-1].astype(np.int64), edges[1:].astype(np.int64)
        counts = np.array([np.count_nonzero(tbuf[a:z] == 10) for a, z in zip(lo, hi, strict=True)])
        first = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        n = int(counts.sum())
        return (tbuf, lo, hi, first, dim, np.empty((n, dim), np.float32),
                np.empty((n, text.META_COLS), np.int64))

    def check_rows(n: int) -> tuple[Any, ...]:
        return (store.vocab_arrays.offsets, store.vocab_arrays.data, store.vocab_arrays.index, n, np.empty(n, np.uint8))

    def occupied(n: int) -> tuple[Any, ...]:
        return (store.vocab_arrays.index[:n],)

    def nonfinite(v: int) -> tuple[Any, ...]:
        n = max(1, v // dim)
        return (vectors[:n], np.empty(n, np.uint8))

    vals = _geom(300, min(n_store, 100_000) * dim)
    return {
        "lookup_words": Case(index.lookup_words, _geom(1, 1_000_000), lookup, "queries"),
        "gather_into": Case(gather.gather_into, vals, gather_into, "values"),
        "gather_rows": Case(gather.gather_rows, vals, gather_rows, "values"),
        "copy_binary_vectors": Case(binary.copy_binary_vectors, _geom(300, 20_000 * dim),
                                    copy_binary, "values"),
        "block_moments": Case(stats.block_moments, vals, moments, "values"),
        "xxh64_blocks": Case(checksum.xxh64_blocks, [1 << k for k in range(17, 29)], xxh,
                             "bytes"),
        "scan_parts": Case(text.scan_parts, [8192 << k for k in range(0, 14, 1)], scan,
                           "bytes"),
        "parse_text_parts": Case(text.parse_text_parts, [8192 << k for k in range(0, 13)],
                                 parse, "bytes"),
        "check_rows": Case(verify.check_rows, _geom(1, n_store), check_rows, "rows"),
        "count_occupied": Case(verify.count_occupied, _geom(1, store.vocab_arrays.index.shape[0]),
                               occupied, "slots"),
        "nonfinite_rows": Case(verify.nonfinite_rows, vals, nonfinite, "values"),
    }


def time_pair(kernel: Any, args: tuple[Any, ...], budget: float, gap: float,
              max_reps: int) -> dict[str, list[float]]:
    """Alternating single calls of the serial twin and the parallel kernel (microseconds)."""
    fns = {"serial": kernel.serial, "parallel": kernel.parallel}
    for f in fns.values():
        f(*args)  # compile or load, touch pages
    out: dict[str, list[float]] = {"serial": [], "parallel": []}
    deadline = time.perf_counter() + budget
    k = 0
    while k < 5 or (time.perf_counter() < deadline and k < max_reps):
        order = ("serial", "parallel") if k % 2 == 0 else ("parallel", "serial")
        for name in order:
            f = fns[name]
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter_ns()
            f(*args)
            out[name].append((time.perf_counter_ns() - t0) / 1e3)
        k += 1
    return out


def summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median": statistics.median(s), "p90": s[min(len(s) - 1, int(len(s) * 0.9))],
            "n": len(s)}


def suggest(rows: list[dict[str, Any]], slack: float, min_gain: float) -> int | None:
    """Smallest size from which, at every larger size, parallel wins idle (median faster by
    ``min_gain``) and, busy, stays within ``slack`` x serial -- the median, and the p90 with
    0.1 ms to spare (a tail of scheduler waits is what a busy machine adds); None if never."""
    sizes = sorted({r["size"] for r in rows})
    ok = {}
    for size in sizes:
        cell = {r["load"]: r for r in rows if r["size"] == size}
        idle = cell.get("idle")
        busy = cell.get("busy")
        good = True
        if idle is not None:
            good &= idle["parallel"]["median"] * min_gain <= idle["serial"]["median"]
        if busy is not None:
            good &= busy["parallel"]["median"] <= slack * busy["serial"]["median"]
            good &= busy["parallel"]["p90"] <= slack * busy["serial"]["p90"] + 100.0
        ok[size] = good
    for i, size in enumerate(sizes):
        if all(ok[s] for s in sizes[i:]):
            return int(size)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", default="", help="comma-separated subset (default: all)")
    p.add_argument("--sizes", default="",
                   help="comma-separated work sizes instead of each kernel's sweep")
    p.add_argument("--load", choices=("idle", "busy", "both"), default="both")
    p.add_argument("--store", default=None, help="store read by the lookup/verify/gather cases")
    p.add_argument("--budget", type=float, default=0.4, help="seconds per size and load")
    p.add_argument("--max-reps", type=int, default=300)
    p.add_argument("--gap", type=float, default=0.001, help="sleep before each call (s)")
    p.add_argument("--busy-slack", type=float, default=1.25,
                   help="busy: parallel may be this many times the serial time (default 1.25)")
    p.add_argument("--min-gain", type=float, default=1.1,
                   help="idle: parallel must be this many times faster (default 1.1)")
    p.add_argument("--quiet-limit", type=float, default=0.1,
                   help="a section measured while other processes used more than this share "
                        "of the machine is noisy: wait for quiet and measure it again "
                        "(default 0.1; 1 disables)")
    p.add_argument("--quiet-wait", type=float, default=300,
                   help="longest wait for a quiet machine before a section (s, default 300)")
    p.add_argument("--retries", type=int, default=2, help="re-measurements of a noisy section")
    p.add_argument("--json", default=None, help="write every measurement here")
    args = p.parse_args(argv)

    import numba

    store = open_store(args.store)
    all_cases = cases(store)
    names = [k for k in args.kernels.split(",") if k] or list(all_cases)
    cpus = sorted(os.sched_getaffinity(0))
    loads = ["idle", "busy"] if args.load == "both" else [args.load]
    if "busy" in loads and len(cpus) < 2:
        print("one core only: measuring idle", file=sys.stderr)
        loads = ["idle"]
    rows: list[dict[str, Any]] = []
    for name in names:
        case = all_cases[name]
        if args.sizes:
            case.sizes = [int(float(x)) for x in args.sizes.split(",")]
        for load in loads:
            for attempt in range(args.retries + 1):
                if args.quiet_limit < 1:
                    wait_quiet(args.quiet_limit, args.quiet_wait)
                section = []
                with spinner(cpus[-1] if load == "busy" else None):
                    ticks, cpu0 = _cpu_ticks(), time.process_time()
                    for size in case.sizes:
                        t = time_pair(case.kernel, case.make(size), args.budget, args.gap,
                                      args.max_reps)
                        section.append({"kernel": name, "unit": case.unit, "load": load,
                                        "size": size, "serial": summary(t["serial"]),
                                        "parallel": summary(t["parallel"])})
                    bg = background_load(ticks, time.process_time() - cpu0, load == "busy")
                for r in section:
                    r["background"] = round(bg, 3)
                    print(f"{name:<20} {load:<4} {r['size']:>11,} {case.unit:<7} serial "
                          f"{r['serial']['median']:>10.1f} us (p90 {r['serial']['p90']:>9.1f})"
                          f"  parallel {r['parallel']['median']:>10.1f} us "
                          f"(p90 {r['parallel']['p90']:>9.1f})  x"
                          f"{r['parallel']['median'] / r['serial']['median']:.2f}",
                          flush=True)
                noisy = bg > args.quiet_limit
                print(f"{name:<20} {load:<4} background load of other processes {bg:.0%}"
                      f"{'  (NOISY)' if noisy else ''}", flush=True)
                if not noisy or attempt == args.retries:
                    rows.extend(section)
                    break
    layer = numba.threading_layer()  # type: ignore[attr-defined]
    print(f"\nthreading layer {layer}, {numba.get_num_threads()} threads, "
          f"cores {cpus}; suggested thresholds (parallel x{1 / args.min_gain:.2f} idle, "
          f"<= x{args.busy_slack} serial busy, p90 too):")
    suggested = {}
    for name in names:
        sug = suggest([r for r in rows if r["kernel"] == name], args.busy_slack, args.min_gain)
        suggested[name] = sug
        print(f"  {name:<20} {'never' if sug is None else f'{sug:,}'} {all_cases[name].unit}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "layer": layer, "threads": numba.get_num_threads(), "cores": cpus,
            "store_rows": len(store), "dim": store.dim, "gap_s": args.gap,
            "suggested": suggested, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
