"""Outputs that appear whole or not at all, shared by every writer: stores (``convert``,
``write``, ``subset``, ``gensim.from_keyedvectors``), matrices (``save_matrix``) and JSON
reports.

* :func:`check_destination` runs before the (possibly long) job and refuses, with a clear
  error: a path that is not a file name (a directory, a path ending in a separator, a name
  longer than the filesystem allows, a missing directory), an output that is one of the job's
  inputs or another of its outputs (also through a symbolic or a hard link), an existing file
  without ``force``, and with ``force`` anything but a previous output of the same kind (its
  magic bytes, or valid JSON for a report) in a regular file.
* :class:`AtomicFile` is the file being written: an unnamed temporary (``O_TMPFILE``) in the
  destination's directory, or a named one (:func:`temporary_name`) where the filesystem lacks
  ``O_TMPFILE``.  It can reserve its blocks up front (:meth:`AtomicFile.reserve`, so that a
  mapping of it never faults on a full disk), and is published by ``link`` (never replaces
  anything) or, with ``force``, ``rename`` over the previous output, which readers that have it
  open keep.  Leaving it by an exception, or without :meth:`AtomicFile.commit`, removes it.
* :func:`remove_stale_temporaries` deletes the named temporaries that writers of the same
  destination left when they were killed (their process is gone).

Temporary names are ``.NAME.embstore-tmp-PID-XXXXXXXX``; a NAME too long for that to fit the
filesystem's NAME_MAX (255 bytes) is shortened to its first bytes, ``~`` and a hash of the
whole name, so that the temporaries of a destination stay recognisable whatever its name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import OutputError, StoreExistsError, StoreWriteError

TMP_TAG = ".embstore-tmp-"
NAME_MAX = 255
# What a temporary name adds to the destination's: ".", the tag, up to 10 digits of process id,
# "-" and 8 hex digits.
_ADDED = 1 + len(TMP_TAG) + 10 + 1 + 8
_HASH_HEX = 12
_OURS = re.compile(r"(\d+)-[0-9a-f]{8}")
_LEGACY = r"\.{name}\.tmp-(\d+)-[0-9a-f]{{8}}"  # save_matrix's temporaries before 0.1.1

KINDS = {"store": "an embstore store", "matrix": "a .npy file", "report": "a JSON file"}
_NPY_MAGIC = b"\x93NUMPY"
MAX_REPORT_BYTES = 256 << 20  # a larger file is not taken for a report that force may replace

_ENOSPC_LIKE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


# -- destinations ---------------------------------------------------------------------------


def _name_max(directory: Path) -> int:
    try:
        return min(NAME_MAX, int(os.pathconf(directory, "PC_NAME_MAX")))
    except (OSError, ValueError):
        return NAME_MAX


def _shape(raw: str) -> Path:
    """``raw`` as the path of a file to create: a file name in an existing directory."""
    if raw == "":
        raise OutputError(raw, "expected a file name, got an empty path")
    ends_with_separator = raw.endswith(tuple(s for s in (os.sep, os.altsep) if s))
    base = os.path.basename(raw)
    if ends_with_separator or base in (".", ".."):
        if os.path.isdir(raw):
            raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file name", raw)
        why = f"the path ends with {raw[-1]!r}" if ends_with_separator else f"it ends with {base!r}"
        raise OutputError(raw, f"{raw}: expected a file name, not a directory ({why})")
    path = Path(raw)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file name", raw)
    parent = path.parent
    if not parent.is_dir():
        if parent.exists():
            raise NotADirectoryError(errno.ENOTDIR, "is not a directory", str(parent))
        raise FileNotFoundError(errno.ENOENT, "directory does not exist", str(parent))
    if len(os.fsencode(path.name)) > _name_max(parent):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), raw)
    return path


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Only the shape checks of :func:`check_destination`: a file name in an existing directory."""
    return _shape(os.fsdecode(os.fspath(path)))


def _identity(obj: Any) -> tuple[int, int] | None:
    """(device, inode) of a path, a file descriptor or an open file; None if there is none."""
    try:
        if isinstance(obj, int):
            st = os.fstat(obj)
        elif isinstance(obj, (str, bytes, os.PathLike)):
            st = os.stat(obj)
        elif hasattr(obj, "fileno"):
            st = os.fstat(obj.fileno())
        else:
            return None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return st.st_dev, st.st_ino


def _shown(obj: Any) -> str:
    if isinstance(obj, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(obj))
    if isinstance(obj, int):
        return f"<file descriptor {obj}>"
    return str(getattr(obj, "name", obj))


def same_file(path: str, other: Any) -> bool:
    """Whether ``path`` and ``other`` (a path, descriptor or open file) are one file: the same
    inode (through symbolic and hard links), or the same resolved path where neither exists."""
    mine = _identity(path)
    if mine is not None and mine == _identity(other):
        return True
    if isinstance(other, (str, bytes, os.PathLike)):
        return os.path.realpath(path) == os.path.realpath(os.fsdecode(os.fspath(other)))
    return False


def _is_kind(path: Path, kind: str) -> bool:
    with open(path, "rb") as f:
        if kind == "report":
            data = f.read(MAX_REPORT_BYTES + 1)
            if len(data) > MAX_REPORT_BYTES:
                return False
            try:
                json.loads(data)
            except ValueError:  # UnicodeDecodeError and JSONDecodeError both
                return False
            return True
        if kind == "matrix":
            magic = _NPY_MAGIC
        else:
            from .format import MAGIC as magic
        return f.read(len(magic)) == magic


def _check_replaceable(path: Path, raw: str, kind: str) -> None:
    refusal = "refusing to replace it even with force=True"
    try:
        st = os.stat(path)
    except FileNotFoundError:  # a dangling symbolic link
        raise OutputError(raw, f"{raw} exists and is not {KINDS[kind]}; {refusal}") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(raw, f"{raw} exists and is not a regular file; {refusal}")
    if not _is_kind(path, kind):
        raise OutputError(raw, f"{raw} exists and is not {KINDS[kind]}; {refusal}")


def check_destination(dst: str | os.PathLike[str], *, inputs: Iterable[Any] = (),
                      outputs: Iterable[Any] = (), force: bool = False,
                      kind: str = "store") -> Path:
    """Refuse an output path before the job that writes it; returns it as a ``Path``.

    ``inputs`` are what the job reads (paths, descriptors or open files; ``None`` is skipped),
    ``outputs`` the job's other outputs; ``kind`` is ``"store"``, ``"matrix"`` or
    ``"report"``: what ``force`` may replace.

    Raises:
        OutputError: ``dst`` ends with a separator, is an input or another output, or exists
            with ``force`` but is not a regular file holding a previous output of ``kind``.
        StoreExistsError: ``dst`` exists and ``force`` is false.
        IsADirectoryError, NotADirectoryError, FileNotFoundError, OSError(ENAMETOOLONG): the
            path cannot name a new file.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    raw = os.fsdecode(os.fspath(dst))
    path = _shape(raw)
    for other in outputs:
        if other is not None and same_file(raw, other):
            raise OutputError(raw, f"{raw} is the same file as the output {_shown(other)}; "
                                   "refusing to write two outputs to one file")
    for source in inputs:
        if source is not None and same_file(raw, source):
            raise OutputError(raw, f"{raw} is the same file as the input {_shown(source)}; "
                                   "refusing to write an output over an input")
    if os.path.lexists(path):
        if not force:
            raise StoreExistsError(raw)
        _check_replaceable(path, raw, kind)
    return path


# -- temporary names and stale temporaries --------------------------------------------------


def _name_key(name: str, budget: int) -> str:
    """``name``, or when longer than ``budget`` bytes its head, ``~`` and a hash of it all."""
    if len(os.fsencode(name)) <= budget:
        return name
    digest = hashlib.blake2b(os.fsencode(name), digest_size=_HASH_HEX // 2).hexdigest()
    keep = budget - 1 - len(digest)
    head = name[:keep]
    while len(os.fsencode(head)) > keep:  # multi-byte characters: cut at a character
        head = head[:-1]
    return f"{head}~{digest}"


def _prefix(dst: Path) -> str:
    return f".{_name_key(dst.name, _name_max(dst.parent) - _ADDED)}{TMP_TAG}"


def temporary_name(dst: str | os.PathLike[str], pid: int | None = None) -> str:
    """A fresh name for a temporary of ``dst`` in its directory, within NAME_MAX."""
    dst = Path(dst)
    return f"{_prefix(dst)}{os.getpid() if pid is None else pid}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def remove_stale_temporaries(dst: str | os.PathLike[str]) -> None:
    """Delete named temporaries of ``dst`` left by writers that were killed."""
    dst = Path(dst)
    prefix = _prefix(dst)
    legacy = re.compile(_LEGACY.format(name=re.escape(dst.name)))
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            m = _OURS.fullmatch(name, len(prefix))
        else:
            m = legacy.fullmatch(name)
        if m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(dst.parent / name)


def fsync_directory(path: Path) -> None:
    """Make a rename durable; best effort, as some filesystems refuse directory fsync."""
    try:
        dfd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# -- the file being written -----------------------------------------------------------------


def _user_error(exc: OSError, raw: str, what: str) -> OSError:
    """An error creating or writing a temporary, naming the user's path instead."""
    if exc.errno in _ENOSPC_LIKE:
        return StoreWriteError(raw, exc, what)
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, raw)


class AtomicFile:
    """A file that appears at ``dst`` complete, or not at all.

    ``dst`` is checked by :func:`check_destination` (with ``inputs``, ``outputs``, ``force``
    and ``kind``), the named temporaries of dead writers of ``dst`` are removed, and the
    temporary is created, all in the constructor, so that an unwritable destination is found
    before any work.  Write with :meth:`write` / :meth:`pwrite` (or map :attr:`fd` after
    :meth:`reserve`), then :meth:`commit`.  Use as a context manager: leaving the block without
    a commit, by an exception or not, removes the temporary.  Write failures raise
    :class:`~embstore.StoreWriteError` naming ``dst`` and ``what`` (the kind by default).
    """

    def __init__(self, dst: str | os.PathLike[str], *, kind: str = "store",
                 force: bool = False, inputs: Iterable[Any] = (), outputs: Iterable[Any] = (),
                 fsync: bool = False, what: str | None = None) -> None:
        self.kind = kind
        self.force = force
        self.fsync = fsync
        self.what = what or kind
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)
        self.raw = os.fsdecode(os.fspath(dst))
        self.dst = check_destination(self.raw, inputs=self._inputs, outputs=self._outputs,
                                     force=force, kind=kind)
        self._named: Path | None = None
        self._done = False
        self.pos = 0
        remove_stale_temporaries(self.dst)
        self.fd = self._open_temporary()

    @property
    def named_temporary(self) -> Path | None:
        """The temporary's path while it has one (``None`` for an ``O_TMPFILE`` file)."""
        return self._named

    def _open_temporary(self) -> int:
        parent = self.dst.parent
        cloexec = getattr(os, "O_CLOEXEC", 0)
        flag = getattr(os, "O_TMPFILE", 0)
        try:
            if flag and os.environ.get("EMBSTORE_NO_TMPFILE", "") in ("", "0"):
                try:
                    return os.open(parent, flag | os.O_RDWR | cloexec, 0o666)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL,
                                         errno.ENOENT):
                        raise
            self._named = parent / temporary_name(self.dst)
            return os.open(self._named, os.O_RDWR | os.O_CREAT | os.O_EXCL | cloexec, 0o666)
        except OSError as exc:
            self._named = None
            raise _user_error(exc, self.raw, self.what) from None

    # -- writing ----------------------------------------------------------------------------

    def reserve(self, length: int) -> bool:
        """Allocate the file's first ``length`` bytes on disk (``posix_fallocate``), so that
        writing them through a mapping cannot fault on a full disk.  Returns False where the
        filesystem cannot reserve (write with :meth:`pwrite` then, never through a mapping);
        ``EMBSTORE_NO_FALLOCATE=1`` forces that path.  A full disk raises StoreWriteError."""
        if (not hasattr(os, "posix_fallocate") or length <= 0
                or os.environ.get("EMBSTORE_NO_FALLOCATE", "") not in ("", "0")):
            return False
        try:
            os.posix_fallocate(self.fd, 0, length)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
                return False
            raise StoreWriteError(self.raw, exc, self.what) from exc
        return True

    def pwrite(self, data: Any, offset: int) -> None:
        """Write all of ``data`` (bytes or a contiguous buffer) at ``offset``."""
        view = memoryview(data).cast("B")
        try:
            done = 0
            while done < len(view):
                done += os.pwrite(self.fd, view[done:], offset + done)
        except OSError as exc:
            raise StoreWriteError(self.raw, exc, self.what) from exc

    def write(self, data: Any) -> None:
        """Append ``data`` after what :meth:`write` wrote before."""
        view = memoryview(data).cast("B")
        self.pwrite(view, self.pos)
        self.pos += len(view)

    # -- publishing -------------------------------------------------------------------------

    def commit(self) -> None:
        """Flush (with ``fsync``) and give the file its name; closes it.

        Without ``force`` it is linked to ``dst`` (StoreExistsError if a file appeared there
        meanwhile); with ``force`` it replaces ``dst`` by rename, after checking again that
        ``dst`` is still a previous output of the same kind and none of the inputs."""
        if self._done:
            raise ValueError(f"{self.raw}: the file was already published or discarded")
        try:
            if self.fsync:
                os.fsync(self.fd)
            self._publish()
        except (OutputError, StoreExistsError, StoreWriteError):
            raise
        except FileExistsError:
            raise StoreExistsError(self.raw) from None
        except OSError as exc:
            raise StoreWriteError(self.raw, exc, self.what) from exc
        self._done = True
        os.close(self.fd)
        if self.fsync:
            fsync_directory(self.dst.parent)

    def _publish(self) -> None:
        if not self.force or not os.path.lexists(self.dst):
            try:
                self._link(self.dst.name)
                if self._named is not None:
                    os.unlink(self._named)
                    self._named = None
                return
            except FileExistsError:
                if not self.force:
                    raise
        # Replacing: the destination must still be what check_destination accepted.
        check_destination(self.raw, inputs=self._inputs, outputs=self._outputs, force=True,
                          kind=self.kind)
        if self._named is None:
            name = temporary_name(self.dst)
            self._link(name)
            self._named = self.dst.parent / name
        os.replace(self._named, self.dst)
        self._named = None

    def _link(self, name: str) -> None:
        """A new name for the temporary in its directory; fails if ``name`` exists.

        For an ``O_TMPFILE`` file, ``linkat(..., AT_SYMLINK_FOLLOW)`` on ``/proc/self/fd/N`` is
        the unprivileged way; passing a directory fd makes Python call ``linkat``."""
        if self._named is not None:
            os.link(self._named, self.dst.parent / name)
            return
        dfd = os.open(self.dst.parent, os.O_RDONLY)
        try:
            os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=dfd, follow_symlinks=True)
        finally:
            os.close(dfd)

    def discard(self) -> None:
        """Close and remove the temporary, unless it was published; idempotent."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if self._named is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._named)
            self._named = None

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def write_atomic(dst: str | os.PathLike[str], data: bytes, *, kind: str = "report",
                 force: bool = False, inputs: Iterable[Any] = (), outputs: Iterable[Any] = (),
                 fsync: bool = False) -> Path:
    """Write ``data`` to ``dst`` through an :class:`AtomicFile`; returns the path."""
    with AtomicFile(dst, kind=kind, force=force, inputs=inputs, outputs=outputs,
                    fsync=fsync) as f:
        f.reserve(len(data))
        f.write(data)
        f.commit()
    return f.dst
