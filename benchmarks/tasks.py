"""The benchmark tasks, one per process: ``python benchmarks/tasks.py TASK ARGS...``.

The runner (``run.py``) starts every measured task in a fresh interpreter, so that whole-process
time and peak memory include everything a user pays: interpreter start, imports, JIT cache
loading, reading, writing.  This module imports only the standard library at the top; each task
imports what it needs and times that as its ``import`` phase.

Each task prints, as its last stdout line, ``@@RESULT {json}`` with its phases (seconds),
resident memory at interesting points (MB, from ``/proc/self/status``) and a few facts for
checks (rows, hits).  Share workers print ``@@READY {json}`` once they have touched the store,
then block until their stdin is closed, so the runner can read ``/proc/<pid>/smaps_rollup``
while all of them are alive.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

RESULT_MARK = "@@RESULT "
READY_MARK = "@@READY "
CLASSIC_FALLBACKS = ("lower", "title", "upper")
COPY_BLOCK = 8 << 20


def _status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MB (10**6 bytes); 0 where /proc is absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS")


class Phases:
    """Named wall-clock phases plus memory snapshots, reported as one JSON object."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.rss: dict[str, float] = {"start": rss_mb()}
        self.facts: dict[str, Any] = {}
        self._t = time.perf_counter()

    def mark(self, name: str) -> None:
        """End the phase ``name`` now (it started at the previous mark) and snapshot RSS."""
        now = time.perf_counter()
        self.phases[name] = round(now - self._t, 6)
        self.rss[name] = round(rss_mb(), 3)
        self._t = now

    def report(self) -> None:
        self.rss["peak"] = round(_status_mb("VmHWM"), 3)
        payload = {"phases": self.phases, "rss_mb": self.rss, "facts": self.facts}
        print(RESULT_MARK + json.dumps(payload), flush=True)


# -- conversion -----------------------------------------------------------------------------


def task_embstore_cli(args: argparse.Namespace) -> int:
    """The ``embstore`` console script, exactly: ``sys.exit(embstore.cli.main(argv))``."""
    ph = Phases()
    from embstore import cli

    ph.mark("import")
    rc = cli.main(args.argv)
    ph.mark("run")
    ph.facts["rc"] = rc
    ph.report()
    return int(rc)


def task_floor_copy(args: argparse.Namespace) -> int:
    """The I/O floor of a conversion: read the whole input, write ``nbytes`` to a new file.

    ``nbytes`` is the size of the store that embstore writes from this input, so the floor does
    the same reading and the same page-cache writing with no parsing at all.
    """
    ph = Phases()
    buf = bytearray(COPY_BLOCK)
    mv = memoryview(buf)
    written = 0
    read = 0
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.dst)
    with open(args.src, "rb", buffering=0) as src, open(args.dst, "wb", buffering=0) as dst:
        while True:
            n = src.readinto(buf)
            if not n:
                break
            read += n
            take = min(n, args.nbytes - written)
            if take > 0:
                dst.write(mv[:take])
                written += take
        while written < args.nbytes:
            take = min(len(buf), args.nbytes - written)
            dst.write(mv[:take])
            written += take
    ph.mark("copy")
    ph.facts.update(read=read, written=written)
    ph.report()
    return 0


def _gensim() -> Any:
    from gensim.models import KeyedVectors

    return KeyedVectors


def _gensim_vectors(kv_cls: Any, path: str, native: bool) -> Any:
    """A native gensim save mapped with ``mmap='r'``, or a binary word2vec file loaded whole."""
    if native:
        return kv_cls.load(path, mmap="r")
    return kv_cls.load_word2vec_format(path, binary=True)


def task_gensim_load(args: argparse.Namespace) -> int:
    """``KeyedVectors.load_word2vec_format``: what a gensim user runs to read a vector file."""
    ph = Phases()
    kv_cls = _gensim()
    ph.mark("import")
    kv = kv_cls.load_word2vec_format(args.src, binary=args.binary)
    ph.mark("load")
    ph.facts["rows"] = len(kv.index_to_key)
    ph.report()
    return 0


def task_gensim_save(args: argparse.Namespace) -> int:
    """Preparation, not timed: a native gensim save of a word2vec binary file.

    The vectors go to a separate ``.vectors.npy`` at every size (gensim does that by default
    only above 10 MB), so ``KeyedVectors.load(path, mmap='r')`` maps them even for tiny files.
    """
    ph = Phases()
    kv_cls = _gensim()
    kv = kv_cls.load_word2vec_format(args.src, binary=True)
    ph.mark("load")
    kv.save(args.dst, separately=["vectors"])
    ph.mark("save")
    ph.facts["rows"] = len(kv.index_to_key)
    ph.report()
    return 0


# -- open -----------------------------------------------------------------------------------


def task_open_embstore(args: argparse.Namespace) -> int:
    """``embstore.open`` and one lookup: a single ``get`` (pure Python) or, with ``--batch``,
    a one-word ``lookup`` (which imports Numba and loads the cached kernel)."""
    ph = Phases()
    import embstore

    ph.mark("import")
    store = embstore.open(args.store)
    ph.mark("open")
    if args.batch:
        rows = store.lookup([args.word])
        vec = store.vectors[rows[0]].copy()
        ph.mark("lookup")
    else:
        vec = store[args.word]
        ph.mark("lookup")
    ph.facts.update(rows=len(store), found=bool(vec.size))
    ph.facts["rss_growth_mb"] = round(ph.rss["lookup"] - ph.rss["import"], 3)
    ph.report()
    return 0


def task_open_gensim(args: argparse.Namespace) -> int:
    """gensim: ``KeyedVectors.load(native, mmap='r')`` or ``load_word2vec_format``, one lookup."""
    ph = Phases()
    kv_cls = _gensim()
    ph.mark("import")
    kv = _gensim_vectors(kv_cls, args.path, args.native)
    ph.mark("open")
    vec = kv[args.word]
    ph.mark("lookup")
    ph.facts.update(rows=len(kv.index_to_key), found=bool(vec.size))
    ph.facts["rss_growth_mb"] = round(ph.rss["lookup"] - ph.rss["import"], 3)
    ph.report()
    return 0


# -- matrices -------------------------------------------------------------------------------


def classic_fill(kv: Any, word_index: dict[str, int], matrix: Any) -> int:
    """The classic recipe's loop, with the same case fallbacks as ``embstore matrix --fallback
    lower,title,upper``: exact word, then lower case, capitalised, upper case."""
    hits = 0
    for word, i in word_index.items():
        for cand in (word, word.lower(), word.capitalize(), word.upper()):
            if cand in kv:
                matrix[i] = kv[cand]
                hits += 1
                break
    return hits


def task_matrix_gensim(args: argparse.Namespace) -> int:
    """The classic recipe: load with gensim, loop over the vocabulary into ``np.zeros``, save.

    With ``--native`` the vectors come from a native gensim save opened with ``mmap='r'`` (a
    gensim user who converted once), otherwise from ``load_word2vec_format``.
    """
    ph = Phases()
    import numpy as np

    kv_cls = _gensim()
    ph.mark("import")
    kv = _gensim_vectors(kv_cls, args.path, args.native)
    ph.mark("load")
    with open(args.vocab, encoding="utf-8") as fh:
        word_index = json.load(fh)
    ph.mark("vocab")
    rows = max(word_index.values()) + 1
    matrix = np.zeros((rows, kv.vector_size), dtype=np.float32)
    hits = classic_fill(kv, word_index, matrix)
    ph.mark("build")
    np.save(args.out, matrix)
    ph.mark("save")
    ph.facts.update(rows=rows, hits=hits)
    ph.report()
    return 0


def task_matrix_numpy(args: argparse.Namespace) -> int:
    """The compute floor: vectors already in RAM, rows already known; gather and save.

    Loading the vectors (``load`` phase) is not part of the floor; the runner takes
    ``gather + save`` as this task's time.
    """
    ph = Phases()
    import numpy as np

    ph.mark("import")
    vectors = np.load(args.vectors)
    with np.load(args.rows) as z:
        dest = z["dest"]
        src = z["src"]
    ph.mark("load")
    matrix = np.zeros((args.n_rows, vectors.shape[1]), dtype=np.float32)
    matrix[dest] = vectors[src]
    ph.mark("gather")
    np.save(args.out, matrix)
    ph.mark("save")
    ph.facts.update(rows=args.n_rows, hits=int(dest.size))
    ph.report()
    return 0


# -- shared memory workers ------------------------------------------------------------------


def _touch_all(n: int, batch: Callable[[int, int], float], step: int = 65536) -> float:
    total = 0.0
    for a in range(0, n, step):
        total += batch(a, min(n, a + step))
    return total


def _ready_and_wait(ph: Phases) -> None:
    rss = dict(ph.rss, peak=round(_status_mb("VmHWM"), 3))
    payload = {"phases": ph.phases, "rss_mb": rss, "pid": os.getpid()}
    print(READY_MARK + json.dumps(payload), flush=True)
    sys.stdin.read()  # the runner closes our stdin once it has measured every worker


def task_share_embstore(args: argparse.Namespace) -> int:
    """A worker serving lookups from one shared store: open, then look up every word in
    batches and read its vector, so that the whole index, vocabulary and matrix are touched."""
    ph = Phases()
    import numpy as np

    import embstore

    ph.mark("import")
    store = embstore.open(args.path)
    ph.mark("load")
    words = store.words
    vectors = store.vectors

    def batch(a: int, b: int) -> float:
        rows = store.lookup(words[a:b])
        return float(np.add.reduce(vectors[rows], axis=None))

    ph.facts["checksum"] = _touch_all(len(store), batch)
    ph.mark("touch")
    _ready_and_wait(ph)
    ph.report()
    return 0


def task_share_gensim(args: argparse.Namespace) -> int:
    """The gensim equivalent: each worker loads its own copy (``load_word2vec_format``) or
    maps a native save (``--native``: vectors shared, vocabulary dict private)."""
    ph = Phases()
    import numpy as np

    kv_cls = _gensim()
    ph.mark("import")
    kv = _gensim_vectors(kv_cls, args.path, args.native)
    ph.mark("load")
    keys = kv.index_to_key
    k2i = kv.key_to_index
    vectors = kv.vectors

    def batch(a: int, b: int) -> float:
        rows = [k2i[w] for w in keys[a:b]]
        return float(np.add.reduce(vectors[rows], axis=None))

    ph.facts["checksum"] = _touch_all(len(keys), batch)
    ph.mark("touch")
    _ready_and_wait(ph)
    ph.report()
    return 0


# -- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="task", required=True)

    s = sub.add_parser("embstore-cli", help="run the embstore command line")
    s.add_argument("argv", nargs=argparse.REMAINDER)
    s.set_defaults(func=task_embstore_cli)

    s = sub.add_parser("floor-copy", help="read SRC, write NBYTES to DST")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("nbytes", type=int)
    s.set_defaults(func=task_floor_copy)

    s = sub.add_parser("gensim-load", help="KeyedVectors.load_word2vec_format")
    s.add_argument("src")
    s.add_argument("--binary", action="store_true")
    s.set_defaults(func=task_gensim_load)

    s = sub.add_parser("gensim-save", help="native gensim save of a binary file (preparation)")
    s.add_argument("src")
    s.add_argument("dst")
    s.set_defaults(func=task_gensim_save)

    s = sub.add_parser("open-embstore")
    s.add_argument("store")
    s.add_argument("word")
    s.add_argument("--batch", action="store_true")
    s.set_defaults(func=task_open_embstore)

    s = sub.add_parser("open-gensim")
    s.add_argument("path")
    s.add_argument("word")
    s.add_argument("--native", action="store_true")
    s.set_defaults(func=task_open_gensim)

    s = sub.add_parser("matrix-gensim")
    s.add_argument("path")
    s.add_argument("vocab")
    s.add_argument("out")
    s.add_argument("--native", action="store_true")
    s.set_defaults(func=task_matrix_gensim)

    s = sub.add_parser("matrix-numpy")
    s.add_argument("vectors")
    s.add_argument("rows")
    s.add_argument("n_rows", type=int)
    s.add_argument("out")
    s.set_defaults(func=task_matrix_numpy)

    s = sub.add_parser("share-embstore")
    s.add_argument("path")
    s.set_defaults(func=task_share_embstore)

    s = sub.add_parser("share-gensim")
    s.add_argument("path")
    s.add_argument("--native", action="store_true")
    s.set_defaults(func=task_share_gensim)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "argv", None) and args.argv[0] == "--":
        args.argv = args.argv[1:]
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
