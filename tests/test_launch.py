"""The parallel launch policy of the kernels (``embstore/_kernels/_core.py``, docs/THREADS.md).

* Small work runs the serial twin: every call of a real workflow on a small store goes to the
  serial dispatchers, and a call at a kernel's threshold goes to the parallel one -- checked by
  counting the calls of the two dispatchers, never by timing.
* ``threading_layer()`` reports the layer really used; with the ``tbb`` wheel installed (a
  dependency on Linux x86_64) the default is ``tbb``.
* Threads launch concurrently with no lock under ``tbb`` and ``omp``: launches of two threads
  overlap in time and every row is right.  Under ``workqueue`` (not thread-safe) a thread
  that finds the pool taken runs the serial twin instead of waiting or crashing.
* A process forked after using the kernels -- ``os.fork`` children, a grandchild, a
  ``multiprocessing`` 'fork' pool -- gets correct kernels that are still parallel under
  ``tbb``: its calls reach the parallel dispatcher and a probe kernel sees two pool threads
  work at once.  Under ``omp`` (Numba would terminate such a child) and after a fork from a
  thread other than the one that started TBB, the child runs the serial twins, correctly.

Everything that launches threads in a forked or configured process runs in a child process
(``relutil.run_python``), so a crash or an abort fails a test instead of the test run.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embstore
from embstore._kernels import _core as kcore
from embstore._kernels import checksum as kchecksum
from embstore._kernels import index as kindex
from embstore._kernels import registry as kregistry
from embstore._kernels import text as ktext

sys.path.insert(0, str(Path(__file__).resolve().parent / "reliability"))
import relutil

LAYERS = ("tbb", "omp", "workqueue")


def _tbb_wheel() -> bool:
    try:
        importlib.metadata.distribution("tbb")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _skip_unavailable(layer: str) -> None:
    if layer == "tbb" and not kcore.tbb_available():
        pytest.skip("Numba's tbb threading layer cannot load here (no usable libtbb)")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], np.ndarray]:
    d = tmp_path_factory.mktemp("launch")
    return relutil.make_store(d, 3000, 16, seed=5)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], np.ndarray]:
    """Large enough that a lookup of all its words is above the lookup threshold."""
    d = tmp_path_factory.mktemp("launch-big")
    return relutil.make_store(d, 3 * kindex.lookup_words.threshold, 4, seed=6)


# -- threshold dispatch -----------------------------------------------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict[str, int]]]:
    """Count the calls of every kernel's serial and parallel dispatchers."""
    calls: dict[str, dict[str, int]] = {}
    for k in kregistry.kernels():
        calls[k.__name__] = c = {"serial": 0, "parallel": 0}

        def wrap(f: Any, c: dict[str, int] = c, key: str = "") -> Any:
            def counting(*args: Any) -> Any:
                c[key] += 1
                return f(*args)
            return counting

        monkeypatch.setattr(k, "serial", wrap(k.serial, key="serial"))
        monkeypatch.setattr(k, "_parallel", wrap(k._parallel, key="parallel"))
    monkeypatch.setattr(kcore._LaunchState, "serial_only", False)
    yield calls


def test_every_kernel_declares_its_work_and_threshold() -> None:
    names = {k.__name__ for k in kregistry.kernels()}
    assert {"lookup_words", "gather_into", "xxh64_blocks", "parse_text_parts", "check_rows",
            "count_occupied", "nonfinite_rows", "block_moments", "copy_binary_vectors",
            "scan_parts", "gather_rows", "gather_release"} <= names
    for k in kregistry.kernels():
        assert k.work is not None and k.threshold > 0, k


def test_small_work_never_launches_threads(tmp_path: Path, counted: dict[str, dict[str, int]],
                                           small_store: tuple[Path, list[str], np.ndarray]
                                           ) -> None:
    """Convert (text and binary), open, look up, build a matrix: all small, so every kernel
    call runs the serial twin, and the results are right."""
    path, words, vectors = small_store
    src = tmp_path / "v.txt"
    relutil.write_text(src, words[:20], vectors[:20])  # one 8 KiB part: never parallel
    assert src.stat().st_size < ktext.parse_text_parts.threshold
    embstore.convert(src, tmp_path / "t.emb", quiet=True)
    relutil.write_binary(tmp_path / "v.bin", words[:500], vectors[:500])
    embstore.convert(tmp_path / "v.bin", tmp_path / "b.emb", quiet=True)
    with embstore.open(path) as st:
        assert st.lookup(words[:1]).tolist() == [0]
        assert st.lookup([*words[:10], "__absent__"]).tolist() == [*range(10), -1]
        assert np.array_equal(st.lookup(words), np.arange(len(words)))
        assert np.array_equal(st[words[7]], vectors[7])
        res = st.build_matrix(words[:100])
        assert np.array_equal(res.matrix, vectors[:100])
    used = {name: c for name, c in counted.items() if c["serial"] or c["parallel"]}
    assert {"lookup_words", "gather_into", "xxh64_blocks"} <= set(used), used
    assert all(c["parallel"] == 0 for c in used.values()), used


def test_small_verify_never_launches_threads(counted: dict[str, dict[str, int]],
                                             small_store: tuple[Path, list[str], np.ndarray]
                                             ) -> None:
    assert embstore.verify(small_store[0]).ok
    used = {name: c for name, c in counted.items() if c["serial"] or c["parallel"]}
    assert {"xxh64_blocks", "check_rows", "nonfinite_rows"} <= set(used), used
    assert all(c["parallel"] == 0 for c in used.values()), used


def test_threshold_is_where_the_parallel_kernel_starts(
        counted: dict[str, dict[str, int]],
        big_store: tuple[Path, list[str], np.ndarray]) -> None:
    path, words, _ = big_store
    t = kindex.lookup_words.threshold
    with embstore.open(path) as st:
        assert np.array_equal(st.lookup(words[: t - 1]), np.arange(t - 1))
        assert counted["lookup_words"] == {"serial": 1, "parallel": 0}
        assert np.array_equal(st.lookup(words[:t]), np.arange(t))
        assert counted["lookup_words"] == {"serial": 1, "parallel": 1}
        kcore._LaunchState.serial_only = True  # restored by the fixture's monkeypatch
        assert np.array_equal(st.lookup(words), np.arange(len(words)))
        assert counted["lookup_words"] == {"serial": 2, "parallel": 1}


def test_checksums_of_a_single_block_never_launch(counted: dict[str, dict[str, int]]) -> None:
    """Work above the byte threshold in one block: nothing to split, so serial."""
    t = kchecksum.xxh64_blocks.threshold
    buf = np.random.default_rng(1).integers(0, 256, 2 * t, dtype=np.uint8)
    one, two = np.empty(1, np.uint64), np.empty(2, np.uint64)
    kchecksum.xxh64_blocks(buf, buf.size, one)
    assert counted["xxh64_blocks"] == {"serial": 1, "parallel": 0}
    kchecksum.xxh64_blocks(buf, t, two)
    assert counted["xxh64_blocks"] == {"serial": 1, "parallel": 1}
    ref = np.empty(2, np.uint64)
    kchecksum.xxh64_blocks.serial(buf, t, ref)
    assert np.array_equal(two, ref)


# -- the layer in use -------------------------------------------------------------------------

_POLICY = """
import json, os
from embstore._kernels import _core
print(json.dumps({"layer": _core.threading_layer(), "policy": _core.launch_policy()}))
"""


@pytest.mark.parametrize("layer", LAYERS)
def test_threading_layer_reports_the_layer_in_use(layer: str) -> None:
    _skip_unavailable(layer)
    res = relutil.run_python(_POLICY, env=relutil.child_env(NUMBA_THREADING_LAYER=layer))
    assert res.returncode == 0, res.describe()
    out = relutil.last_json(res.stdout)
    assert out["layer"] == layer, out
    assert out["policy"]["numba_layer"] == layer
    assert out["policy"]["locked"] is (layer == "workqueue"), out


def test_default_layer_is_tbb_when_the_wheel_is_installed() -> None:
    if not _tbb_wheel():
        pytest.skip("the tbb wheel is not installed (it is a dependency on Linux x86_64 only)")
    env = relutil.child_env()
    env.pop("NUMBA_THREADING_LAYER", None)
    env.pop("NUMBA_THREADING_LAYER_PRIORITY", None)
    res = relutil.run_python(_POLICY, env=env)
    assert res.returncode == 0, res.describe()
    assert relutil.last_json(res.stdout)["layer"] == "tbb"


def test_serial_environment_variable_is_reported() -> None:
    res = relutil.run_python(_POLICY, env=relutil.child_env(EMBSTORE_SERIAL="1"))
    assert res.returncode == 0, res.describe()
    out = relutil.last_json(res.stdout)
    assert out["layer"] == "serial" and "EMBSTORE_SERIAL" in out["policy"]["reason"], out


# -- threads ----------------------------------------------------------------------------------

_THREADS = """
import json, sys, threading, time
import numpy as np
import embstore
from embstore._kernels import _core, index as kindex

path, rounds = sys.argv[1], int(sys.argv[2])
st = embstore.open(path)
words = list(st.words)
want = np.arange(len(words))
layer = _core.threading_layer()
spans, counts = [], {"parallel": 0, "serial": 0}
par, ser = kindex.lookup_words._parallel, kindex.lookup_words.serial
def timed_parallel(*a):
    t0 = time.perf_counter()
    try:
        return par(*a)
    finally:
        spans.append((threading.get_ident(), t0, time.perf_counter()))
        counts["parallel"] += 1
def counted_serial(*a):
    counts["serial"] += 1
    return ser(*a)
kindex.lookup_words._parallel, kindex.lookup_words.serial = timed_parallel, counted_serial
errors = []
def work():
    for _ in range(rounds):
        if not np.array_equal(st.lookup(words), want):
            errors.append("wrong rows")
threads = [threading.Thread(target=work) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
overlaps = sum(1 for a in spans for b in spans
               if a[0] < b[0] and a[1] < b[2] and b[1] < a[2])
print(json.dumps({"layer": layer, "locked": _core._LaunchState.lock is not None,
                  "errors": errors, "counts": counts, "overlaps": overlaps}))
"""


@pytest.mark.parametrize("layer", LAYERS)
def test_threads_launch_concurrently(layer: str,
                                     big_store: tuple[Path, list[str], np.ndarray]) -> None:
    _skip_unavailable(layer)
    rounds = 30
    res = relutil.run_python(_THREADS, str(big_store[0]), str(rounds), timeout=300,
                             env=relutil.child_env(NUMBA_THREADING_LAYER=layer))
    assert res.returncode == 0, res.describe()
    out = relutil.last_json(res.stdout)
    assert out["layer"] == layer and out["errors"] == [], out
    calls = out["counts"]
    assert calls["parallel"] + calls["serial"] == 2 * rounds, out
    if layer == "workqueue":
        # one launch at a time: the other thread runs the serial twin meanwhile
        assert out["locked"] is True and out["overlaps"] == 0, out
        assert calls["parallel"] > 0, out
    else:
        # thread-safe layers: no lock, no serial fallback, and launches really overlap
        assert out["locked"] is False and calls["serial"] == 0, out
        assert out["overlaps"] > 0, out


# -- fork -------------------------------------------------------------------------------------

# A parallel kernel that reports which pool thread ran each iteration; each iteration spins
# long enough (tens of ms) that an idle pool thread takes some of them.
_PROBE = """
import numba
import numpy as np
from numba import prange

from embstore._kernels._core import parallel_kernel


@parallel_kernel(work=lambda tids, sums, spin: tids.size, threshold=2)
def thread_ids(tids, sums, spin):
    for i in prange(tids.size):
        s = 0
        for j in range(spin):
            s += (j * 2654435761 + i) % 1013
        sums[i] = s
        tids[i] = numba.get_thread_id()
"""

_FORK = """
import json, multiprocessing, os, sys, threading, time
import numpy as np
import embstore
from embstore._kernels import _core, index as kindex
import probe

job = json.loads(sys.argv[1])
if job["start_in_thread"]:  # as a server whose first lookup ran in a request thread
    t = threading.Thread(target=_core.threading_layer)
    t.start()
    t.join()
st = embstore.open(job["store"])
words = list(st.words)
want = np.arange(len(words))

def threads_seen():
    # distinct pool threads in one launch of the probe (best of a few: a launch on a loaded
    # machine may finish before the second thread is scheduled)
    best = 0
    for _ in range(6):
        tids, sums = np.full(8, -1, np.int64), np.zeros(8, np.int64)
        probe.thread_ids(tids, sums, job["spin"])
        best = max(best, len(set(tids.tolist())))
        if best > 1:
            break
    return best

def report():
    calls = {"parallel": 0}
    par = kindex.lookup_words._parallel
    def counting(*a):
        calls["parallel"] += 1
        return par(*a)
    kindex.lookup_words._parallel = counting
    try:
        t0 = time.perf_counter()
        ok = bool(np.array_equal(st.lookup(words), want))
        seconds = time.perf_counter() - t0
        fresh = embstore.open(job["store"])
        ok = ok and bool(np.array_equal(fresh.lookup(words[::-1]), want[::-1]))
        ok = ok and embstore.verify(job["store"]).ok
    finally:
        kindex.lookup_words._parallel = par
    return {"layer": _core.threading_layer(), "reason": _core.launch_policy()["reason"],
            "ok": ok, "parallel_calls": calls["parallel"], "threads": threads_seen(),
            "lookup_s": round(seconds, 4)}

def in_child(path, grandchild):
    try:
        out = report()
        if grandchild:
            out["grandchild"] = fork_and_report(grandchild=False)
        with open(path, "w") as f:
            json.dump(out, f)
        code = 0
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 3
    os._exit(code)

def fork_and_report(grandchild, from_thread=False):
    path = f"{job['dir']}/child-{os.getpid()}-{time.monotonic_ns()}.json"
    def do_fork(box):
        pid = os.fork()
        if pid == 0:
            in_child(path, grandchild)
        box.append(pid)
    box = []
    if from_thread:
        t = threading.Thread(target=do_fork, args=(box,))
        t.start()
        t.join()
    else:
        do_fork(box)
    _, status = os.waitpid(box[0], 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        return {"exit": code}
    with open(path) as f:
        return json.load(f)

def pool_task(_):
    return report()

result = {"parent": report()}
if job["mode"] == "main":
    result["children"] = [fork_and_report(grandchild=True) for _ in range(2)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        result["pool"] = pool.map(pool_task, range(2))
else:  # "other_thread"
    result["children"] = [fork_and_report(grandchild=True, from_thread=True)]
result["parent_after"] = report()
print(json.dumps(result))
"""

def _run_fork(tmp_path: Path, store: Path, layer: str, mode: str,
              start_in_thread: bool = False) -> dict[str, Any]:
    """Run ``_FORK`` in a child process; the probe module is a file, so Numba can cache it."""
    (tmp_path / "probe.py").write_text(textwrap.dedent(_PROBE), encoding="utf-8")
    script = tmp_path / "fork_job.py"
    script.write_text(_FORK, encoding="utf-8")
    job = {"store": str(store), "dir": str(tmp_path), "mode": mode, "spin": 5_000_000,
           "start_in_thread": start_in_thread}
    env = relutil.child_env(NUMBA_THREADING_LAYER=layer)
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    res = relutil.run_child([relutil.PY, str(script), json.dumps(job)], timeout=300, env=env,
                            cwd=tmp_path)
    assert res.returncode == 0, res.describe()
    out: dict[str, Any] = relutil.last_json(res.stdout)
    return out


def _check_child(child: dict[str, Any], layer: str, parallel: bool, threads: int) -> None:
    assert child.get("exit", 0) == 0 and child["ok"], child
    if parallel:
        assert child["layer"] == layer and child["parallel_calls"] == 2, child
        if threads > 1:
            assert child["threads"] > 1, child  # really parallel, not one thread
    else:
        assert child["layer"] == "serial" and child["parallel_calls"] == 0, child
        assert child["reason"], child


@pytest.mark.parametrize("layer", LAYERS)
def test_fork_after_use(tmp_path: Path, layer: str,
                        big_store: tuple[Path, list[str], np.ndarray]) -> None:
    """Children, grandchildren and a fork pool of a process that ran the parallel kernels:
    correct everywhere; parallel under tbb and workqueue, serial (by design) under omp."""
    _skip_unavailable(layer)
    out = _run_fork(tmp_path, big_store[0], layer, "main")
    parent = out["parent"]
    assert parent["layer"] == layer and parent["ok"] and parent["parallel_calls"] == 2, out
    threads = parent["threads"]
    parallel = layer != "omp"
    for child in out["children"]:
        _check_child(child, layer, parallel, threads)
        _check_child(child["grandchild"], layer, parallel, threads)
    for task in out["pool"]:
        _check_child(task, layer, parallel, threads)
    _check_child(out["parent_after"], layer, True, threads)


def test_fork_from_another_thread_under_tbb_runs_serial(
        tmp_path: Path, big_store: tuple[Path, list[str], np.ndarray]) -> None:
    """TBB survives fork only from the thread that started it: a child forked from another
    thread (and its own child) switches to the serial twins and stays correct."""
    _skip_unavailable("tbb")
    out = _run_fork(tmp_path, big_store[0], "tbb", "other_thread")
    threads = out["parent"]["threads"]
    child = out["children"][0]
    _check_child(child, "tbb", False, threads)
    assert "thread" in child["reason"], child
    _check_child(child["grandchild"], "tbb", False, threads)
    _check_child(out["parent_after"], "tbb", True, threads)


def test_fork_from_main_after_tbb_started_in_a_thread_runs_serial(
        tmp_path: Path, big_store: tuple[Path, list[str], np.ndarray]) -> None:
    """The other way round (a server whose first lookup ran in a request thread): the main
    thread is not TBB's thread either, so its children run serial."""
    _skip_unavailable("tbb")
    out = _run_fork(tmp_path, big_store[0], "tbb", "main", start_in_thread=True)
    threads = out["parent"]["threads"]
    for child in out["children"]:
        _check_child(child, "tbb", False, threads)
    for task in out["pool"]:
        _check_child(task, "tbb", False, threads)
