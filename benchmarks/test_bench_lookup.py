"""Word lookups: a batch of 10,000 tokenizer words, and a single word.

``extra_info["ns_per_item"]`` gives the median time per word.  The gensim and dict baselines
are the Python loops a gensim user writes; embstore's batch lookup encodes the words once and
probes the mapped index in a compiled kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.conftest import ns_per_item


@pytest.mark.benchmark(group="lookup-batch-10k")
def test_lookup_batch_embstore(benchmark: Any, store: Any, query_words: list[str]) -> None:
    rows = benchmark(store.lookup, query_words)
    ns_per_item(benchmark, len(query_words))
    assert (rows >= 0).mean() > 0.5


@pytest.mark.benchmark(group="lookup-batch-10k")
def test_lookup_batch_gensim(benchmark: Any, gensim_kv: Any, query_words: list[str]) -> None:
    def lookup(words: list[str]) -> np.ndarray:
        get = gensim_kv.get_index
        return np.fromiter((get(w, -1) for w in words), dtype=np.int64, count=len(words))

    rows = benchmark(lookup, query_words)
    ns_per_item(benchmark, len(query_words))
    assert (rows >= 0).mean() > 0.5


@pytest.mark.benchmark(group="lookup-batch-10k")
def test_lookup_batch_dict(benchmark: Any, gensim_kv: Any, query_words: list[str]) -> None:
    """The fastest pure-Python baseline: a dict already in memory."""
    k2i = gensim_kv.key_to_index

    def lookup(words: list[str]) -> np.ndarray:
        get = k2i.get
        return np.fromiter((get(w, -1) for w in words), dtype=np.int64, count=len(words))

    rows = benchmark(lookup, query_words)
    ns_per_item(benchmark, len(query_words))
    assert (rows >= 0).mean() > 0.5


@pytest.mark.benchmark(group="lookup-single")
def test_lookup_single_embstore(benchmark: Any, store: Any, query_words: list[str]) -> None:
    word = next(w for w in query_words if w in store)
    vec = benchmark(store.__getitem__, word)
    assert vec.shape == (store.dim,)


@pytest.mark.benchmark(group="lookup-single")
def test_lookup_single_gensim(benchmark: Any, gensim_kv: Any, query_words: list[str]) -> None:
    word = next(w for w in query_words if w in gensim_kv.key_to_index)
    vec = benchmark(gensim_kv.__getitem__, word)
    assert vec.shape == (gensim_kv.vector_size,)
