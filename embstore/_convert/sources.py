"""Opening input vector files: what the bytes are, layer by layer, read ahead in a thread.

File names are never trusted to say what a file is: ``vectors.txt`` may be gzip and
``model.bin`` may be text.  Every input -- a path, standard input (``-``) or a binary file
object -- is opened the same way.  Its first bytes are *peeked* (read and kept for the reader,
never sought back, so pipes work) and identified by :func:`identify`:

* gzip, bz2 and xz are decompressed, and the first decompressed bytes are identified in turn;
* a zip or tar archive contributes one member -- the one named by ``member=``, or its only
  file that is not metadata (``__MACOSX/``, ``._*``, ``.DS_Store``, READMEs, ...) -- whose first
  bytes are identified too (a tar is streamed, never extracted; a gzip/bz2/xz tar is the
  compression layer, then the tar);
* anything else that is recognised -- another compressor or archive (zstd, lz4, 7z, RAR,
  Unix compress, Snappy, lzip), a store, a NumPy array, a pickle, a fastText model -- is
  refused with what it is and what to do;
* what is left is data for the format detector.

Paths that are not regular files (named pipes, devices, sockets) are refused before anything
is read: they are opened without blocking and checked with ``fstat``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import queue
import re
import shlex
import stat
import struct
import sys
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import numpy as np

from .. import format as fmt
from ..errors import ConversionError

STDIN = "-"  #: the source name that means standard input
STDIN_LABEL = "<stdin>"  #: how messages name standard input
PEEK = 4096  # bytes identified at each layer (a tar header's magic is at offset 257)
MAX_LISTED = 10  # archive members named in a message

_STREAM = "| embstore convert - OUT.emb"


@dataclass(frozen=True)
class Identified:
    """What the first bytes of an input say it is.

    ``layer`` kinds are read through (decompressed, or an archive member chosen); the others
    are refused with ``what`` and ``hint``.  ``{path}`` in a hint is the quoted input path.
    """

    kind: str
    what: str  # a noun phrase: "lz4-compressed data", "a NumPy .npy array"
    layer: bool = False
    hint: str | None = None
    suffix: str = ", not a word-vector file"
    top: str | None = None  # the wording at the top level, when it differs from ``what``


def _unsupported(kind: str, what: str, hint: str) -> Identified:
    return Identified(kind, what, hint=hint, suffix=", which embstore does not read")


_GZIP = Identified("gzip", "gzip-compressed data", layer=True)
_BZ2 = Identified("bz2", "bz2-compressed data", layer=True)
_XZ = Identified("xz", "xz-compressed data", layer=True)
_ZIP = Identified("zip", "a zip archive", layer=True)
_TAR = Identified("tar", "a tar archive", layer=True)

_MAGICS: tuple[tuple[bytes, Identified], ...] = (
    (b"\x1f\x8b", _GZIP),
    (b"\xfd7zXZ\x00", _XZ),
    (b"PK\x03\x04", _ZIP),
    (b"PK\x05\x06", _ZIP),  # an empty zip archive
    (b"\x28\xb5\x2f\xfd", _unsupported(
        "zstd", "zstd-compressed data",
        f"decompress it first (zstd -d), or stream it: zstd -dc {{path}} {_STREAM}")),
    (b"\x04\x22\x4d\x18", _unsupported(
        "lz4", "lz4-compressed data (lz4 frame format)",
        f"decompress it first (lz4 -d), or stream it: lz4 -dc {{path}} {_STREAM}")),
    (b"\x02\x21\x4c\x18", _unsupported(
        "lz4", "lz4-compressed data (legacy lz4 format)",
        f"decompress it first (lz4 -d), or stream it: lz4 -dc {{path}} {_STREAM}")),
    (b"7z\xbc\xaf\x27\x1c", _unsupported(
        "7z", "a 7z archive",
        f"extract the vector file (7z x {{path}}) and convert it, or stream it: "
        f"7z e -so {{path}} MEMBER {_STREAM}")),
    (b"Rar!\x1a\x07", _unsupported(
        "rar", "a RAR archive",
        f"extract the vector file (unrar x {{path}}) and convert it, or stream it: "
        f"unrar p -inul {{path}} MEMBER {_STREAM}")),
    (b"\x1f\x9d", _unsupported(
        "compress", "Unix compress (.Z) data",
        f"gzip decompresses it: gzip -dc {{path}} {_STREAM}")),
    (b"\xff\x06\x00\x00sNaPpY", _unsupported(
        "snappy", "Snappy framed data",
        "decompress it first (python -m snappy -d {path} OUT, from python-snappy)")),
    (b"LZIP\x01", _unsupported(
        "lzip", "lzip-compressed data",
        f"decompress it first (lzip -d), or stream it: lzip -dc {{path}} {_STREAM}")),
    (fmt.MAGIC, Identified(
        "store", "an embstore store", top="already an embstore store", suffix="",
        hint="open it with embstore.open() or `embstore info`")),
    (b"\x93NUMPY", Identified(
        "npy", "a NumPy .npy array",
        hint="gensim's .npy files belong to a native model; load it with gensim and use "
             "embstore.gensim.from_keyedvectors()")),
    (b"\x89HDF\r\n\x1a\n", Identified("hdf5", "an HDF5 file (e.g. saved Keras weights)")),
    # UTF-16 (or UTF-32 LE, which starts the same) by its byte-order mark.
    (b"\xff\xfe", Identified(
        "utf16", "UTF-16 text", suffix=", which embstore does not read (vector files are UTF-8)",
        hint=f"convert it to UTF-8: iconv -f UTF-16 -t UTF-8 {{path}} {_STREAM}")),
    (b"\xfe\xff", Identified(
        "utf16", "UTF-16 text", suffix=", which embstore does not read (vector files are UTF-8)",
        hint=f"convert it to UTF-8: iconv -f UTF-16 -t UTF-8 {{path}} {_STREAM}")),
)
_FASTTEXT_MAGIC = struct.pack("<i", 793712314)  # fastText's FILEFORMAT_MAGIC_INT32
_FASTTEXT = Identified(
    "fasttext", "a fastText binary model (.bin)", suffix="",
    hint="convert its .vec text file, or load it with "
         "gensim.models.fasttext.load_facebook_vectors and use embstore.gensim.from_keyedvectors")
_PICKLE = Identified(
    "pickle", "a Python pickle (e.g. a gensim native model)",
    suffix=", not a word2vec/GloVe/fastText vector file",
    hint="load it with gensim (only if you trust it: unpickling runs code) and use "
         "embstore.gensim.from_keyedvectors()")
_BZ2_RE = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")


def identify(head: bytes) -> Identified | None:
    """What ``head`` (the first bytes of some data, ideally :data:`PEEK` of them) is, if it
    is anything but data for the vector-format detector."""
    for magic, what in _MAGICS:
        if head.startswith(magic):
            return what
    if _BZ2_RE.match(head):
        return _BZ2
    if head.startswith(_FASTTEXT_MAGIC) or _old_fasttext(head):
        return _FASTTEXT
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _PICKLE
    if len(head) >= 263 and head[257:262] == b"ustar":
        return _TAR
    return None


def _old_fasttext(head: bytes) -> bool:
    """A fastText model saved before the magic number (gensim still reads it): twelve int32
    arguments (dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
    lrUpdateRate) then the float64 sampling threshold t."""
    if len(head) < 56:
        return False
    dim, ws, epoch, min_count, neg, ngrams, loss, model, bucket, minn, maxn, lr_rate = \
        struct.unpack("<12i", head[:48])
    (t,) = struct.unpack("<d", head[48:56])
    return bool(1 <= dim <= fmt.MAX_DIM and 1 <= ws <= 10_000 and 1 <= epoch <= 1_000_000
            and min_count >= 0 and 0 <= neg <= 10_000 and 1 <= ngrams <= 100
            and 1 <= loss <= 4 and 1 <= model <= 3 and bucket >= 0
            and 0 <= minn <= 1000 and 0 <= maxn <= 1000 and lr_rate >= 0 and 0.0 < t < 1.0)


def is_metadata(name: str) -> bool:
    """Archive members that are never the vector file: macOS resource forks and Finder files,
    Windows and desktop thumbnails and settings, version-control files, documentation."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts:
        return True
    base = parts[-1]
    low = base.lower()
    if "__MACOSX" in parts or any(p in (".git", ".svn", ".hg") for p in parts[:-1]):
        return True
    if base.startswith("._") or low in (".ds_store", "thumbs.db", "desktop.ini", ".directory",
                                        "icon\r", ".gitignore", ".gitattributes"):
        return True
    stem, ext = os.path.splitext(low)
    return (stem.startswith(("readme", "license", "licence", "copying", "notice", "authors",
                             "changelog", "changes", "citation"))
            or ext in (".md", ".rst", ".html", ".htm", ".pdf", ".doc", ".docx", ".sha256",
                       ".md5"))


@dataclass
class _Member:
    name: str
    size: int
    info: Any


class _Peekable(io.RawIOBase):
    """Reads ``inner``, with :meth:`peek` to look at the first bytes without seeking: peeked
    bytes are kept and handed out again by ``readinto``.  ``count`` is the bytes taken from
    ``inner`` (on the outermost layer: from the file, for progress)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._held = b""
        self._pos = 0
        self.count = 0

    def readable(self) -> bool:
        return True

    def peek_bytes(self, n: int) -> bytes:
        parts = [self._held[self._pos:]]
        have = len(parts[0])
        while have < n:
            chunk = self._inner.read(n - have)
            if not chunk:
                break
            self.count += len(chunk)
            parts.append(chunk)
            have += len(chunk)
        self._held = b"".join(parts)
        self._pos = 0
        return self._held[:n]

    def readinto(self, b: Any) -> int:
        if self._pos < len(self._held):
            m = min(len(b), len(self._held) - self._pos)
            b[:m] = self._held[self._pos:self._pos + m]
            self._pos += m
            if self._pos == len(self._held):
                self._held, self._pos = b"", 0
            return m
        readinto = getattr(self._inner, "readinto", None)
        if readinto is not None:
            n = readinto(b) or 0
        else:  # a caller's object with read() only
            chunk = self._inner.read(len(b))
            n = len(chunk)
            b[:n] = chunk
        self.count += n
        return n

    def close(self) -> None:  # the layers are closed by Source, innermost first
        super().close()


class Source:
    """A readable, decompressed view of an input vector file.

    ``src`` is a path, ``"-"`` for standard input, or a binary file object (read, never
    closed).  ``path`` names it in messages (``<stdin>`` for standard input).  ``size`` is the
    input's size where it is known (0 for a pipe) and ``consumed`` how much of it has been
    read, which is what a progress bar can honestly show for compressed input.
    ``compression`` names the layers read through, outermost first (``"gzip"``, ``"zip"``,
    ``"gzip+tar"``), None for plain data; ``member`` is the archive member read.
    """

    def __init__(self, src: str | os.PathLike[str] | BinaryIO, member: str | None = None
                 ) -> None:
        self.member_opt = member
        self.member: str | None = None
        self.layers: list[str] = []
        self._closers: list[Any] = []
        self._tar: tarfile.TarFile | None = None
        self._chosen: _Member | None = None
        self._zip_member: Any = None
        self.path, raw, self.size, self.seekable = _open_input(src, self._closers)
        self._quoted = "FILE" if self.path.startswith("<") else shlex.quote(self.path)
        try:
            self._counter = _Peekable(raw)
            self._raw = raw
            self._stream: _Peekable = self._open_layers(self._counter)
        except BaseException:
            self.close()
            raise

    @property
    def compression(self) -> str | None:
        return "+".join(self.layers) or None

    # -- opening -------------------------------------------------------------------------------

    def _open_layers(self, layer: _Peekable) -> _Peekable:
        where = ""  # the layers read through so far, as messages name them
        archived = False
        for _ in range(8):  # a few layers at most; more is hostile
            head = self._peek(layer)
            if not head:
                raise self._error(self._empty(where))
            found = identify(head)
            if found is None:
                break
            if not found.layer:
                raise self._refusal(found, where)
            if found.kind in ("zip", "tar"):
                if archived:
                    raise self._error(f"this holds {found.what} ({where}), an archive inside "
                                      "an archive", hint="extract the vector file and convert it")
                archived = True
                layer = self._open_zip(where) if found.kind == "zip" else self._open_tar(layer)
                assert self.member is not None
                where = f"{found.kind} member {self.member!r}" + (f" in {where}" if where else "")
            else:
                layer = _Peekable(_DECOMPRESSORS[found.kind](io.BufferedReader(layer, 1 << 20)))
                self._closers.append(layer._inner)
                where = found.kind + (f" in {where}" if where else "")
            self.layers.append(found.kind)
        else:
            raise self._error("too many layers of compression and archives")
        if self.member_opt is not None and self.member is None:
            raise ValueError(f"member={self.member_opt!r} was given but {self.path} is not a zip "
                             "or tar archive")
        return layer

    def _peek(self, layer: _Peekable) -> bytes:
        try:
            return layer.peek_bytes(PEEK)
        except (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile,
                tarfile.TarError) as exc:
            raise self._read_error(exc) from None

    def _empty(self, where: str) -> str:
        if where:
            return f"the {where} is empty; expected word vectors"
        if self.path == STDIN_LABEL:
            return "standard input is empty; expected word vectors"
        return "the file is empty; expected word vectors"

    def _refusal(self, found: Identified, where: str) -> ConversionError:
        if where:
            text = f"this holds {found.what} ({where}){found.suffix}"
            hint = found.hint if found.hint and "{path}" not in found.hint else (
                "extract or decompress it first" if found.suffix.startswith(", which") else None)
        else:
            text = f"this is {found.top or found.what}{found.suffix}"
            hint = found.hint.replace("{path}", self._quoted) if found.hint else None
        return self._error(text, hint=hint)

    def _error(self, message: str, hint: str | None = None,
               offset: int | None = None) -> ConversionError:
        return ConversionError(self.path, message, hint=hint, offset=offset)

    def _open_zip(self, where: str) -> _Peekable:
        if where or not self.seekable:
            if where:
                text = f"this holds a zip archive ({where}), which cannot be read as a stream"
                hint = "extract it first"
            else:
                text = ("a zip archive cannot be read from a pipe (its table of contents is "
                        "at its end)")
                hint = f"give its path, or stream one member: unzip -p ARCHIVE MEMBER {_STREAM}"
            raise self._error(text, hint=hint)
        try:
            archive = zipfile.ZipFile(self._raw)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise self._error(f"damaged zip archive ({exc})") from None
        self._closers.append(archive)
        members = [_Member(i.filename, i.file_size, i) for i in archive.infolist()
                   if not i.is_dir()]
        chosen = self._choose_zip(members)
        self.member = chosen.name
        self._chosen = chosen
        # Progress for zip follows the compressed bytes of the member.
        self.size = chosen.info.compress_size or self.size
        try:
            f = archive.open(chosen.info)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError, EOFError) as exc:
            # encrypted member, unsupported compression method, damaged local header or
            # a header offset outside the file (seek fails with EINVAL)
            raise self._error(f"cannot read the zip member ({exc})") from None
        self._closers.append(f)
        self._zip_member = f
        return _Peekable(f)

    def _choose_zip(self, members: list[_Member]) -> _Member:
        if self.member_opt is not None:
            found = _by_name(members, self.member_opt)
            if len(found) == 1:
                return found[0]
            raise self._no_member("zip", members, found)
        candidates = [m for m in members if m.size > 0 and not is_metadata(m.name)]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise self._nothing("zip", members)
        if all(m.name.lower().endswith(".npy") for m in candidates):
            raise self._error(
                f"this is a NumPy .npz archive ({_listing(candidates)}), not a word-vector file",
                hint="load it with NumPy, or with gensim if it belongs to a native model, and "
                     "use embstore.gensim.from_keyedvectors()")
        raise self._several("zip", candidates)

    def _open_tar(self, layer: _Peekable) -> _Peekable:
        try:
            tar = tarfile.open(fileobj=layer, mode="r|*")  # noqa: SIM115 - closed by close()
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise self._error(f"damaged tar archive ({exc})") from None
        self._closers.append(tar)
        self._tar = tar
        seen: list[_Member] = []
        chosen = None
        while chosen is None:
            info = self._next_tar_member()
            if info is None:
                break
            m = _Member(info.name, info.size, info)
            seen.append(m)
            if self.member_opt is not None:
                if _by_name([m], self.member_opt):
                    chosen = m
            elif m.size > 0 and not is_metadata(m.name):
                chosen = m
        if chosen is None:
            if self.member_opt is not None:
                raise self._no_member("tar", seen, [])
            raise self._nothing("tar", seen)
        self.member = chosen.name
        self._chosen = chosen
        f = tar.extractfile(chosen.info)
        assert f is not None  # a regular file
        return _Peekable(f)

    def _next_tar_member(self) -> tarfile.TarInfo | None:
        """The next regular file of the tar (directories, links and devices are skipped)."""
        assert self._tar is not None
        while True:
            try:
                info = self._tar.next()
            except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
                raise self._read_error(exc) from None
            if info is None or info.isreg():
                return info

    def check_complete(self) -> None:
        """Once the chosen member was read: a tar read without ``member=`` may hold no other
        vector file after it (a stream cannot be listed before it is read)."""
        if self._tar is None or self.member_opt is not None or self._chosen is None:
            return
        others = []
        while (info := self._next_tar_member()) is not None:
            if info.size > 0 and not is_metadata(info.name):
                others.append(_Member(info.name, info.size, info))
        if others:
            raise self._several("tar", [self._chosen, *others])

    # -- messages about members ----------------------------------------------------------------

    def _several(self, kind: str, candidates: list[_Member]) -> ConversionError:
        largest = max(candidates, key=lambda m: m.size)
        return self._error(
            f"{kind} archive holds {len(candidates)} files ({_listing(candidates)})",
            hint=f"choose one with member={_quote_member(largest.name)}")

    def _nothing(self, kind: str, members: list[_Member]) -> ConversionError:
        if not members:
            return self._error(f"{kind} archive holds no files")
        return self._error(f"{kind} archive holds no vector file, only metadata, documentation "
                           f"or empty files ({_listing(members)})",
                           hint="choose one with member=NAME if it really is the vector file")

    def _no_member(self, kind: str, members: list[_Member], matches: list[_Member]
                   ) -> ConversionError:
        given = self.member_opt
        if matches:
            return self._error(f"{kind} archive holds several files named {given!r} "
                               f"({_listing(matches)})",
                               hint="give the member's full name")
        files = [m for m in members if not is_metadata(m.name)] or members
        return self._error(f"{kind} archive has no member {given!r}; it holds "
                           + (_listing(files) if files else "no files"))

    # -- reading -------------------------------------------------------------------------------

    @property
    def consumed(self) -> int:
        if self._zip_member is not None:
            left = getattr(self._zip_member, "_compress_left", None)
            if left is not None:
                return max(self.size - int(left), 0)
        return self._counter.count

    def readinto(self, buf: memoryview) -> int:
        try:
            return self._stream.readinto(buf) or 0
        except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, zlib.error,
                tarfile.TarError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise self._read_error(exc) from None

    def _read_error(self, exc: BaseException) -> ConversionError:
        what = self.compression or "file"
        return self._error(f"cannot read {what} data ({exc}); the file is damaged or truncated")

    def close(self) -> None:
        while self._closers:
            f = self._closers.pop()
            with contextlib.suppress(Exception):
                f.close()


_DECOMPRESSORS: dict[str, Callable[[IO[bytes]], Any]] = {
    "gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    "bz2": lambda f: bz2.BZ2File(f, mode="rb"),
    "xz": lambda f: lzma.LZMAFile(f, mode="rb"),  # noqa: SIM115 - closed by Source.close
}

_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe", "pipe"),
    (stat.S_ISCHR, "a character device", "device"),
    (stat.S_ISBLK, "a block device", "device"),
    (stat.S_ISSOCK, "a socket", "socket"),
)


def _open_input(src: Any, closers: list[Any]) -> tuple[str, Any, int, bool]:
    """``(label, raw, size, seekable)`` for a path, ``"-"`` or a binary file object."""
    if isinstance(src, str) and src == STDIN:
        return _open_stdin(closers)
    if not isinstance(src, (str, bytes, os.PathLike)):
        return _open_object(src)
    path = os.fsdecode(src)
    # Without O_NONBLOCK, opening a named pipe waits for a writer, possibly forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "is a directory, expected a vector file", path)
        for test, what, name in _NOT_REGULAR:
            if test(st.st_mode):
                raise ConversionError(
                    path, f"not a regular file ({what})",
                    hint=f"to read from a {name}, use - and redirect it: "
                         f"embstore convert - OUT.emb < {shlex.quote(path)}")
        os.set_blocking(fd, True)
        raw = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    closers.append(raw)
    return path, raw, st.st_size, True


def _open_stdin(closers: list[Any]) -> tuple[str, Any, int, bool]:
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:
            raise ConversionError(STDIN_LABEL, "standard input is not available") from None
        return STDIN_LABEL, buffer, 0, False
    st = os.fstat(fd)
    if os.isatty(fd):
        raise ConversionError(STDIN_LABEL, "standard input is a terminal",
                              hint="redirect a file or a pipe into it: "
                                   "embstore convert - OUT.emb < vectors.txt")
    # A duplicate, so that closing the source never closes the process's standard input.
    raw = os.fdopen(os.dup(fd), "rb", buffering=0)
    closers.append(raw)
    regular = stat.S_ISREG(st.st_mode)
    return STDIN_LABEL, raw, st.st_size if regular else 0, regular


def _open_object(obj: Any) -> tuple[str, Any, int, bool]:
    if isinstance(obj, io.TextIOBase) or not callable(getattr(obj, "read", None)):
        raise TypeError(f"src must be a path, '-' (standard input) or a binary file object, "
                        f"not {type(obj).__name__}")
    name = getattr(obj, "name", None)
    label = name if isinstance(name, str) else "<stream>"
    size = 0
    try:
        st = os.fstat(obj.fileno())
        if stat.S_ISREG(st.st_mode):
            size = st.st_size
    except (AttributeError, OSError, ValueError):
        pass
    try:
        seekable = bool(obj.seekable())
    except (AttributeError, OSError, ValueError):
        seekable = False
    return label, obj, size, seekable


def _by_name(members: list[_Member], name: str) -> list[_Member]:
    """Members named ``name``: by full name, else by file name (the part after the last /)."""
    exact = [m for m in members if m.name == name]
    if exact:
        return exact[:1]
    return [m for m in members if m.name.rstrip("/").rsplit("/", 1)[-1] == name]


def _listing(members: list[_Member]) -> str:
    names = [m.name for m in members[:MAX_LISTED]]
    more = len(members) - len(names)
    return ", ".join(names) + (f" and {more:,} more" if more > 0 else "")


def _quote_member(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Prefetcher:
    """Reads a :class:`Source` in fixed-size blocks on a background thread.

    Decompression and ``read`` release the GIL, so reading the next block overlaps with
    parsing the current one.  Each buffer keeps ``head`` free bytes before the block so the
    consumer can place the unfinished end of the previous block there and see one contiguous
    window without copying the block.  At most ``depth`` buffers exist at once.
    """

    _EOF = object()

    def __init__(self, source: Source, block_size: int, head: int, depth: int = 3) -> None:
        self.source = source
        self.block_size = block_size
        self.head = head
        self._free: queue.Queue[np.ndarray] = queue.Queue()
        self._full: queue.Queue[object] = queue.Queue()
        for _ in range(depth):
            self._free.put(np.empty(head + block_size, dtype=np.uint8))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embstore-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                buf = self._free.get()
                if self._stop.is_set():
                    break
                n = 0
                view = buf.data[self.head:]
                while n < self.block_size:
                    got = self.source.readinto(view[n:])
                    if got == 0:
                        break
                    n += got
                self._full.put((buf, n))
                if n < self.block_size:
                    self._full.put(self._EOF)
                    return
        except BaseException as exc:  # handed to the consumer
            self._full.put(exc)

    def next(self) -> tuple[np.ndarray, int] | None:
        """The next ``(buffer, length)`` (data at ``buffer[head:head+length]``), or None at
        the end of input; re-raises reader errors."""
        item = self._full.get()
        if item is self._EOF:
            self._full.put(item)
            return None
        if isinstance(item, BaseException):
            self._full.put(item)
            raise item
        return item  # type: ignore[return-value]

    def release(self, buf: np.ndarray) -> None:
        self._free.put(buf)

    def close(self, timeout: float | None = 5) -> None:
        """Stop the reader thread; ``timeout=None`` waits until it has stopped reading."""
        self._stop.set()
        self._free.put(np.empty(0, dtype=np.uint8))
        self._thread.join(timeout=timeout)


class Stream:
    """The input as a sliding window ``buf[start:end]`` over prefetched blocks.

    ``advance(consumed)`` keeps the unconsumed bytes ``buf[consumed:end]`` and appends the
    next block after them.  ``base`` is the stream offset of ``buf[start]``, so byte offsets
    in messages are offsets in the (decompressed) file.
    """

    def __init__(self, source: Source, block_size: int, max_carry: int) -> None:
        self.reader = Prefetcher(source, block_size, max_carry)
        self.block_size = block_size
        self.max_carry = max_carry
        self.buf = np.empty(0, dtype=np.uint8)
        self.words = self.buf.view(np.uint64)
        self.start = self.end = max_carry
        self.base = 0
        self.eof = False
        self.bytes_read = 0
        self._load(0)

    def _load(self, tail: int) -> bool:
        nxt = self.reader.next()
        if nxt is None:
            self.eof = True
            return False
        buf, got = nxt
        head = self.max_carry
        if tail:
            buf[head - tail:head] = self.buf[self.end - tail:self.end]
        if self.buf.size:
            self.reader.release(self.buf)
        self.buf = buf
        self.words = buf.view(np.uint64)
        self.start = head - tail
        self.end = head + got
        self.eof = got < self.block_size
        self.bytes_read += got
        return True

    def advance(self, consumed: int) -> bool:
        """Drop ``buf[start:consumed]``; False if there was no more input to add."""
        tail = self.end - consumed
        if tail > self.max_carry:
            raise ValueError("carry larger than the window head")
        self.base += consumed - self.start
        if self.eof:
            self.start = consumed
            return False
        if not self._load(tail):
            self.start = consumed
            return False
        return True

    def close(self, timeout: float | None = 5) -> None:
        self.reader.close(timeout)
