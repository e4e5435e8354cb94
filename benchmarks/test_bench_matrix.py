"""Embedding matrices for 20k and 400k-word vocabularies, vectors already open.

Same semantics everywhere: exact word, then lower case, capitalised and upper case fallbacks,
zeros for the rest; the results are compared, so a faster but different matrix fails.  The
NumPy floor starts from vectors in RAM and row ids already known: it is only the gather.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.conftest import FALLBACKS, Vocab, ns_per_item
from benchmarks.tasks import classic_fill

SIZES = [20_000, 400_000]


def _expected(vocab: Vocab, vectors: np.ndarray) -> np.ndarray:
    m = np.zeros((vocab.rows, vectors.shape[1]), dtype=np.float32)
    m[vocab.dest] = vectors[vocab.src]
    return m


def _rounds(size: int) -> int:
    return 10 if size <= 20_000 else 3


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s // 1000}k")
def test_matrix_embstore(benchmark: Any, store: Any, vocabs: dict[int, Vocab], size: int) -> None:
    benchmark.group = f"matrix-{size // 1000}k"
    vocab = vocabs[size]
    store.build_matrix(vocab.word_index, fallbacks=FALLBACKS)  # warm up this vocabulary's path
    result = benchmark.pedantic(store.build_matrix, args=(vocab.word_index,),
                                kwargs={"fallbacks": FALLBACKS}, rounds=_rounds(size),
                                warmup_rounds=0)
    ns_per_item(benchmark, size)
    assert result.hits == vocab.dest.size
    np.testing.assert_array_equal(result.matrix, _expected(vocab, store.vectors))


def _classic(kv: Any, vocab: Vocab) -> np.ndarray:
    matrix = np.zeros((vocab.rows, kv.vector_size), dtype=np.float32)
    classic_fill(kv, vocab.word_index, matrix)
    return matrix


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s // 1000}k")
def test_matrix_gensim_classic(benchmark: Any, gensim_kv: Any, vocabs: dict[int, Vocab],
                               size: int) -> None:
    """The classic recipe's loop over vectors in RAM (loading them is not timed here)."""
    benchmark.group = f"matrix-{size // 1000}k"
    vocab = vocabs[size]
    matrix = benchmark.pedantic(_classic, args=(gensim_kv, vocab), rounds=_rounds(size),
                                warmup_rounds=1)
    ns_per_item(benchmark, size)
    np.testing.assert_array_equal(matrix, _expected(vocab, gensim_kv.vectors))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s // 1000}k")
def test_matrix_gensim_mmap(benchmark: Any, gensim_kv_mmap: Any, vocabs: dict[int, Vocab],
                            size: int) -> None:
    """The same loop over a native gensim save opened with ``mmap='r'``."""
    benchmark.group = f"matrix-{size // 1000}k"
    vocab = vocabs[size]
    matrix = benchmark.pedantic(_classic, args=(gensim_kv_mmap, vocab), rounds=_rounds(size),
                                warmup_rounds=1)
    ns_per_item(benchmark, size)
    np.testing.assert_array_equal(matrix, _expected(vocab, gensim_kv_mmap.vectors))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s // 1000}k")
def test_matrix_numpy_floor(benchmark: Any, gensim_kv: Any, vocabs: dict[int, Vocab],
                            size: int) -> None:
    benchmark.group = f"matrix-{size // 1000}k"
    vocab = vocabs[size]
    vectors = np.asarray(gensim_kv.vectors)
    matrix = benchmark.pedantic(_expected, args=(vocab, vectors), rounds=_rounds(size),
                                warmup_rounds=1)
    ns_per_item(benchmark, size)
    assert matrix.shape == (vocab.rows, vectors.shape[1])
