"""Small calls, idle and with the other core busy: ``lookup`` of 1, 10 and 10k words and
``store[word]``.

A parallel region costs ~10 us on an idle machine and, when the other cores are busy, can wait
milliseconds for a pool thread the OS has not scheduled; ``ParallelKernel`` runs the serial
twin below each kernel's measured threshold so that these calls never pay for it
(docs/THREADS.md).  The ``busy`` variants run while a spinner process pinned to the last core
of this process's affinity burns CPU; on a one-core machine they are skipped.

Each round is one call after a 1 ms pause (``benchmark.pedantic`` with an untimed setup), so
the pool's threads are asleep as between a server's requests -- back-to-back calls would keep
them spinning and hide the cost.  Timings are recorded, never asserted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.conftest import ns_per_item
from benchmarks.launch_thresholds import spinner


@pytest.fixture(params=["idle", "busy"])
def load(request: pytest.FixtureRequest) -> Iterator[str]:
    cpus = sorted(os.sched_getaffinity(0))
    if request.param == "busy":
        if len(cpus) < 2:
            pytest.skip("the busy variant needs a second core to keep busy; this process has "
                        f"{len(cpus)}")
        with spinner(cpus[-1]):
            yield "busy"
    else:
        yield "idle"


def _pause() -> None:
    time.sleep(0.001)


def _run(benchmark: Any, load: str, fn: Any, arg: Any, n: int, rounds: int) -> Any:
    from embstore._kernels import _core

    benchmark.group = f"small-calls-{load}"
    benchmark.extra_info["load"] = load
    benchmark.extra_info["layer"] = _core.threading_layer()
    fn(arg)  # warm: kernels loaded, pages touched
    result = benchmark.pedantic(fn, args=(arg,), setup=_pause, rounds=rounds, iterations=1,
                                warmup_rounds=3)
    ns_per_item(benchmark, n)
    return result


@pytest.mark.parametrize("n", [1, 10, 10_000], ids=["1", "10", "10k"])
def test_lookup_small(benchmark: Any, store: Any, query_words: list[str], load: str,
                      n: int) -> None:
    words = [w for w in query_words if w in store][:n]
    assert len(words) == n
    rows = _run(benchmark, load, store.lookup, words, n, 300 if n < 100 else 100)
    assert (rows >= 0).all()


def test_getitem(benchmark: Any, store: Any, query_words: list[str], load: str) -> None:
    word = next(w for w in query_words if w in store)
    vec = _run(benchmark, load, store.__getitem__, word, 1, 300)
    assert vec.shape == (store.dim,)
