"""Every file embstore writes follows the same rules, whichever command writes it.

The outputs: ``convert`` DST, ``embstore.write`` DST, ``subset`` OUT, ``from_keyedvectors``
DST (stores), ``matrix --out`` (a ``.npy``) and ``matrix --report`` (JSON).  For each of them:

* an output never replaces one of the command's inputs (the same path, a symbolic link to it,
  a hard link of it) nor another output of the same command, even with ``force``;
* an existing output is replaced only with ``force`` / ``--force``, and ``force`` replaces
  only a file of the kind being written (a store, a ``.npy``, a JSON file): anything else is
  refused;
* a path ending in a separator is refused ("expected a file name"), not turned into a file;
* a 250-byte file name can be created and replaced (temporary names fit NAME_MAX);
* a full disk (a real tmpfs, and ``RLIMIT_FSIZE``) is a one-line "cannot write ..." error with
  exit status 1: no SIGBUS, no traceback, no temporary left, the previous output intact;
* a killed ``matrix`` leaves at most a dead process's temporary, which the next run removes.

Real files and processes throughout; the tmpfs tests need root (``mount``) and are skipped with
the reason otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embstore
from embstore import _atomic
from embstore.cli import main as cli_main
from embstore.matrix import save_matrix

N_WORDS, DIM = 300, 12
BIG_WORDS, BIG_DIM = 6000, 50  # stores and matrices of 1.2 MB: more than the tiny disk holds
TINY_FS = "1m"


# -- inputs ---------------------------------------------------------------------------------


def _write_vec(path: Path, words: list[str], vectors: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n")
        for w, v in zip(words, vectors, strict=True):
            f.write(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n")


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small inputs of every kind, and big ones for the full-disk tests; compiled kernels
    warmed up in this process so that child processes find them in the cache."""
    d = tmp_path_factory.mktemp("outputs-originals")
    rng = np.random.default_rng(0)
    out: dict[str, Path] = {}
    for tag, n, dim in (("", N_WORDS, DIM), ("big_", BIG_WORDS, BIG_DIM)):
        words = [f"w{i}" for i in range(n)]
        # exactly the values of the text file (5 decimals), so that every output compares
        vectors = np.array([[float(f"{x:.5f}") for x in row]
                            for row in rng.standard_normal((n, dim))], dtype=np.float32)
        src = d / f"{tag}vectors.txt"
        _write_vec(src, words, vectors)
        store = d / f"{tag}store.emb"
        embstore.convert(src, store, quiet=True)
        npy = d / f"{tag}vectors.npy"
        np.save(npy, vectors)
        words_file = d / f"{tag}words.json"
        words_file.write_text(json.dumps(words), encoding="utf-8")
        vocab = d / f"{tag}vocab.json"
        vocab.write_text(json.dumps({w: i + 1 for i, w in enumerate(words)}), encoding="utf-8")
        out.update({f"{tag}src": src, f"{tag}store": store, f"{tag}npy": npy,
                    f"{tag}words": words_file, f"{tag}vocab": vocab})
    # A vocabulary whose report (its missing words) is larger than the tiny disk.
    found = [f"k{i}" for i in range(3200)]  # 5% found: no low-coverage warning
    many = {w: i + 1 for i, w in enumerate(found + [f"missing-word-{i:06d}"
                                                    for i in range(60_000)])}
    out["big_report_vocab"] = d / "many_missing.json"
    out["big_report_vocab"].write_text(json.dumps(many), encoding="utf-8")
    out["dim2_store"] = d / "dim2.emb"
    embstore.write(out["dim2_store"], found, np.ones((len(found), 2)))
    with embstore.open(out["store"]) as s:  # warm the kernels used by matrix and subset
        s.build_matrix(out["vocab"], oov="random")
        s.subset(["w1", "w2"], d / "warm.emb")
    return out


@dataclass
class Env:
    """Per-test copies of the inputs (a test that fails must not damage the next one's)."""

    dir: Path
    src: Path
    store: Path
    npy: Path
    words: list[str]
    vocab: Path
    aux_out: Path  # the --out of a matrix whose --report is the output under test

    def vectors(self) -> np.ndarray:
        return np.load(self.npy, mmap_mode="r")  # an np.memmap: the file is an input

    def keyed_vectors(self) -> Any:
        from gensim.models import KeyedVectors

        model = self.dir / "kv.model"
        if not model.exists():
            kv = KeyedVectors(vector_size=int(np.load(self.npy, mmap_mode="r").shape[1]))
            kv.add_vectors(self.words, np.load(self.npy))
            kv.save(str(model), separately=["vectors"])
        return KeyedVectors.load(str(model), mmap="r")


def make_env(originals: dict[str, Path], where: Path, big: bool = False) -> Env:
    where.mkdir(parents=True, exist_ok=True)
    tag = "big_" if big else ""
    copies = {}
    for key in ("src", "store", "npy", "vocab"):
        copies[key] = where / originals[tag + key].name
        shutil.copyfile(originals[tag + key], copies[key])
    words = json.loads(originals[tag + "words"].read_text(encoding="utf-8"))
    return Env(where, copies["src"], copies["store"], copies["npy"], words, copies["vocab"],
               where / "aux-matrix.npy")


@pytest.fixture
def env(originals: dict[str, Path], tmp_path: Path) -> Env:
    return make_env(originals, tmp_path / "in")


# -- the outputs ----------------------------------------------------------------------------


@dataclass
class Output:
    name: str
    kind: str  # "store", "matrix" or "report"
    api: Callable[[Env, Path | str, bool], Any] | None
    argv: Callable[[Env, Path | str], list[str]] | None
    inputs: Callable[[Env], list[Path]]

    def __str__(self) -> str:
        return self.name


def _matrix_api(e: Env, dst: Path | str, force: bool) -> Any:
    with embstore.open(e.store) as s:
        return save_matrix(s, e.vocab, dst, force=force, oov="random")


def _subset_api(e: Env, dst: Path | str, force: bool) -> Any:
    with embstore.open(e.store) as s:
        return s.subset(e.vocab, dst, force=force)


def _kv_api(e: Env, dst: Path | str, force: bool) -> Any:
    pytest.importorskip("gensim")
    import embstore.gensim as eg

    return eg.from_keyedvectors(e.keyed_vectors(), dst, force=force)


OUTPUTS = [
    Output("convert", "store",
           lambda e, dst, force: embstore.convert(e.src, dst, force=force, quiet=True),
           lambda e, dst: ["convert", "--quiet", str(e.src), str(dst)],
           lambda e: [e.src]),
    Output("write", "store",
           lambda e, dst, force: embstore.write(dst, e.words, e.vectors(), force=force),
           None, lambda e: [e.npy]),
    Output("subset", "store", _subset_api,
           lambda e, dst: ["subset", str(e.store), str(e.vocab), str(dst)],
           lambda e: [e.store, e.vocab]),
    Output("from_keyedvectors", "store", _kv_api, None,
           lambda e: [e.dir / "kv.model.vectors.npy"]),
    Output("matrix", "matrix", _matrix_api,
           lambda e, dst: ["matrix", str(e.store), str(e.vocab), "--out", str(dst),
                           "--oov", "random"],
           lambda e: [e.store, e.vocab]),
    Output("report", "report", None,
           lambda e, dst: ["matrix", str(e.store), str(e.vocab), "--out", str(e.aux_out),
                           "--report", str(dst)],
           lambda e: [e.store, e.vocab, e.aux_out]),
]
BY_NAME = {o.name: o for o in OUTPUTS}
CLI_OUTPUTS = [o for o in OUTPUTS if o.argv is not None]


@dataclass
class Outcome:
    code: int
    error: str  # the exception's message (API) or the stderr line without "embstore: error: "
    exc: BaseException | None = None


def produce(out: Output, e: Env, dst: Path | str, *, force: bool = False, via: str = "api",
            capsys: pytest.CaptureFixture[str] | None = None) -> Outcome:
    """Write ``out`` at ``dst`` through the Python API or the command line (in process)."""
    if via == "api":
        assert out.api is not None
        if out.name == "from_keyedvectors":
            e.keyed_vectors()  # its input file exists before the destination is chosen
        try:
            out.api(e, dst, force)
        except (embstore.EmbstoreError, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, embstore.EmbstoreError):
                return Outcome(1, f"{exc.filename}: {exc.strerror}", exc)  # as the CLI shows it
            return Outcome(1, str(exc), exc)
        return Outcome(0, "")
    assert out.argv is not None and capsys is not None
    capsys.readouterr()
    code = cli_main(out.argv(e, dst) + (["--force"] if force else []))
    err = capsys.readouterr().err
    if code == 0:
        assert err == ""
        return Outcome(0, "")
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("embstore: error: "), err
    return Outcome(code, lines[0][len("embstore: error: "):])


def ways(outputs: list[Output] = OUTPUTS) -> list[Any]:
    """(output, via) for the Python API and the command line of every output."""
    params = []
    for o in outputs:
        if o.api is not None:
            params.append(pytest.param(o, "api", id=f"{o.name}-api"))
        if o.argv is not None:
            params.append(pytest.param(o, "cli", id=f"{o.name}-cli"))
    return params


def existing_output(kind: str, path: Path) -> None:
    """A previous output of ``kind`` at ``path`` (what force is allowed to replace)."""
    if kind == "store":
        embstore.write(path, ["old", "store"], np.full((2, 3), 7.0), force=False)
    elif kind == "matrix":
        with open(path, "wb") as f:  # (np.save(path) would append .npy to the name)
            np.save(f, np.full((2, 3), 7.0, dtype=np.float32))
    else:
        path.write_text('{"rows": 2, "old": true}\n', encoding="utf-8")


def check_new_output(out: Output, e: Env, path: Path) -> None:
    if out.kind == "store":
        vectors = np.load(e.npy)
        with embstore.open(path) as s:
            assert "old" not in s and list(s.words) == e.words
            np.testing.assert_array_equal(s.vectors, vectors)
    elif out.kind == "matrix":
        m = np.load(path)
        assert m.shape == (len(e.words) + 1, np.load(e.npy, mmap_mode="r").shape[1])
    else:
        assert json.loads(path.read_text(encoding="utf-8"))["rows"] == len(e.words) + 1


def temporaries(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if ".tmp-" in n or _atomic.TMP_TAG in n)


def snapshot(paths: list[Path]) -> dict[Path, Any]:
    """Contents of regular files, the type and target of anything else."""
    out: dict[Path, Any] = {}
    for p in paths:
        if os.path.isfile(p):
            out[p] = p.read_bytes()
        elif os.path.lexists(p):
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_ino, os.readlink(p) if p.is_symlink() else None)
    return out


# -- existing outputs: replaced only with force, and only when of the kind written -----------


@pytest.mark.parametrize(("out", "via"), ways())
def test_existing_output_is_kept_without_force(out: Output, via: str, env: Env, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "out" / f"previous.{out.kind}"
    dst.parent.mkdir()
    existing_output(out.kind, dst)
    before = dst.read_bytes()
    got = produce(out, env, dst, via=via, capsys=capsys)
    assert got.code == 1
    flag = "--force" if via == "cli" else "force=True"
    assert got.error == f"{dst}: destination already exists; pass {flag} to replace it"
    if got.exc is not None:
        assert isinstance(got.exc, embstore.StoreExistsError)
    assert dst.read_bytes() == before
    assert os.listdir(dst.parent) == [dst.name]
    assert not env.aux_out.exists()  # found before the matrix was built


@pytest.mark.parametrize(("out", "via"), ways())
def test_force_replaces_a_previous_output_of_the_same_kind(
        out: Output, via: str, env: Env, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "out" / f"previous.{out.kind}"
    dst.parent.mkdir()
    existing_output(out.kind, dst)
    got = produce(out, env, dst, force=True, via=via, capsys=capsys)
    assert got.code == 0, got.error
    check_new_output(out, env, dst)
    assert os.listdir(dst.parent) == [dst.name]


@pytest.mark.parametrize(("out", "via"), ways())
@pytest.mark.parametrize("other", ["text", "other-kind", "fifo", "dangling-symlink"])
def test_force_refuses_to_replace_anything_else(out: Output, via: str, other: str, env: Env,
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    dst = folder / "x.txt"
    if other == "text":
        dst.write_bytes(b"precious notes\n")
    elif other == "other-kind":  # a store where a matrix goes, a .npy where a store goes...
        existing_output({"store": "matrix", "matrix": "report", "report": "matrix"}[out.kind],
                        dst)
    elif other == "fifo":
        os.mkfifo(dst)
    else:
        dst.symlink_to(folder / "nowhere")
    before = snapshot([dst])
    got = produce(out, env, dst, force=True, via=via, capsys=capsys)
    assert got.code == 1
    flag = "--force" if via == "cli" else "force=True"
    what = {"store": "an embstore store", "matrix": "a .npy file", "report": "a JSON file"}
    if other == "fifo":
        assert got.error == (f"{dst} exists and is not a regular file; refusing to replace "
                             f"it even with {flag}")
    else:
        assert got.error == (f"{dst} exists and is not {what[out.kind]}; refusing to replace "
                             f"it even with {flag}")
    if got.exc is not None:
        assert isinstance(got.exc, embstore.OutputError) and isinstance(got.exc, ValueError)
    assert snapshot([dst]) == before and os.path.lexists(dst)
    assert os.listdir(folder) == ["x.txt"]
    assert not env.aux_out.exists()


# -- an output is never one of the inputs, nor another output ---------------------------------


class _DummyEnv(Env):
    def __init__(self) -> None:
        p = Path("x")
        super().__init__(p, p, p, p, [], p, p)


def _alias_params() -> list[Any]:
    params = []
    for o in OUTPUTS:
        for via in ("api", "cli"):
            if (o.api if via == "api" else o.argv) is None:
                continue
            for i in range(len(o.inputs(_DummyEnv()))):
                for link in ("same-path", "symlink", "hardlink"):
                    params.append(pytest.param(o, via, i, link, id=f"{o.name}-{via}-in{i}-{link}"))
    return params


@pytest.mark.parametrize(("out", "via", "which", "link"), _alias_params())
@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_output_is_never_an_input(out: Output, via: str, which: int, link: str, force: bool,
                                  env: Env, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    if out.name == "from_keyedvectors":
        pytest.importorskip("gensim")
        env.keyed_vectors()
    if out.name == "report" and which == 2:
        existing_output("matrix", env.aux_out)  # the --out exists: --report is a link to it
    inputs = out.inputs(env)
    target = inputs[which]
    if link == "same-path":
        dst = target
    elif link == "symlink":
        dst = tmp_path / "link"
        dst.symlink_to(target)
    else:
        dst = tmp_path / "hard"
        os.link(target, dst)
    before = snapshot(inputs)
    got = produce(out, env, dst, force=force, via=via, capsys=capsys)
    assert got.code == 1
    shown = f"{target}" if not (out.name == "report" and which == 2) else f"{env.aux_out}"
    if out.name == "report" and which == 2:
        assert got.error == (f"{dst} is the same file as the output {shown}; refusing to write "
                             "two outputs to one file")
    else:
        assert got.error == (f"{dst} is the same file as the input {shown}; refusing to write "
                             "an output over an input")
    if got.exc is not None:
        assert isinstance(got.exc, embstore.OutputError)
    assert snapshot(inputs) == before
    assert temporaries(env.dir) == [] and temporaries(tmp_path) == []


@pytest.mark.parametrize("how", ["same-path", "symlink-to-out", "relative"])
def test_matrix_report_is_never_the_matrix(how: str, env: Env, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.npy"
    report: Path | str = out
    if how == "symlink-to-out":  # the matrix does not exist yet: compared by resolved path
        report = tmp_path / "r.json"
        report.symlink_to(out)
    elif how == "relative":
        report = os.path.relpath(out)
    code = cli_main(["matrix", str(env.store), str(env.vocab), "--out", str(out), "--report",
                     str(report), "--force"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (f"embstore: error: {report} is the same file as the output {out}; refusing "
                   "to write two outputs to one file\n")
    assert not out.exists()
    assert temporaries(tmp_path) == []


def test_convert_force_same_file_keeps_the_input(tmp_path: Path, originals: dict[str, Path]) -> None:
    """The reported case: ``embstore convert --force same.txt same.txt``."""
    src = tmp_path / "same.txt"
    shutil.copyfile(originals["src"], src)
    before = src.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "embstore", "convert", "--force", "same.txt",
                           "same.txt"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == ("embstore: error: same.txt is the same file as the input same.txt; "
                           "refusing to write an output over an input\n")
    assert src.read_bytes() == before
    assert os.listdir(tmp_path) == ["same.txt"]


# -- destination paths ----------------------------------------------------------------------


@pytest.mark.parametrize(("out", "via"), ways())
def test_path_ending_in_a_separator_is_refused(out: Output, via: str, env: Env, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    dst = str(folder / "newdir") + os.sep
    got = produce(out, env, dst, via=via, capsys=capsys)
    assert got.code == 1
    assert got.error == f"{dst}: expected a file name, not a directory (the path ends with '/')"
    if got.exc is not None:
        assert isinstance(got.exc, embstore.OutputError)
    assert os.listdir(folder) == []
    assert not env.aux_out.exists()


@pytest.mark.parametrize(("out", "via"), ways())
def test_existing_directory_is_refused(out: Output, via: str, env: Env, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    for dst in (folder, str(folder) + os.sep):
        got = produce(out, env, dst, force=True, via=via, capsys=capsys)
        assert got.code == 1
        assert got.error == f"{dst}: is a directory, expected a file name"
        assert os.listdir(folder) == []


@pytest.mark.parametrize(("out", "via"), ways())
@pytest.mark.parametrize("named", [False, True], ids=["O_TMPFILE", "named-temporary"])
def test_250_byte_names_can_be_created_and_replaced(out: Output, via: str, named: bool,
                                                    env: Env, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    if named:
        monkeypatch.setenv("EMBSTORE_NO_TMPFILE", "1")
    folder = tmp_path / "out"
    folder.mkdir()
    dst = folder / ("é" * 100 + "n" * 46 + "." + out.kind[:3])  # 250 bytes in UTF-8
    assert len(os.fsencode(dst.name)) == 250
    dead = _dead_pid()
    stale = folder / _atomic.temporary_name(dst, pid=dead)
    stale.write_bytes(b"left by a killed writer")
    assert produce(out, env, dst, via=via, capsys=capsys).code == 0
    assert not stale.exists()  # recognised and swept, although the name was shortened
    got = produce(out, env, dst, force=True, via=via, capsys=capsys)
    assert got.code == 0, got.error
    check_new_output(out, env, dst)
    assert os.listdir(folder) == [dst.name]


def test_too_long_name_is_refused_before_the_work(env: Env, tmp_path: Path) -> None:
    dst = tmp_path / ("n" * 256)
    with pytest.raises(OSError) as info:
        embstore.convert(env.src, dst, quiet=True)
    assert info.value.errno == errno.ENAMETOOLONG and info.value.filename == str(dst)
    assert os.listdir(tmp_path) == ["in"]


# -- temporary names ------------------------------------------------------------------------


def _dead_pid() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    except OSError:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        return proc.pid


@pytest.mark.parametrize("name", ["m.npy", "a" * 200, "b" * 221, "c" * 222, "d" * 255,
                                  "é" * 127, "x" * 120 + "é" * 60 + ".npy",
                                  os.fsdecode(b"bad\xff" * 60)])
def test_temporary_names_fit_name_max_and_are_recognised(name: str, tmp_path: Path) -> None:
    dst = tmp_path / name
    dead = _dead_pid()
    tmp = _atomic.temporary_name(dst, pid=dead)
    assert len(os.fsencode(tmp)) <= 255
    assert tmp.startswith(".") and _atomic.TMP_TAG in tmp
    if len(os.fsencode(name)) <= 200:
        assert tmp.startswith(f".{name}{_atomic.TMP_TAG}{dead}-")  # unchanged for usual names
    # A sibling sharing the first 200 bytes gets a different prefix; a live writer's is kept.
    sibling = tmp_path / (name[:-1] + ("Z" if name[-1] != "Z" else "Y"))
    others = [_atomic.temporary_name(sibling, pid=dead), _atomic.temporary_name(dst)]
    for n in (tmp, *others):
        (tmp_path / n).write_bytes(b"x")
    _atomic.remove_stale_temporaries(dst)
    assert sorted(os.listdir(tmp_path)) == sorted(others)


def test_legacy_matrix_temporaries_are_swept(env: Env, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Hidden ``.m.npy.tmp-PID-xxxxxxxx`` files of killed ``matrix`` runs of earlier versions."""
    out = tmp_path / "m.npy"
    dead = _dead_pid()
    legacy = tmp_path / f".m.npy.tmp-{dead}-0123abcd"
    live = tmp_path / f".m.npy.tmp-{os.getpid()}-0123abcd"
    unrelated = tmp_path / f".m.npy.tmp-{dead}-notours"
    for p in (legacy, live, unrelated):
        p.write_bytes(b"partial matrix")
    assert cli_main(["matrix", str(env.store), str(env.vocab), "--out", str(out)]) == 0
    assert not legacy.exists() and live.exists() and unrelated.exists()


# -- a killed matrix ------------------------------------------------------------------------


_KILLED_MATRIX = """
import os, signal, sys
import embstore, embstore.matrix as m
store, vocab, out, force = sys.argv[1:5]
real = m.build_matrix
def build_then_die(*a, **k):
    real(*a, **k)  # the matrix is written into the temporary; killed before publishing
    os.kill(os.getpid(), signal.SIGKILL)
m.build_matrix = build_then_die
with embstore.open(store) as s:
    m.save_matrix(s, vocab, out, oov="random", force=force == "force")
"""


@pytest.mark.parametrize("named", [False, True], ids=["O_TMPFILE", "named-temporary"])
@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "replace"])
def test_sigkill_during_matrix_leaves_only_a_dead_temporary(
        named: bool, previous: bool, env: Env, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "m.npy"
    if previous:
        existing_output("matrix", out)
    before = snapshot([out])
    child_env = dict(os.environ)
    child_env.pop("EMBSTORE_NO_TMPFILE", None)
    if named:
        child_env["EMBSTORE_NO_TMPFILE"] = "1"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_MATRIX, str(env.store),
                             str(env.vocab), str(out), "force" if previous else "-"],
                            env=child_env, stderr=subprocess.PIPE,
                            text=True)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, stderr
    assert snapshot([out]) == before
    left = temporaries(folder)
    if named:
        assert len(left) == 1 and left[0].startswith(f".m.npy{_atomic.TMP_TAG}{proc.pid}-")
        assert (folder / left[0]).stat().st_size > 0
    else:
        assert left == []  # an unnamed temporary disappears with its process
    code = cli_main(["matrix", str(env.store), str(env.vocab), "--out", str(out)]
                    + (["--force"] if previous else []))
    assert code == 0, capsys.readouterr().err
    assert os.listdir(folder) == ["m.npy"]
    check_new_output(BY_NAME["matrix"], env, out)


# -- full disks -----------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 1 MiB (tmpfs), unmounted afterwards."""
    mnt = tmp_path / "tiny-disk"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TINY_FS}", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _run_cli(argv: list[str], *, env_extra: dict[str, str] | None = None,
             fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env_extra or {})}

    def cap() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "embstore", *argv], capture_output=True,
                          text=True, env=env, timeout=300, preexec_fn=cap)


def _assert_write_failure(proc: subprocess.CompletedProcess[str], dst: Path, what: str,
                          reason: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)  # not -SIGBUS (135 in a shell)
    assert "Traceback" not in proc.stderr
    assert proc.stderr == (f"embstore: error: {dst}: cannot write the {what}: {reason} "
                           "(nothing was written there)\n")


def _full_disk_case(out: Output, e: Env, originals: dict[str, Path], disk: Path
                    ) -> tuple[list[str], Path]:
    """argv writing ``out`` (too big for the disk) over a previous output on ``disk``."""
    dst = disk / f"previous.{out.kind}"
    existing_output(out.kind, dst)
    if out.name == "report":
        # 60,000 missing words: a 1.6 MB report, but a matrix of 2 dimensions (500 KB, written
        # elsewhere), so that the report is what does not fit
        argv = ["matrix", str(originals["dim2_store"]), str(originals["big_report_vocab"]),
                "--out", str(e.aux_out), "--report", str(dst), "--force"]
    else:
        assert out.argv is not None
        argv = [*out.argv(e, dst), "--force"]
    return argv, dst


WHAT = {"store": "store", "matrix": "matrix", "report": "report"}


@pytest.mark.parametrize(("out", "fallocate"),
                         [pytest.param(o, True, id=o.name) for o in CLI_OUTPUTS]
                         + [pytest.param(BY_NAME["matrix"], False, id="matrix-no-fallocate")])
def test_full_disk_is_a_one_line_error(out: Output, fallocate: bool, tiny_disk: Path,
                                       originals: dict[str, Path], tmp_path: Path) -> None:
    e = make_env(originals, tmp_path / "big", big=True)
    argv, dst = _full_disk_case(out, e, originals, tiny_disk)
    before = dst.read_bytes()
    extra = {} if fallocate else {"EMBSTORE_NO_FALLOCATE": "1"}
    proc = _run_cli(argv, env_extra=extra)
    _assert_write_failure(proc, dst, WHAT[out.kind], "No space left on device")
    assert dst.read_bytes() == before  # the previous output, intact
    assert os.listdir(tiny_disk) == [dst.name]  # no temporary keeps the disk full
    assert not e.aux_out.exists()  # a report that cannot be written publishes no matrix
    # and the disk still works: a small output fits
    small = make_env(originals, tmp_path / "small")
    assert out.argv is not None
    proc = _run_cli([*out.argv(small, dst), "--force"])
    assert proc.returncode == 0, proc.stderr
    check_new_output(out, small, dst)
    assert os.listdir(tiny_disk) == [dst.name]


@pytest.mark.parametrize("name", ["write", "from_keyedvectors"])
def test_full_disk_python_api(name: str, tiny_disk: Path, originals: dict[str, Path],
                              tmp_path: Path) -> None:
    out = BY_NAME[name]
    e = make_env(originals, tmp_path / "big", big=True)
    dst = tiny_disk / "previous.store"
    existing_output("store", dst)
    before = dst.read_bytes()
    got = produce(out, e, dst, force=True)
    assert isinstance(got.exc, embstore.StoreWriteError), got
    assert got.exc.errno == errno.ENOSPC
    assert got.error == (f"{dst}: cannot write the store: No space left on device "
                         "(nothing was written there)")
    assert dst.read_bytes() == before and os.listdir(tiny_disk) == [dst.name]


@pytest.mark.parametrize(("out", "fallocate"),
                         [pytest.param(o, True, id=o.name) for o in CLI_OUTPUTS]
                         + [pytest.param(BY_NAME["matrix"], False, id="matrix-no-fallocate")])
@pytest.mark.parametrize("named", [False, True], ids=["O_TMPFILE", "named-temporary"])
def test_file_size_limit_is_a_one_line_error(out: Output, fallocate: bool, named: bool,
                                             originals: dict[str, Path], tmp_path: Path) -> None:
    e = make_env(originals, tmp_path / "big", big=True)
    disk = tmp_path / "outputs"
    disk.mkdir()
    argv, dst = _full_disk_case(out, e, originals, disk)
    before = dst.read_bytes()
    extra = {"EMBSTORE_NO_TMPFILE": "1" if named else "0"}
    if not fallocate:
        extra["EMBSTORE_NO_FALLOCATE"] = "1"
    proc = _run_cli(argv, env_extra=extra, fsize=(1 << 20) if out.name == "report" else 256 << 10)
    _assert_write_failure(proc, dst, WHAT[out.kind], "File too large")
    assert dst.read_bytes() == before
    assert os.listdir(disk) == [dst.name]
    assert not e.aux_out.exists()


def test_file_size_limit_python_api_save_matrix(originals: dict[str, Path],
                                                tmp_path: Path) -> None:
    """save_matrix in a child with RLIMIT_FSIZE: StoreWriteError, not SIGBUS or SIGXFSZ."""
    code = (
        "import resource, sys, embstore\n"
        "from embstore.matrix import save_matrix\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))\n"
        "with embstore.open(sys.argv[1]) as s:\n"
        "    try:\n"
        "        save_matrix(s, sys.argv[2], sys.argv[3], oov='random')\n"
        "    except embstore.StoreWriteError as e:\n"
        "        print(type(e).__name__, e.errno, e)\n"
    )
    out = tmp_path / "m.npy"
    proc = subprocess.run([sys.executable, "-c", code, str(originals["big_store"]),
                           str(originals["big_vocab"]), str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (f"StoreWriteError {errno.EFBIG} {out}: cannot write the matrix: "
                           "File too large (nothing was written there)\n")
    assert os.listdir(tmp_path) == []


# -- reports --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing-directory", "is-a-directory", "read-only"])
def test_unwritable_report_is_found_before_the_matrix(where: str, env: Env, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.npy"
    if where == "missing-directory":
        report = tmp_path / "no" / "r.json"
        message = f"{report.parent}: directory does not exist"
    elif where == "is-a-directory":
        report = tmp_path
        message = f"{report}: is a directory, expected a file name"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs here: {proc.stderr.strip()}")
        report = ro / "r.json"
        message = f"{report}: Read-only file system"
    try:
        code = cli_main(["matrix", str(env.store), str(env.vocab), "--out", str(out),
                         "--report", str(report)])
    finally:
        if where == "read-only":
            subprocess.run(["umount", str(tmp_path / "ro")], capture_output=True)
    assert code == 1
    assert capsys.readouterr().err == f"embstore: error: {message}\n"
    assert not out.exists()  # refused before the matrix was built
    assert temporaries(tmp_path) == []


def test_report_is_written_atomically(env: Env, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Replacing a report gives a new inode (rename), so a reader of the old one keeps it."""
    out, report = tmp_path / "m.npy", tmp_path / "r.json"
    assert cli_main(["matrix", str(env.store), str(env.vocab), "--out", str(out), "--report",
                     str(report)]) == 0
    with open(report, "rb") as old:
        first = old.read()
        assert cli_main(["matrix", str(env.store), str(env.vocab), "--out", str(out),
                         "--report", str(report), "--force", "--num-words", "5"]) == 0
        old.seek(0)
        assert old.read() == first  # the old inode was not rewritten in place
    assert json.loads(report.read_text(encoding="utf-8"))["rows"] == 5
    assert sorted(os.listdir(tmp_path)) == ["in", "m.npy", "r.json"]


# -- the atomic-file machinery on its own -----------------------------------------------------


@pytest.mark.parametrize("named", [False, True], ids=["O_TMPFILE", "named-temporary"])
def test_atomic_file_publishes_whole_or_not_at_all(named: bool, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if named:
        monkeypatch.setenv("EMBSTORE_NO_TMPFILE", "1")
    dst = tmp_path / "r.json"
    with pytest.raises(RuntimeError), _atomic.AtomicFile(dst, kind="report") as f:
        f.write(b'{"half": ')
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    with _atomic.AtomicFile(dst, kind="report") as f:
        f.write(b'{"whole": true}\n')
        assert not dst.exists()
        f.commit()
    assert dst.read_bytes() == b'{"whole": true}\n'
    with _atomic.AtomicFile(dst, kind="report", force=True) as f:
        f.write(b"[]")  # not committed: discarded on leaving the block
    assert dst.read_bytes() == b'{"whole": true}\n' and os.listdir(tmp_path) == ["r.json"]
    _atomic.write_atomic(dst, b"[1]\n", kind="report", force=True)
    assert dst.read_bytes() == b"[1]\n" and os.listdir(tmp_path) == ["r.json"]


def test_check_destination_returns_the_path(tmp_path: Path) -> None:
    dst = tmp_path / "s.emb"
    assert _atomic.check_destination(dst, force=False, kind="store") == dst
    assert _atomic.check_destination(str(dst), force=True, kind="store") == dst
    with pytest.raises(ValueError, match="kind"):
        _atomic.check_destination(dst, force=False, kind="picture")


def test_errors_are_one_tree() -> None:
    assert issubclass(embstore.OutputError, embstore.EmbstoreError)
    assert issubclass(embstore.OutputError, ValueError)
    err = embstore.StoreWriteError("m.npy", OSError(errno.ENOSPC, "No space left on device"),
                                   what="matrix")
    assert str(err) == "m.npy: cannot write the matrix: No space left on device (nothing was " \
                       "written there)"
