"""``embstore demo``: the whole job, end to end, on a built-in example or on your files.

1. convert a vector file into a store,
2. describe and verify the store,
3. build an embedding matrix for a vocabulary and save it as ``.npy`` with a JSON report,
4. show a few lookups.

The built-in example is a small word2vec model trained on the Python standard library's
docstrings and the vocabulary of the Zen of Python (see ``embstore/data/make_example.py``).
"""

from __future__ import annotations

import json
import os
import shlex
from importlib import resources
from pathlib import Path

import numpy as np


def _data_file(name: str) -> str:
    return str(resources.files("embstore") / "data" / name)


def _neighbours(store: object, word: str, k: int = 5) -> list[str]:
    """Nearest words by cosine similarity; only used on small stores."""
    vectors = np.asarray(store.vectors, dtype=np.float32)  # type: ignore[attr-defined]
    norms = np.linalg.norm(vectors, axis=1) + 1e-12
    q = store[word]  # type: ignore[index]
    sims = vectors @ q / (norms * (np.linalg.norm(q) + 1e-12))
    order = np.argsort(-sims)[: k + 1]
    words = store.words  # type: ignore[attr-defined]
    return [words[int(i)] for i in order if words[int(i)] != word][:k]


# Frequent short words and punctuation make poor "nearest to" examples.
_STOP_WORDS = (
    "a about after all also an and any are as at be been but by can could did do does for from "
    "had has have he her his how if in into is it its just like may me more most my no not of "
    "on one or other our out over said she should so some such than that the their them then "
    "there these they this those through to too two under up very was we were what when where "
    "which while who why will with would you your")
_STOP = frozenset(_STOP_WORDS.split())


def _is_example_word(word: str) -> bool:
    return len(word) >= 3 and word.isalpha() and word.lower() not in _STOP


def sample_words(words: object, n: int = 3, scan: int = 20_000) -> list[str]:
    """``n`` words to show lookups for: alphabetic, at least 3 letters, not stop words, from
    the middle of the frequency range (vector files list words by decreasing frequency), so
    the examples are neither ``the`` and ``,`` nor rare junk.  At most ``scan`` words read."""
    total = len(words)  # type: ignore[arg-type]
    start = total // 4
    picked: list[str] = []
    for lo, hi in ((start, min(total, start + scan)), (0, min(total, scan))):
        for i in range(lo, hi):
            w = words[i]  # type: ignore[index]
            if _is_example_word(w) and w not in picked:
                picked.append(w)
                if len(picked) == n:
                    return picked
    return picked or [words[i] for i in range(min(n, total))]  # type: ignore[index]


def _command(*parts: object) -> str:
    """A command line to show, each argument quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(p)) for p in parts)


def run_demo(vectors: str | None = None, vocab: str | None = None,
             workdir: str | os.PathLike[str] = "demo-output") -> int:
    from ._atomic import write_atomic
    from ._convert.convert import convert
    from .matrix import save_matrix
    from .store import open as open_store
    from .verifier import verify

    builtin = vectors is None
    src = vectors or _data_file("example.vec.gz")
    vocab_path = vocab or (_data_file("example_word_index.json") if builtin else None)
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "vectors.emb"

    print(f"1. {_command('embstore', 'convert', src, store_path, '--force')}")
    report = convert(src, store_path, force=True)
    print(f"   {report}")

    print(f"2. {_command('embstore', 'info', store_path)} / "
          f"{_command('embstore', 'verify', store_path)}")
    checked = verify(store_path)
    print(f"   {checked}")

    with open_store(store_path) as store:
        if vocab_path is None:
            print("3. no vocabulary given (--vocab); using the store's first 1,000 words")
            tokens = ["", "[UNK]", *store.words[:1000]]
            vocab_path = str(out / "vocab.txt")
            Path(vocab_path).write_text("\n".join(tokens) + "\n", encoding="utf-8")
        matrix_path = out / "matrix.npy"
        report_path = out / "matrix-report.json"
        command = _command("embstore", "matrix", store_path, vocab_path, "--out", matrix_path,
                           "--oov", "random", "--fallback", "lower,title", "--force")
        print(f"3. {command}")
        # force: the demo's outputs are replaced on every run (atomically; only by their kind)
        result = save_matrix(store, vocab_path, matrix_path, oov="random",
                             fallbacks=["lower", "title"], seed=0, force=True)
        write_atomic(report_path, (json.dumps(result.to_dict(), indent=2, ensure_ascii=False)
                                   + "\n").encode("utf-8"), kind="report", force=True)
        print(f"   {result.summary()} -> {matrix_path}")
        if result.missing:
            shown = ", ".join(result.missing[:8])
            print(f"   missing: {shown}{' ...' if len(result.missing) > 8 else ''}")
        print(f"   report: {report_path}")

        print("4. lookups")
        sample = [w for w in ("list", "file", "string", "error") if w in store] if builtin \
            else sample_words(store.words)
        for word in sample:
            if len(store) <= 200_000:
                print(f"   nearest to {word!r}: {', '.join(_neighbours(store, word))}")
            else:
                print(f"   {word!r}: row {store.get_index(word)}, "
                      f"first values {np.round(store[word][:4], 4).tolist()}")
    print(f"Done. Outputs are in {out}/")
    return 0
