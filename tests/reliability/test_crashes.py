"""Crashes and write errors during conversion leave no partial store behind.

* SIGKILL right before and after every publishing call of a conversion (``link``,
  ``replace``, ``unlink``) and a sample of its ``pwrite`` calls, and at random moments, with the unnamed temporary
  (``O_TMPFILE``) and with named temporaries, to a fresh destination and replacing an
  existing store with ``force``: the destination holds nothing or a complete store (the
  previous one, byte for byte, when replacing), leftover temporaries belong to dead
  processes only, and a later conversion to the same place works and sweeps them.
  (``crash_worker.py`` forks the trials; ``EMBSTORE_KILL_TRIALS`` sets the number of random
  kills and ``EMBSTORE_KILL_ALL_WRITES=1`` kills at every write, not a sample.)
* The installed ``embstore convert`` command killed at random moments.
* Disk full: ``RLIMIT_FSIZE`` at many sizes (writes fail with EFBIG) and a real full
  filesystem (a tiny tmpfs in a private mount namespace): a clear StoreWriteError, exit 1
  from the CLI, nothing at the destination, the previous store intact.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import relutil

RANDOM_KILLS = relutil.env_int("EMBSTORE_KILL_TRIALS", 8)
ALL_WRITES = relutil.env_int("EMBSTORE_KILL_ALL_WRITES", 0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small and a larger input, their reference stores, and a different 'old' store."""
    import embstore

    d = tmp_path_factory.mktemp("crash-inputs")
    out: dict[str, Path] = {}
    for name, n, dim in (("small", 3000, 40), ("large", 15000, 64)):
        src = d / f"{name}.txt"
        relutil.write_text(src, relutil.make_words(n, 3), relutil.make_vectors(n, dim, 3))
        ref = d / f"{name}.emb"
        embstore.convert(src, ref, quiet=True)
        out[name], out[f"{name}_ref"] = src, ref
    old_src = d / "old.txt"
    relutil.write_text(old_src, relutil.make_words(500, 9), relutil.make_vectors(500, 40, 9))
    out["old"] = d / "old.emb"
    embstore.convert(old_src, out["old"], quiet=True)
    return out


def _worker(job: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    res = relutil.run_python("import crash_worker; crash_worker.main()", stdin=json.dumps(job),
                             timeout=timeout)
    assert res.returncode == 0 and not res.timed_out, res.describe()
    summary: dict[str, Any] = relutil.last_json(res.stdout)
    return summary


@pytest.mark.parametrize("named_tmp", [False, True], ids=["O_TMPFILE", "named-temporary"])
@pytest.mark.parametrize("force", [False, True], ids=["fresh", "replace"])
def test_sigkill_at_every_write_and_at_random_moments(
        inputs: dict[str, Path], tmp_path: Path, named_tmp: bool, force: bool) -> None:
    dst = tmp_path / "out.emb"
    if force:
        shutil.copyfile(inputs["old"], dst)
    job = {"mode": "kills", "src": str(inputs["small"]), "reference": str(inputs["small_ref"]),
           "dst": str(dst), "force": force, "named_tmp": named_tmp, "all_writes": ALL_WRITES,
           "random_kills": RANDOM_KILLS, "seed": 5 + 2 * force + named_tmp}
    summary = _worker(job)
    assert not summary.get("problems"), "\n".join(summary["problems"])
    assert summary["killed"] >= summary["trials"] * 0.6, summary
    assert summary["final"] == "new"
    if force:
        assert summary["outcomes"].get("old", 0) > 0 and summary["outcomes"].get("new", 0) > 0
    publish = "replace" if force else "link"
    assert {"pwrite", publish} <= set(summary["call_kinds"]), summary["call_kinds"]
    print(f"kills ({'named' if named_tmp else 'O_TMPFILE'}, {'replace' if force else 'fresh'}): "
          f"{summary['trials']} trials, {summary['killed']} killed, outcomes "
          f"{summary['outcomes']}, {summary['leftover_temporaries_swept']} dead temporaries "
          f"seen and swept")


def test_cli_killed_at_random_moments(inputs: dict[str, Path], tmp_path: Path) -> None:
    """The real command, interpreter start-up included."""
    import embstore

    exe = relutil.embstore_command()
    assert exe
    dst = tmp_path / "cli.emb"
    shutil.copyfile(inputs["old"], dst)
    old = dst.read_bytes()
    rng = random.Random(3)
    for _ in range(relutil.env_int("EMBSTORE_CLI_KILLS", 3)):
        proc = subprocess.Popen([exe, "convert", "--force", "--quiet", str(inputs["large"]),
                                 str(dst)], env=relutil.child_env())
        time.sleep(rng.uniform(0.2, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = dst.read_bytes()
        assert data == old or embstore.verify(dst).ok
        dead = [n for n in os.listdir(tmp_path) if n != dst.name]
        for n in dead:
            assert str(proc.pid) in n, n
    res = relutil.run_child([exe, "convert", "--force", "--quiet", str(inputs["large"]), str(dst)],
                            timeout=300)
    assert res.returncode == 0, res.describe()
    assert embstore.verify(dst).ok
    assert os.listdir(tmp_path) == [dst.name]


@pytest.mark.parametrize("force", [False, True], ids=["fresh", "replace"])
def test_file_size_limit(inputs: dict[str, Path], tmp_path: Path, force: bool) -> None:
    dst = tmp_path / "out.emb"
    if force:
        shutil.copyfile(inputs["old"], dst)
    job = {"mode": "fsize", "src": str(inputs["small"]), "reference": str(inputs["small_ref"]),
           "dst": str(dst), "force": force, "named_tmp": False}
    summary = _worker(job)
    assert not summary["problems"], "\n".join(summary["problems"])
    print(f"RLIMIT_FSIZE ({'replace' if force else 'fresh'}): {len(summary['limits'])} limits")


def test_file_size_limit_cli_message(inputs: dict[str, Path], tmp_path: Path) -> None:
    exe = relutil.embstore_command()
    assert exe
    dst = tmp_path / "out.emb"
    limit = inputs["small_ref"].stat().st_size // 2

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    res = relutil.run_child([exe, "convert", "--quiet", str(inputs["small"]), str(dst)],
                            timeout=300, preexec=cap)
    assert res.returncode == 1, res.describe()
    assert "cannot write the store" in res.stderr and "File too large" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert os.listdir(tmp_path) == []


_TMPFS_SCRIPT = r"""
import contextlib, io, json, os, subprocess, sys
import embstore.cli
exe, big, small, root = sys.argv[1:5]
out = {"cases": []}
def run(dst, src, force=False):
    argv = ["convert", "--quiet", src, dst] + (["--force"] if force else [])
    if dst.startswith(os.path.join(root, "fs64")):  # the installed command, once
        p = subprocess.run([exe, *argv], capture_output=True, text=True)
        return p.returncode, p.stderr.strip()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = embstore.cli.main(argv)
    return code, err.getvalue().strip()
for kb in (64, 128, 256, 512, 768):
    d = os.path.join(root, f"fs{kb}")
    os.mkdir(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", d], check=True)
    dst = os.path.join(d, "out.emb")
    code, err = run(dst, big)
    case = {"kb": kb, "code": code, "err": err, "left": sorted(os.listdir(d))}
    if code == 0:
        os.unlink(dst)
    code2, err2 = run(dst, small)
    case["small_code"], case["small_err"] = code2, err2
    if code2 == 0:
        before = open(dst, "rb").read()
        code3, err3 = run(dst, big, force=True)
        case["replace_code"], case["replace_err"] = code3, err3
        case["old_intact"] = open(dst, "rb").read() == before
        case["left_after_replace"] = sorted(os.listdir(d))
    out["cases"].append(case)
print(json.dumps(out))
"""


def test_disk_full_on_a_tiny_tmpfs(inputs: dict[str, Path], tmp_path: Path) -> None:
    """A real ENOSPC: tmpfs mounts of 64-768 KiB in a private mount namespace (needs
    ``unshare`` and mount permission; skipped with the reason where they are missing)."""
    import embstore

    exe = relutil.embstore_command()
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("mount") is None:
        pytest.skip("unshare/mount not available")
    probe = subprocess.run([unshare, "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.strip()}")
    root = tmp_path / "mnt"
    root.mkdir()
    script = tmp_path / "tmpfs_case.py"
    script.write_text(_TMPFS_SCRIPT)
    small_src = tmp_path / "tiny.txt"
    relutil.write_text(small_src, relutil.make_words(50, 1), relutil.make_vectors(50, 8, 1))
    res = relutil.run_child(
        [unshare, "--mount", "--propagation", "private", relutil.PY, str(script), str(exe),
         str(inputs["small"]), str(small_src), str(root)], timeout=600)
    if res.returncode != 0 and "mount" in res.stderr and "permission" in res.stderr.lower():
        pytest.skip(f"mounting tmpfs is not permitted: {res.stderr.strip()[-200:]}")
    assert res.returncode == 0, res.describe()
    big_size = inputs["small_ref"].stat().st_size
    for case in relutil.last_json(res.stdout)["cases"]:
        if case["kb"] * 1024 < big_size:
            assert case["code"] == 1, case
            assert "No space left on device" in case["err"] and "Traceback" not in case["err"], case
            assert case["left"] == [], case
        assert case["small_code"] == 0, case
        if "replace_code" in case and case["replace_code"] != 0:
            assert case["old_intact"] and case["left_after_replace"] == ["out.emb"], case
    assert embstore.verify(inputs["small_ref"]).ok
