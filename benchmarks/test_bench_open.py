"""Opening a store and reading one vector, against gensim's mapped native format.

embstore maps the file and validates the 4 KiB header; gensim unpickles the vocabulary
(proportional to the number of words) and maps the vectors.  Both files are in the page cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.mark.benchmark(group="open")
def test_open_embstore(benchmark: Any, store_path: Path, store: Any) -> None:
    import embstore

    word = store.words[len(store) // 2]

    def open_get() -> Any:
        with embstore.open(store_path) as s:
            return s[word]

    vec = benchmark(open_get)
    assert vec.shape == (store.dim,)


@pytest.mark.benchmark(group="open")
def test_open_gensim_mmap(benchmark: Any, native_path: Path, store: Any) -> None:
    from gensim.models import KeyedVectors

    word = store.words[len(store) // 2]

    def open_get() -> Any:
        kv = KeyedVectors.load(str(native_path), mmap="r")
        return kv[word]

    vec = benchmark.pedantic(open_get, rounds=5, warmup_rounds=1)
    assert vec.shape == (store.dim,)
