"""Helpers shared by the reliability tests and the child processes they start.

Anything that could crash (a damaged store read by compiled kernels, a conversion killed
midway) runs in a child process, so that a segfault, SIGBUS, abort or hang is reported as a
test failure with the case that caused it instead of taking the test runner down.  Children
import this module (``tests/reliability`` is put on their ``PYTHONPATH``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable


def embstore_command() -> str | None:
    """The installed ``embstore`` console script: beside this interpreter first (a virtual
    environment used without being activated), then on ``PATH``."""
    import shutil

    return (shutil.which("embstore", path=os.path.dirname(sys.executable))
            or shutil.which("embstore"))

# ---------------------------------------------------------------------------------------------
# Child processes


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    env["PYTHONFAULTHANDLER"] = "1"
    env.pop("EMBSTORE_SERIAL", None)
    env.update(extra)
    return env


@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str
    maxrss_mb: float
    seconds: float
    timed_out: bool

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None

    def describe(self) -> str:
        how = "timed out" if self.timed_out else (
            f"killed by signal {signal.Signals(self.signal).name}" if self.signal
            else f"exit {self.returncode}")
        return f"{how} after {self.seconds:.1f}s\n--- stdout\n{self.stdout[-3000:]}\n" \
               f"--- stderr\n{self.stderr[-5000:]}"


# Runs one command and writes getrusage(RUSAGE_CHILDREN).ru_maxrss (KiB) to argv[1].  Linux
# carries a process's peak RSS across exec, so a child started straight from the test process
# would report at least the test process's own peak; a child of this small interpreter starts
# from about 10 MB.  The child's status is passed on, signals included.
_MEASURE = r"""
import os, resource, signal, subprocess, sys
p = subprocess.run(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
if p.returncode < 0:
    signal.signal(-p.returncode, signal.SIG_DFL)
    os.kill(os.getpid(), -p.returncode)
sys.exit(p.returncode)
"""


def run_child(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None,
              stdin: str | None = None, cwd: str | os.PathLike[str] | None = None,
              preexec: Any = None, measure_rss: bool = False) -> ChildResult:
    """Run ``cmd`` and return its output, status and (with ``measure_rss``) peak RSS.

    With ``measure_rss`` the command runs under a small wrapper interpreter that reports
    ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of its only child (see ``_MEASURE``); otherwise
    ``maxrss_mb`` is the child's ``wait4`` figure, which includes this process's own peak.
    """
    rss_file = None
    if measure_rss:
        fd, rss_file = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        cmd = [PY, "-c", _MEASURE, rss_file, *cmd]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                env=env or child_env(), cwd=cwd, preexec_fn=preexec,
                                start_new_session=True)
        if stdin is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # the wrapper's child too
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - t0
        maxrss_kb = usage.ru_maxrss
        if rss_file is not None:
            text = Path(rss_file).read_text().strip()
            os.unlink(rss_file)
            maxrss_kb = int(text) if text else -1
        out.seek(0)
        err.seek(0)
        return ChildResult(proc.returncode, out.read().decode("utf-8", "replace"),
                           err.read().decode("utf-8", "replace"), maxrss_kb / 1024,
                           seconds, timed_out)


def run_python(code: str, *args: str, timeout: float = 120, **kw: Any) -> ChildResult:
    return run_child([PY, "-c", code, *args], timeout=timeout, **kw)


def last_json(text: str) -> Any:
    """The JSON document on the last non-empty line of a child's stdout."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# Input files and stores

_PIECES = ["the", "of", "und", "été", "naïve", "中文", "слово", "λόγος", "😀", "x", "New_York",
           "can't", "e-mail", "Ωmega", "ﬁ", "ß", "İ", "a\u0301"]


def make_words(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct words, mixed scripts and case (some differ only by case)."""
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(words) < n:
        w = rng.choice(_PIECES) + str(i)
        if rng.random() < 0.2:
            w = w.upper() if rng.random() < 0.5 else w.capitalize()
        i += 1
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def make_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, size=(n, dim)).astype(np.float32)


def write_text(path: Path, words: list[str], vectors: np.ndarray, header: bool = True) -> None:
    """word2vec text whose values parse back to exactly ``vectors`` (repr of the double)."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        if header:
            f.write(f"{len(words)} {vectors.shape[1]}\n")
        for w, row in zip(words, vectors.tolist(), strict=True):
            f.write(w + " " + " ".join(map(repr, row)) + "\n")


def write_binary(path: Path, words: list[str], vectors: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for w, row in zip(words, vectors, strict=True):
            f.write(w.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")


def make_store(directory: Path, n: int, dim: int, seed: int = 0,
               name: str = "base.emb") -> tuple[Path, list[str], np.ndarray]:
    import embstore

    words = make_words(n, seed)
    vectors = make_vectors(n, dim, seed)
    src = directory / (name + ".txt")
    write_text(src, words, vectors)
    dst = directory / name
    embstore.convert(src, dst, quiet=True)
    src.unlink()
    return dst, words, vectors


# ---------------------------------------------------------------------------------------------
# Store layout, independent of embstore.format (which the tests check it against)

HEADER_LENGTH = 4096
OFF_MAJOR, OFF_MINOR, OFF_HEADER_LENGTH = 8, 10, 12
OFF_FILE_LENGTH, OFF_ROWS, OFF_DIM = 16, 24, 32
OFF_DTYPE, OFF_HASH, OFF_SLOTS = 40, 44, 48
OFF_BLOCK_LOG2, OFF_SECTIONS, OFF_FLAGS, OFF_CRC = 56, 60, 64, 68
FIXED_END = 72
SECTION_TABLE = 128
SECTION_SIZE = 32
SECTION_NAMES = ("vectors", "word_offsets", "word_bytes", "index", "stats", "metadata",
                 "checksums")
BLOCK = 1 << 20

# (offset, struct format) of every header field a reader must honour
HEADER_FIELDS = {
    "major": (OFF_MAJOR, "<H"), "minor": (OFF_MINOR, "<H"),
    "header_length": (OFF_HEADER_LENGTH, "<I"), "file_length": (OFF_FILE_LENGTH, "<Q"),
    "n_rows": (OFF_ROWS, "<Q"), "dim": (OFF_DIM, "<Q"), "dtype": (OFF_DTYPE, "<I"),
    "hash_id": (OFF_HASH, "<I"), "n_slots": (OFF_SLOTS, "<Q"),
    "block_log2": (OFF_BLOCK_LOG2, "<I"), "n_sections": (OFF_SECTIONS, "<I"),
    "flags": (OFF_FLAGS, "<I"),
}
for _i, _name in enumerate(SECTION_NAMES):
    _base = SECTION_TABLE + _i * SECTION_SIZE
    HEADER_FIELDS[f"{_name}.kind"] = (_base, "<I")
    HEADER_FIELDS[f"{_name}.reserved1"] = (_base + 4, "<I")
    HEADER_FIELDS[f"{_name}.offset"] = (_base + 8, "<Q")
    HEADER_FIELDS[f"{_name}.length"] = (_base + 16, "<Q")
    HEADER_FIELDS[f"{_name}.reserved2"] = (_base + 24, "<Q")

# Fields a reader ignores by design (forward compatibility); forging them changes nothing.
BENIGN_FIELDS = {"minor", "flags"} | {f"{n}.reserved{k}" for n in SECTION_NAMES for k in (1, 2)}


def sections(data: bytes) -> dict[str, tuple[int, int]]:
    """``name -> (offset, length)`` from a store's section table."""
    out = {}
    for i, name in enumerate(SECTION_NAMES):
        _kind, _r, off, length, _r2 = struct.unpack_from("<IIQQQ", data,
                                                         SECTION_TABLE + i * SECTION_SIZE)
        out[name] = (off, length)
    return out


def fix_header_crc(buf: bytearray) -> None:
    struct.pack_into("<I", buf, OFF_CRC, 0)
    struct.pack_into("<I", buf, OFF_CRC, zlib.crc32(bytes(buf[:HEADER_LENGTH])))


def fix_checksums(buf: bytearray) -> None:
    """Recompute every block checksum (XXH64 via the xxhash package) and the header CRC, as
    a forger would: the damage then passes every integrity check."""
    import xxhash

    off, length = sections(bytes(buf))["checksums"]
    body = bytes(buf[HEADER_LENGTH:off])
    for i in range(length // 8):
        digest = xxhash.xxh64_intdigest(body[i * BLOCK:(i + 1) * BLOCK], seed=0)
        struct.pack_into("<Q", buf, off + 8 * i, digest)
    fix_header_crc(buf)


def apply_damage(base: bytes, spec: dict[str, Any]) -> bytes:
    """The bytes of ``base`` with the damage ``spec`` applied (see test_damaged_stores)."""
    kind = spec["kind"]
    buf = bytearray(base)
    if kind == "flip":
        buf[spec["pos"]] ^= 1 << spec["bit"]
    elif kind == "truncate":
        del buf[spec["size"]:]
    elif kind == "append":
        buf += bytes(spec["fill"] for _ in range(spec["len"]))
    elif kind == "overwrite":
        pos, n = spec["pos"], spec["len"]
        n = min(n, len(buf) - pos)
        if spec["fill"] == "zeros":
            fill = bytes(n)
        elif spec["fill"] == "ff":
            fill = b"\xff" * n
        else:
            fill = random.Random(spec["seed"]).randbytes(n)
        buf[pos:pos + n] = fill
    elif kind == "header":
        off, fmt = HEADER_FIELDS[spec["field"]]
        value = spec["value"] % (1 << (8 * struct.calcsize(fmt)))
        struct.pack_into(fmt, buf, off, value)
        if spec.get("recrc", True):
            fix_header_crc(buf)
    elif kind == "bytes":
        # raw bytes written at ``pos`` (targeted hostile content), checksums optionally forged
        data = bytes.fromhex(spec["hex"])
        buf[spec["pos"]:spec["pos"] + len(data)] = data
    else:
        raise ValueError(kind)
    if kind == "bytes" and spec.get("recrc"):
        fix_header_crc(buf)
    if spec.get("forge"):
        fix_checksums(buf)
    return bytes(buf)


# ---------------------------------------------------------------------------------------------
# Probing a damaged store (runs in a child process)

ALLOWED = ("FormatError",)


def _every_read_path(path: str, words: list[str], rng: random.Random) -> list[str]:
    """Exercise every read path of a possibly damaged store.

    Returns the failures: any exception other than FormatError (or KeyError where a word
    may be absent), or a result outside the store's bounds.
    """
    import embstore
    from embstore import FormatError
    from embstore.cli import main as cli_main

    bad: list[str] = []

    def attempt(what: str, fn: Any, *also: type[BaseException]) -> Any:
        try:
            return fn()
        except FormatError:
            return None
        except also:
            return None
        except Exception:
            bad.append(f"{what}: {traceback.format_exc(limit=6)}")
            return None

    try:
        store = embstore.open(path)
    except FormatError:
        store = None
    except Exception:
        return [f"open: {traceback.format_exc(limit=6)}"]
    sample = [*rng.sample(words, min(40, len(words))), "__absent__", "", "THE0", "é"]
    if store is not None:
        n = len(store)
        for w in sample:
            attempt("in", lambda w=w: w in store)
            attempt("get", lambda w=w: store.get(w))
            attempt("[]", lambda w=w: store[w], KeyError)
            attempt("get_index", lambda w=w: store.get_index(w), KeyError)
            attempt("words.index", lambda w=w: store.words.index(w), ValueError)
        rows = attempt("lookup", lambda: store.lookup([*words, "__absent__"]))
        if rows is not None and ((rows < -1) | (rows >= n)).any():
            bad.append(f"lookup returned rows outside [-1, {n})")
        vocab = {w: i + 1 for i, w in enumerate(words[:500])}
        vocab.update({"__absent_1__": 501, "__absent_2__": 502})  # rows that get the OOV fill
        for oov in ("zeros", "mean", "random"):
            res = attempt(f"build_matrix {oov}", lambda oov=oov: store.build_matrix(
                vocab, oov=oov, fallbacks=["lower", "title"]))
            if res is not None and res.matrix.shape != (503, store.dim):
                bad.append(f"build_matrix shape {res.matrix.shape}")
        attempt("build_matrix tokens", lambda: store.build_matrix(["", "[UNK]", *words[:50]]))
        attempt("iterate words", lambda: list(store.words))
        for i in (0, 1, n // 2, n - 1, -1, -n):
            attempt(f"words[{i}]", lambda i=i: store.words[i])
        attempt("words[2:40]", lambda: store.words[2:40])
        attempt("words[::7]", lambda: store.words[::7])
        attempt("words repr", lambda: repr(store.words))
        attempt("metadata", lambda: store.metadata)
        attempt("mean/std", lambda: float(np.asarray(store.mean).sum() + np.asarray(store.std).sum()))
        attempt("vectors", lambda: float(np.asarray(store.vectors, dtype=np.float64).sum()))
        attempt("repr", lambda: repr(store))
        attempt("close", store.close)
    sink = io.StringIO()
    for argv in (["info", path], ["info", "--json", path], ["get", path, words[0], "__absent__"]):
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = attempt(" ".join(argv[:1]), lambda argv=argv: cli_main(argv))
        if code not in (0, 1, None):
            bad.append(f"cli {argv[0]} exit {code}")
    return bad


def rewrite_with_metadata(src: Path, dst: Path, metadata: dict[str, Any]) -> None:
    """Copy a store with different metadata, through embstore's own writer: a store whose
    metadata section is large enough for hostile JSON (deep nesting, huge numbers)."""
    import embstore
    from embstore._build.writer import StoreWriter

    with embstore.open(src) as store, StoreWriter(dst, store.dim) as w:
        w.write_vectors(np.array(store.vectors))
        arrays = store.vocab_arrays
        w.finish(np.array(arrays.data), np.array(arrays.offsets), np.array(arrays.index),
                 metadata)


def probe_main() -> None:
    """Child entry point: read a job from stdin, damage, probe and verify each store.

    Prints ``S <i>`` before case ``i`` and ``R <json>`` after it, flushing each line, so
    the parent can tell which case a crash happened in and resume after it.
    """
    import faulthandler

    import embstore
    from embstore.cli import main as cli_main

    job = json.loads(sys.stdin.read())
    base = Path(job["base"]).read_bytes()
    words = job["words"]
    workdir = Path(job["workdir"])
    timeout = job.get("case_timeout", 60)
    for i in range(job["start"], len(job["specs"])):
        spec = job["specs"][i]
        print(f"S {i}", flush=True)
        faulthandler.dump_traceback_later(timeout, exit=True)
        data = apply_damage(base, spec)
        path = workdir / f"damaged-{i}.emb"
        path.write_bytes(data)
        rng = random.Random(i)
        bad = _every_read_path(str(path), words, rng)
        try:
            report = embstore.verify(path)
            verify_ok = report.ok
        except Exception:
            bad.append(f"verify: {traceback.format_exc(limit=6)}")
            verify_ok = None
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                cli_code = cli_main(["verify", str(path)])
            except Exception:
                bad.append(f"cli verify: {traceback.format_exc(limit=6)}")
                cli_code = None
        same = None
        if spec.get("benign"):
            same = _reads_like(str(path), job["base"])
        faulthandler.cancel_dump_traceback_later()
        path.unlink()
        result = {"i": i, "bad": bad, "verify_ok": verify_ok, "cli_verify": cli_code,
                  "changed": data != base, "same_as_base": same}
        print("R " + json.dumps(result), flush=True)


def _reads_like(path: str, base: str) -> bool:
    import embstore

    a, b = embstore.open(path), embstore.open(base)
    return (list(a.words) == list(b.words) and np.array_equal(a.vectors, b.vectors)
            and a.metadata == b.metadata)


def run_probes(base: Path, words: list[str], specs: list[dict[str, Any]], workdir: Path, *,
               env: dict[str, str] | None = None, timeout: float = 600,
               case_timeout: float = 60) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Probe every damage spec in child processes; a crashed child is restarted after the
    case that crashed it.  Returns the per-case results and the crash descriptions."""
    results: dict[int, dict[str, Any]] = {}
    crashes: list[str] = []
    start = 0
    deadline = time.monotonic() + timeout
    while start < len(specs):
        job = {"base": str(base), "words": words, "specs": specs, "workdir": str(workdir),
               "start": start, "case_timeout": case_timeout}
        res = run_python("import relutil; relutil.probe_main()", stdin=json.dumps(job),
                         timeout=max(1.0, deadline - time.monotonic()), env=env)
        last_started = None
        for line in res.stdout.splitlines():
            if line.startswith("S "):
                last_started = int(line[2:])
            elif line.startswith("R "):
                r = json.loads(line[2:])
                results[r["i"]] = r
        if res.returncode == 0 and not res.timed_out:
            break
        if last_started is None or last_started in results:
            crashes.append(f"probe child failed outside a case: {res.describe()}")
            break
        crashes.append(f"case {last_started} {specs[last_started]}: {res.describe()}")
        if res.timed_out:
            break
        start = last_started + 1
    return results, crashes


def env_int(name: str, default: int) -> int:
    """Campaign sizes can be raised for long runs, e.g. ``EMBSTORE_FUZZ_CASES=100000``."""
    return int(os.environ.get(name, default))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
