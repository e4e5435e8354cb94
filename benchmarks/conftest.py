"""Fixtures of the in-process benchmarks (``pytest benchmarks/ --benchmark-enable``).

The data comes from the same generator and cache as ``run.py``.  Two sizes are configurable:

* ``--bench-words`` (or ``$EMBSTORE_BENCH_WORDS``, default 100k): the store that open, lookup,
  matrix and gather benchmarks read;
* ``--bench-convert-words`` (default 20k): the files that conversion benchmarks parse, kept
  small because every round converts the whole file.

Every embstore code path is run once before it is timed, so compiled kernels are loaded (or
compiled) outside the measurement; ``run.py``'s ``jit`` task measures compilation itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import generate

FALLBACKS = ("lower", "title", "upper")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("embstore-benchmarks")
    group.addoption("--bench-words", default=os.environ.get("EMBSTORE_BENCH_WORDS", "100k"),
                    help="rows of the store for open/lookup/matrix/gather (default 100k)")
    group.addoption("--bench-convert-words", default="20k",
                    help="rows of the files parsed by the conversion benchmarks (default 20k)")
    group.addoption("--bench-data", default=None,
                    help="cache directory of generated data (default benchmarks/data)")


@dataclass(frozen=True)
class BenchConfig:
    words: int
    convert_words: int
    data_dir: Path


@pytest.fixture(scope="session")
def bench_config(request: pytest.FixtureRequest) -> BenchConfig:
    data = request.config.getoption("--bench-data")
    return BenchConfig(
        words=generate.parse_count(request.config.getoption("--bench-words")),
        convert_words=generate.parse_count(request.config.getoption("--bench-convert-words")),
        data_dir=Path(data) if data else generate.default_data_dir(),
    )


def _store_for(src: generate.GeneratedFile) -> Path:
    """The store of a generated file, converted once and cached beside it (like run.py)."""
    import embstore
    from benchmarks.run import embstore_source_mtime

    path = src.path.with_suffix(src.path.suffix + ".emb")
    if path.exists() and path.stat().st_mtime < embstore_source_mtime():
        path.unlink()  # written by older embstore code
    try:
        with embstore.open(path) as s:
            if len(s) == src.rows:
                return path
    except (OSError, embstore.EmbstoreError):
        pass
    embstore.convert(src.path, path, force=True, quiet=True)
    return path


@pytest.fixture(scope="session")
def convert_inputs(bench_config: BenchConfig) -> dict[str, generate.GeneratedFile]:
    kw: dict[str, Any] = {"data_dir": bench_config.data_dir, "quiet": True}
    return {
        "binary": generate.vector_file("binary", bench_config.convert_words, **kw),
        "text": generate.vector_file("text", bench_config.convert_words, **kw),
    }


@pytest.fixture(scope="session")
def source(bench_config: BenchConfig) -> generate.GeneratedFile:
    """The word2vec binary file behind the store and the gensim objects."""
    return generate.vector_file("binary", bench_config.words, data_dir=bench_config.data_dir,
                                quiet=True)


@pytest.fixture(scope="session")
def store_path(source: generate.GeneratedFile) -> Path:
    return _store_for(source)


@pytest.fixture(scope="session")
def store(store_path: Path) -> Iterator[Any]:
    import embstore

    s = embstore.open(store_path)
    s.lookup(s.words[:10])  # load the lookup kernel before anything is timed
    s.build_matrix({s.words[0]: 1, "absent-word": 2}, fallbacks=FALLBACKS)
    yield s
    s.close()


@pytest.fixture(scope="session")
def native_path(source: generate.GeneratedFile, bench_config: BenchConfig) -> Path:
    """A native gensim save of the source (vectors in a separate .npy, mappable)."""
    path = source.path.with_suffix(source.path.suffix + ".kv")
    done = path.with_name(path.name + ".done")
    if not (path.exists() and done.exists()):
        from gensim.models import KeyedVectors

        kv = KeyedVectors.load_word2vec_format(source.path, binary=True)
        kv.save(str(path), separately=["vectors"])
        done.write_text(json.dumps({"rows": source.rows}) + "\n")
    return path


@pytest.fixture(scope="session")
def gensim_kv(native_path: Path) -> Any:
    """gensim vectors fully in RAM, as after ``load_word2vec_format``."""
    from gensim.models import KeyedVectors

    return KeyedVectors.load(str(native_path))


@pytest.fixture(scope="session")
def gensim_kv_mmap(native_path: Path) -> Any:
    from gensim.models import KeyedVectors

    return KeyedVectors.load(str(native_path), mmap="r")


@dataclass(frozen=True)
class Vocab:
    word_index: dict[str, int]
    dest: np.ndarray  # matrix row of every word that resolves
    src: np.ndarray  # its store row
    rows: int
    meta: dict[str, Any]


@pytest.fixture(scope="session")
def vocabs(bench_config: BenchConfig) -> dict[int, Vocab]:
    out = {}
    for size in (20_000, 400_000):
        vf = generate.vocab_file(bench_config.words, size, data_dir=bench_config.data_dir,
                                 quiet=True)
        word_index = json.loads(vf.path.read_text(encoding="utf-8"))
        with np.load(vf.index_path) as z:
            dest, src = z["dest"], z["src"]
        out[size] = Vocab(word_index, dest, src, size + 1, vf.meta)
    return out


@pytest.fixture(scope="session")
def query_words(vocabs: dict[int, Vocab]) -> list[str]:
    """10,000 words of the 20k vocabulary: mostly present, some absent (as a batch from a
    tokenizer would be)."""
    return list(vocabs[20_000].word_index)[:10_000]


def ns_per_item(benchmark: Any, n: int) -> None:
    """Record the median time per item in ``extra_info`` (shown with --benchmark-json)."""
    stats = getattr(benchmark, "stats", None)
    if stats is not None and n:
        benchmark.extra_info["items"] = n
        benchmark.extra_info["ns_per_item"] = round(stats.stats.median / n * 1e9, 1)
