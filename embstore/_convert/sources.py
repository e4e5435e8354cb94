"""Opening input vector files: compression detected from magic bytes, read ahead in a thread.

File names are never trusted to say what a file is: ``vectors.txt`` may be gzip and
``model.bin`` may be text.  The compression layer is chosen from the first bytes, and files
that are clearly something else (an embstore store, a gensim pickle, a NumPy array, zstd) are
refused with a message saying what they are.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import queue
import threading
import zipfile
import zlib
from typing import IO, BinaryIO

import numpy as np

from .. import format as fmt
from ..errors import ConversionError

_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
)


class _Counting(io.RawIOBase):
    """Pass-through raw reader that counts bytes taken from the file on disk (for progress)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(b)  # type: ignore[attr-defined]
        self.count += n or 0
        return n or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class Source:
    """A readable, decompressed view of an input file.

    ``size`` is the file's size on disk and ``consumed`` how much of it has been read, which
    is what a progress bar can honestly show for compressed input.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        raw = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            head = raw.read(8)
            raw.seek(0)
            self.compression = _sniff(self.path, head, self.size)
            self._counter = _Counting(raw)
            self._stream = self._open_layer(raw)
        except BaseException:
            raw.close()
            raise

    def _open_layer(self, raw: BinaryIO) -> io.BufferedIOBase | IO[bytes]:
        if self.compression != "zip":
            # Not made for zip, which reads ``raw`` itself: an unused reader over the counter
            # would close ``raw`` when garbage-collected.
            counted = io.BufferedReader(self._counter, buffer_size=1 << 20)
        if self.compression is None:
            return counted
        if self.compression == "gzip":
            return gzip.GzipFile(fileobj=counted, mode="rb")
        if self.compression == "bz2":
            return bz2.BZ2File(counted, mode="rb")
        if self.compression == "xz":
            return lzma.LZMAFile(counted, mode="rb")
        # zip: a single member, streamed
        try:
            archive = zipfile.ZipFile(raw)
        except zipfile.BadZipFile as exc:
            raise ConversionError(self.path, f"damaged zip archive ({exc})") from None
        members = [i for i in archive.infolist() if not i.is_dir()]
        if len(members) != 1:
            names = ", ".join(i.filename for i in members[:5]) or "none"
            raise ConversionError(
                self.path,
                f"zip archive holds {len(members)} files ({names}); expected exactly one",
                hint="extract the vector file and convert it",
            )
        self._archive = archive
        self.member = members[0].filename
        # Progress for zip follows the compressed bytes of the member.
        self.size = members[0].compress_size or self.size
        try:
            return archive.open(members[0])
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as exc:
            # encrypted member, unsupported compression method, damaged local header or
            # a header offset outside the file (seek fails with EINVAL)
            raise ConversionError(self.path, f"cannot read the zip member ({exc})") from None

    @property
    def consumed(self) -> int:
        if self.compression == "zip":
            pos = getattr(self._stream, "_compress_left", None)
            if pos is not None:
                return max(self.size - int(pos), 0)
        return self._counter.count

    def readinto(self, buf: memoryview) -> int:
        try:
            return self._stream.readinto(buf) or 0  # type: ignore[union-attr]
        except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, zlib.error) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            what = self.compression or "file"
            raise ConversionError(
                self.path, f"cannot read {what} data ({exc}); the file is damaged or truncated"
            ) from None

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._counter.close()
            archive = getattr(self, "_archive", None)
            if archive is not None:
                archive.close()


def _sniff(path: str, head: bytes, size: int) -> str | None:
    if size == 0:
        raise ConversionError(path, "the file is empty; expected word vectors")
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ConversionError(path, "zstd-compressed input is not supported",
                              hint="decompress it first (zstd -d) or recompress with gzip/xz")
    if head.startswith(fmt.MAGIC):
        raise ConversionError(path, "this is already an embstore store",
                              hint="open it with embstore.open() or `embstore info`")
    if head.startswith(b"\x93NUMPY"):
        raise ConversionError(path, "this is a NumPy .npy array, not a word-vector file",
                              hint="gensim's .npy files belong to a native model; load it with gensim "
                                   "and use embstore.gensim.from_keyedvectors()")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise ConversionError(path, "this is a Python pickle (e.g. a gensim native model), not a "
                                    "word2vec/GloVe/fastText vector file",
                              hint="load it with gensim (only if you trust it: unpickling runs code) "
                                   "and use embstore.gensim.from_keyedvectors()")
    return None


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

    def close(self) -> None:
        self._stop.set()
        self._free.put(np.empty(0, dtype=np.uint8))
        self._thread.join(timeout=5)


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

    def close(self) -> None:
        self.reader.close()
