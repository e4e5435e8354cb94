"""Conversion, in process: ``embstore.convert`` against gensim's ``load_word2vec_format``.

gensim has no separate conversion step: reading the vector file is what its users pay each
time, so that is the baseline.  Files are small (``--bench-convert-words``, default 20k rows)
because each round parses the whole file; ``run.py`` measures the big files as whole processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import generate

ROUNDS = 5


def _embstore_convert(benchmark: Any, src: generate.GeneratedFile, tmp_path: Path) -> None:
    import embstore

    dst = tmp_path / "out.emb"

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        dst.unlink(missing_ok=True)  # a fresh file each round, as a user's first conversion
        return (src.path, dst), {"quiet": True}

    args, kwargs = setup()
    embstore.convert(*args, **kwargs)  # load the compiled kernels before timing
    report = benchmark.pedantic(embstore.convert, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert report.rows == src.rows
    benchmark.extra_info["input_mb"] = round(src.meta["bytes"] / 1e6, 1)


def _gensim_load(benchmark: Any, src: generate.GeneratedFile, binary: bool) -> None:
    from gensim.models import KeyedVectors

    kv = benchmark.pedantic(KeyedVectors.load_word2vec_format, args=(str(src.path),),
                            kwargs={"binary": binary}, rounds=ROUNDS, warmup_rounds=1)
    assert len(kv.index_to_key) == src.rows
    benchmark.extra_info["input_mb"] = round(src.meta["bytes"] / 1e6, 1)


@pytest.mark.benchmark(group="convert-binary")
def test_convert_binary_embstore(benchmark: Any, convert_inputs: dict[str, Any],
                                 tmp_path: Path) -> None:
    _embstore_convert(benchmark, convert_inputs["binary"], tmp_path)


@pytest.mark.benchmark(group="convert-binary")
def test_convert_binary_gensim(benchmark: Any, convert_inputs: dict[str, Any]) -> None:
    _gensim_load(benchmark, convert_inputs["binary"], binary=True)


@pytest.mark.benchmark(group="convert-text")
def test_convert_text_embstore(benchmark: Any, convert_inputs: dict[str, Any],
                               tmp_path: Path) -> None:
    _embstore_convert(benchmark, convert_inputs["text"], tmp_path)


@pytest.mark.benchmark(group="convert-text")
def test_convert_text_gensim(benchmark: Any, convert_inputs: dict[str, Any]) -> None:
    _gensim_load(benchmark, convert_inputs["text"], binary=False)
