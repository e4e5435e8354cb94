"""The exception hierarchy: one tree, one type per condition on every path.

::

    EmbstoreError
    ├── FormatError            a store is not one, is damaged, or needs a newer embstore
    ├── ConversionError        input vectors are malformed (ValueError): file, line/offset,
    │                          expected vs found, and the fix as a keyword argument
    ├── StoreLimitError        more rows, a larger dimension or more metadata than a store
    │                          holds (ValueError)
    ├── VocabularyError        a vocabulary cannot be interpreted (ValueError)
    ├── StoreClosedError       the store was closed (ValueError)
    ├── StoreExistsError       an output (store, matrix, report) exists and force was not given
    │                          (FileExistsError)
    ├── OutputError            an output path is refused: it is an input or another output, it
    │                          is not a file name, or force would replace something that is not
    │                          a previous output of the same kind (ValueError)
    └── StoreWriteError        writing an output failed: disk full, file too large, I/O error
                               (OSError)

Messages speak the library's language (``on_bad_line="skip"``, ``limit=3381``); the command
line translates them to its flags.  Built-in exceptions keep their meaning: a missing file is
``FileNotFoundError``, a missing word is ``KeyError``, a bad argument is ``ValueError`` /
``TypeError``.
"""

from __future__ import annotations

import os

__all__ = [
    "ConversionError",
    "EmbstoreError",
    "FormatError",
    "OutputError",
    "StoreClosedError",
    "StoreExistsError",
    "StoreLimitError",
    "StoreWriteError",
    "VocabularyError",
]


class EmbstoreError(Exception):
    """Root of every error raised by embstore on purpose."""


class FormatError(EmbstoreError):
    """A store file is not a store, is damaged, or has an unsupported major version."""

    def __init__(self, path: str | os.PathLike[str] | None, message: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(message if self.path is None else f"{self.path}: {message}")


class StoreExistsError(EmbstoreError, FileExistsError):
    """An output (a store, a matrix, a report) exists and replacing it was not asked for."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(
            f"{self.path}: destination already exists; pass force=True to replace it"
        )


class ConversionError(EmbstoreError, ValueError):
    """An input vector file could not be converted.

    ``str(err)`` is one line: ``path:line: what is wrong (expected ..., found ...); hint``.
    The parts are also available as attributes for programs that want them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        message: str,
        *,
        line: int | None = None,
        offset: int | None = None,
        hint: str | None = None,
        compressed: bool = False,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.offset = offset
        self.reason = message
        self.hint = hint
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        elif offset is not None:
            kind = "decompressed byte offset" if compressed else "byte offset"
            where = f"{where}: at {kind} {offset}"
        text = f"{where}: {message}"
        if hint:
            text = f"{text}; {hint}"
        super().__init__(text)


class VocabularyError(EmbstoreError, ValueError):
    """A vocabulary given to ``build_matrix`` cannot be interpreted."""


class StoreLimitError(EmbstoreError, ValueError):
    """What is being written does not fit the format's limits (rows, dimension, metadata)."""


class StoreClosedError(EmbstoreError, ValueError):
    """The store was closed; every access raises rather than answering as if it were empty."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: the store is closed")


class OutputError(EmbstoreError, ValueError):
    """An output path is refused before anything is written.

    It names one of the command's inputs or another of its outputs (also through a symbolic
    or hard link), it is not a file name (it ends with a separator), or ``force`` would
    replace a file that is not a previous output of the same kind.
    """

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = os.fspath(path)
        super().__init__(message)


class StoreWriteError(EmbstoreError, OSError):
    """Writing an output failed (disk full, file too large, I/O error).

    Nothing was published: the destination is untouched and the temporary file is removed.
    ``what`` names the output in the message: ``"store"``, ``"matrix"`` or ``"report"``.
    """

    def __init__(self, path: str | os.PathLike[str], cause: OSError, what: str = "store") -> None:
        self.path = os.fspath(path)
        self.cause = cause
        self.what = what
        detail = cause.strerror or str(cause)
        super().__init__(
            cause.errno, f"{self.path}: cannot write the {what}: {detail} (nothing was written there)"
        )

    def __str__(self) -> str:
        return str(self.args[1])
