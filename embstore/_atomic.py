"""Outputs that appear whole or not at all: checks before a long job, temporary names,
stale-temporary cleanup and durable renames, shared by every writer (stores, matrices,
reports)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

TMP_TAG = ".embstore-tmp-"


def check_output_path(path: Path) -> None:
    """Fail before the (possibly long) job, naming the user's path rather than a temporary."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file name", str(path))
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "directory does not exist", str(parent))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(dst: Path) -> None:
    """Delete named temporaries of ``dst`` left by writers that were killed."""
    prefix = f".{dst.name}{TMP_TAG}"
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
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
