"""Child-process side of the crash tests: kill conversions and check what they leave.

Run as ``python -c "import crash_worker; crash_worker.main()"`` with a JSON job on stdin.  The
worker imports embstore once, then forks one child per trial (so a trial costs a
conversion, not an interpreter start) and checks the destination directory after each:

* ``kills``: the child converts; the worker SIGKILLs it after a random delay, or the child
  SIGKILLs itself right before or after its n-th call of ``os.pwrite``/``link``/``replace``/
  ``unlink``/``fsync`` (from a census of one full run: every publishing call, and a sample
  of the writes unless ``all_writes`` is set).
* ``fsize``: the child lowers ``RLIMIT_FSIZE`` (Python ignores SIGXFSZ, so writes past the
  limit fail with EFBIG) and must fail with StoreWriteError, leaving nothing behind.

After every trial the destination must hold nothing, or a complete store (the new one, or
with ``force`` the previous one, byte for byte), and any named temporary left over must
belong to a dead process.  A final conversion to the same place must work and leave no
temporary at all.  The summary is printed as JSON on the last line.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

TMP_TAG = ".embstore-tmp-"
HOOKED = ("pwrite", "link", "replace", "unlink", "fsync")


def _install_hooks(kill_at: tuple[int, str] | None, census: list[str] | None) -> None:
    """Wrap the os calls a store writer makes; SIGKILL self at call ``kill_at[0]``."""
    counter = [0]
    for name in HOOKED:
        real = getattr(os, name)

        def hooked(*a: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            i = counter[0]
            counter[0] += 1
            if census is not None:
                census.append(_name)
            if kill_at is not None and kill_at[0] == i and kill_at[1] == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            result = _real(*a, **kw)
            if kill_at is not None and kill_at[0] == i and kill_at[1] == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(os, name, hooked)


def _child(job: dict[str, Any], trial: dict[str, Any], census_path: str | None) -> None:
    """Body of a forked trial; never returns."""
    import embstore

    code = 0
    try:
        if job["named_tmp"]:
            os.environ["EMBSTORE_NO_TMPFILE"] = "1"
        else:
            os.environ.pop("EMBSTORE_NO_TMPFILE", None)
        census: list[str] | None = [] if census_path else None
        kill_at = tuple(trial["kill_at"]) if trial.get("kill_at") else None
        _install_hooks(kill_at, census)  # type: ignore[arg-type]
        limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        if trial.get("fsize"):
            # the soft limit only, so it can be lifted again to report the outcome
            resource.setrlimit(resource.RLIMIT_FSIZE, (trial["fsize"], limits[1]))
        try:
            embstore.convert(job["src"], job["dst"], force=job["force"], quiet=True)
        except embstore.StoreWriteError as exc:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            code = 10 if "cannot write the store" in str(exc) else 11
            Path(job["dst"] + ".err").write_text(str(exc))
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        if census is not None and census_path:
            Path(census_path).write_text(json.dumps(census))
    except BaseException:
        resource.setrlimit(resource.RLIMIT_FSIZE, resource.getrlimit(resource.RLIMIT_FSIZE)[1:] * 2)
        Path(job["dst"] + ".err").write_text(traceback.format_exc())
        code = 3
    os._exit(code)


class Checker:
    def __init__(self, job: dict[str, Any]) -> None:
        import embstore

        self.job = job
        self.dst = Path(job["dst"])
        self.old = self.dst.read_bytes() if job["force"] else None
        ref = embstore.open(job["reference"])
        self.new_words = list(ref.words)
        self.new_vectors = np.array(ref.vectors)
        self.problems: list[str] = []
        self.leftover_temporaries = 0

    def state(self, what: str) -> str:
        """Classify the destination: 'absent', 'old' or 'new'; record anything else."""
        import embstore

        if not self.dst.exists():
            if self.old is not None:
                self.problems.append(f"{what}: the previous store disappeared")
            return "absent"
        data = self.dst.read_bytes()
        if self.old is not None and data == self.old:
            return "old"
        report = embstore.verify(self.dst)
        if not report.ok:
            self.problems.append(f"{what}: a damaged store at the destination: {report}")
            return "damaged"
        with embstore.open(self.dst) as s:
            if list(s.words) != self.new_words or not np.array_equal(s.vectors, self.new_vectors):
                self.problems.append(f"{what}: the store at the destination has other content")
        return "new"

    def temporaries(self, what: str) -> list[str]:
        """Named temporaries next to the destination; all must belong to dead processes."""
        prefix = f".{self.dst.name}{TMP_TAG}"
        names = [n for n in os.listdir(self.dst.parent) if n.startswith(prefix)]
        for n in names:
            pid = int(n[len(prefix):].split("-", 1)[0])
            try:
                os.kill(pid, 0)
                self.problems.append(f"{what}: temporary {n} belongs to live process {pid}")
            except ProcessLookupError:
                pass
        others = [n for n in os.listdir(self.dst.parent)
                  if n not in (self.dst.name, Path(self.job["src"]).name) and not n.startswith(prefix)
                  and not n.endswith(".err") and n != Path(self.job["reference"]).name]
        if others:
            self.problems.append(f"{what}: unexpected files {others}")
        self.leftover_temporaries += len(names)
        return names

    def reset(self) -> None:
        """Put the destination back as it was before the trial."""
        if self.old is None:
            self.dst.unlink(missing_ok=True)
        elif self.dst.read_bytes() != self.old:
            tmp = self.dst.with_name(self.dst.name + ".restore")
            tmp.write_bytes(self.old)
            os.replace(tmp, self.dst)
        Path(self.job["dst"] + ".err").unlink(missing_ok=True)


def _run_trial(job: dict[str, Any], trial: dict[str, Any], census_path: str | None = None
               ) -> tuple[int, float]:
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(job, trial, census_path)
    delay = trial.get("delay")
    if delay is not None:
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):  # it may have finished already
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - t0


def kills(job: dict[str, Any]) -> dict[str, Any]:
    import embstore

    chk = Checker(job)
    rng = random.Random(job["seed"])
    # Import and load in the parent what every forked trial runs, so that trials time the
    # conversion itself: random kill moments must span it, publication included.
    warm = Path(job["dst"]).with_name("warm-up.emb")
    embstore.convert(job["src"], warm, quiet=True, force=True)
    warm.unlink()
    census_path = job["dst"] + ".census"
    code, full = _run_trial(job, {}, census_path)  # a complete run: timing and call census
    if code != 0:
        return {"problems": [f"the reference run failed: {code} "
                             f"{Path(job['dst'] + '.err').read_text() if code == 3 else ''}"]}
    calls = json.loads(Path(census_path).read_text())
    os.unlink(census_path)
    chk.state("reference run")
    chk.reset()
    # Every publishing call (link, replace, unlink, fsync) and a sample of the writes; all
    # writes with EMBSTORE_KILL_ALL_WRITES=1 (the writes differ only in what they write).
    writes = [i for i, c in enumerate(calls) if c == "pwrite"]
    points = [i for i, c in enumerate(calls) if c != "pwrite"]
    if job.get("all_writes") or len(writes) <= 8:
        points += writes
    else:
        points += writes[:2] + writes[-3:] + rng.sample(writes[2:-3], 3)
    trials: list[dict[str, Any]] = [{"kill_at": [i, when]} for i in sorted(points)
                                    for when in ("before", "after")]
    trials += [{"delay": rng.uniform(0, 1.2 * full)} for _ in range(job["random_kills"])]
    outcomes: dict[str, int] = {}
    killed = 0
    for n, trial in enumerate(trials):
        code, _ = _run_trial(job, trial)
        what = f"trial {n} {trial}"
        if code == -signal.SIGKILL:
            killed += 1
        elif code != 0:
            err = Path(job["dst"] + ".err")
            chk.problems.append(f"{what}: child exit {code}: {err.read_text() if err.exists() else ''}")
        st = chk.state(what)
        outcomes[st] = outcomes.get(st, 0) + 1
        chk.temporaries(what)
        chk.reset()
    # a later conversion to the same place works and sweeps the dead processes' temporaries
    os.environ.pop("EMBSTORE_NO_TMPFILE", None)
    embstore.convert(job["src"], job["dst"], force=True, quiet=True)
    final = chk.state("final conversion")
    left = chk.temporaries("final conversion")
    if left:
        chk.problems.append(f"temporaries left after the final conversion: {left}")
    return {"trials": len(trials), "killed": killed, "calls_in_a_run": len(calls),
            "call_kinds": sorted(set(calls)), "full_run_seconds": round(full, 3),
            "outcomes": outcomes, "leftover_temporaries_swept": chk.leftover_temporaries,
            "final": final, "problems": chk.problems[:30]}


def fsize(job: dict[str, Any]) -> dict[str, Any]:
    chk = Checker(job)
    ref_size = Path(job["reference"]).stat().st_size
    limits = sorted({1, 4095, 4096, 4097, 65536, ref_size // 3, ref_size // 2, ref_size - 4096,
                     ref_size - 9, ref_size - 1, *job.get("extra_limits", [])})
    results: dict[str, int] = {}
    for lim in limits:
        if lim <= 0:
            continue
        code, _ = _run_trial(job, {"fsize": lim})
        what = f"RLIMIT_FSIZE={lim}"
        err = Path(job["dst"] + ".err")
        msg = err.read_text() if err.exists() else ""
        if code != 10:
            chk.problems.append(f"{what}: expected StoreWriteError, child exit {code}: {msg}")
        elif "File too large" not in msg:
            chk.problems.append(f"{what}: unclear message: {msg}")
        st = chk.state(what)
        if st not in ("absent", "old"):
            chk.problems.append(f"{what}: destination is {st} after a failed write")
        if chk.temporaries(what):
            chk.problems.append(f"{what}: a failed write left a temporary")
        results[str(lim)] = code
        chk.reset()
    code, _ = _run_trial(job, {})
    if code != 0 or chk.state("conversion without a limit") != "new":
        chk.problems.append("a conversion without the limit failed afterwards")
    return {"limits": results, "problems": chk.problems[:30]}


def main() -> None:
    job = json.loads(sys.stdin.read())
    # Load the kernels here, so that forked children find them loaded: the parallel ones
    # (children keep them under tbb and workqueue) and the serial twins (for small work, and
    # for children forked from an OpenMP process, which switch to them).
    import embstore
    from embstore._kernels import _core as kcore

    embstore.verify(job["reference"])
    warm = job["dst"] + ".warm"
    for serial in (True, False):
        kcore._LaunchState.serial_only = serial
        embstore.convert(job["src"], warm, quiet=True, force=True)
        embstore.verify(warm)
        os.unlink(warm)
    kcore._LaunchState.serial_only = False
    summary = kills(job) if job["mode"] == "kills" else fsize(job)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
