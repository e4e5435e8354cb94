"""Shared fixtures for the store and converter tests.

Helpers are exposed as fixtures (not importable functions) so that test modules in
subdirectories with their own conftest files never collide on the module name ``conftest``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embstore

DATA = Path(__file__).parent / "data"


def _gensim_test_data() -> Path:
    """gensim's bundled test data, located without importing gensim (a slow import)."""
    spec = importlib.util.find_spec("gensim")
    assert spec is not None and spec.origin is not None, "gensim is a test dependency"
    return Path(spec.origin).parent / "test" / "test_data"


@pytest.fixture(scope="session")
def gensim_data() -> Path:
    path = _gensim_test_data()
    assert path.is_dir(), f"gensim test data not found at {path}"
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Hand-made fixture files shipped with the tests."""
    return DATA


def bits(a: np.ndarray) -> np.ndarray:
    """float32 values as their bit patterns, so -0.0 != 0.0 and comparisons are exact."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.fixture(scope="session")
def assert_same_bits() -> Callable[[np.ndarray, np.ndarray], None]:
    def check(got: np.ndarray, want: np.ndarray) -> None:
        got32 = np.asarray(got)
        want32 = np.asarray(want, dtype=np.float32)
        assert got32.dtype == np.float32
        assert got32.shape == want32.shape
        diff = np.flatnonzero(bits(got32).ravel() != bits(want32).ravel())
        assert diff.size == 0, (
            f"{diff.size} values differ; first at flat index {diff[0]}: "
            f"got {got32.ravel()[diff[0]]!r}, want {want32.ravel()[diff[0]]!r}"
        )

    return check


@pytest.fixture
def convert_bytes(
    tmp_path: Path,
) -> Callable[..., tuple[embstore.EmbeddingStore, Any]]:
    """Write ``data`` as an input file, convert it and open the store."""
    counter = iter(range(1_000_000))

    def run(data: bytes | str, name: str = "vectors.txt",
            **options: Any) -> tuple[embstore.EmbeddingStore, Any]:
        n = next(counter)
        src = tmp_path / f"in{n}" / name
        src.parent.mkdir()
        src.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        dst = tmp_path / f"out{n}.emb"
        options.setdefault("quiet", True)
        report = embstore.convert(src, dst, **options)
        return embstore.open(dst), report

    return run


def text_vectors(words: Sequence[str], vectors: np.ndarray, *, header: bool = True) -> str:
    """word2vec text (or GloVe text without the header) with shortest round-trip values."""
    lines = [f"{len(words)} {vectors.shape[1]}"] if header else []
    for word, row in zip(words, vectors, strict=True):
        lines.append(word + " " + " ".join(repr(float(x)) for x in row.astype(np.float32)))
    return "\n".join(lines) + "\n"


def binary_vectors(words: Sequence[str | bytes], vectors: np.ndarray, *,
                   newline: bool = True, header: bytes | None = None) -> bytes:
    """word2vec C binary; the C tool writes a newline after each vector, gensim does not."""
    vectors = np.asarray(vectors, dtype="<f4")
    parts = [header if header is not None else f"{len(words)} {vectors.shape[1]}\n".encode()]
    for word, row in zip(words, vectors, strict=True):
        raw = word.encode("utf-8") if isinstance(word, str) else word
        parts.append(raw + b" " + row.tobytes() + (b"\n" if newline else b""))
    return b"".join(parts)


@pytest.fixture(scope="session")
def make_text() -> Callable[..., str]:
    return text_vectors


@pytest.fixture(scope="session")
def make_binary() -> Callable[..., bytes]:
    return binary_vectors


def random_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct words mixing ASCII, accents, CJK and emoji."""
    alphabet = [*"abcdefghijklmnopqrstuvwxyz", "é", "ß", "日", "本", "😀", "ا"]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n:
        length = int(rng.integers(1, 9))
        w = "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), length))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


@pytest.fixture(scope="session")
def make_words() -> Callable[[int, np.random.Generator], list[str]]:
    return random_words


@pytest.fixture
def build_store(tmp_path: Path) -> Callable[..., tuple[Path, list[str], np.ndarray]]:
    """A store of ``n`` random words x ``dim`` (converted from a binary file).

    Returns ``(store path, words, vectors)`` for checking the store against.
    """
    counter = iter(range(1_000_000))

    def build(n: int, dim: int, *, seed: int = 0,
              words: Iterable[str] | None = None) -> tuple[Path, list[str], np.ndarray]:
        rng = np.random.default_rng(seed)
        ws = list(words) if words is not None else random_words(n, rng)
        vecs = rng.standard_normal((len(ws), dim)).astype(np.float32)
        k = next(counter)
        src = tmp_path / f"build{k}.bin"
        src.write_bytes(binary_vectors(ws, vecs))
        dst = tmp_path / f"build{k}.emb"
        embstore.convert(src, dst, quiet=True)
        return dst, ws, vecs

    return build
