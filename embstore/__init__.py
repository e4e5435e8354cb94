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

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ConversionError,
    EmbstoreError,
    FormatError,
    StoreExistsError,
    StoreWriteError,
    VocabularyError,
)
from .store import EmbeddingStore, WordList, open

if TYPE_CHECKING:
    from ._convert.converter import ConversionReport
    from .matrix import MatrixResult
    from .verifier import VerifyReport

__all__ = [
    "ConversionError",
    "ConversionReport",
    "EmbeddingStore",
    "EmbstoreError",
    "FormatError",
    "MatrixResult",
    "StoreExistsError",
    "StoreWriteError",
    "VerifyReport",
    "VocabularyError",
    "WordList",
    "__version__",
    "convert",
    "open",
    "verify",
]


def convert(src: Any, dst: Any, **options: Any) -> ConversionReport:
    """Convert a word-vector file into a store; see :func:`embstore.converter.convert`."""
    from ._convert.converter import convert as _convert

    return _convert(src, dst, **options)


def verify(path: Any) -> VerifyReport:
    """Check every byte of a store; see :func:`embstore.verifier.verify`."""
    from .verifier import verify as _verify

    return _verify(path)


def __getattr__(name: str) -> Any:
    # Lazy submodules and result types, so that importing embstore never pulls in Numba,
    # Keras or gensim.
    import importlib

    if name in ("keras", "gensim", "matrix", "verifier"):
        return importlib.import_module(f".{name}", __name__)
    if name == "ConversionReport":
        from ._convert.converter import ConversionReport

        return ConversionReport
    if name == "MatrixResult":
        from .matrix import MatrixResult

        return MatrixResult
    if name == "VerifyReport":
        from .verifier import VerifyReport

        return VerifyReport
    raise AttributeError(f"module 'embstore' has no attribute {name!r}")
