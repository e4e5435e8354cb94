"""Child-process side of the concurrency tests; each mode prints a JSON result line.

Reference data is a ``.npz`` (``words``, ``vectors``) written by the test, so a reader's
results are compared with what was converted, not with another read of the store.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np


def _reference(path: str) -> tuple[list[str], np.ndarray]:
    ref = np.load(path, allow_pickle=False)
    return [str(w) for w in ref["words"]], ref["vectors"]


def _check_ops(store: Any, words: list[str], vectors: np.ndarray, rng: random.Random,
               rounds: int) -> list[str]:
    """Random single and batch reads, each compared with the reference."""
    bad: list[str] = []
    index = {w: i for i, w in enumerate(words)}
    n = len(words)
    for _ in range(rounds):
        op = rng.randrange(6)
        if op == 0:
            i = rng.randrange(n)
            if not np.array_equal(store[words[i]], vectors[i]):
                bad.append(f"store[{words[i]!r}]")
        elif op == 1:
            i = rng.randrange(n)
            if store.words[i] != words[i] or store.get_index(words[i]) != i:
                bad.append(f"words[{i}]")
        elif op == 2:
            batch = [*rng.sample(words, min(500, n)), "__absent__"]
            rows = store.lookup(batch)
            want = np.array([index.get(w, -1) for w in batch])
            if not np.array_equal(rows, want):
                bad.append("lookup")
        elif op == 3:
            vocab = {w: k + 1 for k, w in enumerate(rng.sample(words, min(300, n)))}
            res = store.build_matrix(vocab)
            for w, k in vocab.items():
                if not np.array_equal(res.matrix[k], vectors[index[w]]):
                    bad.append("build_matrix")
                    break
        elif op == 4:
            a = rng.randrange(n)
            if store.words[a:a + 50] != words[a:a + 50]:
                bad.append(f"words[{a}:{a + 50}]")
        else:
            w = rng.choice(words)
            if w not in store or "__absent__" in store:
                bad.append("in")
    return bad


def _force_parallel() -> None:
    """Set every kernel's threshold to 0: the small test stores then launch parallel regions
    (which is what these tests are about) instead of running the serial twins."""
    from embstore._kernels import registry as kregistry

    for k in kregistry.kernels():
        k.threshold = 0


def readers(args: dict[str, Any]) -> dict[str, Any]:
    """Threads of one process reading one shared store object (and one store each)."""
    import embstore

    if args.get("force_parallel"):
        _force_parallel()

    words, vectors = _reference(args["reference"])
    shared = embstore.open(args["store"])
    errors: list[str] = []
    done = [0]

    def work(k: int) -> None:
        rng = random.Random(args["seed"] * 100 + k)
        try:
            store = shared if k % 2 == 0 else embstore.open(args["store"])
            errors.extend(_check_ops(store, words, vectors, rng, args["rounds"]))
            done[0] += 1
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(args["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from embstore._kernels import _core as kcore

    # small reads may never have launched a parallel region: threading_layer() starts the
    # layer if need be, so that the layer the threads would use is reported either way
    return {"errors": errors[:10], "n_errors": len(errors), "threads_done": done[0],
            "layer": kcore.threading_layer(), "locked": kcore._LaunchState.lock is not None}


def hold_during_replace(args: dict[str, Any]) -> dict[str, Any]:
    """Open the store, report ready, keep reading (touching pages not read before) while
    it is replaced, then check the old data is still what this handle sees and a new open
    sees the new store."""
    import embstore

    old_words, old_vectors = _reference(args["old_reference"])
    new_words, new_vectors = _reference(args["new_reference"])
    store = embstore.open(args["store"])
    print("ready", flush=True)
    go = Path(args["go"])
    rng = random.Random(args["seed"])
    errors: list[str] = []
    reads = 0
    n = len(old_words)
    while not go.exists():  # reads during the replacement
        i = rng.randrange(n)
        if not np.array_equal(store.vectors[i], old_vectors[i]):
            errors.append(f"row {i} changed under a reader")
        reads += 1
        if reads % 50 == 0:
            time.sleep(0.001)
    # every page of the old mapping, including those never touched before
    if list(store.words) != old_words:
        errors.append("old words changed")
    if not np.array_equal(np.asarray(store.vectors), old_vectors):
        errors.append("old vectors changed")
    if not np.array_equal(store.lookup(old_words), np.arange(n)):
        errors.append("old lookup changed")
    res = store.build_matrix(old_words)
    if not np.array_equal(res.matrix, old_vectors):
        errors.append("old build_matrix changed")
    fresh = embstore.open(args["store"])
    if list(fresh.words) != new_words or not np.array_equal(np.asarray(fresh.vectors), new_vectors):
        errors.append("a new open does not see the new store")
    return {"errors": errors, "reads_during_replace": reads}


def fork_after_parallel(args: dict[str, Any]) -> dict[str, Any]:
    """Run the parallel kernels, then fork children (and a grandchild, and a fork-context
    multiprocessing pool) that use lookup, build_matrix and verify, and check that each
    runs its kernels as ``args["child_layer"]`` says (``threading_layer()``; parallel
    launches really made unless it is ``"serial"``)."""
    import multiprocessing

    import numba

    import embstore
    from embstore._kernels import _core as kcore

    if args.get("force_parallel"):
        _force_parallel()

    words, vectors = _reference(args["reference"])
    store = embstore.open(args["store"])
    rows = store.lookup(words)  # a parallel launch in this process
    assert np.array_equal(rows, np.arange(len(words)))
    store.build_matrix(words[:1000])
    assert embstore.verify(args["store"]).ok
    layer = numba.threading_layer()  # type: ignore[attr-defined]
    used = kcore._LaunchState.parallel_used

    def child_work() -> int:
        try:
            st = embstore.open(args["store"])
            if not np.array_equal(st.lookup(words), np.arange(len(words))):
                return 1
            res = st.build_matrix(words[:2000], oov="random")
            if not np.array_equal(res.matrix, vectors[:2000]):
                return 2
            if not embstore.verify(args["store"]).ok:
                return 3
            if not np.array_equal(store.lookup(words[:100]), np.arange(100)):
                return 4  # the store object inherited from the parent
            if kcore.threading_layer() != args["child_layer"]:
                print("child layer", kcore.launch_policy(), file=sys.stderr)
                return 6
            if kcore._LaunchState.parallel_used != (args["child_layer"] != "serial"):
                return 7  # parallel kernels launched in the child exactly when expected
            return 0
        except BaseException:
            traceback.print_exc()
            return 5

    statuses = []
    for _ in range(args["forks"]):
        pid = os.fork()
        if pid == 0:
            code = child_work()
            if code == 0 and args.get("grandchild"):
                gpid = os.fork()
                if gpid == 0:
                    os._exit(child_work())
                _, gst = os.waitpid(gpid, 0)
                code = 10 + os.waitstatus_to_exitcode(gst) if gst else 0
            os._exit(code)
        _, st = os.waitpid(pid, 0)
        statuses.append(os.waitstatus_to_exitcode(st))
    pool_ok = None
    if args.get("pool"):
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            pool_ok = pool.map(_pool_task, [(args["store"], args["reference"], s,
                                             bool(args.get("force_parallel"))) for s in range(4)])
    # and the parent keeps working in parallel afterwards
    again = np.array_equal(store.lookup(words), np.arange(len(words)))
    return {"layer": layer, "parallel_used_before_fork": used, "child_status": statuses,
            "pool": pool_ok, "parent_after": again,
            "serial_only_in_parent": kcore._LaunchState.serial_only}


def _pool_task(a: tuple[str, str, int, bool]) -> list[Any]:
    """``[reads correct, threading_layer(), parallel launches made]`` in a pool worker."""
    import embstore
    from embstore._kernels import _core as kcore

    path, reference, seed, forced = a
    words, vectors = _reference(reference)
    st = embstore.open(path)
    ok = not _check_ops(st, words, vectors, random.Random(seed), 30)
    if forced:  # make sure this worker launches at least once
        ok = ok and bool(np.array_equal(st.lookup(words), np.arange(len(words))))
    return [ok, kcore.threading_layer(), kcore._LaunchState.parallel_used]


def main() -> None:
    args = json.loads(sys.argv[1])
    result = globals()[args["mode"]](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
