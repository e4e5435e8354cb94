"""Whole-process benchmarks of embstore against gensim and against I/O and compute floors.

    python benchmarks/run.py --size 1m --repeat 3

Every measured task runs in a fresh interpreter (``benchmarks/tasks.py``), spawned by a tiny
wrapper process that takes its wall time from spawn to exit and its peak resident memory and
CPU times from ``os.wait4`` -- the rusage of exactly that child.  Two traps are avoided:
``getrusage(RUSAGE_CHILDREN)`` reports the maximum over all children so far, and a child's
``ru_maxrss`` starts from the high-water mark of the process it was forked from, so tasks are
never forked from this (large) runner directly.

The machine is assumed to be noisy (shared, virtualised): within one repetition the tools of a
task run back to back, in an order rotated from one repetition to the next, and every ratio is
computed pair by pair within a repetition before taking the median.  Writing a fresh file to
the page cache costs a variable amount of kernel time per GB, so each conversion is compared
with a floor measured in the same repetition: reading the same input and writing the same
number of bytes as the store.

Inputs are read once before each task group (warm page cache, as for a file you just
downloaded or converted); every output is deleted right after its measurement.  Generated data
is cached in ``benchmarks/data/`` (or ``--data-dir``); results go to ``benchmarks/results/``
(or ``--out``) as JSON, a Markdown table and a PNG chart.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import generate
from benchmarks.tasks import READY_MARK, RESULT_MARK

REPO = Path(__file__).resolve().parent.parent
TASKS_PY = REPO / "benchmarks" / "tasks.py"
DEFAULT_OUT = REPO / "benchmarks" / "results"
SCHEMA = 1
MB = 1e6
FALLBACKS = "lower,title,upper"
JIT_ROWS = 1_000  # the JIT measurements use the tiny files: compile time does not scale


@dataclass(frozen=True)
class SizeConfig:
    """One benchmark size: store rows, text rows, gensim's text cap and worker count."""

    words: int
    text_rows: int
    gensim_text_rows: int | None  # None: gensim parses the whole text file
    workers: int
    vocab_sizes: tuple[int, ...] = (20_000, 400_000)


# gensim parses text at about 8.5 MB/s on the reference VM, so it reads the whole text file up
# to the 1m size (2.6 GB, about five minutes) and only the first 200k rows (0.5 GB) at 3m.
SIZES: dict[str, SizeConfig] = {
    "tiny": SizeConfig(1_000, 1_000, None, 2),
    "small": SizeConfig(100_000, 100_000, None, 4),
    "1m": SizeConfig(1_000_000, 1_000_000, None, 8),
    "3m": SizeConfig(3_000_000, 3_000_000, 200_000, 8),
}

TASK_GROUPS = ("convert-binary", "convert-text", "open", "matrix", "share", "jit")
JIT_COMMANDS = ("convert-binary", "convert-text", "matrix")

FAMILY_LABELS = {
    "embstore": "embstore",
    "embstore-alt": "embstore (Numba path)",
    "gensim": "gensim load_word2vec_format",
    "gensim-mmap": "gensim native save, mmap='r'",
    "floor": "I/O floor (read + write)",
    "numpy": "compute floor (NumPy gather + save)",
    "cold": "JIT, empty cache",
    "warm": "JIT, cached",
}
FAMILY_COLORS = {
    "embstore": "#1f77b4",
    "embstore-alt": "#6baed6",
    "gensim": "#ff7f0e",
    "gensim-mmap": "#fdae6b",
    "floor": "#7f7f7f",
    "numpy": "#bdbdbd",
    "cold": "#d62728",
    "warm": "#2ca02c",
}


# -- measuring one process --------------------------------------------------------------------


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parse_result(stdout: str) -> tuple[dict[str, Any], str]:
    """The task's ``@@RESULT`` payload and whatever it printed before it."""
    for i, line in enumerate(reversed(stdout.splitlines())):
        if line.startswith(RESULT_MARK):
            body = stdout.splitlines()[: -(i + 1)]
            return json.loads(line[len(RESULT_MARK):]), "\n".join(body)
    return {}, stdout


# The measuring wrapper: a bare interpreter (no site, ~8 MB) that spawns the task and reaps it
# with wait4.  A child's ru_maxrss starts from the high-water mark of the process it was forked
# from (Linux copies it across fork and exec), so measuring straight from this runner, which
# holds vocabularies and digests, would report the runner's size as every task's floor.
_WRAPPER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as fh:
    fh.write("%d %.6f %.6f %.6f %d" % (os.waitstatus_to_exitcode(status), wall, ru.ru_utime,
                                         ru.ru_stime, ru.ru_maxrss))
"""


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None,
            timeout: float = 7200.0) -> dict[str, Any]:
    """Run ``argv`` to completion under the wrapper; wall time (spawn to reap, measured by the
    wrapper), peak RSS and CPU times of exactly that process, and the task's own report."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rusage") as rusage:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WRAPPER, rusage.name,
                                 *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
        fields = rusage.read().split()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if len(fields) == 5:
        rc, wall, utime, stime, maxrss_kib = (int(fields[0]), float(fields[1]),
                                              float(fields[2]), float(fields[3]), int(fields[4]))
    else:  # the wrapper itself was killed (timeout)
        rc, wall, utime, stime, maxrss_kib = (proc.returncode or -9, float("nan"), 0.0, 0.0, 0)
        stderr += f"\n(killed after {timeout:.0f} s)"
    payload, printed = _parse_result(stdout)
    run: dict[str, Any] = {
        "rc": rc,
        "wall_s": round(wall, 6),
        "user_s": round(utime, 6),
        "sys_s": round(stime, 6),
        "max_rss_mb": round(maxrss_kib * 1024 / MB, 3),  # Linux reports KiB
        "phases": payload.get("phases", {}),
        "rss_mb": payload.get("rss_mb", {}),
        "facts": payload.get("facts", {}),
    }
    if printed.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            run["report"] = json.loads(printed)
    if rc != 0:
        run["stderr_tail"] = stderr[-2000:]
    return run


def smaps_rollup(pid: int) -> dict[str, float]:
    """Memory of ``pid`` from ``/proc/<pid>/smaps_rollup`` in MB (Rss, Pss, Pss_Anon, ...).

    Pss charges each shared page to its N mappers as 1/N page, so the sum of Pss over a set of
    processes is the memory they take together.
    """
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024 / MB
    return out


def available_mb() -> float:
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / MB
    return 0.0


def warm(paths: Sequence[Path]) -> None:
    """Read files through once so every tool starts with them in the page cache."""
    buf = bytearray(16 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def npy_digest(path: Path) -> str:
    """SHA-1 of a .npy file's array data (not its header, which tools may format apart).

    Only used to check that the tools wrote the same matrix; SHA-1 is the fastest hashlib
    digest on CPUs with SHA extensions, and collisions by accident are not a concern here."""
    import numpy as np

    arr = np.load(path, mmap_mode="r")
    h = hashlib.sha1(usedforsecurity=False)
    h.update(repr((arr.dtype.str, arr.shape)).encode())
    flat = arr.reshape(-1)
    step = 16 << 20
    for a in range(0, flat.size, step):
        h.update(np.ascontiguousarray(flat[a:a + step]).tobytes())
    return h.hexdigest()


# -- what is measured ---------------------------------------------------------------------------


def _py(*args: str) -> list[str]:
    return [sys.executable, str(TASKS_PY), *args]


@dataclass
class Contender:
    """One tool in a task group."""

    name: str
    label: str
    family: str
    argv: list[str]
    output: Path | None = None  # deleted after each run (and hashed if the group checks)
    primary: tuple[str, ...] = ()  # phases whose sum is the time; () = whole-process wall
    env: dict[str, str] | None = None
    ratio_to: tuple[str, ...] | None = None  # overrides the group's baselines
    expect_rows: int | None = None  # checked against the tool's report
    share_mode: str = ""  # "embstore" | "gensim" | "gensim-native" for share groups
    runs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Group:
    name: str
    title: str
    contenders: list[Contender]
    baselines: tuple[str, ...] = ()
    kind: str = "time"  # "time" or "share"
    inputs: list[Path] = field(default_factory=list)
    note: str = ""
    check_outputs: bool = False
    fixed_order: bool = False
    before_rep: Callable[[Group], None] | None = None
    after_rep: Callable[[Group], None] | None = None
    workers: int = 0


@dataclass
class Data:
    """Every input file of one benchmark size (generated or converted once, then cached)."""

    size: str
    cfg: SizeConfig
    binary: generate.GeneratedFile
    text: generate.GeneratedFile
    text_cap: generate.GeneratedFile | None
    store: Path
    store_bytes: int
    cap_store_bytes: int
    native: Path
    vocabs: dict[int, generate.VocabFile]
    jit_binary: generate.GeneratedFile
    jit_text: generate.GeneratedFile
    jit_store: Path
    jit_vocab: generate.VocabFile
    probe_word: str
    prep: dict[str, Any]


def _run_checked(argv: Sequence[str], what: str) -> dict[str, Any]:
    run = measure(argv)
    if run["rc"] != 0:
        raise SystemExit(f"preparation failed ({what}):\n{run.get('stderr_tail', '')}")
    return run


def embstore_source_mtime() -> float:
    """Newest modification time of embstore's sources: a cached store older than this was
    written by other code and is converted again."""
    import embstore

    pkg = Path(embstore.__file__).parent
    return max((p.stat().st_mtime for p in pkg.glob("*.py")), default=0.0)


def _store_ok(path: Path, rows: int) -> bool:
    if not path.exists() or path.stat().st_mtime < embstore_source_mtime():
        return False
    try:
        import embstore

        with embstore.open(path) as store:
            return len(store) == rows
    except Exception:  # any failure (old format, damage) means: convert again
        return False


def ensure_store(src: generate.GeneratedFile, quiet: bool) -> tuple[Path, dict[str, Any]]:
    """The store of ``src`` (converted with the embstore CLI unless cached and current)."""
    path = src.path.with_suffix(src.path.suffix + ".emb")
    if _store_ok(path, src.rows):
        return path, {}
    if not quiet:
        print(f"converting {src.path.name} -> {path.name}", file=sys.stderr, flush=True)
    path.unlink(missing_ok=True)
    run = _run_checked(_py("embstore-cli", "convert", str(src.path), str(path), "--json"),
                       f"embstore convert {src.path.name}")
    return path, {"seconds": run["wall_s"]}


def ensure_native(src: generate.GeneratedFile, quiet: bool) -> tuple[Path, dict[str, Any]]:
    """A native gensim save of ``src`` (``.kv`` + ``.kv.vectors.npy``), made with gensim."""
    path = src.path.with_suffix(src.path.suffix + ".kv")
    vec = path.with_name(path.name + ".vectors.npy")
    done = path.with_name(path.name + ".done")
    if path.exists() and vec.exists() and done.exists():
        return path, {}
    if not quiet:
        print(f"saving {path.name} with gensim", file=sys.stderr, flush=True)
    run = _run_checked(_py("gensim-save", str(src.path), str(path)), "gensim save")
    done.write_text(json.dumps({"rows": src.rows, "seconds": run["wall_s"]}) + "\n")
    return path, {"seconds": run["wall_s"]}


def prepare(size: str, cfg: SizeConfig, seed: int, data_dir: Path, quiet: bool) -> Data:
    t0 = time.perf_counter()
    kw: dict[str, Any] = {"seed": seed, "data_dir": data_dir, "quiet": quiet}
    binary = generate.vector_file("binary", cfg.words, **kw)
    text = generate.vector_file("text", cfg.text_rows, **kw)
    cap = cfg.gensim_text_rows
    text_cap = generate.vector_file("text", cap, **kw) if cap and cap < cfg.text_rows else None
    jit_binary = generate.vector_file("binary", JIT_ROWS, **kw)
    jit_text = generate.vector_file("text", JIT_ROWS, **kw)
    prep: dict[str, Any] = {}
    store, prep["store"] = ensure_store(binary, quiet)
    jit_store, jit_prep = ensure_store(jit_binary, quiet)
    converted_text = False
    # The text floor writes as many bytes as embstore's store of the same rows; the store of
    # the binary file holds the same words and vectors (sections are page-aligned, so the
    # metadata's few different bytes do not change the size).
    text_store_bytes = store.stat().st_size
    if cfg.text_rows != cfg.words:
        tstore, tprep = ensure_store(text, quiet)
        text_store_bytes = tstore.stat().st_size
        converted_text = bool(tprep)
    cap_store_bytes = 0
    if text_cap is not None:
        cstore, cprep = ensure_store(text_cap, quiet)
        cap_store_bytes = cstore.stat().st_size
        converted_text = converted_text or bool(cprep)
    native, prep["gensim_native"] = ensure_native(binary, quiet)
    vocabs = {v: generate.vocab_file(cfg.words, v, **kw) for v in cfg.vocab_sizes}
    jit_vocab = generate.vocab_file(JIT_ROWS, 20_000, **kw)
    probe = generate.make_words(min(cfg.words, 1000), seed)[-1]
    prep["seconds"] = round(time.perf_counter() - t0, 3)
    data = Data(size, cfg, binary, text, text_cap, store, text_store_bytes, cap_store_bytes,
                native, vocabs, jit_binary, jit_text, jit_store, jit_vocab, probe, prep)
    # Warm-up, untimed: populate the default Numba cache for every embstore command, so that
    # only the JIT group ever measures compilation.  A conversion made above already did it.
    scratch = data_dir / f"warmup-{os.getpid()}"
    scratch.mkdir(exist_ok=True)
    try:
        if not (prep["store"] or jit_prep):
            _run_checked(_py("embstore-cli", "convert", str(jit_binary.path),
                             str(scratch / "b.emb"), "--quiet"), "warm-up convert (binary)")
        if not converted_text:
            _run_checked(_py("embstore-cli", "convert", str(jit_text.path),
                             str(scratch / "t.emb"), "--quiet"), "warm-up convert (text)")
        _run_checked(_py("embstore-cli", "matrix", str(jit_store), str(jit_vocab.path), "--out",
                         str(scratch / "m.npy"), "--fallback", FALLBACKS), "warm-up matrix")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return data


def _text_group(name: str, title: str, src: generate.GeneratedFile, store_bytes: int,
                scratch: Path, with_gensim: bool, note: str) -> Group:
    out = scratch / f"{name}.emb"
    floor_out = scratch / f"{name}.floor"
    cs = [
        Contender("embstore", "embstore convert", "embstore",
                  _py("embstore-cli", "convert", str(src.path), str(out), "--json"), out,
                  expect_rows=src.rows),
    ]
    if with_gensim:
        cs.append(Contender("gensim", "gensim load_word2vec_format", "gensim",
                            _py("gensim-load", str(src.path)), expect_rows=src.rows))
    cs.append(Contender("floor", "floor: read + write", "floor",
                        _py("floor-copy", str(src.path), str(floor_out), str(store_bytes)),
                        floor_out))
    return Group(name, title, cs, ("floor", "gensim") if with_gensim else ("floor",),
                 inputs=[src.path], note=note)


def build_groups(data: Data, tasks: Sequence[str], scratch: Path, workers: int,
                 jit: Sequence[str] = JIT_COMMANDS) -> list[Group]:
    cfg = data.cfg
    groups: list[Group] = []
    b = data.binary
    if "convert-binary" in tasks:
        out = scratch / "bin.emb"
        floor_out = scratch / "bin.floor"
        groups.append(Group(
            "convert-binary", f"Convert word2vec binary ({b.meta['bytes'] / 1e9:.2f} GB)", [
                Contender("embstore", "embstore convert", "embstore",
                          _py("embstore-cli", "convert", str(b.path), str(out), "--json"), out,
                          expect_rows=b.rows),
                Contender("gensim", "gensim load_word2vec_format", "gensim",
                          _py("gensim-load", str(b.path), "--binary"), expect_rows=b.rows),
                Contender("floor", "floor: read + write", "floor",
                          _py("floor-copy", str(b.path), str(floor_out), str(data.store_bytes)),
                          floor_out),
            ], ("floor", "gensim"), inputs=[b.path],
            note=f"{b.rows:,} words x 300; the floor reads the input and writes "
                 f"{data.store_bytes / 1e9:.2f} GB (the store's size) to a new file"))
    if "convert-text" in tasks:
        t = data.text
        full_gensim = data.text_cap is None
        groups.append(_text_group(
            "convert-text", f"Convert word2vec text ({t.meta['bytes'] / 1e9:.2f} GB)", t,
            data.store_bytes, scratch, full_gensim,
            f"{t.rows:,} words x 300, values %.5f" + (
                "" if full_gensim else
                f"; gensim is timed on the first {data.text_cap.rows:,} rows only "  # type: ignore[union-attr]
                "(next group), as it parses text at under 10 MB/s")))
        if data.text_cap is not None:
            c = data.text_cap
            groups.append(_text_group(
                "convert-text-cap", f"Convert text, first {c.rows:,} rows "
                                    f"({c.meta['bytes'] / 1e9:.2f} GB)", c,
                data.cap_store_bytes, scratch, True,
                "gensim's text parser is slow, so all three tools read this smaller file"))
    if "open" in tasks:
        w = data.probe_word
        groups.append(Group("open", "Open + one lookup", [
            Contender("embstore", "embstore.open + get", "embstore",
                      _py("open-embstore", str(data.store), w)),
            Contender("embstore-batch", "embstore.open + lookup (Numba)", "embstore-alt",
                      _py("open-embstore", str(data.store), w, "--batch")),
            Contender("gensim-mmap", "gensim load(mmap='r')", "gensim-mmap",
                      _py("open-gensim", str(data.native), w, "--native")),
            Contender("gensim", "gensim load_word2vec_format", "gensim",
                      _py("open-gensim", str(b.path), w)),
        ], ("gensim", "gensim-mmap"), inputs=[data.store, data.native,
                                              data.native.with_name(data.native.name
                                                                    + ".vectors.npy"), b.path],
            note="whole process: interpreter, imports, open, one word's vector; the mmap "
                 "variant needs a native gensim save made beforehand"))
    if "matrix" in tasks:
        vec_npy = data.native.with_name(data.native.name + ".vectors.npy")
        for v, vf in data.vocabs.items():
            lab = generate.count_label(v)
            out = scratch / f"matrix-{lab}.npy"
            n_rows = v + 1
            meta = vf.meta
            groups.append(Group(f"matrix-{lab}", f"Matrix for a {lab} vocabulary", [
                Contender("embstore", "embstore matrix", "embstore",
                          _py("embstore-cli", "matrix", str(data.store), str(vf.path), "--out",
                              str(out), "--fallback", FALLBACKS), out),
                Contender("gensim", "gensim load_w2v + loop", "gensim",
                          _py("matrix-gensim", str(b.path), str(vf.path), str(out)), out),
                Contender("gensim-mmap", "gensim load(mmap) + loop", "gensim-mmap",
                          _py("matrix-gensim", str(data.native), str(vf.path), str(out),
                              "--native"), out),
                Contender("numpy", "NumPy gather (in RAM)", "numpy",
                          _py("matrix-numpy", str(vec_npy), str(vf.index_path), str(n_rows),
                              str(out)), out, primary=("gather", "save")),
            ], ("numpy", "gensim"), inputs=[data.store, b.path, data.native, vec_npy,
                                            vf.path], check_outputs=True,
                note=f"{n_rows:,} rows; {meta['hits']:,} words found ({meta['fallback']:,} by "
                     f"a case fallback), {meta['missing']:,} missing; whole process from start "
                     "to .npy written, except the NumPy floor: gather + save only, vectors "
                     "and row ids already in RAM"))
    if "share" in tasks:
        groups.append(Group("share", f"{workers} workers sharing the vectors", [
            Contender("embstore", "embstore (one store)", "embstore",
                      _py("share-embstore", str(data.store)), share_mode="embstore"),
            Contender("gensim-mmap", "gensim load(mmap='r')", "gensim-mmap",
                      _py("share-gensim", str(data.native), "--native"),
                      share_mode="gensim-native"),
            Contender("gensim", "gensim load_word2vec_format", "gensim",
                      _py("share-gensim", str(b.path)), share_mode="gensim"),
        ], ("gensim",), kind="share", inputs=[data.store, data.native, b.path],
            workers=workers,
            note="sum of Pss (proportional set size: shared pages split between sharers) over "
                 "all workers, each having looked up every word and read its vector"))
    if "jit" in tasks:
        groups.append(_jit_group(data, scratch, jit))
    del cfg
    return groups


def _jit_group(data: Data, scratch: Path, which: Sequence[str]) -> Group:
    """Cold (empty ``NUMBA_CACHE_DIR``) against warm (same directory, second run) per command."""
    jb, jt = data.jit_binary, data.jit_text
    out = scratch / "jit.emb"
    mout = scratch / "jit.npy"
    commands = {
        "convert-binary": ("convert binary", ["convert", str(jb.path), str(out), "--quiet"], out),
        "convert-text": ("convert text", ["convert", str(jt.path), str(out), "--quiet"], out),
        "matrix": ("matrix", ["matrix", str(data.jit_store), str(data.jit_vocab.path), "--out",
                              str(mout), "--fallback", FALLBACKS], mout),
    }
    commands = {k: v for k, v in commands.items() if k in which}
    cs: list[Contender] = []
    for key, (label, args, output) in commands.items():
        cs.append(Contender(f"{key}-cold", f"{label}, cold", "cold",
                            _py("embstore-cli", *args), output, ratio_to=(f"{key}-warm",)))
        cs.append(Contender(f"{key}-warm", f"{label}, cached", "warm",
                            _py("embstore-cli", *args), output, ratio_to=(f"{key}-warm",)))
    cache_root = scratch / "numba-cache"

    def before(group: Group) -> None:
        shutil.rmtree(cache_root, ignore_errors=True)
        for key in commands:
            d = cache_root / key
            d.mkdir(parents=True)
            env = dict(os.environ, NUMBA_CACHE_DIR=str(d))
            for c in group.contenders:
                if c.name.startswith(key + "-"):
                    c.env = env

    def after(group: Group) -> None:
        shutil.rmtree(cache_root, ignore_errors=True)

    return Group("jit", f"JIT compile ({JIT_ROWS:,}-word inputs)", cs, (), inputs=[
        jb.path, jt.path, data.jit_store, data.jit_vocab.path], fixed_order=True,
        before_rep=before, after_rep=after,
        note="embstore commands with an empty NUMBA_CACHE_DIR (everything compiled) and then "
             "with the cache that first run wrote")


# -- running ------------------------------------------------------------------------------------


def _primary(c: Contender, run: dict[str, Any]) -> float:
    if c.primary and all(p in run["phases"] for p in c.primary):
        return round(float(sum(run["phases"][p] for p in c.primary)), 6)
    return float(run["wall_s"])


def run_time_contender(group: Group, c: Contender, rep: int, timeout: float) -> dict[str, Any]:
    if c.output is not None:
        c.output.unlink(missing_ok=True)
    run = measure(c.argv, env=c.env, timeout=timeout)
    run["rep"] = rep
    run["primary_s"] = _primary(c, run)
    # In-process time after the imports; for a floor defined by phases, those phases only.
    work = c.primary or tuple(k for k in run["phases"] if k != "import")
    run["work_s"] = round(sum(run["phases"].get(k, 0.0) for k in work), 6)
    rows = None
    if "report" in run and isinstance(run["report"], dict):
        rows = run["report"].get("rows")
    rows = rows if rows is not None else run["facts"].get("rows")
    if c.expect_rows is not None and run["rc"] == 0 and rows != c.expect_rows:
        run["check_error"] = f"expected {c.expect_rows} rows, got {rows}"
    if c.output is not None:
        if group.check_outputs and run["rc"] == 0 and c.output.exists():
            run["output_digest"] = npy_digest(c.output)
        c.output.unlink(missing_ok=True)
    return run


def run_share_contender(group: Group, c: Contender, rep: int, timeout: float,
                        reserve_mb: float | None = None) -> dict[str, Any]:
    """Start ``group.workers`` workers one after another, then measure all of them at once.

    Workers that each hold a private copy of the vectors (gensim ``load_word2vec_format``)
    are only started while the machine keeps enough memory available; the rest is
    extrapolated from the measured ones (their memory is private, so it adds up linearly).
    """
    n = group.workers
    procs: list[subprocess.Popen[str]] = []
    ready: list[dict[str, Any]] = []
    reserve = reserve_mb if reserve_mb is not None else max(2000.0, 0.1 * _total_mb())
    t0 = time.perf_counter()
    skipped_for_memory = 0
    try:
        for i in range(n):
            if ready and c.share_mode == "gensim":
                # Workers are measured only once all have started, so estimate each one's
                # memory by the peak it reported when ready.
                per = max(r["peak_mb"] for r in ready)
                if available_mb() - 1.2 * per < reserve:
                    skipped_for_memory = n - i
                    break
            p = subprocess.Popen(list(c.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, start_new_session=True)
            procs.append(p)
            timer = threading.Timer(timeout, _kill_group, (p.pid,))
            timer.start()
            try:
                line = ""
                while p.stdout is not None:
                    line = p.stdout.readline()
                    if not line or line.startswith(READY_MARK):
                        break
            finally:
                timer.cancel()
            if not line.startswith(READY_MARK):
                raise RuntimeError(f"share worker {c.name} #{i} exited before it was ready")
            info = json.loads(line[len(READY_MARK):])
            ready.append({"pid": p.pid, "phases": info["phases"], "mem": {},
                          "peak_mb": info.get("rss_mb", {}).get("peak", 0.0)})
        ready_s = time.perf_counter() - t0
        for r in ready:
            r["mem"] = smaps_rollup(r["pid"])
    finally:
        codes = []
        for p in procs:
            if p.stdin is not None:
                with contextlib.suppress(OSError):
                    p.stdin.close()
        for p in procs:
            if p.stdout is not None:
                p.stdout.read()
            codes.append(p.wait())
    k = len(ready)
    pss = [r["mem"].get("Pss", 0.0) for r in ready]
    rss = [r["mem"].get("Rss", 0.0) for r in ready]
    sum_pss = sum(pss)
    run: dict[str, Any] = {
        "rep": rep,
        "rc": max(codes, default=0),
        "workers": k,
        "requested_workers": n,
        "ready_s": round(ready_s, 6),
        "primary_s": round(ready_s, 6),
        "sum_pss_mb": round(sum_pss, 3),
        "sum_rss_mb": round(sum(rss), 3),
        # each worker's own VmHWM (ru_maxrss would start from this runner's size, see measure)
        "max_rss_mb": round(max((r["peak_mb"] for r in ready), default=0.0), 3),
        "per_worker": [{"pid": r["pid"], "phases": r["phases"],
                        **{key: round(val, 3) for key, val in r["mem"].items()}}
                       for r in ready],
    }
    if skipped_for_memory:
        per = statistics.median(pss)
        run["sum_pss_mb_measured"] = run["sum_pss_mb"]
        run["sum_pss_mb"] = round(sum_pss + skipped_for_memory * per, 3)
        run["extrapolated_workers"] = skipped_for_memory
    return run


def _total_mb() -> float:
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / MB
    return 0.0


def run_groups(groups: list[Group], repeat: int, timeout: float, quiet: bool,
               reserve_mb: float | None = None) -> None:
    for rep in range(repeat):
        for g in groups:
            if g.before_rep:
                g.before_rep(g)
            try:
                warm(g.inputs)
                order = list(g.contenders)
                if not g.fixed_order and order:
                    k = rep % len(order)
                    order = order[k:] + order[:k]
                for c in order:
                    if g.kind == "share":
                        run = run_share_contender(g, c, rep, timeout, reserve_mb)
                    else:
                        run = run_time_contender(g, c, rep, timeout)
                    c.runs.append(run)
                    if not quiet:
                        _progress(rep, g, c, run)
            finally:
                if g.after_rep:
                    g.after_rep(g)


def _progress(rep: int, g: Group, c: Contender, run: dict[str, Any]) -> None:
    if g.kind == "share":
        extra = f"{run['workers']} workers, sum Pss {run['sum_pss_mb']:,.0f} MB"
    else:
        extra = f"peak RSS {run['max_rss_mb']:,.0f} MB"
    status = "" if run["rc"] == 0 and "check_error" not in run else \
        f"  FAILED rc={run['rc']} {run.get('check_error', '')}"
    print(f"[rep {rep + 1}] {g.name:<17} {c.label:<32} {run['primary_s']:9.3f} s  {extra}{status}",
          file=sys.stderr, flush=True)


# -- summarising --------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 6) if vals else None


def summarise(groups: list[Group]) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    failures: list[str] = []
    for g in groups:
        by_name = {c.name: c for c in g.contenders}
        gd: dict[str, Any] = {"name": g.name, "title": g.title, "kind": g.kind, "note": g.note,
                              "baselines": list(g.baselines), "contenders": []}
        if g.kind == "share":
            gd["workers"] = g.workers
        for c in g.contenders:
            runs = c.runs
            for r in runs:
                if r["rc"] != 0 or "check_error" in r:
                    failures.append(f"{g.name}/{c.name} rep {r['rep'] + 1}: rc={r['rc']} "
                                    f"{r.get('check_error', '')} {r.get('stderr_tail', '')}")
            ok = [r for r in runs if r["rc"] == 0]
            med: dict[str, Any] = {}
            keys: tuple[str, ...] = ("primary_s", "wall_s", "work_s", "user_s", "sys_s",
                                     "max_rss_mb")
            if g.kind == "share":
                keys = ("primary_s", "ready_s", "sum_pss_mb", "sum_rss_mb", "max_rss_mb")
            for key in keys:
                med[key] = _median([r.get(key) for r in ok])
            if g.kind == "share" and ok:
                per = [w.get("Pss", 0.0) for r in ok for w in r["per_worker"]]
                med["per_worker_pss_mb"] = _median(per)
                med["workers"] = _median([r["workers"] for r in ok])
            elif ok:
                med["rss_growth_mb"] = _median([r["facts"].get("rss_growth_mb") for r in ok])
                phase_names = {p for r in ok for p in r["phases"]}
                med["phases"] = {p: _median([r["phases"].get(p) for r in ok])
                                 for p in sorted(phase_names)}
            ratios: dict[str, Any] = {}
            for base in (c.ratio_to if c.ratio_to is not None else g.baselines):
                bc = by_name.get(base)
                if bc is None:
                    continue
                b_runs = {r["rep"]: r for r in bc.runs if r["rc"] == 0}
                t_ratio: list[float | None] = []
                m_ratio: list[float | None] = []
                mem_key = "sum_pss_mb" if g.kind == "share" else "max_rss_mb"
                for r in ok:
                    br = b_runs.get(r["rep"])
                    if br and br["primary_s"] > 0:
                        t_ratio.append(r["primary_s"] / br["primary_s"])
                    if br and br.get(mem_key):
                        m_ratio.append(r[mem_key] / br[mem_key])
                ratios[base] = {"time": _median(t_ratio), "memory": _median(m_ratio)}
            gd["contenders"].append({
                "name": c.name, "label": c.label, "family": c.family,
                "command": " ".join(Path(a).name if "/" in a else a for a in c.argv[1:]),
                "primary": "+".join(c.primary) if c.primary else "wall",
                "runs": runs, "median": med, "ratios": ratios,
            })
        if g.check_outputs:
            digests = {d for c in gd["contenders"] for r in c["runs"]
                       for d in [r.get("output_digest")] if d}
            gd["outputs_identical"] = len(digests) == 1 if digests else None
            if len(digests) > 1:
                failures.append(f"{g.name}: the tools' matrices differ "
                                f"({len(digests)} distinct outputs)")
        out.append(gd)
    return out, failures


def machine_info() -> dict[str, Any]:
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for pkg in ("numpy", "numba", "gensim", "embstore", "llvmlite"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    commit = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "embstore"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if commit and dirty:
            commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(_total_mb() * MB / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        **versions,
        "embstore_commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- reporting ----------------------------------------------------------------------------------


def _f(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _ratio(c: dict[str, Any], base: str, key: str = "time") -> str:
    r = c["ratios"].get(base, {}).get(key)
    return "-" if r is None else f"{r:.2f}x"


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; Python {m['python']}, "
            f"NumPy {m['numpy']}, Numba {m['numba']}, gensim {m['gensim']}, embstore "
            f"{m['embstore']} ({m['embstore_commit'] or 'unknown commit'}); {m['date']}")


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    lines = [
        f"# embstore benchmarks: {cfg['size']} ({cfg['words']:,} words x {cfg['dim']})",
        "",
        f"Machine: {machine_line(m)}.",
        f"Median of {cfg['repeat']} repetition(s); each ratio is computed within a repetition "
        "(same moment, same page-cache state), then the median is taken.  A ratio below 1 "
        "means less time (or memory) than the baseline.",
        "",
    ]
    for g in results["groups"]:
        lines += [f"## {g['title']}", "", g["note"] + ".", ""]
        bases = g["baselines"]
        labels = {c["name"]: c["label"] for c in g["contenders"]}
        if g["kind"] == "share":
            lines += ["| Tool | Workers | Sum of Pss (MB) | Pss per worker (MB) | Sum of RSS (MB) "
                      "| Ready after (s) | Memory vs gensim |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for c in g["contenders"]:
                md = c["median"]
                runs = [r for r in c["runs"] if r["rc"] == 0]
                extra = ""
                if runs and runs[0].get("extrapolated_workers"):
                    extra = (f" ({runs[0]['workers']} measured, {runs[0]['extrapolated_workers']}"
                             " extrapolated: not enough free RAM)")
                lines.append(
                    f"| {c['label']} | {g['workers']}{extra} | {_f(md.get('sum_pss_mb'), 0)} | "
                    f"{_f(md.get('per_worker_pss_mb'), 0)} | {_f(md.get('sum_rss_mb'), 0)} | "
                    f"{_f(md.get('ready_s'))} | {_ratio(c, 'gensim', 'memory')} |")
        elif g["name"] == "jit":
            lines += ["| Command | Time (s) | Peak RSS (MB) | Cold / cached |",
                      "|---|---:|---:|---:|"]
            for c in g["contenders"]:
                md = c["median"]
                base = c["name"].rsplit("-", 1)[0] + "-warm"
                lines.append(f"| {c['label']} | {_f(md.get('primary_s'))} | "
                             f"{_f(md.get('max_rss_mb'), 0)} | {_ratio(c, base)} |")
        else:
            extra_cols = "| RSS growth (MB) " if g["name"] == "open" else ""
            head = ("| Tool | Time (s) | In-process work (s) | Peak RSS (MB) | CPU sys (s) "
                    + extra_cols + "".join(f"| Time vs {labels.get(b, b)} " for b in bases)
                    + ("| Peak RSS vs gensim " if "gensim" in bases else "") + "|")
            ncols = head.count("|") - 1
            lines += [head, "|---" + "|---:" * (ncols - 1) + "|"]
            for c in g["contenders"]:
                md = c["median"]
                row = (f"| {c['label']} | {_f(md.get('primary_s'))} | {_f(md.get('work_s'))} | "
                       f"{_f(md.get('max_rss_mb'), 0)} | {_f(md.get('sys_s'))} ")
                if g["name"] == "open":
                    row += f"| {_f(md.get('rss_growth_mb'), 1)} "
                row += "".join(f"| {_ratio(c, b)} " for b in bases)
                if "gensim" in bases:
                    row += f"| {_ratio(c, 'gensim', 'memory')} "
                lines.append(row + "|")
            if g.get("outputs_identical") is not None:
                lines += ["", "All tools wrote the same matrix." if g["outputs_identical"]
                          else "**The tools' matrices differ.**"]
        lines.append("")
    if results["failures"]:
        lines += ["## Failures", ""] + [f"- {f}" for f in results["failures"]] + [""]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    """Time (top) and memory (bottom) per task group, one bar per tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = results["groups"]
    ncol = max(1, len(groups))
    fig, axes = plt.subplots(2, ncol, figsize=(3.1 * ncol + 1, 8.2), squeeze=False)
    for j, g in enumerate(groups):
        cs = g["contenders"]
        names = [c["label"] for c in cs]
        colors = [FAMILY_COLORS.get(c["family"], "#999999") for c in cs]
        share = g["kind"] == "share"
        tvals = [c["median"].get("primary_s") or 0.0 for c in cs]
        mvals = [c["median"].get("sum_pss_mb" if share else "max_rss_mb") or 0.0 for c in cs]
        for i, (vals, unit) in enumerate(((tvals, "s"), (mvals, "MB"))):
            ax = axes[i][j]
            x = range(len(cs))
            ax.bar(x, vals, color=colors)
            ax.set_xticks(list(x), names, rotation=55, ha="right", fontsize=7)
            positive = [v for v in vals if v > 0]
            if positive and max(positive) / min(positive) > 30:
                ax.set_yscale("log")
            for xi, v in zip(x, vals, strict=True):
                ax.annotate(_f(v, 2 if unit == "s" else 0), (xi, v), ha="center",
                            va="bottom", fontsize=6.5)
            ax.tick_params(axis="y", labelsize=7)
            ax.margins(y=0.12)
            if i == 0:
                ax.set_title(g["title"], fontsize=8.5)
        axes[0][j].set_ylabel("time until all ready (s)" if share else "time (s)", fontsize=8)
        axes[1][j].set_ylabel("sum of Pss (MB)" if share else "peak RSS (MB)", fontsize=8)
    from matplotlib.patches import Patch

    used = [f for f in FAMILY_COLORS if any(c["family"] == f for g in groups
                                            for c in g["contenders"])]
    fig.legend(handles=[Patch(color=FAMILY_COLORS[f], label=FAMILY_LABELS[f]) for f in used],
               loc="lower center", ncol=len(used), fontsize=8, frameon=False)
    cfg = results["config"]
    m = results["machine"]
    fig.suptitle(
        f"embstore vs gensim vs floors: {cfg['size']} ({cfg['words']:,} words x {cfg['dim']}), "
        f"median of {cfg['repeat']} run(s), whole processes\n{machine_line(m)}", fontsize=9.5)
    fig.tight_layout(rect=(0, 0.04, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Whole-process benchmarks: embstore vs gensim.")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny",
                   help="tiny (1k words), small (100k), 1m, 3m (GoogleNews scale); default tiny")
    p.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    p.add_argument("--tasks", default=",".join(TASK_GROUPS),
                   help=f"comma-separated subset of {','.join(TASK_GROUPS)}")
    p.add_argument("--workers", type=int, help="processes in the share task (default per size)")
    p.add_argument("--gensim-text-rows", type=generate.parse_count,
                   help="rows of text gensim parses (default per size: all up to 1m, 200k at 3m)")
    p.add_argument("--jit", default=",".join(JIT_COMMANDS),
                   help=f"commands timed cold and cached in the jit task (default "
                        f"{','.join(JIT_COMMANDS)})")
    p.add_argument("--vocab-sizes", default="20k,400k",
                   help="vocabulary sizes of the matrix task (default 20k,400k)")
    p.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    p.add_argument("--data-dir", type=Path, default=None,
                   help="cache of generated inputs (default benchmarks/data or "
                        "$EMBSTORE_BENCH_DATA)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="directory for the results (default benchmarks/results)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds per process")
    p.add_argument("--share-reserve-mb", type=float, default=None,
                   help="share task: start no further private-copy (gensim) worker once "
                        "available memory would drop below this (default max(2 GB, 10%% of RAM))")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    args.task_list = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(args.task_list) - set(TASK_GROUPS))
    if unknown:
        p.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASK_GROUPS)}")
    args.jit_list = [t for t in args.jit.split(",") if t]
    unknown = sorted(set(args.jit_list) - set(JIT_COMMANDS))
    if unknown:
        p.error(f"unknown --jit command(s) {', '.join(unknown)}")
    try:
        args.vocab_list = tuple(generate.parse_count(v) for v in args.vocab_sizes.split(",") if v)
    except ValueError as exc:
        p.error(str(exc))
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = SIZES[args.size]
    cap = cfg.gensim_text_rows
    if args.gensim_text_rows is not None:
        cap = args.gensim_text_rows if args.gensim_text_rows < cfg.text_rows else None
    cfg = SizeConfig(cfg.words, cfg.text_rows, cap, cfg.workers, args.vocab_list)
    workers = args.workers or cfg.workers
    data_dir = Path(args.data_dir or generate.default_data_dir())
    data_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = prepare(args.size, cfg, args.seed, data_dir, args.quiet)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=data_dir))
    try:
        groups = build_groups(data, args.task_list, scratch, workers, args.jit_list)
        run_groups(groups, args.repeat, args.timeout, args.quiet, args.share_reserve_mb)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary, failures = summarise(groups)
    results = {
        "schema": SCHEMA,
        "machine": machine_info(),
        "config": {
            "size": args.size, "words": cfg.words, "dim": generate.DIM, "repeat": args.repeat,
            "seed": args.seed, "workers": workers, "text_rows": cfg.text_rows,
            "gensim_text_rows": cfg.gensim_text_rows or cfg.text_rows,
            "tasks": args.task_list, "jit": args.jit_list,
            "vocab_sizes": list(cfg.vocab_sizes), "command": " ".join(sys.argv),
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "data": {
            "binary": {"path": str(data.binary.path), **data.binary.meta},
            "text": {"path": str(data.text.path), **data.text.meta},
            "text_cap": ({"path": str(data.text_cap.path), **data.text_cap.meta}
                         if data.text_cap else None),
            "store": {"path": str(data.store), "bytes": data.store.stat().st_size},
            "vocabs": {generate.count_label(k): v.meta for k, v in data.vocabs.items()},
            "preparation": data.prep,
        },
        "groups": summary,
        "failures": failures,
    }
    stem = f"bench-{args.size}"
    json_path = args.out / f"{stem}.json"
    md_path = args.out / f"{stem}.md"
    png_path = args.out / f"{stem}.png"
    json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    text = markdown(results)
    md_path.write_text(text, encoding="utf-8")
    chart(results, png_path)
    print(text)
    print(f"wrote {json_path}, {md_path}, {png_path}", file=sys.stderr)
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
