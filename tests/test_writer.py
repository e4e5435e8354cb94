"""Atomic publication of stores: O_TMPFILE and the named-temporary fallback, refusing to
clobber, atomic replacement under readers, and cleanup after crashes and failures."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embstore
from embstore import format as fmt
from embstore._build import writer
from embstore._build.writer import StoreWriter
from embstore._kernels import index as kindex


@pytest.fixture(params=["tmpfile", "named"])
def tmp_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "named":
        monkeypatch.setenv("EMBSTORE_NO_TMPFILE", "1")
    else:
        monkeypatch.delenv("EMBSTORE_NO_TMPFILE", raising=False)
    return str(request.param)


def vocabulary(words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The words, offsets and index sections the way docs/FORMAT.md defines them."""
    raw = [w.encode("utf-8") for w in words]
    offsets = np.zeros(len(raw) + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum([len(r) for r in raw])
    data = np.frombuffer(b"".join(raw), dtype=np.uint8).copy()
    index = np.zeros((fmt.slot_count(len(raw)), 2), dtype=np.uint32)
    kindex.build_index(data, offsets, len(raw), index)
    return data, offsets, index


def write_store(dst: Path, words: list[str], vectors: np.ndarray, **kw: Any) -> int:
    with StoreWriter(dst, vectors.shape[1], **kw) as w:
        w.write_vectors(vectors)
        return w.finish(*vocabulary(words), {"test": True})


def temporaries(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if writer._TMP_TAG in n)


def test_o_tmpfile_is_used_when_available(tmp_path: Path, tmp_mode: str) -> None:
    if tmp_mode == "tmpfile":
        assert getattr(os, "O_TMPFILE", 0), "this platform should have O_TMPFILE"
    dst = tmp_path / "s.emb"
    with StoreWriter(dst, 2) as w:
        w.write_vectors(np.ones((3, 2), np.float32))
        named = temporaries(tmp_path)
        if tmp_mode == "tmpfile":
            assert w._named_tmp is None and named == []  # nothing visible while writing
        else:
            assert w._named_tmp is not None and named == [w._named_tmp.name]
            assert named[0].startswith(f".s.emb{writer._TMP_TAG}{os.getpid()}-")
        assert not dst.exists()
        w.finish(*vocabulary(["a", "b", "c"]), {"test": True})
    assert os.listdir(tmp_path) == ["s.emb"]
    with embstore.open(dst) as store:
        assert list(store.words) == ["a", "b", "c"] and store.metadata == {"test": True}


def test_write_vectors_in_pieces(tmp_path: Path, tmp_mode: str) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((1000, 7)).astype(np.float32)
    words = [f"w{i}" for i in range(1000)]
    dst = tmp_path / "s.emb"
    with StoreWriter(dst, 7) as w:
        for a, b in ((0, 1), (1, 400), (400, 400), (400, 1000)):
            w.write_vectors(vecs[a:b])
        size = w.finish(*vocabulary(words), {})
    assert size == dst.stat().st_size
    with embstore.open(dst) as store:
        assert np.array_equal(store.vectors, vecs)
        np.testing.assert_allclose(store.mean, vecs.astype(np.float64).mean(0), rtol=1e-12)
    assert embstore.verify(dst).ok


@pytest.mark.parametrize("fsync", [False, True])
def test_fsync_option(tmp_path: Path, fsync: bool, tmp_mode: str) -> None:
    src = tmp_path / "v.txt"
    src.write_text("a 1 2\nb 3 4\n")
    embstore.convert(src, tmp_path / "s.emb", fsync=fsync, quiet=True)
    assert embstore.verify(tmp_path / "s.emb").ok
    assert temporaries(tmp_path) == []


def test_refuses_an_existing_destination(tmp_path: Path, tmp_mode: str) -> None:
    src = tmp_path / "v.txt"
    src.write_text("a 1 2\n")
    dst = tmp_path / "s.emb"
    dst.write_bytes(b"precious")
    with pytest.raises(embstore.StoreExistsError) as info:
        embstore.convert(src, dst, quiet=True)
    assert isinstance(info.value, FileExistsError)
    assert "force=True" in str(info.value) and str(dst) in str(info.value)
    with pytest.raises(embstore.StoreExistsError):
        StoreWriter(dst, 2)
    assert dst.read_bytes() == b"precious"
    assert temporaries(tmp_path) == []


def test_destination_appearing_while_writing_is_not_clobbered(tmp_path: Path,
                                                              tmp_mode: str) -> None:
    """link() refuses to overwrite: a file created meanwhile by someone else survives."""
    dst = tmp_path / "s.emb"
    w = StoreWriter(dst, 2)
    w.write_vectors(np.ones((1, 2), np.float32))
    dst.write_bytes(b"someone else's")
    with pytest.raises(embstore.StoreExistsError):
        w.finish(*vocabulary(["a"]), {})
    w.close()
    assert dst.read_bytes() == b"someone else's"
    assert temporaries(tmp_path) == []


def test_force_replaces_atomically_under_a_reader(tmp_path: Path, tmp_mode: str) -> None:
    dst = tmp_path / "s.emb"
    old = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_store(dst, ["a", "b", "c"], old)
    reader = embstore.open(dst)
    old_words = reader.words
    old_vectors = reader.vectors
    new = -np.arange(8, dtype=np.float32).reshape(2, 4)
    src = tmp_path / "new.txt"
    src.write_text("x " + " ".join(map(str, new[0])) + "\ny " + " ".join(map(str, new[1])) + "\n")
    embstore.convert(src, dst, force=True, quiet=True)
    # The old reader keeps the old inode: its data did not change under it.
    assert list(old_words) == ["a", "b", "c"] and np.array_equal(old_vectors, old)
    assert reader["b"].tolist() == [2.0, 3.0] and "x" not in reader
    with embstore.open(dst) as fresh:
        assert list(fresh.words) == ["x", "y"] and np.array_equal(fresh.vectors, new)
    reader.close()
    assert sorted(os.listdir(tmp_path)) == ["new.txt", "s.emb"]


def test_force_creates_when_absent(tmp_path: Path, tmp_mode: str) -> None:
    dst = tmp_path / "s.emb"
    write_store(dst, ["a"], np.ones((1, 3), np.float32), force=True)
    assert embstore.verify(dst).ok and os.listdir(tmp_path) == ["s.emb"]


def test_exception_inside_the_writer_leaves_nothing(tmp_path: Path, tmp_mode: str) -> None:
    dst = tmp_path / "s.emb"
    with pytest.raises(RuntimeError), StoreWriter(dst, 2) as w:
        w.write_vectors(np.ones((10, 2), np.float32))
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_write_error_is_store_write_error(tmp_path: Path, tmp_mode: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk surfaces as StoreWriteError; nothing is published, nothing is left."""
    src = tmp_path / "v.txt"
    src.write_text("".join(f"w{i} 1 2 3\n" for i in range(1000)))
    dst = tmp_path / "s.emb"

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(embstore.StoreWriteError) as info:
        embstore.convert(src, dst, quiet=True)
    monkeypatch.undo()
    err = info.value
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert str(err) == f"{dst}: cannot write the store: No space left on device " \
                       "(nothing was written there)"
    assert sorted(os.listdir(tmp_path)) == ["v.txt"]


def _dead_pid() -> int:
    """A process id that is certainly not alive: one above the kernel's maximum."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    except OSError:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        return proc.pid


def test_stale_named_temporaries_are_removed(tmp_path: Path, tmp_mode: str) -> None:
    dead = _dead_pid()
    stale = tmp_path / f".s.emb{writer._TMP_TAG}{dead}-deadbeef"
    live = tmp_path / f".s.emb{writer._TMP_TAG}{os.getpid()}-cafef00d"
    other = tmp_path / f".other.emb{writer._TMP_TAG}{dead}-deadbeef"
    odd = tmp_path / f".s.emb{writer._TMP_TAG}notapid-1"
    for p in (stale, live, other, odd):
        p.write_bytes(b"partial store")
    src = tmp_path / "v.txt"
    src.write_text("a 1\n")
    embstore.convert(src, tmp_path / "s.emb", quiet=True)
    assert not stale.exists()  # its writer died: removed
    assert live.exists() and other.exists() and odd.exists()  # not ours to judge


def test_remove_stale_temporaries_ignores_a_missing_directory(tmp_path: Path) -> None:
    writer.remove_stale_temporaries(tmp_path / "missing" / "s.emb")


def test_killed_conversion_leaves_no_store(tmp_path: Path) -> None:
    """A writer process killed mid-way leaves no file named like the store, and its named
    temporary is cleaned up by the next conversion to the same destination."""
    dst = tmp_path / "s.emb"
    code = (
        "import os, signal, numpy as np\n"
        "from embstore._build.writer import StoreWriter\n"
        f"w = StoreWriter({str(dst)!r}, 4)\n"
        "w.write_vectors(np.ones((100, 4), np.float32))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "EMBSTORE_NO_TMPFILE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert proc.returncode != 0
    assert not dst.exists()
    assert len(temporaries(tmp_path)) == 1
    src = tmp_path / "v.txt"
    src.write_text("a 1 2 3 4\n")
    embstore.convert(src, dst, quiet=True)
    assert temporaries(tmp_path) == [] and embstore.verify(dst).ok


@pytest.mark.parametrize(("dim", "rows"), [(2, np.ones((3, 3), np.float32)),
                                           (2, np.ones((3, 2), np.float64)),
                                           (2, np.ones(2, np.float32))])
def test_write_vectors_checks_its_argument(tmp_path: Path, dim: int, rows: np.ndarray) -> None:
    with StoreWriter(tmp_path / "s.emb", dim) as w, pytest.raises(ValueError):
        w.write_vectors(rows)
    assert os.listdir(tmp_path) == []


def test_writer_argument_checks(tmp_path: Path) -> None:
    for dim in (0, -1, fmt.MAX_DIM + 1):
        with pytest.raises(ValueError):
            StoreWriter(tmp_path / "s.emb", dim)
    with pytest.raises(IsADirectoryError):
        StoreWriter(tmp_path, 2)
    with pytest.raises(FileNotFoundError):
        StoreWriter(tmp_path / "missing" / "s.emb", 2)
    with StoreWriter(tmp_path / "s.emb", 2) as w, pytest.raises(ValueError, match="at least one"):
        w.finish(*vocabulary(["a"]), {})
    with StoreWriter(tmp_path / "s.emb", 2) as w:
        w.write_vectors(np.ones((2, 2), np.float32))
        with pytest.raises(ValueError, match="offsets"):
            w.finish(*vocabulary(["a"]), {})
    assert os.listdir(tmp_path) == []


def test_convert_to_a_missing_directory(tmp_path: Path) -> None:
    src = tmp_path / "v.txt"
    src.write_text("a 1\n")
    with pytest.raises(FileNotFoundError):
        embstore.convert(src, tmp_path / "nope" / "s.emb", quiet=True)
    assert sorted(os.listdir(tmp_path)) == ["v.txt"]


def test_stores_are_byte_identical_apart_from_metadata(tmp_path: Path,
                                                       build_store: Callable[..., Any]) -> None:
    words = [f"w{i}" for i in range(500)]
    vecs = np.random.default_rng(1).standard_normal((500, 3)).astype(np.float32)
    a, b = tmp_path / "a.emb", tmp_path / "b.emb"
    write_store(a, words, vecs)
    write_store(b, words, vecs)
    assert a.read_bytes() == b.read_bytes()


def test_concurrent_conversions_to_one_destination(tmp_path: Path, tmp_mode: str) -> None:
    """Two writers racing for the same name: exactly one store is published, whole."""
    import threading

    srcs = []
    for k in range(2):
        src = tmp_path / f"v{k}.txt"
        src.write_text("".join(f"w{i} {k} {i}\n" for i in range(20_000)))
        srcs.append(src)
    dst = tmp_path / "s.emb"
    outcome: list[str] = []

    def run(src: Path) -> None:
        try:
            embstore.convert(src, dst, quiet=True)
            outcome.append("ok")
        except embstore.StoreExistsError:
            outcome.append("exists")

    threads = [threading.Thread(target=run, args=(s,)) for s in srcs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome) == ["exists", "ok"]
    assert embstore.verify(dst).ok
    with embstore.open(dst) as store:
        assert len({float(x) for x in store.vectors[:, 0]}) == 1  # one source, not a mix
    assert temporaries(tmp_path) == []
