"""Gathering known rows into a matrix: embstore's gather against NumPy fancy indexing.

The rows are those of the 400k vocabulary (about 360k hits, spread over the whole store when
it is small, over its frequent part when it is big).  ``embstore.matrix._gather`` sorts the
rows, copies them with a parallel kernel and, for big spans, releases mapped pages window by
window; NumPy gathers from the same mapped array, and from an array in RAM (the floor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.conftest import Vocab, ns_per_item


def _rows(vocabs: dict[int, Vocab]) -> tuple[np.ndarray, np.ndarray, int]:
    v = vocabs[400_000]
    return v.src, v.dest, v.rows


@pytest.mark.benchmark(group="gather-400k")
def test_gather_embstore(benchmark: Any, store: Any, vocabs: dict[int, Vocab]) -> None:
    from embstore import matrix as em

    gather = getattr(em, "_gather", None)
    if gather is None:
        pytest.skip("embstore.matrix._gather is gone; update this benchmark")
    src, dest, rows = _rows(vocabs)
    out = np.zeros((rows, store.dim), dtype=np.float32)
    gather(store, src, dest, out)  # warm-up: kernels loaded, pages of `out` faulted in
    benchmark(gather, store, src, dest, out)
    ns_per_item(benchmark, src.size)
    np.testing.assert_array_equal(out[dest], store.vectors[src])


@pytest.mark.benchmark(group="gather-400k")
def test_gather_numpy_mapped(benchmark: Any, store: Any, vocabs: dict[int, Vocab]) -> None:
    src, dest, rows = _rows(vocabs)
    out = np.zeros((rows, store.dim), dtype=np.float32)
    vectors = store.vectors

    def gather() -> None:
        out[dest] = vectors[src]

    benchmark(gather)
    ns_per_item(benchmark, src.size)


@pytest.mark.benchmark(group="gather-400k")
def test_gather_numpy_in_ram(benchmark: Any, gensim_kv: Any, vocabs: dict[int, Vocab]) -> None:
    src, dest, rows = _rows(vocabs)
    vectors = np.asarray(gensim_kv.vectors)
    out = np.zeros((rows, vectors.shape[1]), dtype=np.float32)

    def gather() -> None:
        out[dest] = vectors[src]

    benchmark(gather)
    ns_per_item(benchmark, src.size)
