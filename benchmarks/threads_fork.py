"""Threads and fork with the parallel kernels: what the launch policy costs or saves.

    python benchmarks/threads_fork.py                     # 1M-word store, idle and busy
    NUMBA_THREADING_LAYER=omp python benchmarks/threads_fork.py --load idle

Three measurements, each a median over ``--rounds`` (docs/THREADS.md quotes them):

* ``threads``: two threads each run the same big call -- ``lookup_words`` of 1M queries,
  ``xxh64_blocks`` of 256 MiB -- ``--rounds`` times at once, through ``ParallelKernel`` as it
  is (no lock under tbb and omp) and under the policy before it (``OldPolicy``: every call
  parallel, one process-wide lock around every launch).  Reported: wall time of the whole, per-call latency.
* ``small_behind_big``: one thread runs big lookups back to back while another times
  ``lookup_words`` of 10k queries (a tokenizer batch): under the old policy the small call
  waits for the lock the big one holds; now it runs beside it.
* ``fork``: the same big calls timed in the parent, in a child forked after them and in that
  child's child; the ratio child / parent says whether the child's kernels are still
  parallel (1.0) or serial (about 2 on two cores).

Timings only: correctness of all of this is checked by ``tests/test_launch.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.launch_thresholds import open_store, spinner, wait_quiet


def big_calls(store: Any, n_queries: int, n_bytes: int) -> dict[str, Callable[[], Any]]:
    from embstore._kernels import checksum, index
    from embstore.lookup import encode_words

    rng = np.random.default_rng(11)
    words = store.words[: min(len(store), 1_000_000)]
    qbuf, qoff = encode_words([words[i] for i in rng.integers(0, len(words), n_queries)])
    small_buf, small_off = encode_words([words[i] for i in rng.integers(0, len(words), 10_000)])
    raw = np.frombuffer(rng.bytes(n_bytes), np.uint8)
    block = 1 << 20

    def lookup() -> Any:
        out = np.empty(qoff.size - 1, np.int64)
        index.lookup_words(qbuf, qoff, store.vocab_arrays.index, store.vocab_arrays.offsets, store.vocab_arrays.data, len(store),
                           out)
        return out

    def small() -> Any:
        out = np.empty(small_off.size - 1, np.int64)
        index.lookup_words(small_buf, small_off, store.vocab_arrays.index, store.vocab_arrays.offsets, store.vocab_arrays.data,
                           len(store), out)
        return out

    def xxh() -> Any:
        out = np.empty(-(-raw.size // block), np.uint64)
        checksum.xxh64_blocks(raw, block, out)
        return out

    return {"lookup_words": lookup, "xxh64_blocks": xxh, "small_lookup": small}


class OldPolicy:
    """Put the policy before thresholds back for a while: every call parallel, one
    process-wide lock around every parallel launch."""

    def __init__(self) -> None:
        from embstore._kernels import registry as kregistry

        self.kernels = kregistry.kernels()
        self.lock = threading.Lock()
        self.saved: list[tuple[Any, int]] = []

    def __enter__(self) -> OldPolicy:
        for k in self.kernels:
            par = k._parallel
            self.saved.append((par, k.threshold))

            def locked(*a: Any, par: Any = par) -> Any:
                with self.lock:
                    return par(*a)

            k._parallel = locked
            k.threshold = 0
        return self

    def __exit__(self, *exc: object) -> None:
        for k, (par, threshold) in zip(self.kernels, self.saved, strict=True):
            k._parallel = par
            k.threshold = threshold


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 2)


def two_threads(fn: Callable[[], Any], rounds: int) -> dict[str, float]:
    lat: list[float] = []
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"wall_ms": round((time.perf_counter() - t0) * 1e3, 1), "call_ms": _ms(lat)}


def small_behind_big(big: Callable[[], Any], small: Callable[[], Any],
                     seconds: float) -> dict[str, float]:
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            big()

    t = threading.Thread(target=hog)
    t.start()
    lat = []
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            time.sleep(0.002)
            t0 = time.perf_counter()
            small()
            lat.append(time.perf_counter() - t0)
    finally:
        stop.set()
        t.join()
    lat.sort()
    return {"small_ms": _ms(lat), "small_p90_ms": round(lat[int(len(lat) * 0.9)] * 1e3, 2),
            "n": len(lat)}


def timed(fn: Callable[[], Any], rounds: int) -> float:
    fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return _ms(samples)


def fork_times(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, Any]:
    """Medians in the parent, a child forked now, and that child's child."""
    from embstore._kernels import _core

    def measure() -> dict[str, Any]:
        out: dict[str, Any] = {k: timed(calls[k], rounds) for k in ("lookup_words",
                                                                     "xxh64_blocks")}
        out["layer"] = _core.threading_layer()
        return out

    def child(depth: int) -> dict[str, Any]:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                res = measure()
                if depth > 1:
                    res["child"] = child(depth - 1)
                os.write(w, json.dumps(res).encode())
            finally:
                os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        return json.loads(data) if data else {"failed": True}

    parent = measure()
    kid = child(2)
    return {"parent": parent, "child": {k: v for k, v in kid.items() if k != "child"},
            "grandchild": kid.get("child")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default=None, help="store to read (default: 1M benchmark words)")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the default store")
    p.add_argument("--queries", type=int, default=1_000_000)
    p.add_argument("--mib", type=int, default=256, help="MiB hashed by xxh64_blocks")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--load", choices=("idle", "busy", "both"), default="both")
    p.add_argument("--quiet-limit", type=float, default=0.1,
                   help="wait (up to --quiet-wait s) until other processes use less than this "
                        "share of the machine before each load (1 disables)")
    p.add_argument("--quiet-wait", type=float, default=60)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from embstore._kernels import _core

    store = open_store(args.store, args.rows)
    calls = big_calls(store, args.queries, args.mib << 20)
    for fn in calls.values():
        fn()
    cpus = sorted(os.sched_getaffinity(0))
    loads = ["idle", "busy"] if args.load == "both" else [args.load]
    if len(cpus) < 2:
        loads = ["idle"]
    result: dict[str, Any] = {"layer": _core.threading_layer(), "policy": _core.launch_policy(),
                              "store_rows": len(store), "queries": args.queries,
                              "mib": args.mib}
    for load in loads:
        if args.quiet_limit < 1:
            wait_quiet(args.quiet_limit, args.quiet_wait)
        res: dict[str, Any] = {}
        with spinner(cpus[-1] if load == "busy" else None):
            for name in ("lookup_words", "xxh64_blocks"):
                fn = calls[name]
                res[name] = {"one_thread_ms": timed(fn, args.rounds),
                             "two_threads": two_threads(fn, args.rounds)}
                with OldPolicy():
                    res[name]["two_threads_locked"] = two_threads(fn, args.rounds)
            res["small_behind_big"] = small_behind_big(calls["lookup_words"],
                                                       calls["small_lookup"], 3.0)
            with OldPolicy():
                res["small_behind_big_locked"] = small_behind_big(calls["lookup_words"],
                                                                  calls["small_lookup"], 3.0)
            res["fork"] = fork_times(calls, args.rounds)
        result[load] = res
        print(json.dumps({load: res}, indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
