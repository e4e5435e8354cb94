"""Every way into the converter, and files that are not what they were given as.

One sniffing for every input: a path, ``-`` (standard input, streamed), a binary file object;
plain, gzip, bz2, xz, a zip member, a tar member (plain or compressed tar).  Whatever the
container, the same vector files are read bit-identically to gensim's reading of the plain
file, and the same other files (lz4, zstd, 7z, RAR, .Z, Snappy, lzip, a store, NumPy, a
pickle, a fastText model, HDF5, UTF-16) are refused with what they are.  Also: files that are
not regular (named pipes, devices), archive members (``member=``, metadata ignored), truncated
downloads (every suggested ``limit`` is run), skip runs that skip most of their input, vector
files given as a vocabulary, matrices that find nothing, and the CLI details that go with them.

Every input file is made here, in a temporary directory; lz4 data is real when the ``lz4``
command is installed, the other foreign formats are their real magic bytes.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embstore
from embstore import ConversionError, VocabularyError
from embstore._convert.sources import Source
from embstore.cli import main

# -- inputs made here ---------------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(30)] + ["straße", "日本", "New\u00a0York", "don't"]


def vectors_for(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def glove(words: list[str] = WORDS, dim: int = 5, seed: int = 0) -> bytes:
    vecs = vectors_for(len(words), dim, seed)
    return "".join(w + " " + " ".join(repr(float(x)) for x in row) + "\n"
                   for w, row in zip(words, vecs, strict=True)).encode("utf-8")


def word2vec_text(words: list[str] = WORDS, dim: int = 5, seed: int = 0) -> bytes:
    return f"{len(words)} {dim}\n".encode() + glove(words, dim, seed)


def word2vec_binary(words: list[str] | list[bytes] = WORDS, dim: int = 5, seed: int = 0,
                    vecs: np.ndarray | None = None, header: bytes | None = None) -> bytes:
    vecs = vectors_for(len(words), dim, seed) if vecs is None else vecs
    parts = [header if header is not None else f"{len(words)} {vecs.shape[1]}\n".encode()]
    for w, row in zip(words, vecs, strict=True):
        raw = w if isinstance(w, bytes) else w.encode()
        parts.append(raw + b" " + row.astype("<f4").tobytes() + b"\n")
    return b"".join(parts)


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tarred(members: dict[str, bytes | None], mode: str = "w") -> bytes:
    """A tar (``mode`` ``w:gz`` etc. for a compressed one); a None member is a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# container name -> (wrap the data, file name); every one is read through the same sniffing
CONTAINERS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda d: d,
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zip": lambda d: zipped({"vectors.txt": d}),
    "tar": lambda d: tarred({"vectors.txt": d}),
    "tar.gz": lambda d: tarred({"vectors.txt": d}, "w:gz"),
    "tar.bz2": lambda d: tarred({"vectors.txt": d}, "w:bz2"),
    "tar.xz": lambda d: tarred({"vectors.txt": d}, "w:xz"),
    "zip of gzip": lambda d: zipped({"vectors.txt.gz": gzip.compress(d)}),
    "tar of xz": lambda d: tarred({"d/": None, "d/vectors.txt.xz": lzma.compress(d)}),
}
COMPRESSION = {"plain": None, "gzip": "gzip", "bz2": "bz2", "xz": "xz", "zip": "zip",
               "tar": "tar", "tar.gz": "gzip+tar", "tar.bz2": "bz2+tar", "tar.xz": "xz+tar",
               "zip of gzip": "zip+gzip", "tar of xz": "tar+xz"}
STREAMABLE = [c for c in CONTAINERS if "zip" not in c]  # a zip needs its end: not from a pipe


def gensim_read(path: Path, **kwargs: Any) -> tuple[list[str], np.ndarray]:
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(path), **kwargs)
    return list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)


def assert_store_is(dst: Path, words: list[str], vectors: np.ndarray) -> None:
    with embstore.open(dst) as store:
        assert list(store.words) == words
        got = np.asarray(store.vectors)
        assert got.dtype == np.float32 and got.shape == vectors.shape
        assert np.array_equal(got.view(np.uint32), vectors.view(np.uint32))


@contextlib.contextmanager
def stdin_pipe(data: bytes) -> Iterator[None]:
    """``sys.stdin`` on a real pipe fed by a thread, for ``convert("-", ...)`` in process."""
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f, contextlib.suppress(BrokenPipeError):
            f.write(data)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(os.fdopen(r, "rb"))
    try:
        yield
    finally:
        sys.stdin.close()
        sys.stdin = saved
        thread.join(10)


def cli(*args: str, stdin: Any = None, input: bytes | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line in a child process (for standard input and exit codes)."""
    run = subprocess.run([sys.executable, "-m", "embstore", *args], stdin=stdin, input=input,
                         capture_output=True, timeout=timeout, check=False)
    return subprocess.CompletedProcess(run.args, run.returncode,
                                       run.stdout.decode("utf-8", "replace"),
                                       run.stderr.decode("utf-8", "replace"))


def one_error(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("embstore: error: "), text
    return lines[0]


def nothing_written(folder: Path, *keep: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


# -- one sniffing for every container and every way in ----------------------------------------


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, list[str],
                                                                          np.ndarray]]:
    """gensim's reading of the plain files that every container below holds."""
    folder = tmp_path_factory.mktemp("oracle")
    out = {}
    for name, data, kwargs in [("glove", glove(), {"no_header": True}),
                               ("text", word2vec_text(), {}),
                               ("binary", word2vec_binary(), {"binary": True})]:
        path = folder / name
        path.write_bytes(data)
        out[name] = (data, *gensim_read(path, **kwargs))
    return out


@pytest.mark.parametrize("fmt", ["glove", "text", "binary"])
@pytest.mark.parametrize("container", list(CONTAINERS))
def test_every_container_reads_what_gensim_reads(container: str, fmt: str, oracle: Any,
                                                 tmp_path: Path) -> None:
    data, words, vectors = oracle[fmt]
    src = tmp_path / "input.bin"  # the name says nothing: the bytes decide
    src.write_bytes(CONTAINERS[container](data))
    report = embstore.convert(src, tmp_path / "out.emb", quiet=True)
    assert report.compression == COMPRESSION[container]
    assert report.format == fmt
    assert_store_is(tmp_path / "out.emb", words, vectors)
    nothing_written(tmp_path, "input.bin", "out.emb")  # nothing extracted from an archive


@pytest.mark.parametrize("container", STREAMABLE)
def test_every_container_reads_from_standard_input(container: str, oracle: Any,
                                                   tmp_path: Path) -> None:
    data, words, vectors = oracle["glove"]
    with stdin_pipe(CONTAINERS[container](data)):
        report = embstore.convert("-", tmp_path / "out.emb", quiet=True)
    assert report.source == "<stdin>" and report.compression == COMPRESSION[container]
    assert report.input_bytes == 0  # a pipe has no size
    assert_store_is(tmp_path / "out.emb", words, vectors)
    with embstore.open(tmp_path / "out.emb") as store:
        assert store.metadata["source"]["name"] == "<stdin>"


@pytest.mark.parametrize("container", ["plain", "gzip", "zip", "tar.gz"])
def test_binary_file_objects(container: str, oracle: Any, tmp_path: Path) -> None:
    data, words, vectors = oracle["text"]
    packed = CONTAINERS[container](data)
    # seekable in memory (a zip needs that), then a pipe-like object that only reads
    report = embstore.convert(io.BytesIO(packed), tmp_path / "a.emb", quiet=True)
    assert report.source == "<stream>"
    assert_store_is(tmp_path / "a.emb", words, vectors)
    path = tmp_path / "v.in"
    path.write_bytes(packed)
    with open(path, "rb") as f:
        report = embstore.convert(f, tmp_path / "b.emb", quiet=True)
        assert not f.closed  # the caller's object is never closed
    assert report.source == str(path)
    assert_store_is(tmp_path / "b.emb", words, vectors)


def test_a_text_mode_file_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="binary file object"):
        embstore.convert(io.StringIO("a 1 2\n"), tmp_path / "out.emb")


def test_errors_from_standard_input_name_it(tmp_path: Path) -> None:
    with stdin_pipe(gzip.compress(b"the 1 2\nof 1\nand 3 4\n")), \
            pytest.raises(ConversionError) as info:
        embstore.convert("-", tmp_path / "out.emb", quiet=True)
    assert str(info.value).startswith("<stdin>:2: expected 2 values after the word, found 1")
    assert info.value.path == "<stdin>"
    nothing_written(tmp_path)
    with stdin_pipe(b""), pytest.raises(ConversionError, match="standard input is empty"):
        embstore.convert("-", tmp_path / "out.emb", quiet=True)


# -- files that are something else, in every container ----------------------------------------


def _lz4(data: bytes) -> bytes:
    """Real lz4 frame data when the lz4 tool (or the lz4 package) is installed."""
    with contextlib.suppress(ImportError):
        import lz4.frame  # type: ignore[import-not-found]

        return bytes(lz4.frame.compress(data))
    tool = shutil.which("lz4")
    if tool:
        return subprocess.run([tool, "-c", "-q"], input=data, capture_output=True,
                              check=True).stdout
    return b"\x04\x22\x4d\x18\x64\x40\xa7" + data  # the frame magic and a frame descriptor


def _store(tmp: Path) -> bytes:
    src = tmp / "payload.txt"
    src.write_bytes(b"a 1 2\n")
    embstore.convert(src, tmp / "payload.emb", quiet=True)
    data = (tmp / "payload.emb").read_bytes()
    (tmp / "payload.emb").unlink()
    src.unlink()
    return data


def _npy(_: Path) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 4), dtype=np.float32))
    return buf.getvalue()


def _gensim_file(name: str) -> Callable[[Path], bytes]:
    def read(_: Path) -> bytes:
        import importlib.util

        spec = importlib.util.find_spec("gensim")
        assert spec is not None and spec.origin is not None
        return (Path(spec.origin).parent / "test" / "test_data" / name).read_bytes()

    return read


# payload -> (bytes, words the message must hold)
PAYLOADS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "lz4": (lambda _: _lz4(glove() * 50), "lz4-compressed data"),
    "lz4 legacy": (lambda _: b"\x02\x21\x4c\x18" + bytes(60), "lz4-compressed data"),
    "zstd": (lambda _: b"\x28\xb5\x2f\xfd\x04\x58\x61\x00\x00the 1 2\n", "zstd-compressed data"),
    "7z": (lambda _: b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(60), "a 7z archive"),
    "rar4": (lambda _: b"Rar!\x1a\x07\x00" + bytes(60), "a RAR archive"),
    "rar5": (lambda _: b"Rar!\x1a\x07\x01\x00" + bytes(60), "a RAR archive"),
    "compress .Z": (lambda _: b"\x1f\x9d\x90the 1 2\n" + bytes(40), "Unix compress (.Z) data"),
    "snappy": (lambda _: b"\xff\x06\x00\x00sNaPpY\x01\x10\x00\x00" + bytes(40),
               "Snappy framed data"),
    "lzip": (lambda _: b"LZIP\x01\x0c" + bytes(60), "lzip-compressed data"),
    "store": (_store, "embstore store"),
    "npy": (_npy, "a NumPy .npy array"),
    "pickle": (lambda _: pickle.dumps({"vectors": [1.0, 2.0]}, protocol=4), "Python pickle"),
    "fastText .bin": (_gensim_file("lee_fasttext_new.bin"), "a fastText binary model (.bin)"),
    "fastText .bin, old": (_gensim_file("lee_fasttext.bin"), "a fastText binary model (.bin)"),
    "hdf5": (lambda _: b"\x89HDF\r\n\x1a\n" + bytes(60), "an HDF5 file"),
    "utf-16": (lambda _: "the 1 2\n".encode("utf-16"), "UTF-16 text"),
}


@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("container", list(CONTAINERS))
def test_every_container_refuses_the_same_files(container: str, payload: str,
                                                tmp_path: Path) -> None:
    make, what = PAYLOADS[payload]
    src = tmp_path / "vectors.txt"
    src.write_bytes(CONTAINERS[container](make(tmp_path)))
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb", quiet=True)
    text = str(info.value)
    assert len(text.splitlines()) == 1 and text.startswith(f"{src}: ")
    assert what in text
    if container == "plain":
        assert text.startswith(f"{src}: this is ")
    else:  # where it was found
        assert "this holds " in text and ("member '" in text
                                          or f"({COMPRESSION[container]})" in text), text
    nothing_written(tmp_path, "vectors.txt")


@pytest.mark.parametrize("payload", ["lz4", "store", "fastText .bin"])
def test_standard_input_refuses_the_same_files(payload: str, tmp_path: Path) -> None:
    make, what = PAYLOADS[payload]
    with stdin_pipe(make(tmp_path)), pytest.raises(ConversionError) as info:
        embstore.convert("-", tmp_path / "out.emb", quiet=True)
    assert str(info.value).startswith("<stdin>: this is ") and what in str(info.value)


def test_refusals_say_what_to_do(tmp_path: Path) -> None:
    src = tmp_path / "glove.txt.lz4"
    src.write_bytes(_lz4(glove()))
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    assert str(info.value) == (
        f"{src}: this is lz4-compressed data (lz4 frame format), which embstore does not read; "
        f"decompress it first (lz4 -d), or stream it: lz4 -dc {src} | embstore convert - OUT.emb")
    src = tmp_path / "model.bin"
    src.write_bytes(PAYLOADS["fastText .bin, old"][0](tmp_path))
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    assert str(info.value) == (
        f"{src}: this is a fastText binary model (.bin); convert its .vec text file, or load it "
        "with gensim.models.fasttext.load_facebook_vectors and use "
        "embstore.gensim.from_keyedvectors")


@pytest.mark.parametrize("name", ["lee_fasttext.bin", "lee_fasttext_new.bin",
                                  "crime-and-punishment.bin", "cp852_fasttext.bin",
                                  "non_ascii_fasttext.bin", "pang_lee_polarity_fasttext.bin"])
def test_fasttext_models_are_named_and_the_advice_works(name: str, gensim_data: Path,
                                                         tmp_path: Path) -> None:
    """Both fastText layouts gensim reads (with the magic number and the older one without)
    are recognised; following the advice converts the model's vectors."""
    src = gensim_data / name
    with pytest.raises(ConversionError, match=re.escape("a fastText binary model (.bin)")):
        embstore.convert(src, tmp_path / "out.emb")
    if name != "crime-and-punishment.bin":
        return
    from gensim.models.fasttext import load_facebook_vectors

    from embstore.gensim import from_keyedvectors

    kv = load_facebook_vectors(str(src))
    from_keyedvectors(kv, tmp_path / "ft.emb")
    with embstore.open(tmp_path / "ft.emb") as store:
        assert len(store) == len(kv.index_to_key) and store.dim == kv.vector_size


def test_unknown_binary_data_is_refused_not_parsed(tmp_path: Path) -> None:
    """A compressor with no magic number (brotli) or other binary data is not read line by
    line into a store of junk."""
    src = tmp_path / "vectors.br"
    junk = bytes(np.random.default_rng(7).integers(0, 256, 200_000, dtype=np.uint8))
    src.write_bytes(b"the 1 2\n" + junk)  # even when a first line parses
    for options in ({}, {"unicode_errors": "replace", "on_bad_line": "skip"}):
        with pytest.raises(ConversionError, match="this is binary data in no format embstore "
                                                  "knows"):
            embstore.convert(src, tmp_path / "out.emb", **options)
    nothing_written(tmp_path, "vectors.br")


# -- the reported lz4 run: following the hints must not end in a store of junk ------------------


def test_following_the_hints_on_an_lz4_file_never_makes_a_store(tmp_path: Path) -> None:
    src = tmp_path / "glove.txt.lz4"
    src.write_bytes(_lz4(glove(dim=50) * 40))
    for options in ({}, {"unicode_errors": "replace"},
                    {"unicode_errors": "replace", "on_bad_line": "skip"}):
        with pytest.raises(ConversionError, match="lz4-compressed data"):
            embstore.convert(src, tmp_path / "out.emb", **options)
    nothing_written(tmp_path, "glove.txt.lz4")


def test_the_utf8_hint_is_not_given_for_binary_junk(tmp_path: Path) -> None:
    src = tmp_path / "v.txt"
    src.write_bytes(b"a 1\nb\x00\x91\xfe\x03\xc7 2\nc 3\n")  # a line of binary junk
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    assert str(info.value).startswith(f"{src}:2: word ") and "not valid UTF-8" in str(info.value)
    assert "unicode_errors" not in str(info.value)
    assert "binary data, not text" in str(info.value)
    src.write_bytes(b"a 1\ncaf\xe9 2\nc 3\n")  # Latin-1 text: the hint is right there
    with pytest.raises(ConversionError, match='unicode_errors="replace"'):
        embstore.convert(src, tmp_path / "out.emb")
    vecs = np.ones((2, 2), dtype=np.float32)
    src.write_bytes(word2vec_binary([b"a", b"b\x01\x02\x9f\xff\xfe\x90\x80"], vecs=vecs))
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    assert "unicode_errors" not in str(info.value) and "binary data" in str(info.value)


def test_a_skip_run_that_skips_most_lines_fails(tmp_path: Path) -> None:
    """The reported run: '127 words x 1, 17,201 lines skipped', exit 0.  Now an error that
    says how many of how many, with the first examples."""
    src = tmp_path / "v.txt"
    good = [f"w{i} 1.5" for i in range(127)]
    bad = [f"x{i} y z" for i in range(17_201)]
    src.write_text("\n".join(good[:1] + bad[:9000] + good[1:] + bad[9000:]) + "\n")
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb", on_bad_line="skip")
    assert str(info.value) == (
        f"{src}: 17,201 of 17,328 lines were bad and skipped, more than half: this is not a "
        "GloVe text (no header) file, or not one read with these options (first skipped: "
        "line 2: field 3: expected a number, found 'z'; line 3: field 3: expected a number, "
        "found 'z'; line 4: field 3: expected a number, found 'z'); check what the file is; "
        "nothing was written")
    nothing_written(tmp_path, "v.txt")
    run = cli("convert", str(src), str(tmp_path / "out.emb"), "--on-bad-line", "skip")
    assert run.returncode == 1 and "17,201 of 17,328 lines" in one_error(run.stderr)


@pytest.mark.parametrize(("n_bad", "n_good", "fails"), [
    (99, 1, False),    # below the minimum count: a small file with bad lines still converts
    (100, 99, False),  # exactly half (100 of 200) is not more than half
    (100, 98, True),
    (5000, 10, True),
])
def test_the_skip_threshold(n_bad: int, n_good: int, fails: bool, tmp_path: Path) -> None:
    from embstore._convert import limits

    assert limits.SKIP_FAIL_MIN == 100
    src = tmp_path / "v.txt"
    src.write_text("".join(f"g{i} 1 2\n" for i in range(n_good))
                   + "".join(f"b{i} 1\n" for i in range(n_bad)) + "end 5 6\n")
    n_good += 1
    if fails:
        with pytest.raises(ConversionError, match=f"{n_bad:,} of {n_bad + n_good:,} lines"):
            embstore.convert(src, tmp_path / "out.emb", on_bad_line="skip")
    else:
        report = embstore.convert(src, tmp_path / "out.emb", on_bad_line="skip")
        assert report.rows == n_good and report.skipped_lines == n_bad


def test_a_skip_run_of_mostly_bad_binary_records_fails(tmp_path: Path) -> None:
    vecs = vectors_for(300, 4)
    vecs[:200, 1] = np.nan
    src = tmp_path / "v.bin"
    src.write_bytes(word2vec_binary([f"w{i}" for i in range(300)], vecs=vecs))
    with pytest.raises(ConversionError, match="200 of 300 records were bad and skipped"):
        embstore.convert(src, tmp_path / "out.emb", on_bad_line="skip")


# -- truncated downloads: every suggested limit converts -----------------------------------------


def suggested_limit(err: ConversionError) -> int:
    found = re.findall(r"limit=(\d+)", str(err))
    assert len(found) == 1, str(err)
    return int(found[0])


def check_limit_works(src: Path, err: ConversionError, tmp_path: Path, **options: Any) -> int:
    """Run the suggested limit, with the options that failed and with the strict defaults."""
    limit = suggested_limit(err)
    for opts in ({**options}, {}):
        dst = tmp_path / f"limit-{len(list(tmp_path.iterdir()))}.emb"
        report = embstore.convert(src, dst, limit=limit, quiet=True, **opts)
        assert report.records == limit and report.rows == limit and report.skipped_lines == 0
    return limit


@pytest.mark.parametrize("cut", ["inside the word", "after a space", "inside a value",
                                 "at a newline"])
@pytest.mark.parametrize("fmt", ["glove", "text"])
def test_truncated_text_says_so_and_its_limit_works(fmt: str, cut: str, tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(3383)]
    data = (glove if fmt == "glove" else word2vec_text)(words, dim=50)
    start = data.index(b"\nw3381 ") + 1  # the line of record 3382
    line = data[start:data.index(b"\n", start)]
    last = line.rindex(b" ")  # before the 50th value: a cut in it may leave a number
    end = {"inside the word": start + 3, "after a space": start + last + 1,
           "inside a value": start + line.rindex(b" ", 0, last) + 4,
           "at a newline": start + last}[cut]
    cut_data = data[:end] + (b"\n" if cut == "at a newline" else b"")
    src = tmp_path / "v.txt"
    src.write_bytes(cut_data)
    header = 1 if fmt == "text" else 0
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    text = str(info.value)
    assert text.startswith(f"{src}:{3382 + header}: expected 50 values after the word, found ")
    assert "on the last line: the file is probably truncated; limit=3381 converts what is " \
           "there" in text
    assert "on_bad_line" not in text  # skipping is not the way forward here
    assert check_limit_works(src, info.value, tmp_path) == 3381
    # Skipping the short line: a GloVe file converts what is there, a header says more rows.
    if fmt == "glove":
        report = embstore.convert(src, tmp_path / "skip.emb", on_bad_line="skip")
        assert report.rows == 3381 and "the file is probably truncated" in \
            report.skipped_examples[0]
    else:
        with pytest.raises(ConversionError) as info:
            embstore.convert(src, tmp_path / "skip.emb", on_bad_line="skip")
        assert "header declares 3,383 rows but the file ends after 3,382; the file is " \
               "probably truncated; limit=3381 converts what is there" in str(info.value)
        assert check_limit_works(src, info.value, tmp_path, on_bad_line="skip") == 3381


def test_a_short_line_that_is_not_the_last_is_not_truncation(tmp_path: Path) -> None:
    src = tmp_path / "v.txt"
    for data in (b"a 1 2\nb 1\nc 1 2\n", b"a 1 2\nb 1\n\n", b"a 1 2\nb 1 2 3\n"):
        src.write_bytes(data)
        with pytest.raises(ConversionError) as info:
            embstore.convert(src, tmp_path / "out.emb")
        assert "truncated" not in str(info.value)
        assert 'or skip bad lines with on_bad_line="skip"' in str(info.value)


@pytest.mark.parametrize("newline", [True, False])
@pytest.mark.parametrize("at", ["record", "end of a record"])
def test_truncated_binary_limits_work(at: str, newline: bool, tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(50)]
    data = b"50 8\n" + b"".join(w.encode() + b" " + row.astype("<f4").tobytes()
                                + (b"\n" if newline else b"")
                                for w, row in zip(words, vectors_for(50, 8), strict=True))
    rec = data.index(b"w40 ")
    cut = data[:rec + 10] if at == "record" else data[:rec]
    src = tmp_path / "v.bin"
    src.write_bytes(cut)
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    assert "the file is probably truncated" in str(info.value)
    assert check_limit_works(src, info.value, tmp_path) == 40


def test_truncation_limits_leave_out_skipped_records_at_the_end(tmp_path: Path) -> None:
    """'limit=3382 converts what is there' counted a last record that was skipped: that
    limit fails with the first error again.  The limit is the records up to the last kept."""
    vecs = vectors_for(10, 4)
    vecs[7:, 0] = np.nan  # the last three records are bad
    data = word2vec_binary([f"w{i}" for i in range(10)], vecs=vecs,
                           header=b"12 4\n")  # and two are missing
    src = tmp_path / "v.bin"
    src.write_bytes(data)
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb", on_bad_line="skip")
    assert "header declares 12 rows but the file ends after 10" in str(info.value)
    assert check_limit_works(src, info.value, tmp_path, on_bad_line="skip") == 7
    text = tmp_path / "v.txt"
    text.write_text("5 2\na 1 2\nb 1 nan\nc 1\n")
    with pytest.raises(ConversionError) as info:
        embstore.convert(text, tmp_path / "out.emb", on_bad_line="skip")
    assert check_limit_works(text, info.value, tmp_path, on_bad_line="skip") == 1


def test_the_cli_translates_truncation_hints(tmp_path: Path) -> None:
    src = tmp_path / "v.txt"
    data = glove([f"w{i}" for i in range(5)], dim=4)
    src.write_bytes(data[:data.rindex(b" ")])  # the last line lost its last value
    assert main(["convert", str(src), str(tmp_path / "out.emb")]) == 1
    run = cli("convert", str(src), str(tmp_path / "out.emb"))
    assert run.returncode == 1
    assert one_error(run.stderr).endswith(
        "on the last line: the file is probably truncated; --limit 4 converts what is there")
    assert cli("convert", str(src), str(tmp_path / "out.emb"), "--limit", "4",
               "--quiet").returncode == 0


# -- archives: members, metadata, tar streams ---------------------------------------------------


def glove6b() -> dict[str, bytes]:
    """glove.6B.zip's layout (four dimensions of one vocabulary), in miniature."""
    words = [f"w{i}" for i in range(20)]
    return {f"glove.6B.{d}d.txt": glove(words, dim=d // 10, seed=d)
            for d in (50, 100, 200, 300)}


def test_several_members_are_listed_with_the_option_to_pick_one(tmp_path: Path) -> None:
    src = tmp_path / "glove.6B.zip"
    src.write_bytes(zipped(glove6b()))
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    assert str(info.value) == (
        f"{src}: zip archive holds 4 files (glove.6B.50d.txt, glove.6B.100d.txt, "
        'glove.6B.200d.txt, glove.6B.300d.txt); choose one with member="glove.6B.300d.txt"')
    run = cli("convert", str(src), str(tmp_path / "out.emb"))
    assert run.returncode == 1
    assert one_error(run.stderr).endswith("choose one with --member glove.6B.300d.txt")
    nothing_written(tmp_path, "glove.6B.zip")
    report = embstore.convert(src, tmp_path / "out.emb", member="glove.6B.100d.txt")
    assert report.member == "glove.6B.100d.txt" and report.dim == 10
    assert "zip member glove.6B.100d.txt" in str(report)
    with embstore.open(tmp_path / "out.emb") as store:
        assert store.metadata["source"]["member"] == "glove.6B.100d.txt"
    run = cli("convert", str(src), str(tmp_path / "cli.emb"), "--member", "glove.6B.300d.txt")
    assert run.returncode == 0, run.stderr
    with embstore.open(tmp_path / "cli.emb") as store:
        assert store.dim == 30


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_member_by_full_or_file_name(kind: str, tmp_path: Path) -> None:
    members = {f"glove/{k}": v for k, v in glove6b().items()}
    src = tmp_path / "g.archive"
    src.write_bytes(zipped(members) if kind == "zip" else
                    tarred(members, "w" if kind == "tar" else "w:gz"))
    for name in ("glove/glove.6B.200d.txt", "glove.6B.200d.txt"):
        report = embstore.convert(src, tmp_path / "out.emb", member=name, force=True)
        assert report.member == "glove/glove.6B.200d.txt" and report.dim == 20
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "x.emb", member="glove.6B.25d.txt")
    assert str(info.value).startswith(
        f"{src}: {kind.split('.')[0]} archive has no member 'glove.6B.25d.txt'; it holds "
        "glove/glove.6B.50d.txt, glove/glove.6B.100d.txt")


def test_member_of_something_that_is_not_an_archive(tmp_path: Path) -> None:
    src = tmp_path / "v.txt.gz"
    src.write_bytes(gzip.compress(glove()))
    with pytest.raises(ValueError, match=r"member='v\.txt' was given but .* is not a zip or tar"):
        embstore.convert(src, tmp_path / "out.emb", member="v.txt")
    run = cli("convert", str(src), str(tmp_path / "out.emb"), "--member", "v.txt")
    assert run.returncode == 1 and "--member v.txt was given" in one_error(run.stderr)


MACOS_METADATA: dict[str, bytes | None] = {
    "__MACOSX/": None,
    "__MACOSX/glove/": None,
    "__MACOSX/glove/._vectors.txt": b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(50),
    "glove/.DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(60),
    "glove/._vectors.txt": b"\x00\x05\x16\x07" + bytes(60),
    "glove/README.md": b"# vectors\n",
    "glove/LICENSE": b"public domain\n",
    "glove/empty.txt": b"",
    "Thumbs.db": b"\xd0\xcf\x11\xe0" + bytes(60),
}


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tgz", "tar.bz2", "tar.xz"])
def test_metadata_in_archives_is_ignored(kind: str, oracle: Any, tmp_path: Path) -> None:
    data, words, vectors = oracle["glove"]
    members = {**MACOS_METADATA, "glove/": None, "glove/vectors.txt": data}
    if kind == "zip":
        packed = zipped({k: v or b"" for k, v in members.items()})
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2",
                "tar.xz": "w:xz"}[kind]
        packed = tarred(members, mode)
    src = tmp_path / f"glove.{kind}"
    src.write_bytes(packed)
    report = embstore.convert(src, tmp_path / "out.emb")
    assert report.member == "glove/vectors.txt"
    assert_store_is(tmp_path / "out.emb", words, vectors)
    nothing_written(tmp_path, src.name, "out.emb")


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_an_archive_of_only_metadata(kind: str, tmp_path: Path) -> None:
    members = {"__MACOSX/._v.txt": b"\x00\x05\x16\x07" + bytes(40), "README.txt": b"hello\n"}
    src = tmp_path / "a"
    src.write_bytes(zipped(members) if kind == "zip" else tarred(members))
    with pytest.raises(ConversionError, match=f"{kind} archive holds no vector file, only "
                                              "metadata, documentation or empty files "
                                              r"\(__MACOSX/._v.txt, README.txt\)"):
        embstore.convert(src, tmp_path / "out.emb")
    # member= picks even a file that looks like documentation (then read as vectors)
    with pytest.raises(ConversionError, match="not a word-vector file"):
        embstore.convert(src, tmp_path / "out.emb", member="README.txt")


def test_a_tar_with_several_vector_files(tmp_path: Path) -> None:
    """A tar is streamed: the second vector file is found after the first was read, and then
    nothing is published."""
    src = tmp_path / "glove.6B.tar.gz"
    src.write_bytes(tarred(glove6b(), "w:gz"))
    with pytest.raises(ConversionError) as info:
        embstore.convert(src, tmp_path / "out.emb")
    assert str(info.value) == (
        f"{src}: tar archive holds 4 files (glove.6B.50d.txt, glove.6B.100d.txt, "
        'glove.6B.200d.txt, glove.6B.300d.txt); choose one with member="glove.6B.300d.txt"')
    nothing_written(tmp_path, src.name)
    # with a limit the first member is not read to its end: the check still holds
    with pytest.raises(ConversionError, match="tar archive holds 4 files"):
        embstore.convert(src, tmp_path / "out.emb", limit=3)
    report = embstore.convert(src, tmp_path / "out.emb", member="glove.6B.300d.txt")
    assert report.dim == 30 and report.compression == "gzip+tar"


def test_tar_from_standard_input_with_a_member(tmp_path: Path) -> None:
    packed = tarred(glove6b(), "w:bz2")
    run = cli("convert", "-", str(tmp_path / "out.emb"), "--member", "glove.6B.200d.txt",
              input=packed)
    assert run.returncode == 0, run.stderr
    assert "from <stdin>" in run.stdout and "bz2+tar member glove.6B.200d.txt" in run.stdout


def test_npz_is_named(tmp_path: Path) -> None:
    src = tmp_path / "m.npz"
    np.savez(src, a=np.zeros(3), b=np.ones(3))
    with pytest.raises(ConversionError, match=r"this is a NumPy .npz archive \(a.npy, b.npy\)"):
        embstore.convert(src, tmp_path / "out.emb")


def test_archive_inside_an_archive_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.tar"
    src.write_bytes(tarred({"inner.zip": zipped({"v.txt": glove()})}))
    with pytest.raises(ConversionError, match="an archive inside an archive"):
        embstore.convert(src, tmp_path / "out.emb")


# -- standard input, pipes and devices ----------------------------------------------------------


def test_cli_reads_standard_input(oracle: Any, tmp_path: Path) -> None:
    """``zcat x.gz | embstore convert - out.emb`` (and compressed input on the pipe)."""
    data, words, vectors = oracle["text"]
    for i, packed in enumerate([data, gzip.compress(data), lzma.compress(data)]):
        dst = tmp_path / f"out{i}.emb"
        run = cli("convert", "-", str(dst), input=packed)
        assert run.returncode == 0, run.stderr
        assert "from <stdin>" in run.stdout
        assert_store_is(dst, words, vectors)
    run = cli("convert", "-", str(tmp_path / "bad.emb"), input=b"2 2\nthe 1 2\nof 1 x\n")
    assert run.returncode == 1
    assert one_error(run.stderr).startswith("embstore: error: <stdin>:3: field 3: expected")


def test_zip_on_standard_input(oracle: Any, tmp_path: Path) -> None:
    data, words, vectors = oracle["glove"]
    src = tmp_path / "v.zip"
    src.write_bytes(zipped({"v.txt": data}))
    run = cli("convert", "-", str(tmp_path / "out.emb"), input=src.read_bytes())  # a pipe
    assert run.returncode == 1
    assert one_error(run.stderr).startswith("embstore: error: <stdin>: a zip archive cannot be "
                                            "read from a pipe (its table of contents is at its "
                                            "end); give its path, or stream one member: "
                                            "unzip -p ARCHIVE MEMBER")
    with open(src, "rb") as f:  # a redirected file can be read like its path
        run = cli("convert", "-", str(tmp_path / "out.emb"), stdin=f)
    assert run.returncode == 0, run.stderr
    assert_store_is(tmp_path / "out.emb", words, vectors)


def test_a_terminal_is_not_read(tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    controller, terminal = pty.openpty()
    try:
        run = cli("convert", "-", str(tmp_path / "out.emb"), stdin=terminal, timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert run.returncode == 1 and "standard input is a terminal" in run.stderr


def _convert_in_thread(src: str, dst: Path) -> BaseException | None:
    result: list[BaseException | None] = []

    def work() -> None:
        try:
            embstore.convert(src, dst, quiet=True)
            result.append(None)
        except BaseException as exc:  # handed to the test
            result.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"convert({src!r}) blocked"
    return result[0]


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "vectors.fifo"
    os.mkfifo(fifo)
    err = _convert_in_thread(str(fifo), tmp_path / "out.emb")  # no writer: open would block
    assert isinstance(err, ConversionError)
    assert str(err) == (f"{fifo}: not a regular file (a named pipe); to read from a pipe, use "
                        f"- and redirect it: embstore convert - OUT.emb < {fifo}")
    nothing_written(tmp_path, "vectors.fifo")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_not_called_empty(device: str, tmp_path: Path) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    err = _convert_in_thread(device, tmp_path / "out.emb")
    assert isinstance(err, ConversionError)
    assert str(err).startswith(f"{device}: not a regular file (a character device); to read "
                               "from a device, use - and redirect it")
    assert "empty" not in str(err)


def test_source_peeks_without_seeking(tmp_path: Path) -> None:
    """The first bytes of every layer are read once and handed out again: a source that
    cannot seek (a pipe) reads exactly like a file."""

    class NoSeek(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._f = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: Any) -> int:
            chunk = self._f.read(min(len(b), 1000))  # short reads, like a pipe
            b[:len(chunk)] = chunk
            return len(chunk)

    data = glove() * 200
    for packed, kind in [(data, None), (gzip.compress(data), "gzip"),
                         (tarred({"v": data}, "w:xz"), "xz+tar")]:
        source = Source(NoSeek(packed))
        try:
            out = bytearray()
            buf = bytearray(4096)
            while n := source.readinto(memoryview(buf)):
                out += buf[:n]
            assert bytes(out) == data and source.compression == kind
        finally:
            source.close()


# -- a vector file given as the vocabulary ------------------------------------------------------


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    src = tmp_path / "small.txt"
    src.write_bytes(glove())
    embstore.convert(src, tmp_path / "small.emb", quiet=True)
    return tmp_path / "small.emb"


def _wide_header_file(_: Path) -> bytes:
    return b"3000 300\n" + b"the " + b" ".join([b"0.25"] * 300) + b"\n"


VOCAB_REFUSALS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "word2vec text": (_wide_header_file,
                      "this is a word-vector file (word2vec text header '3000 300'), not a "
                      "vocabulary"),
    "GloVe": (lambda _: glove(dim=50),
              "this is a word-vector file (GloVe text: a word and 50 numbers on each line), "
              "not a vocabulary"),
    "word2vec binary": (lambda _: word2vec_binary(dim=20),
                        "this is a word-vector file (word2vec binary, header '34 20'), not a "
                        "vocabulary"),
    "gzip vectors": (lambda _: gzip.compress(word2vec_text()),
                     "this is a word-vector file (word2vec text header '34 5', gzip-compressed), "
                     "not a vocabulary"),
    "xz vectors": (lambda _: lzma.compress(glove()),
                   "this is a word-vector file (GloVe text: a word and 5 numbers on each line, "
                   "xz-compressed), not a vocabulary"),
    "store": (_store, "this is an embstore store, not a vocabulary; pass it as the store"),
    "lz4": (lambda _: _lz4(glove()), "this is lz4-compressed data (lz4 frame format), not a "
                                     "vocabulary"),
    "zip": (lambda _: zipped({"v.txt": glove()}), "this is a zip archive, not a vocabulary"),
    "tar": (lambda _: tarred({"v.txt": glove()}), "this is a tar archive, not a vocabulary"),
    "npy": (_npy, "this is a NumPy .npy array, not a vocabulary; if it holds the tokens, load "
                  "it (numpy.load) and pass the array"),
    "pickle": (lambda _: pickle.dumps({"the": 1}), "this is a Python pickle"),
    "fastText": (_gensim_file("lee_fasttext.bin"), "this is a fastText binary model"),
    "binary": (lambda _: bytes(np.random.default_rng(3).integers(1, 256, 4000, dtype=np.uint8)),
               "this is binary data, not a vocabulary"),
}


@pytest.mark.parametrize("kind", list(VOCAB_REFUSALS))
def test_files_that_are_not_vocabularies(kind: str, small_store: Path, tmp_path: Path) -> None:
    make, message = VOCAB_REFUSALS[kind]
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes(make(tmp_path))
    with pytest.raises(VocabularyError) as info, embstore.open(small_store) as store:
        store.build_matrix(vocab)
    assert str(info.value).startswith(f"{vocab}: {message}")


def test_the_cli_refuses_a_vector_file_as_vocabulary(small_store: Path, tmp_path: Path) -> None:
    """The report: ``embstore matrix STORE vectors.txt`` said '0 found' and exited 0."""
    vectors = tmp_path / "vectors.txt"
    vectors.write_bytes(_wide_header_file(tmp_path))
    out = tmp_path / "m.npy"
    run = cli("matrix", str(small_store), str(vectors), "--out", str(out))
    assert run.returncode == 1 and not out.exists()
    assert one_error(run.stderr) == (
        f"embstore: error: {vectors}: this is a word-vector file (word2vec text header "
        "'3000 300'), not a vocabulary; a vocabulary is a JSON word_index or token list, or a "
        "text file with one token per line")


@pytest.mark.parametrize("content", [
    b"3000 300\nthe\nof\n",   # a token that looks like a header, then tokens
    b"1\n2\n3\n",             # numeric tokens
    b"\n[UNK]\nthe\nw1\n",    # a Keras vocabulary file
    b"the 120\nw1 99\n",      # tokens with counts (one number) stay tokens
    b"w1\tx\nw2\n",
])
def test_vocabularies_that_look_a_little_like_vectors(content: bytes, small_store: Path,
                                                      tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes(content + b"w2\nw3\n")  # so that something is found
    with embstore.open(small_store) as store:
        result = store.build_matrix(vocab)
    assert result.hits >= 2


# -- matrices that find nothing, or almost nothing ------------------------------------------------


def test_a_matrix_with_no_word_found_is_refused_where_it_is_written(small_store: Path,
                                                                    tmp_path: Path) -> None:
    """build_matrix warns (a damaged or foreign store may answer nothing); save_matrix and
    the CLI, which would write a file of fill values, refuse and write nothing."""
    with embstore.open(small_store) as store:
        with pytest.warns(UserWarning) as caught:
            result = store.build_matrix(["", "[UNK]", "W1", "W2", "nope"])
        assert result.hits == 0
        assert str(caught[0].message) == (
            f"none of the vocabulary's 3 words is in the store {small_store}: no word was "
            "found; is this the vocabulary for these vectors? if the store's words are cased "
            'differently (e.g. all lower case), try fallbacks="lower,title"')
        assert store.build_matrix(["", "[UNK]", "W1", "W2", "nope"],
                                  fallbacks='lower,title').hits == 2  # the hint, followed
        with pytest.warns(UserWarning, match=r"the case fallbacks \(lower\) did not help"):
            store.build_matrix({"nope": 1}, fallbacks=["lower"])
        assert store.build_matrix([""]).hits == 0  # only padding: nothing is missing
        from embstore.matrix import save_matrix

        with pytest.raises(VocabularyError, match="nothing was written"), \
                pytest.warns(UserWarning):
            save_matrix(store, ["W1", "nope"], tmp_path / "m.npy")
        assert not (tmp_path / "m.npy").exists()
    vocab = tmp_path / "v.txt"
    vocab.write_text("W1\nnope\n")
    run = cli("matrix", str(small_store), str(vocab), "--out", str(tmp_path / "m.npy"))
    assert run.returncode == 1 and "nothing was written" in run.stderr
    assert not (tmp_path / "m.npy").exists()


@pytest.mark.parametrize(("n_words", "hits", "warns"), [
    (40, 1, True), (21, 1, True), (20, 1, False), (19, 0, None), (19, 1, False),
    (100, 5, False), (100, 4, True),
])
def test_very_low_coverage_warns(n_words: int, hits: int, warns: bool | None,
                                 small_store: Path) -> None:
    vocab = [f"w{i}" for i in range(hits)] + [f"nope{i}" for i in range(n_words - hits)]
    with embstore.open(small_store) as store:
        if warns is None:
            with pytest.warns(UserWarning, match="no word was found"):
                store.build_matrix(vocab)
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = store.build_matrix(vocab)
    assert result.hits == hits
    texts = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if warns:
        assert texts == [f"only {hits} of the vocabulary's {n_words} words "
                         f"({hits / n_words:.1%}) were found in the store {small_store}; is this "
                         "the vocabulary for these vectors? if the store's words are cased "
                         'differently (e.g. all lower case), try fallbacks="lower,title"']
    else:
        assert texts == []


def test_the_cli_prints_the_coverage_warning(small_store: Path, tmp_path: Path) -> None:
    vocab = tmp_path / "v.txt"
    vocab.write_text("w1\n" + "".join(f"nope{i}\n" for i in range(50)))
    run = cli("matrix", str(small_store), str(vocab), "--out", str(tmp_path / "m.npy"))
    assert run.returncode == 0 and (tmp_path / "m.npy").exists()
    assert run.stderr.splitlines() == [
        "embstore: warning: only 1 of the vocabulary's 51 words (2.0%) were found in the store "
        f"{small_store}; is this the vocabulary for these vectors? if the store's words are "
        "cased differently (e.g. all lower case), try --fallback lower,title"]
    assert run.stdout.startswith("Matrix 51 x 5: 1 found, 50 missing")


# -- the command line ---------------------------------------------------------------------------


def test_fallback_with_spaces(small_store: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    vocab = tmp_path / "v.txt"
    vocab.write_text("W1\nW2\n")
    assert main(["matrix", str(small_store), str(vocab), "--out", str(tmp_path / "m.npy"),
                 "--fallback", "lower, title"]) == 0
    assert capsys.readouterr().out.startswith("Matrix 2 x 5: 2 found (2 by a case fallback)")
    assert main(["matrix", str(small_store), str(vocab), "--out", str(tmp_path / "m2.npy"),
                 "--fallback", "lower, snake"]) == 1
    assert "unknown fallback 'snake'" in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5", "x"])
def test_bad_seeds_name_the_option(seed: str, small_store: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["matrix", str(small_store), str(tmp_path / "v.txt"), "--out",
              str(tmp_path / "m.npy"), "--seed", seed])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("embstore: error: argument --seed: expected an integer "
                          "0 <= S < 2**32, got ")
    assert len(err.splitlines()) == 1


def test_largest_seed_is_accepted(small_store: Path, tmp_path: Path) -> None:
    vocab = tmp_path / "v.txt"
    vocab.write_text("w1\nnope\n")
    assert main(["matrix", str(small_store), str(vocab), "--out", str(tmp_path / "m.npy"),
                 "--oov", "random", "--seed", str(2**32 - 1)]) == 0


@pytest.mark.parametrize(("command", "expected"), [
    ("info", ["the store file (made by embstore convert)", "print everything as JSON"]),
    ("verify", ["the store file to check", "print the result as JSON"]),
    ("get", ["the store file (made by embstore convert)", "words to look up",
             '"missing"']),
    ("convert", ["or - for standard input", "--member NAME"]),
])
def test_help_describes_every_argument(command: str, expected: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in expected:
        assert text in out


def test_get_json(small_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", str(small_store), "w1", "日本", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["missing"] == [] and list(d["vectors"]) == ["w1", "日本"]
    with embstore.open(small_store) as store:
        for word, values in d["vectors"].items():
            back = np.array(values, dtype=np.float32)
            assert np.array_equal(back.view(np.uint32), store[word].view(np.uint32))
    assert main(["get", str(small_store), "nope", "w2", "nope", "--json"]) == 1
    out, err = capsys.readouterr()
    d = json.loads(out)
    assert d["missing"] == ["nope"] and list(d["vectors"]) == ["w2"] and err == ""


def test_errors_under_json_are_json(small_store: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1 2\nof 1 x\nand 1 2\n")
    assert main(["convert", str(bad), str(tmp_path / "o.emb"), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    d = json.loads(err)
    assert d == {"error": f"{bad}:2: field 3: expected a number, found 'x'; or skip bad lines "
                          "with --on-bad-line skip",
                 "type": "ConversionError", "path": str(bad), "line": 2, "offset": None}
    assert main(["info", str(tmp_path / "absent.emb"), "--json"]) == 1
    d = json.loads(capsys.readouterr().err)
    assert d["type"] == "FileNotFoundError" and d["path"] == str(tmp_path / "absent.emb")
    assert main(["verify", str(bad), "--json"]) == 1
    out, err = capsys.readouterr()
    assert out or json.loads(err)["type"] == "FormatError"
    run = cli("convert", str(bad), str(tmp_path / "o.emb"), "--json")
    assert run.returncode == 1 and json.loads(run.stderr)["line"] == 2


def test_demo_commands_are_shell_quoted(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "my vectors"
    folder.mkdir()
    src = folder / "it's.txt"
    src.write_bytes(glove())
    workdir = tmp_path / "demo out"
    assert main(["demo", "--vectors", str(src), "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out.splitlines()
    first = out[0].removeprefix("1. ")
    assert shlex.split(first) == ["embstore", "convert", str(src),
                                  str(workdir / "vectors.emb"), "--force"]
    third = next(line for line in out if line.startswith("3. embstore")).removeprefix("3. ")
    assert shlex.split(third)[:4] == ["embstore", "matrix", str(workdir / "vectors.emb"),
                                      str(workdir / "vocab.txt")]


def test_demo_sample_words_are_real_words() -> None:
    from embstore.demo import sample_words

    words = ([".", "the", ",", "of", "and", "to", "a", "in", '"', "is"] * 30
             + ["x1", "u.s.", "--", "it's", "cat", "ox", "house", "Paris", "run", "tree"]
             + [f"w{i}" for i in range(700)])
    picked = sample_words(words)
    assert picked == ["cat", "house", "Paris"]
    assert sample_words([".", ",", "the"]) == [".", ",", "the"]  # nothing better to show
