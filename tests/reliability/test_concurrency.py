"""Concurrent use of one store: many readers, replacement under readers, fork, threads.

* Several processes, each with several threads (some sharing one store object, some with
  their own), read one store at once; every result is compared with the converted data.
* ``embstore convert --force`` replaces the store while reader processes hold it open and
  keep reading: they see their old data to the end -- including pages they had never
  touched before the replacement -- with no SIGBUS, and a new open sees the new store.
* A process that already ran the parallel kernels forks (children, a grandchild and a
  fork-context multiprocessing pool): the children's lookups, matrices and verification
  work, under each threading layer available here.  Under ``tbb`` and ``workqueue`` the
  children still launch parallel kernels; under GNU OpenMP, which would abort them, they
  run the serial twins.
* Threads calling ``lookup`` and ``build_matrix`` concurrently, under each layer, with every
  kernel's threshold set to 0 so that the small store launches parallel regions: no lock
  under ``tbb`` and ``omp``, one launch at a time under ``workqueue``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import relutil


def _layers() -> list[str]:
    from embstore._kernels import _core as kcore

    return ["omp", "workqueue", *(["tbb"] if kcore.tbb_available() else [])]


# How a child forked after parallel launches runs its kernels, by layer.
CHILD_LAYER = {"tbb": "tbb", "omp": "serial", "workqueue": "workqueue"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Store A (6000 x 48) and a different store B (4000 x 48), with reference .npz files."""
    import embstore

    d = tmp_path_factory.mktemp("concurrency")
    out = {}
    for name, n, seed in (("a", 6000, 21), ("b", 4000, 22)):
        words = relutil.make_words(n, seed)
        vectors = relutil.make_vectors(n, 48, seed)
        src = d / f"{name}.txt"
        relutil.write_text(src, words, vectors)
        embstore.convert(src, d / f"{name}.emb", quiet=True)
        np.savez(d / f"{name}.npz", words=np.array(words), vectors=vectors)
        out[name], out[f"{name}_src"], out[f"{name}_ref"] = d / f"{name}.emb", src, d / f"{name}.npz"
    return out


def _cmd(args: dict[str, Any]) -> list[str]:
    return [relutil.PY, str(relutil.HERE / "concurrency_worker.py"), json.dumps(args)]


def test_many_processes_and_threads_read_one_store(stores: dict[str, Path]) -> None:
    procs = []
    for p in range(3):
        args = {"mode": "readers", "store": str(stores["a"]), "reference": str(stores["a_ref"]),
                "threads": 4, "rounds": 60, "seed": p}
        procs.append(subprocess.Popen(_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=relutil.child_env(), text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        res = relutil.last_json(out)
        assert res["n_errors"] == 0, res["errors"]
        assert res["threads_done"] == 4


def test_replace_with_force_while_readers_hold_the_store(stores: dict[str, Path],
                                                         tmp_path: Path) -> None:
    path = tmp_path / "live.emb"
    shutil.copyfile(stores["a"], path)
    go = tmp_path / "go"
    readers: list[subprocess.Popen[str]] = []
    try:
        for k in range(2):
            args = {"mode": "hold_during_replace", "store": str(path), "go": str(go), "seed": k,
                    "old_reference": str(stores["a_ref"]), "new_reference": str(stores["b_ref"])}
            readers.append(subprocess.Popen(_cmd(args), stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, env=relutil.child_env(),
                                            text=True))
        for r in readers:
            assert r.stdout is not None
            line = r.stdout.readline()
            assert line.strip() == "ready", (line, r.stderr.read() if r.stderr else "")
        exe = relutil.embstore_command()
        assert exe
        res = relutil.run_child([exe, "convert", "--force", "--quiet", str(stores["b_src"]),
                                 str(path)], timeout=300)
        assert res.returncode == 0, res.describe()
        time.sleep(0.2)  # readers keep reading the replaced file for a moment
        go.touch()
        for r in readers:
            out, err = r.communicate(timeout=300)
            assert r.returncode == 0, f"reader exit {r.returncode} (-7 is SIGBUS):\n{err[-3000:]}"
            result = json.loads(out.strip().splitlines()[-1])
            assert result["errors"] == [], result
            assert result["reads_during_replace"] > 0
    finally:
        # Readers wait for the go file: never leave them running when the test fails early.
        for r in readers:
            if r.poll() is None:
                r.kill()
                r.communicate()


@pytest.mark.parametrize("layer", _layers())
def test_fork_after_parallel_kernels(stores: dict[str, Path], layer: str) -> None:
    child = CHILD_LAYER[layer]
    args = {"mode": "fork_after_parallel", "store": str(stores["a"]),
            "reference": str(stores["a_ref"]), "forks": 2, "grandchild": True, "pool": True,
            "force_parallel": True, "child_layer": child}
    res = relutil.run_child(_cmd(args), timeout=300,
                            env=relutil.child_env(NUMBA_THREADING_LAYER=layer))
    assert res.returncode == 0, res.describe()
    out = relutil.last_json(res.stdout)
    assert out["layer"] == layer and out["parallel_used_before_fork"], out
    assert out["child_status"] == [0, 0], res.describe()
    assert out["pool"] == [[True, child, child != "serial"]] * 4 and out["parent_after"], out
    assert out["serial_only_in_parent"] is False


@pytest.mark.parametrize("layer", _layers())
def test_threads_calling_lookup_concurrently(stores: dict[str, Path], layer: str) -> None:
    args = {"mode": "readers", "store": str(stores["a"]), "reference": str(stores["a_ref"]),
            "threads": 8, "rounds": 40, "seed": 99, "force_parallel": True}
    res = relutil.run_child(_cmd(args), timeout=300,
                            env=relutil.child_env(NUMBA_THREADING_LAYER=layer))
    assert res.returncode == 0, res.describe()
    out = relutil.last_json(res.stdout)
    assert out["n_errors"] == 0, out["errors"]
    assert out["layer"] == layer and out["threads_done"] == 8
    assert out["locked"] is (layer == "workqueue"), out
