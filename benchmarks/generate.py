"""Deterministic synthetic word-vector files and vocabularies for the benchmarks.

Real vector files (GoogleNews, GloVe, fastText) are large downloads with licences of their own,
so the benchmarks use synthetic files with the properties that matter for speed:

* words: unique, with a realistic length mix (frequent words short, rare words longer, 2-15
  letters drawn with English letter frequencies), some capitalised, upper case, GoogleNews-style
  phrases (``New_York``), punctuation (``don't``, ``e-mail``, ``U.S.``, ``#tag``), numbers, and
  non-ASCII words (accented Latin, Cyrillic, Greek, CJK);
* vectors: 300 float32 dimensions, normal with a per-dimension mean and spread, like trained
  embeddings;
* word2vec binary in the GoogleNews layout (``"count dim\\n"`` header, then per row
  ``word SP <dim little-endian float32> \\n``) and word2vec text (same header, values printed
  with a fixed number of decimals, ``%.5f`` by default, like GloVe and fastText files).

Generation is chunked (65,536 rows per chunk, each chunk seeded by ``(seed, chunk)``), so a
file of N rows is a prefix of a file of M > N rows with the same seed, and only words and one
chunk of vectors are ever in memory.  Bytes are assembled by small Numba kernels: formatting
300 million values as text in a Python loop would take many minutes.

Files are cached: a file is reused when it and its ``.meta.json`` sidecar (written last, after
the data is complete) exist with matching parameters.  The default cache is
``benchmarks/data/`` (git-ignored), or ``$EMBSTORE_BENCH_DATA``.

Command line::

    python benchmarks/generate.py --words 1m --binary --text --vocab 20k,400k
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency of embstore itself
    raise SystemExit("the benchmark generator needs numba (pip install numba)") from None

GENERATOR_VERSION = 1  # bump when the output of any generator changes
DIM = 300
CHUNK_ROWS = 1 << 16
DEFAULT_SEED = 20240601
DEFAULT_DECIMALS = 5
FALLBACK_RULES = ("lower", "title", "upper")

_REPO = Path(__file__).resolve().parent.parent

# English letter frequencies (per cent), a..z.
_LETTER_FREQ = np.array([
    8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.77, 4.0, 2.4,
    6.7, 7.5, 1.9, 0.095, 6.0, 6.3, 9.1, 2.8, 0.98, 2.4, 0.15, 2.0, 0.074,
])
_LETTER_P = _LETTER_FREQ / _LETTER_FREQ.sum()
_ACCENTED = "éèêëàâäáãåçñóòôöõúùûüíìîïýÿøæœßłśźżčšžřőűğışąęń"
_SCRIPTS = (
    "абвгдеёжзийклмнопрстуфхцчшщыьэюя",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわん",
)


def parse_count(text: str | int) -> int:
    """``"1k"`` -> 1000, ``"3m"`` -> 3000000, ``"20000"`` -> 20000."""
    if isinstance(text, int):
        return text
    t = text.strip().lower().replace("_", "")
    mult = 1
    if t.endswith("k"):
        mult, t = 1_000, t[:-1]
    elif t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    value = float(t) * mult
    if value < 1 or value != int(value):
        raise ValueError(f"expected a positive count like 20k or 1m, got {text!r}")
    return int(value)


def count_label(n: int) -> str:
    """Inverse of :func:`parse_count` for round numbers: 20000 -> ``"20k"``."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def default_data_dir() -> Path:
    """Where generated files are cached: ``$EMBSTORE_BENCH_DATA`` or ``benchmarks/data``."""
    env = os.environ.get("EMBSTORE_BENCH_DATA")
    return Path(env) if env else _REPO / "benchmarks" / "data"


# -- words ------------------------------------------------------------------------------------


def _rank_lengths(rng: np.random.Generator, ranks: np.ndarray) -> np.ndarray:
    """Word lengths 2-15 whose typical value grows with rank (frequent words are short)."""
    mu = np.log(4.0 + 0.9 * np.log10(ranks + 1.0))
    lengths = np.rint(np.exp(rng.normal(mu, 0.32)))
    return np.clip(lengths, 2, 15).astype(np.int64)


def _letters(rng: np.random.Generator, lengths: np.ndarray) -> list[str]:
    """Lower-case ASCII words of the given lengths, letters drawn with English frequencies."""
    total = int(lengths.sum())
    codes = rng.choice(26, size=total, p=_LETTER_P).astype(np.uint8) + ord("a")
    # One newline after each word, then a single decode and split: no per-word Python work.
    ends = np.cumsum(lengths)
    buf = np.insert(codes, ends, ord("\n"))
    return buf.tobytes().decode("ascii").split("\n")[:-1]


def _decorate(word: str, kind: int, r: int, other: str) -> str:
    """Turn a plain lower-case word into one of the less common shapes real files have."""
    if kind == 1:  # Capitalised, like names and sentence starts
        return word.capitalize()
    if kind == 2:  # acronym
        return word[: 2 + r % 4].upper()
    if kind == 3:  # GoogleNews phrase
        return f"{word.capitalize()}_{other.capitalize()}" if r % 3 else f"{word}_{other}"
    if kind == 4:  # punctuation
        style = r % 6
        if style == 0 and len(word) > 2:
            return f"{word[:-1]}'{word[-1]}"
        if style == 1 and len(word) > 3:
            return f"{word[: len(word) // 2]}-{word[len(word) // 2:]}"
        if style == 2:
            return ".".join(word[: 2 + r % 2].upper()) + "."
        if style == 3:
            return f"#{word}"
        if style == 4:
            return f"www.{word}.com"
        return f"@{word}"
    if kind == 5:  # numbers, GoogleNews style (digits as #) or plain
        style = r % 4
        if style == 0:
            return str(1900 + r % 130)
        if style == 1:
            return "#" * (1 + r % 5)
        if style == 2:
            return f"{r % 100}.{r % 10}"
        return f"{1900 + r % 120}s"
    if kind == 6:  # accented Latin letters
        chars = list(word)
        for k in range(1 + r % 2):
            pos = (r >> (4 + 5 * k)) % len(chars)
            chars[pos] = _ACCENTED[(r >> (12 + 7 * k)) % len(_ACCENTED)]
        return "".join(chars)
    if kind == 7:  # another script entirely
        alphabet = _SCRIPTS[r % len(_SCRIPTS)]
        n = 1 + (r >> 3) % 6 if r % len(_SCRIPTS) >= 2 else 2 + (r >> 3) % 9
        return "".join(alphabet[(r >> (5 + 3 * k) ^ k * 7919) % len(alphabet)] for k in range(n))
    return word


# Cumulative shares of the word shapes above (the rest stay plain lower case).
_KIND_EDGES = np.array([0.12, 0.14, 0.19, 0.21, 0.22, 0.25, 0.256])


def _candidate_chunk(seed: int, chunk: int, start: int, rows: int) -> list[str]:
    rng = np.random.default_rng([seed, 1, chunk])
    ranks = np.arange(start, start + rows, dtype=np.float64)
    plain = _letters(rng, _rank_lengths(rng, ranks))
    kinds = np.searchsorted(_KIND_EDGES, rng.random(rows), side="right") + 1
    kinds[kinds == len(_KIND_EDGES) + 1] = 0
    aux = rng.integers(0, 1 << 40, size=rows).tolist()
    partner = rng.integers(0, rows, size=rows).tolist()
    out = plain
    for i in np.flatnonzero(kinds).tolist():
        out[i] = _decorate(plain[i], int(kinds[i]), aux[i], plain[partner[i]])
    return out


def make_words(n: int, seed: int = DEFAULT_SEED) -> list[str]:
    """``n`` unique words; the first ``k`` are the same for every ``n >= k`` (prefix-stable).

    Duplicates among the candidates (short words collide often) are replaced by fresh longer
    words drawn from a per-chunk generator, in row order, so the result is deterministic.
    """
    words: list[str] = []
    seen: set[str] = set()
    if n == 0:
        return words
    for chunk in range(math.ceil(n / CHUNK_ROWS)):
        start = chunk * CHUNK_ROWS
        rows = min(CHUNK_ROWS, n - start)
        cands = _candidate_chunk(seed, chunk, start, CHUNK_ROWS)[:rows]
        if chunk == 0:
            cands[0] = "</s>"  # GoogleNews's first token
        spare_rng = np.random.default_rng([seed, 3, chunk])
        spares: list[str] = []
        for w in cands:
            if w in seen:
                while True:
                    if not spares:
                        spares = _letters(spare_rng, spare_rng.integers(7, 16, size=256))
                    w = spares.pop()
                    if w not in seen:
                        break
            seen.add(w)
            words.append(w)
    return words


# -- vectors ----------------------------------------------------------------------------------


def dimension_stats(seed: int, dim: int = DIM) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation, like a trained embedding's."""
    rng = np.random.default_rng([seed, 0])
    mean = rng.normal(0.0, 0.03, size=dim)
    std = rng.uniform(0.07, 0.2, size=dim)
    return mean.astype(np.float32), std.astype(np.float32)


def vector_chunk(seed: int, chunk: int, rows: int, dim: int = DIM) -> np.ndarray:
    """Vectors of rows ``chunk * CHUNK_ROWS ...`` (the first ``rows`` of that chunk)."""
    mean, std = dimension_stats(seed, dim)
    rng = np.random.default_rng([seed, 2, chunk])
    v = rng.standard_normal((CHUNK_ROWS, dim), dtype=np.float32)[:rows]
    v *= std
    v += mean
    return v


def _encode_words(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [w.encode("utf-8") for w in words]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


@njit(cache=True)
def _assemble_binary(wbuf, woff, vec_bytes, out):  # type: ignore[no-untyped-def]
    """``word SP vector-bytes LF`` per row into ``out``; returns the bytes written."""
    p = 0
    rec = vec_bytes.shape[1]
    for i in range(woff.size - 1):
        for j in range(woff[i], woff[i + 1]):
            out[p] = wbuf[j]
            p += 1
        out[p] = 32
        p += 1
        out[p:p + rec] = vec_bytes[i]
        p += rec
        out[p] = 10
        p += 1
    return p


@njit(cache=True)
def _assemble_text(wbuf, woff, q, decimals, out):  # type: ignore[no-untyped-def]
    """``word (SP value){dim} LF`` per row; ``q`` holds values times ``10**decimals``."""
    scale = 1
    for _ in range(decimals):
        scale *= 10
    digits = np.empty(24, dtype=np.uint8)
    p = 0
    for i in range(woff.size - 1):
        for j in range(woff[i], woff[i + 1]):
            out[p] = wbuf[j]
            p += 1
        for k in range(q.shape[1]):
            out[p] = 32
            p += 1
            v = q[i, k]
            if v < 0:
                out[p] = 45  # '-'
                p += 1
                v = -v
            ip = v // scale
            fp = v - ip * scale
            n = 0
            while True:
                digits[n] = 48 + ip % 10
                n += 1
                ip //= 10
                if ip == 0:
                    break
            for d in range(n - 1, -1, -1):
                out[p] = digits[d]
                p += 1
            if decimals > 0:
                out[p] = 46  # '.'
                p += 1
                for d in range(decimals - 1, -1, -1):
                    out[p + d] = 48 + fp % 10
                    fp //= 10
                p += decimals
        out[p] = 10
        p += 1
    return p


def binary_rows(words: Sequence[str], vectors: np.ndarray) -> bytes:
    """The word2vec binary records of ``words`` and ``vectors`` (no header)."""
    wbuf, woff = _encode_words(words)
    vb = np.ascontiguousarray(vectors, dtype="<f4").view(np.uint8).reshape(len(words), -1)
    out = np.empty(int(woff[-1]) + len(words) * (vb.shape[1] + 2), dtype=np.uint8)
    n = _assemble_binary(wbuf, woff, vb, out)
    return out[:n].tobytes()


def text_rows(words: Sequence[str], vectors: np.ndarray, decimals: int = DEFAULT_DECIMALS) -> bytes:
    """The word2vec text lines of ``words`` and ``vectors`` (no header), ``%.{decimals}f``."""
    wbuf, woff = _encode_words(words)
    q = np.rint(vectors.astype(np.float64) * 10.0 ** decimals).astype(np.int64)
    q[q == 0] = 0  # no "-0.00000"
    int_digits = len(str(int(np.abs(q).max()) // 10 ** decimals)) if q.size else 1
    per_value = 2 + int_digits + 1 + decimals
    out = np.empty(int(woff[-1]) + q.size * per_value + len(words), dtype=np.uint8)
    n = _assemble_text(wbuf, woff, q, decimals, out)
    return out[:n].tobytes()


# -- cached files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    meta: dict[str, Any]

    @property
    def rows(self) -> int:
        return int(self.meta["rows"])


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _cached(path: Path, params: dict[str, Any]) -> GeneratedFile | None:
    mp = _meta_path(path)
    if not (path.exists() and mp.exists()):
        return None
    try:
        meta = json.loads(mp.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if any(meta.get(k) != v for k, v in params.items()):
        return None
    if meta.get("bytes") != path.stat().st_size:
        return None
    return GeneratedFile(path, meta)


def _publish(tmp: Path, path: Path, meta: dict[str, Any]) -> GeneratedFile:
    os.replace(tmp, path)
    meta["bytes"] = path.stat().st_size
    mp = _meta_path(path)
    mtmp = mp.with_name(mp.name + f".tmp-{os.getpid()}")
    mtmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(mtmp, mp)
    return GeneratedFile(path, meta)


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def vector_file(kind: str, rows: int, *, seed: int = DEFAULT_SEED, dim: int = DIM,
                decimals: int = DEFAULT_DECIMALS, data_dir: Path | None = None,
                quiet: bool = False) -> GeneratedFile:
    """A cached word2vec file: ``kind`` is ``"binary"`` or ``"text"``."""
    if kind not in ("binary", "text"):
        raise ValueError(f"kind must be binary or text, not {kind!r}")
    data_dir = Path(data_dir or default_data_dir())
    data_dir.mkdir(parents=True, exist_ok=True)
    label = count_label(rows)
    if kind == "binary":
        name = f"w2v-g{GENERATOR_VERSION}-{label}x{dim}-s{seed}.bin"
    else:
        name = f"w2v-g{GENERATOR_VERSION}-{label}x{dim}-s{seed}-f{decimals}.txt"
    path = data_dir / name
    params: dict[str, Any] = {"generator_version": GENERATOR_VERSION, "kind": kind,
                              "rows": rows, "dim": dim, "seed": seed}
    if kind == "text":
        params["decimals"] = decimals
    hit = _cached(path, params)
    if hit is not None:
        return hit
    _log(quiet, f"generating {path.name} ({rows:,} words x {dim}, {kind})")
    t0 = time.perf_counter()
    words = make_words(rows, seed)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(f"{rows} {dim}\n".encode("ascii"))
            for chunk in range(math.ceil(rows / CHUNK_ROWS)):
                a = chunk * CHUNK_ROWS
                b = min(rows, a + CHUNK_ROWS)
                vecs = vector_chunk(seed, chunk, b - a, dim)
                if kind == "binary":
                    fh.write(binary_rows(words[a:b], vecs))
                else:
                    fh.write(text_rows(words[a:b], vecs, decimals))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    meta = dict(params, seconds=round(time.perf_counter() - t0, 3),
                words_bytes=sum(len(w.encode("utf-8")) for w in words))
    out = _publish(tmp, path, meta)
    _log(quiet, f"  {out.meta['bytes'] / 1e9:.2f} GB in {meta['seconds']:.1f} s")
    return out


# -- vocabularies -----------------------------------------------------------------------------


def resolve(word: str, index: dict[str, int]) -> tuple[int, str | None]:
    """Row of ``word`` under the classic recipe with case fallbacks: exact, then lower, title
    (``str.capitalize``) and upper; ``(-1, None)`` if none is present.  The rule name is
    ``None`` for an exact hit.  This is the semantics of
    ``build_matrix(..., fallbacks=["lower", "title", "upper"])``."""
    row = index.get(word)
    if row is not None:
        return row, None
    for rule, alt in (("lower", word.lower()), ("title", word.capitalize()),
                      ("upper", word.upper())):
        if alt != word:
            row = index.get(alt)
            if row is not None:
                return row, rule
    return -1, None


def _sample_ranks(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``k`` distinct ranks < ``n``, frequent (low) ranks more likely, in random order.

    Weighted sampling without replacement by exponential keys (Efraimidis-Spirakis), so a
    tokenizer's vocabulary looks like a corpus's: mostly frequent words, a tail of rare ones.
    """
    k = min(k, n)
    weights = 1.0 / (np.arange(n, dtype=np.float64) + 50.0) ** 0.6
    keys = rng.exponential(size=n) / weights
    pick = np.argpartition(keys, k - 1)[:k] if k < n else np.arange(n)
    return pick[rng.permutation(pick.size)]


@dataclass(frozen=True)
class VocabFile:
    """A JSON word_index plus the expected lookups (for the NumPy floor and for checks)."""

    path: Path
    index_path: Path  # .npz with dest (matrix row) and src (store row) of every hit
    meta: dict[str, Any]


def make_vocab(words: Sequence[str], size: int, seed: int) -> tuple[dict[str, int], dict[str, Any]]:
    """A Keras-Tokenizer-like word_index of ``size`` words (values 1..size).

    About 85% are store words, 5% are case variants of store words that only a case fallback
    finds (``Apple`` for ``apple``, ``paris`` for ``Paris``, ``nasa`` for ``NASA``), 10% are
    absent (typos of store words and random strings).  When the store is too small for that
    (the tiny sizes) the found share shrinks and the rest is absent.
    """
    n = len(words)
    rng = np.random.default_rng([seed, 10, size])
    n_fallback = round(0.05 * size)
    n_exact = size - n_fallback - round(0.10 * size)
    cap = int(0.8 * n)
    if n_exact + n_fallback > cap:
        n_fallback = min(n_fallback, cap // 16)
        n_exact = cap - n_fallback
    index = {w: i for i, w in enumerate(words)}
    chosen: dict[str, float] = {}  # word -> ordering key (lower = more frequent)
    ranks = _sample_ranks(rng, n, n_exact + 4 * n_fallback + 64).tolist()
    noise = rng.lognormal(0.0, 0.6, size=len(ranks)).tolist()
    pos = 0
    while pos < len(ranks) and len(chosen) < n_exact:
        r = ranks[pos]
        chosen[words[r]] = r * noise[pos]
        pos += 1
    fallback_hits = dict.fromkeys(FALLBACK_RULES, 0)
    added = 0
    variant_pick = rng.integers(0, 1 << 30, size=len(ranks)).tolist()
    while pos < len(ranks) and added < n_fallback:
        r = ranks[pos]
        w = words[r]
        pos += 1
        if w == w.lower():
            v = w.capitalize() if variant_pick[pos - 1] % 3 else w.upper()
        else:
            v = w.lower()
        if v == w or v in chosen:
            continue
        row, rule = resolve(v, index)
        if row != r or rule is None:
            continue
        chosen[v] = r * noise[pos - 1]
        fallback_hits[rule] += 1
        added += 1
    n_missing = size - len(chosen)
    miss_rng = np.random.default_rng([seed, 11, size])
    missing = 0
    while missing < n_missing:
        batch = max(256, 2 * (n_missing - missing))
        fresh = _letters(miss_rng, miss_rng.integers(5, 15, size=batch))
        typo_src = miss_rng.integers(0, n, size=batch).tolist()
        typo_pos = miss_rng.integers(0, 1 << 20, size=batch).tolist()
        keys = (miss_rng.random(batch) * max(n, size)).tolist()
        # Half typos of store words, half random strings; kept only if no rule finds them
        # (the checks are inlined: this loop runs for every absent word of a big vocabulary).
        for j in range(batch):
            if j % 2:
                base = words[typo_src[j]]
                p = typo_pos[j] % len(base)
                cand = base[:p] + fresh[j][0] + base[p + 1:] + fresh[j][1]
            else:
                cand = fresh[j]
            if (cand in chosen or cand in index or cand.lower() in index
                    or cand.capitalize() in index or cand.upper() in index):
                continue
            chosen[cand] = keys[j]
            missing += 1
            if missing >= n_missing:
                break
    ordered = sorted(chosen, key=chosen.__getitem__)
    word_index = {w: i + 1 for i, w in enumerate(ordered)}
    meta = {"size": size, "store_rows": n, "seed": seed, "exact": n_exact,
            "fallback": added, "fallback_hits": fallback_hits, "missing": missing}
    return word_index, meta


def expected_rows(word_index: dict[str, int], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(dest, src)``: matrix row and store row of every vocabulary word that resolves."""
    dest: list[int] = []
    src: list[int] = []
    for w, i in word_index.items():
        row, _ = resolve(w, index)
        if row >= 0:
            dest.append(i)
            src.append(row)
    return np.asarray(dest, dtype=np.int64), np.asarray(src, dtype=np.int64)


def vocab_file(store_rows: int, size: int, *, seed: int = DEFAULT_SEED,
               data_dir: Path | None = None, quiet: bool = False) -> VocabFile:
    """A cached vocabulary of ``size`` words for the store of ``store_rows`` words."""
    data_dir = Path(data_dir or default_data_dir())
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = f"vocab-g{GENERATOR_VERSION}-{count_label(size)}-of-{count_label(store_rows)}-s{seed}"
    path = data_dir / f"{stem}.json"
    index_path = data_dir / f"{stem}.rows.npz"
    params = {"generator_version": GENERATOR_VERSION, "kind": "vocab", "rows": size,
              "store_rows": store_rows, "seed": seed}
    hit = _cached(path, params)
    if hit is not None and index_path.exists():
        return VocabFile(path, index_path, hit.meta)
    _log(quiet, f"generating {path.name}")
    words = make_words(store_rows, seed)
    word_index, vmeta = make_vocab(words, size, seed)
    index = {w: i for i, w in enumerate(words)}
    dest, src = expected_rows(word_index, index)
    tmp_npz = index_path.with_name(f".{index_path.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp_npz, dest=dest, src=src)
    os.replace(tmp_npz, index_path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(word_index, ensure_ascii=False), encoding="utf-8")
    meta = dict(params, hits=int(dest.size), **{k: v for k, v in vmeta.items() if k != "size"})
    out = _publish(tmp, path, meta)
    return VocabFile(path, index_path, out.meta)


# -- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Generate (or find cached) synthetic word2vec files.")
    p.add_argument("--words", default="1k", help="rows, e.g. 1k, 100k, 1m, 3m (default 1k)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--binary", action="store_true", help="word2vec binary (GoogleNews layout)")
    p.add_argument("--text", action="store_true", help="word2vec text, values %%.<decimals>f")
    p.add_argument("--decimals", type=int, default=DEFAULT_DECIMALS)
    p.add_argument("--vocab", default="", help="comma-separated vocabulary sizes, e.g. 20k,400k")
    p.add_argument("--data-dir", type=Path, default=None, help="cache directory")
    args = p.parse_args(argv)
    rows = parse_count(args.words)
    if not (args.binary or args.text or args.vocab):
        args.binary = True
    if args.binary:
        print(vector_file("binary", rows, seed=args.seed, data_dir=args.data_dir).path)
    if args.text:
        print(vector_file("text", rows, seed=args.seed, decimals=args.decimals,
                          data_dir=args.data_dir).path)
    for v in (s for s in args.vocab.split(",") if s):
        print(vocab_file(rows, parse_count(v), seed=args.seed, data_dir=args.data_dir).path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
