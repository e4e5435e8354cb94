"""embstore: memory-mapped word-vector stores and fast embedding matrices.

Convert a word2vec / GloVe / fastText file once, then open it in milliseconds from any number
of processes and build embedding matrices for a tokenizer's vocabulary without loading the
vectors::

    import embstore
    embstore.convert("glove.840B.300d.txt.gz", "glove.emb")
    store = embstore.open("glove.emb")
    result = store.build_matrix(tokenizer.word_index, num_words=20000, oov="random")

``import embstore`` is light: NumPy only.  Numba is imported on the first conversion or
batch lookup; Keras and gensim only by :mod:`embstore.keras` and :mod:`embstore.gensim`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._convert.convert import convert
from ._convert.report import ConversionReport
from ._version import __version__
from .errors import (
    ConversionError,
    EmbstoreError,
    FormatError,
    OutputError,
    StoreClosedError,
    StoreExistsError,
    StoreLimitError,
    StoreWriteError,
    VocabularyError,
)
from .store import EmbeddingStore, WordList, open

if TYPE_CHECKING:
    from ._build.builder import BuildResult
    from .matrix import MatrixResult
    from .verifier import VerifyReport

__all__ = [
    "BuildResult",
    "ConversionError",
    "ConversionReport",
    "EmbeddingStore",
    "EmbstoreError",
    "FormatError",
    "MatrixResult",
    "OutputError",
    "StoreClosedError",
    "StoreExistsError",
    "StoreLimitError",
    "StoreWriteError",
    "VerifyReport",
    "VocabularyError",
    "WordList",
    "__version__",
    "convert",
    "open",
    "verify",
    "write",
]


def write(dst: str | os.PathLike[str], words: Iterable[str], vectors: Any, *,
          force: bool = False, metadata: dict[str, Any] | None = None) -> BuildResult:
    """Write a store from arrays: ``words`` (str, one per row) and ``vectors`` (``(n, dim)``,
    any real dtype, rounded to float32; an ``np.memmap`` is streamed, never copied whole).

    Duplicated words keep their first row.  ``metadata`` (a JSON-serialisable dict) is kept
    in the store as ``store.metadata["user"]``.  Raises :class:`ConversionError` for a NaN or
    infinite vector (naming the word and row), :class:`StoreExistsError` if ``dst`` exists
    and ``force`` is false.
    """
    from ._build.builder import write_arrays

    return write_arrays(dst, words, vectors, force=force, metadata=metadata)


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every byte of a store; see :func:`embstore.verifier.verify`."""
    from .verifier import verify as _verify

    return _verify(path)


def __getattr__(name: str) -> Any:
    # Lazy submodules and result types, so that importing embstore never pulls in Numba,
    # Keras or gensim.
    import importlib

    if name in ("keras", "gensim", "matrix", "verifier", "subset"):
        return importlib.import_module(f".{name}", __name__)
    if name == "MatrixResult":
        from .matrix import MatrixResult

        return MatrixResult
    if name == "VerifyReport":
        from .verifier import VerifyReport

        return VerifyReport
    if name == "BuildResult":
        from ._build.builder import BuildResult

        return BuildResult
    raise AttributeError(f"module 'embstore' has no attribute {name!r}")
